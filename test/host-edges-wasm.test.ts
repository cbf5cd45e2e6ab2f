// The WebAssembly SIMD row kernel of the host squared-edge pass (src/host/edges-squared-wasm.ts,
// src/host/wasm/edges_squared.wat) gives the same bits as the JS kernel of edges-squared.ts:
// shapes of 1, odd and prime widths (columns and rows not multiples of the 4 × 4 block), fresh and
// carried rows (ReLU gates in sign-pattern order, smooth gates that rebuild every row, constant
// gates that never change), resets inside runs, the identity A, runs added into the same E by one
// kernel, and the whole pass on the pool's threads against the JS kernel on this thread.

import { afterEach, describe, expect, it } from 'vitest';
import { accumulateSquaredEdges, jsRowKernel, type SquaredEdgeSection } from '../src/host/edges-squared.js';
import { squaredEdgeRowKernel, wasmRowKernel, wasmSquaredEdgesAvailable } from '../src/host/edges-squared-wasm.js';
import { computeEdgesHost } from '../src/host/edges.js';
import { signPatternOrder } from '../src/cpu/gate-order.js';
import { arraySource } from '../src/ib/data.js';
import { integrationPoints } from '../src/ib/integration.js';
import { randomF64, rng, unevenRuns } from './helpers/random.js';
import { edgeKernelCases, edgeKernelInputs, edgePassSetup, gatesOf } from './helpers/edge-cases.js';

/** Indices where a and b differ as float64 bit patterns (Object.is: −0 ≠ 0, NaN = NaN). */
function bitDiffs(a: Float64Array, b: Float64Array): number[] {
  expect(b.length).toBe(a.length);
  const out: number[] = [];
  for (let t = 0; t < a.length; t++) if (!Object.is(a[t], b[t])) out.push(t);
  return out;
}

afterEach(() => {
  delete process.env['IBGPU_HOST_WASM'];
});

