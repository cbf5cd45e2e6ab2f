// The host edge pass (src/host/edges.ts, edges-squared.ts, on pool.ts's threads): the carried-Jacobian
// kernel equals the float64 reference of src/cpu/edges.ts to 1e-12 of the sums' scale (every
// activation kind, orders, runs and resets); the whole pass equals an independent float64 oracle;
// threads do not change a bit; shards add up; the GPU pass agrees within its f32 tolerance.

import { describe, expect, it, vi } from 'vitest';
import { accumulateSquaredEdges, type SquaredEdgeSection } from '../src/host/edges-squared.js';
import { computeEdgesHost, edgeThreads } from '../src/host/edges.js';
import { hostThreadPool } from '../src/host/pool.js';
import { squaredEdgesF64 } from '../src/cpu/edges.js';
import { signPatternOrder } from '../src/cpu/gate-order.js';
import { matmulF64 } from '../src/cpu/matmul.js';
import { arraySource } from '../src/ib/data.js';
import { computeEdges, type EdgePair } from '../src/ib/edges.js';
import { GpuMlp } from '../src/ib/gpu-model.js';
import { integrationPoints, type IntegrationPoints } from '../src/ib/integration.js';
import { randomMlp } from '../src/ib/self-check.js';
import { act, actGrad } from '../src/model/activations.js';
import { forwardF64 } from '../src/cpu/mlp-forward.js';
import { useEngine } from './helpers/gpu.js';
import { ActivationCache } from '../src/ib/activation-cache.js';
import { parseConfig } from '../src/ib/config.js';
import { buildInteractionBasis } from '../src/ib/pipeline.js';
import { stagePathChoices } from '../src/runtime/stage-paths.js';
import { IbgpuError } from '../src/errors.js';
import { randomF64, unevenRuns } from './helpers/random.js';
import { genericData } from './helpers/ib.js';
import { edgeKernelCases, edgeKernelInputs, edgePassSetup, gatesOf, type EdgePassSetup } from './helpers/edge-cases.js';

const engine = useEngine();

/** max |a − b| / max scale over entries (scale: the reference's Σ(Σ|terms|·|f|)²). */
function errOverScale(a: Float64Array, b: Float64Array, scale: Float64Array): number {
  let e = 0;
  let s = 0;
  for (let t = 0; t < a.length; t++) {
    e = Math.max(e, Math.abs(a[t]! - b[t]!));
    s = Math.max(s, scale[t]!);
  }
  return s > 0 ? e / s : e;
}

describe('accumulateSquaredEdges (carried Jacobian) = squaredEdgesF64', () => {
  const shapes = [
    { h: 1, ro: 1, r: 1, rows: 1 },
    { h: 7, ro: 5, r: 3, rows: 13 },
    { h: 31, ro: 17, r: 29, rows: 211 },
    { h: 100, ro: 13, r: 11, rows: 600 },
  ];
  for (const tc of edgeKernelCases(shapes)) {
    it(tc.name, () => {
      const { h, ro, r, rows, kind, identityA } = tc;
      const { sec, f, g, order } = edgeKernelInputs(tc);
      // The reference's layouts: A ro × h, B r × h (sec's are unit-major).
      const A = new Float64Array(ro * h);
      const B = new Float64Array(r * h);
      for (let k = 0; k < h; k++) {
        for (let i = 0; i < ro; i++) A[i * h + k] = identityA ? (i === k ? 1 : 0) : sec.A![k * ro + i]!;
        for (let j = 0; j < r; j++) B[j * h + k] = sec.B[k * r + j]!;
      }
      const ref = squaredEdgesF64(A, B, f, g, h, ro, r, order);
      // Cut into uneven runs, with a short reset interval so that rebuilds happen inside runs.
      const E = new Float64Array(ro * r);
      const J = new Float64Array(ro * r);
      const cuts = unevenRuns(rows);
      let updates = 0;
      for (let c = 0; c + 1 < cuts.length; c++) updates += accumulateSquaredEdges(sec, E, J, f, g, order, cuts[c]!, cuts[c + 1]!, 17);
      expect(errOverScale(E, ref.sum, ref.abs)).toBeLessThan(1e-12);
      // Constant gates never change: only the rebuilds (run starts, every 17th row) cost updates.
      let rebuilds = 0;
      for (let c = 0; c + 1 < cuts.length; c++) rebuilds += Math.ceil((cuts[c + 1]! - cuts[c]!) / 17);
      if (kind === 'constant') expect(updates).toBe(h * rebuilds);
    });
  }

  it('pays only for changed gates in sign-pattern order (ReLU)', () => {
    const h = 100,
      ro = 8,
      r = 8,
      rows = 1000;
    const g = gatesOf('relu', rows, h, 5);
    const sec: SquaredEdgeSection = { h, ro, r, A: randomF64(h * ro, 6), B: randomF64(h * r, 7) };
    const f = randomF64(rows * r, 8);
    const E = new Float64Array(ro * r);
    const sorted = accumulateSquaredEdges(sec, E, new Float64Array(ro * r), f, g, signPatternOrder(g, rows, h), 0, rows);
    let active = 0;
    for (const v of g) active += v !== 0 ? 1 : 0;
    expect(sorted).toBeLessThan(active); // fewer rank-1 updates than rebuilding every row
  });
});

