// The table forms of the last-position attention sums (src/host/attention-table-sums.ts) against
// the per-sample sums (src/host/attention-sums.ts) over the same rows looked up per sample: random
// row tables and token ids, shapes with P = 1..5, 1–3 heads, prime head widths, K = 1 and more
// cotangents, causal, windowed and bidirectional attention, α ≠ 1, chunks that split the samples
// unevenly. Both are float64 and the same function summed in another order, so they agree to
// 1e-12 of each sum's largest entry. Also: tableRowIds numbers rows in order of first use and
// rejects a token outside the vocabulary; the table form gives the same bits on the pool's threads;
// the edges' WebAssembly sample kernel (src/host/attention-edges-wasm.ts) gives the JS kernel's bits
// (r = 1, 3, 5, 7, 17: none a multiple of its 8-column block), and the M′ sums' outer products and the edge
// row tables in WebAssembly give the JS loops' bits.

import { describe, expect, it } from 'vitest';
import {
  addEdgeAttentionSums,
  addMDashAttentionSums,
  mDashSumLengths,
  mDashSumsView,
  type AttentionShape,
  type EdgeAttentionTables,
} from '../src/host/attention-sums.js';
import { addEdgeAttentionTableSums, addMDashAttentionTableSums, attentionRowTables, edgeRowTables } from '../src/host/attention-table-sums.js';
import { wasmEdgeSampleKernel } from '../src/host/attention-edges-wasm.js';
import { runHostTasks, sharedBytes } from '../src/host/pool.js';
import { IbgpuError } from '../src/errors.js';
import { gatherRows, tableRowIds } from '../src/transformer/token-table.js';
import { gaussian, rng } from './helpers/random.js';

interface Case {
  P: number;
  heads: number;
  dHead: number;
  dV: number;
  K: number;
  r: number;
  vocab: number;
  N: number;
  causal: boolean;
  window?: number;
  alpha: number;
}

const CASES: Case[] = [
  { P: 1, heads: 1, dHead: 3, dV: 2, K: 1, r: 1, vocab: 5, N: 7, causal: true, alpha: 1 },
  { P: 3, heads: 2, dHead: 5, dV: 7, K: 4, r: 3, vocab: 11, N: 97, causal: true, alpha: 1 },
  { P: 3, heads: 4, dHead: 8, dV: 8, K: 13, r: 17, vocab: 23, N: 257, causal: true, alpha: 0.7 },
  { P: 4, heads: 3, dHead: 7, dV: 5, K: 6, r: 5, vocab: 3, N: 41, causal: true, window: 2, alpha: 1.3 },
  { P: 5, heads: 2, dHead: 3, dV: 4, K: 2, r: 7, vocab: 6, N: 53, causal: false, alpha: 1 },
];

function shapeOf(c: Case): AttentionShape {
  const m = c.heads * c.dV + 2 * c.heads * c.dHead;
  return {
    heads: c.heads,
    dHead: c.dHead,
    dV: c.dV,
    scale: Math.sqrt(c.dHead),
    causal: c.causal,
    ...(c.window !== undefined ? { window: c.window } : {}),
    P: c.P,
    m,
    K: c.K,
  };
}