describe('wasm row kernel = JS row kernel, bit for bit', () => {
  it('runs here (Node has WebAssembly SIMD)', () => {
    expect(wasmSquaredEdgesAvailable()).toBe(true);
  });

  const shapes = [
    { h: 1, ro: 1, r: 1, rows: 1 },
    { h: 1, ro: 1, r: 1, rows: 9 },
    { h: 2, ro: 3, r: 2, rows: 5 },
    { h: 7, ro: 5, r: 3, rows: 13 },
    { h: 13, ro: 13, r: 7, rows: 40 },
    { h: 31, ro: 17, r: 29, rows: 211 },
    { h: 100, ro: 11, r: 97, rows: 300 },
    { h: 100, ro: 96, r: 96, rows: 64 },
  ];
  // ReLU units fire half the time: at the per-unit rates (from 15 %) the one-unit shapes' few rows
  // would add nothing, and the last check below would fail for want of work, not of bits.
  const halfTheTime = (): number => 0.5;
  for (const tc of edgeKernelCases(shapes)) {
    it(tc.name, () => {
      const { ro, r, rows } = tc;
      const { sec, f, g, order } = edgeKernelInputs(tc, halfTheTime);
      // E starts non-zero (a partial that earlier blocks added into); uneven runs through one
      // kernel each, with a short reset interval so that rebuilds happen inside runs.
      const E0 = randomF64(ro * r, tc.seed + 5).map((v) => v * v);
      const Ejs = E0.slice();
      const Ew = E0.slice();
      const js = jsRowKernel(sec);
      const w = wasmRowKernel(sec)!;
      expect(w).toBeDefined();
      const cuts = unevenRuns(rows);
      let uj = 0;
      let uw = 0;
      for (let c = 0; c + 1 < cuts.length; c++) {
        uj += accumulateSquaredEdges(sec, Ejs, js, f, g, order, cuts[c]!, cuts[c + 1]!, 5);
        uw += accumulateSquaredEdges(sec, Ew, w, f, g, order, cuts[c]!, cuts[c + 1]!, 5);
      }
      expect(uw).toBe(uj);
      expect(bitDiffs(Ejs, Ew)).toEqual([]);
      expect(bitDiffs(Ejs, E0).length).toBeGreaterThan(0); // the runs did add something
    });
  }

  it('keeps the bits through signed zeros, tiny and huge values', () => {
    const h = 9,
      ro = 6,
      r = 10,
      rows = 30;
    const special = [0, -0, 1e-300, -1e-300, 1e150, -1e150, 5e-324, 1, -1];
    const pick = (n: number, seed: number): Float64Array => {
      const u = rng(seed);
      return Float64Array.from({ length: n }, () => special[Math.floor(u() * special.length)]!);
    };
    const sec: SquaredEdgeSection = { h, ro, r, A: pick(h * ro, 1), B: pick(h * r, 2) };
    const f = pick(rows * r, 3);
    const g = gatesOf('smooth', rows, h, 4);
    const order = Uint32Array.from({ length: rows }, (_, n) => n);
    const Ejs = new Float64Array(ro * r);
    const Ew = new Float64Array(ro * r);
    accumulateSquaredEdges(sec, Ejs, jsRowKernel(sec), f, g, order, 0, rows, 7);
    accumulateSquaredEdges(sec, Ew, wasmRowKernel(sec)!, f, g, order, 0, rows, 7);
    expect(bitDiffs(Ejs, Ew)).toEqual([]);
  });

  it('serves several sections and passes from separate instances', () => {
    const a: SquaredEdgeSection = { h: 5, ro: 3, r: 4, A: randomF64(15, 1), B: randomF64(20, 2) };
    const b: SquaredEdgeSection = { h: 6, ro: 6, r: 5, A: undefined, B: randomF64(30, 3) };
    const ka = wasmRowKernel(a)!;
    const kb = wasmRowKernel(b)!;
    for (const [sec, k, seed] of [
      [a, ka, 10],
      [b, kb, 20],
      [a, ka, 30],
    ] as const) {
      const rows = 12;
      const f = randomF64(rows * sec.r, seed);
      const g = gatesOf('relu', rows, sec.h, seed + 1, halfTheTime);
      const order = signPatternOrder(g, rows, sec.h);
      const Ejs = new Float64Array(sec.ro * sec.r);
      const Ew = new Float64Array(sec.ro * sec.r);
      accumulateSquaredEdges(sec, Ejs, jsRowKernel(sec), f, g, order, 0, rows);
      accumulateSquaredEdges(sec, Ew, k, f, g, order, 0, rows);
      expect(bitDiffs(Ejs, Ew)).toEqual([]);
    }
  });

  it('IBGPU_HOST_WASM=0 turns it off (the JS kernel serves)', () => {
    const sec: SquaredEdgeSection = { h: 3, ro: 2, r: 2, A: randomF64(6, 1), B: randomF64(6, 2) };
    process.env['IBGPU_HOST_WASM'] = '0';
    expect(wasmSquaredEdgesAvailable()).toBe(false);
    expect(wasmRowKernel(sec)).toBeUndefined();
    expect(squaredEdgeRowKernel(sec).units.length).toBe(3); // the JS kernel
    delete process.env['IBGPU_HOST_WASM'];
    expect(wasmRowKernel(sec)).toBeDefined();
  });
});

describe('computeEdgesHost with the wasm kernel', () => {
  it('gives the JS kernel’s bits, on 2 threads and on this thread', async () => {
    const { model, x, n, pairs } = edgePassSetup(500);
    const src = arraySource(x, n, 9);
    const pts = integrationPoints('gradient', 0);
    const threaded = await computeEdgesHost(model, src, pairs, 128, pts, undefined, { threads: 2 });
    const here = await computeEdgesHost(model, src, pairs, 128, pts, undefined, { threads: 1 });
    process.env['IBGPU_HOST_WASM'] = '0';
    const js = await computeEdgesHost(model, src, pairs, 128, pts, undefined, { threads: 1 });
    for (const [k, v] of js) {
      expect(bitDiffs(v, here.get(k)!), `${k} here`).toEqual([]);
      expect(bitDiffs(v, threaded.get(k)!), `${k} on 2 threads`).toEqual([]);
    }
  });
});