// ------------------------------------------------------------------ the whole pass

/** Float64 oracle of one section's E, per datapoint from an unfolded forward pass (SPEC §5.2). */
function oracle(s: EdgePassSetup, p: EdgePair, pts: IntegrationPoints): { sum: Float64Array; abs: Float64Array } {
  const { dim, r, C, Cpinv } = p.basis;
  const h = p.dimOut;
  const acts = forwardF64(s.model, s.x, s.n, act);
  const xin = acts[p.layer]!;
  const d = dim - 1;
  const Q = matmulF64(Cpinv, p.Wbar, { m: r, n: h, k: dim });
  const f = new Float64Array(s.n * r);
  const g = new Float64Array(s.n * h);
  const actName = s.model.layers[p.layer]!.activation;
  for (let n = 0; n < s.n; n++) {
    for (let j = 0; j < r; j++) {
      let v = C[d * r + j]!;
      for (let i = 0; i < d; i++) v += xin[n * d + i]! * C[i * r + j]!;
      f[n * r + j] = v;
    }
    for (let o = 0; o < h; o++) {
      let pre = 0;
      for (let j = 0; j < r; j++) pre += f[n * r + j]! * Q[j * h + o]!;
      let gg = 0;
      for (let k = 0; k < pts.alphas.length; k++) gg += pts.weights[k]! * actGrad(actName, pts.alphas[k]! * pre);
      g[n * h + o] = gg;
    }
  }
  const A = new Float64Array(p.ro * h);
  for (let o = 0; o < h; o++) for (let i = 0; i < p.ro; i++) A[i * h + o] = p.nextC ? p.nextC[o * p.ro + i]! : o === i ? 1 : 0;
  const out = squaredEdgesF64(
    A,
    Q,
    f,
    g,
    h,
    p.ro,
    r,
    Uint32Array.from({ length: s.n }, (_, t) => t),
  );
  return { sum: out.sum.map((v) => v / s.n), abs: out.abs.map((v) => v / s.n) };
}