function setup(c: Case, seed: number) {
  const g = gaussian(rng(seed));
  const sh = shapeOf(c);
  const R = c.vocab * c.P;
  const table = Float64Array.from({ length: R * sh.m }, () => g());
  const uTable = Float64Array.from({ length: R * c.r }, () => g());
  const DZ = Float64Array.from({ length: c.K * c.heads * c.dV }, () => g());
  // Token ids with a fixed last token (as modular addition's '='), some positions repeated.
  const rand = rng(seed + 1);
  const tokens = Int32Array.from({ length: c.N * c.P }, (_, i) => (i % c.P === c.P - 1 && c.P > 1 ? c.vocab - 1 : Math.floor(rand() * c.vocab)));
  const A = c.heads + 1;
  const tables: EdgeAttentionTables = {
    r: c.r,
    Yt: Float64Array.from({ length: A * c.K * c.r }, () => g()),
    Kt: Float64Array.from({ length: c.heads * c.dHead * c.r }, () => g()),
    Qt: Float64Array.from({ length: c.heads * c.dHead * c.r }, () => g()),
  };
  // Per-sample rows as the per-sample sums take them.
  const perSample = (tab: Float64Array, w: number): Float64Array => {
    const out = new Float64Array(c.N * c.P * w);
    for (let i = 0; i < c.N * c.P; i++) {
      const row = tokens[i]! * c.P + (i % c.P);
      out.set(tab.subarray(row * w, (row + 1) * w), i * w);
    }
    return out;
  };
  return { sh, table, uTable, DZ, tokens, tables, xj: perSample(table, sh.m), u: perSample(uTable, c.r) };
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

function expectNear(got: Float64Array, want: Float64Array, rel: number): void {
  expect(got.length).toBe(want.length);
  const tol = rel * Math.max(maxAbs(want), 1e-300);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(worst).toBeLessThanOrEqual(tol);
}

/** Sums of samples [0, N) in chunks of `chunk`, partials added in order. */
function chunked(N: number, chunk: number, len: number, add: (n0: number, n1: number, out: Float64Array) => void): Float64Array {
  const total = new Float64Array(len);
  for (let n0 = 0; n0 < N; n0 += chunk) {
    const part = new Float64Array(len);
    add(n0, Math.min(N, n0 + chunk), part);
    for (let i = 0; i < len; i++) total[i]! += part[i]!;
  }
  return total;
}

describe('attention sums in table form', () => {
  it.each(CASES.map((c, i) => [i, c] as const))('case %i: M′ sums and edge sums equal the per-sample sums to 1e-12', (i, c) => {
    const { sh, table, uTable, DZ, tokens, tables, xj, u } = setup(c, 100 + i);
    const len = mDashSumLengths(sh).reduce((a, b) => a + b, 0);
    const want = chunked(c.N, 16, len, (n0, n1, out) => addMDashAttentionSums(sh, DZ, c.alpha, xj, n0, n1, mDashSumsView(sh, out)));
    const { ids, rows } = tableRowIds(tokens, c.vocab, c.P, c.N, false);
    const rt = attentionRowTables(sh, DZ, c.alpha, gatherRows(table, sh.m, rows), ids);
    const got = chunked(c.N, 37, len, (n0, n1, out) => addMDashAttentionTableSums(sh, rt, n0, n1, mDashSumsView(sh, out)));
    // The key rows' outer products in WebAssembly give the JS loops' bits.
    process.env['IBGPU_HOST_WASM'] = '0';
    try {
      const js = chunked(c.N, 37, len, (n0, n1, out) => addMDashAttentionTableSums(sh, rt, n0, n1, mDashSumsView(sh, out)));
      for (let t = 0; t < js.length; t++) if (!Object.is(got[t], js[t])) expect([t, got[t]]).toEqual([t, js[t]]);
    } finally {
      delete process.env['IBGPU_HOST_WASM'];
    }
    // Each of the four sums to 1e-12 of its own largest entry.
    const [a, b, cq, ck] = mDashSumLengths(sh);
    let o = 0;
    for (const l of [a, b, cq, ck]) {
      expectNear(got.subarray(o, o + l), want.subarray(o, o + l), 1e-12);
      o += l;
    }
    expect(maxAbs(want)).toBeGreaterThan(0);

    const Ewant = chunked(c.N, 16, c.K * c.r, (n0, n1, out) => addEdgeAttentionSums(sh, DZ, c.alpha, tables, xj, u, n0, n1, out));
    const et = edgeRowTables(sh, rt, tables, gatherRows(uTable, c.r, rows));
    // Its projections in WebAssembly give the JS loops' bits.
    process.env['IBGPU_HOST_WASM'] = '0';
    try {
      const js = edgeRowTables(sh, rt, tables, gatherRows(uTable, c.r, rows));
      for (const [x, y] of [
        [et.at, js.at],
        [et.bt, js.bt],
      ] as const)
        for (let t = 0; t < y.length; t++) if (!Object.is(x[t], y[t])) expect([t, x[t]]).toEqual([t, y[t]]);
    } finally {
      delete process.env['IBGPU_HOST_WASM'];
    }
    const Egot = chunked(c.N, 37, c.K * c.r, (n0, n1, out) => addEdgeAttentionTableSums(sh, rt, tables, et, n0, n1, out));
    expectNear(Egot, Ewant, 1e-12);
    expect(maxAbs(Ewant)).toBeGreaterThan(0);
    // The WebAssembly SIMD sample kernel gives the JS kernel's bits (one kernel over all chunks).
    const kernel = wasmEdgeSampleKernel(c.K, c.heads + 1, c.heads * c.P, c.r, tables.Yt);
    expect(kernel).toBeDefined();
    const Ewasm = chunked(c.N, 37, c.K * c.r, (n0, n1, out) => addEdgeAttentionTableSums(sh, rt, tables, et, n0, n1, out, kernel));
    for (let t = 0; t < Egot.length; t++) if (!Object.is(Ewasm[t], Egot[t])) expect([t, Ewasm[t]]).toEqual([t, Egot[t]]);
    // And with each sample's U and Γ written by the kernel from the row tables (edge_prep).
    const prepKernel = wasmEdgeSampleKernel(c.K, c.heads + 1, c.heads * c.P, c.r, tables.Yt, { H: c.heads, P: c.P, u: et.u, at: et.at, bt: et.bt });
    expect(prepKernel?.prepare).toBeDefined();
    const Eprep = chunked(c.N, 37, c.K * c.r, (n0, n1, out) => addEdgeAttentionTableSums(sh, rt, tables, et, n0, n1, out, prepKernel));
    for (let t = 0; t < Egot.length; t++) if (!Object.is(Eprep[t], Egot[t])) expect([t, Eprep[t]]).toEqual([t, Egot[t]]);
  });

  it('tableRowIds: compact rows in order of first use; a token outside the vocabulary is an error', () => {
    const { ids, rows } = tableRowIds(Int32Array.from([2, 0, 2, 1, 2, 0]), 3, 2, 3, false);
    expect(Array.from(rows)).toEqual([4, 1, 3]);
    expect(Array.from(ids)).toEqual([0, 1, 0, 2, 0, 1]);
    expect(() => tableRowIds(Int32Array.from([0, 3]), 3, 2, 1, false)).toThrow(IbgpuError);
  });

  it('the same bits on the host threads as on this thread', async () => {
    const c = CASES[2]!;
    const { sh, table, DZ, tokens } = setup(c, 7);
    const len = mDashSumLengths(sh).reduce((a, b) => a + b, 0);
    const shared = (n: number): Float64Array => new Float64Array(sharedBytes(n * 8));
    const { ids, rows } = tableRowIds(tokens, c.vocab, c.P, c.N, true);
    const rt = attentionRowTables(sh, DZ, c.alpha, gatherRows(table, sh.m, rows), ids, shared);
    const ranges = [
      [0, 100],
      [100, 200],
      [200, c.N],
    ] as const;
    const run = async (threads: boolean): Promise<Float64Array> => {
      const parts = shared(ranges.length * len);
      await runHostTasks(
        'attention-mdash-table',
        ranges.map(([n0, n1], i) => ({ shape: sh, rows: rt, n0, n1, out: parts.subarray(i * len, (i + 1) * len) })),
        { threads },
      );
      return parts;
    };
    expect(Array.from(await run(true))).toEqual(Array.from(await run(false)));
  });
});