describe('computeEdgesHost', () => {
  it.each([
    { act1: 'relu' as const, method: 'gradient' as const, nInt: 0 },
    { act1: 'gelu_tanh' as const, method: 'gauss-legendre' as const, nInt: 2 },
  ])('equals the float64 oracle to 1e-12 ($act1, $method)', async ({ act1, method, nInt }) => {
    const s = edgePassSetup(613, act1);
    const pts = integrationPoints(method, nInt);
    const E = await computeEdgesHost(s.model, arraySource(s.x, s.n, 9), s.pairs, 200, pts, undefined, { threads: 1 });
    for (const p of s.pairs) {
      const ref = oracle(s, p, pts);
      expect(errOverScale(E.get(`${p.inName}->${p.outName}`)!, ref.sum, ref.abs), p.inName).toBeLessThan(1e-12);
    }
  });

  it.each([1, 3])('equals the float64 oracle on %i row(s), on 2 threads (runs left empty)', async (n) => {
    const s = edgePassSetup(n);
    const pts = integrationPoints('gradient', 0);
    const E = await computeEdgesHost(s.model, arraySource(s.x, s.n, 9), s.pairs, 2, pts, undefined, { threads: 2 });
    for (const p of s.pairs) {
      const ref = oracle(s, p, pts);
      expect(errOverScale(E.get(`${p.inName}->${p.outName}`)!, ref.sum, ref.abs), p.inName).toBeLessThan(1e-12);
    }
  });

  it('gives the same bits on 1, 2 and 3 threads, and the threads start', async () => {
    expect((await edgeThreads([], { layers: [], upTo: 0, sections: [], alphas: new Float64Array(0), weights: new Float64Array(0) }, 2))?.count).toBe(2);
    const s = edgePassSetup(613);
    const pts = integrationPoints('gradient', 0);
    const src = arraySource(s.x, s.n, 9);
    const one = await computeEdgesHost(s.model, src, s.pairs, 128, pts, undefined, { threads: 1 });
    for (const threads of [2, 3]) {
      const many = await computeEdgesHost(s.model, src, s.pairs, 128, pts, undefined, { threads });
      for (const [k, v] of one) expect(Array.from(many.get(k)!), `${k} on ${threads} threads`).toEqual(Array.from(v));
    }
  });

  it('does not wait for a thread busy with other work (a background eigensolve)', async () => {
    const s = edgePassSetup(61);
    const pts = integrationPoints('gradient', 0);
    const src = arraySource(s.x, s.n, 9);
    const one = await computeEdgesHost(s.model, src, s.pairs, 16, pts, undefined, { threads: 1 });
    const pool = (await hostThreadPool())!;
    expect(pool.size).toBeGreaterThanOrEqual(2);
    // A symmetric 400 × 400 eigenproblem: a second or more on one thread, against milliseconds for the pass.
    const n = 400;
    const a = randomF64(n * n, 5);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i]!;
    let eigDone = false;
    const eig = pool.run('eig', { a, n }).then(() => {
      eigDone = true;
    });
    const many = await computeEdgesHost(s.model, src, s.pairs, 16, pts, undefined, { threads: 2 });
    expect(eigDone).toBe(false);
    for (const [k, v] of one) expect(Array.from(many.get(k)!), k).toEqual(Array.from(v));
    await eig;
  });

  it('shards add up to the whole pass', async () => {
    const s = edgePassSetup(613);
    const pts = integrationPoints('gradient', 0);
    const src = arraySource(s.x, s.n, 9);
    const whole = await computeEdgesHost(s.model, src, s.pairs, 100, pts);
    const a = await computeEdgesHost(s.model, src, s.pairs, 100, pts, undefined, { shard: { start: 0, end: 300, divisor: 1 } });
    const b = await computeEdgesHost(s.model, src, s.pairs, 100, pts, undefined, { shard: { start: 300, end: 613, divisor: 1 } });
    for (const [k, v] of whole) {
      const sum = a.get(k)!.map((t, i) => (t + b.get(k)![i]!) / s.n);
      expect(errOverScale(sum, v, v), k).toBeLessThan(1e-13);
    }
  });

  it('rejects a section whose basis does not fit its layer', async () => {
    const s = edgePassSetup(10);
    const bad = { ...s.pairs[1]!, layer: 0 };
    await expect(computeEdgesHost(s.model, arraySource(s.x, s.n, 9), [bad], 5, integrationPoints('gradient', 0))).rejects.toThrow(
      /layer 0 does not take 17 inputs/,
    );
  });

  it('agrees with the GPU pass within its f32 tolerance', async () => {
    const e = await engine();
    const s = edgePassSetup(613);
    const pts = integrationPoints('gradient', 0);
    const src = arraySource(s.x, s.n, 9);
    const host = await computeEdgesHost(s.model, src, s.pairs, 200, pts);
    const mlp = new GpuMlp(e, s.model, pts);
    try {
      const gpu = await computeEdges(e, mlp, src, s.pairs, 200);
      for (const p of s.pairs) {
        const k = `${p.inName}->${p.outName}`;
        const ref = oracle(s, p, pts);
        // f32 forward, projections and carried sums: ~1e-6 of the scale (a gate at p' ≈ 0 could
        // flip between f32 and f64; none does on this data, and the bound would catch it).
        expect(errOverScale(gpu.get(k)!, host.get(k)!, ref.abs), k).toBeLessThan(2e-5);
      }
    } finally {
      mlp.dispose();
    }
  });
});

describe('the edges stage path in builds', () => {
  const NODES = ['layers.0', 'layers.1', 'layers.2', 'output'];

  it('follows stage_paths.edges: host keeps no activations and agrees with gpu', async () => {
    const e = await engine();
    const model = randomMlp([9, 17, 13, 5], 3);
    const n = 500;
    const data = arraySource(genericData(n, 9, 4), n, 9);
    const plan = vi.spyOn(ActivationCache, 'plan');
    try {
      const host = await buildInteractionBasis(e, model, data, parseConfig({ node_layers: NODES, batch_size: 128, stage_paths: { edges: 'host' } }));
      expect(stagePathChoices(e).find((c) => c.stage === 'edges')).toMatchObject({ path: 'host', how: 'config' });
      expect(plan).not.toHaveBeenCalled(); // the statistics pass keeps nothing for a host edge pass
      const gpu = await buildInteractionBasis(e, model, data, parseConfig({ node_layers: NODES, batch_size: 128, stage_paths: { edges: 'gpu' } }));
      expect(stagePathChoices(e).find((c) => c.stage === 'edges')).toMatchObject({ path: 'gpu', how: 'config' });
      expect(plan).toHaveBeenCalledTimes(1);
      for (const [k, v] of gpu.edges) {
        const h = host.edges.get(k)!;
        let m = 0;
        let d = 0;
        v.data.forEach((t, i) => {
          m = Math.max(m, Math.abs(t));
          d = Math.max(d, Math.abs(t - h.data[i]!));
        });
        expect(d / m, k).toBeLessThan(1e-5); // the GPU pass's f32 tolerance (test/ib-identities)
      }
    } finally {
      plan.mockRestore();
    }
  });

  it('functional edges run on the GPU, say so, and refuse stage_paths.edges = host', async () => {
    const e = await engine();
    const model = randomMlp([6, 7, 3], 5);
    const data = arraySource(genericData(64, 6, 6), 64, 6);
    const base = {
      node_layers: ['layers.0', 'layers.1', 'output'],
      batch_size: 32,
      edge_formula: 'functional',
      integration_method: 'gauss-legendre',
      n_intervals: 1,
    };
    const res = await buildInteractionBasis(e, model, data, parseConfig(base));
    expect(res.edges.size).toBe(2);
    expect(stagePathChoices(e).find((c) => c.stage === 'edges')).toMatchObject({
      path: 'gpu',
      how: 'only',
      note: expect.stringMatching(/functional edges have no host path/) as unknown,
    });
    const err = await buildInteractionBasis(e, model, data, parseConfig({ ...base, stage_paths: { edges: 'host' } })).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(IbgpuError);
    expect((err as IbgpuError).code).toBe('BAD_CONFIG');
    expect((err as Error).message).toMatch(/stage_paths\.edges = 'host'.*functional/);
  });
});
