// The statistics pass on the host (src/host/stats.ts, collectStats with path 'host') and the host
// degeneracy observer (src/host/degeneracy.ts): equal to float64 references to rounding, to the
// GPU path within its f32 tolerance, shard partials add up, and the build honours stage_paths.
//
// Tolerances: the host path is float64 throughout, so against per-datapoint float64 references
// (forwardSampleF64, two-pass centring) it agrees to ≤ 1e-12 of the largest entry; co-firing
// counts are exact integers. Against the GPU path (f32 forward and per-batch f32 Grams) the
// covariances and Jacobian Grams agree to ≤ 1e-5 of their largest entry (values O(1), a few
// hundred rows per batch); ReLU counts agree exactly unless a pre-activation sits within f32
// rounding of 0 (none does in these data).

import { afterEach, describe, expect, it } from 'vitest';
import { covariance, type NodeStats } from '../src/ib/basis.js';
import { parseConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import { GpuMlp } from '../src/ib/gpu-model.js';
import { integrationPoints, type IntegrationPoints } from '../src/ib/integration.js';
import { buildInteractionBasis } from '../src/ib/pipeline.js';
import { collectStats, type StatsPlan, type StatsResult } from '../src/ib/stats.js';
import { forwardSampleF64 } from '../src/cpu/mlp-forward.js';
import { actGrad, type Activation } from '../src/model/activations.js';
import { HostGateStats, HostGramF64 } from '../src/host/stats.js';
import { forwardRowsHost } from '../src/host/mlp-forward.js';
import { HostDegeneracyAccumulator } from '../src/host/degeneracy.js';
import { startDegeneracyThread } from '../src/host/degeneracy-thread.js';
import { collectDegeneracyStats } from '../src/ib/degeneracy-gpu.js';
import { degeneracyInputsCpu } from '../src/report/degeneracy-cpu.js';
import { chooseStagePath, stagePathChoices, storedStageTiming } from '../src/runtime/stage-paths.js';
import { setTuningStore } from '../src/runtime/tuning-store.js';
import { timeStatsPaths } from '../src/ib/stats-timing.js';
import { useEngine } from './helpers/gpu.js';
import { maxAbs, maxAbsDiff } from './helpers/ib.js';
import { rng } from './helpers/random.js';
import { randomMlpModel } from './helpers/random-mlp-model.js';

/** rows×d values, each non-zero with probability p (uniform in (0, 1], like pixel intensities). */
function sparseData(rows: number, d: number, p: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(rows * d);
  for (let k = 0; k < x.length; k++) if (r() < p) x[k] = Math.fround(1 - r());
  return x;
}

/** Naive float64 Σ(x − s)(x − s)ᵀ and Σx. */
function naiveGram(x: ArrayLike<number>, rows: number, d: number, s: ArrayLike<number>): { g: Float64Array; sum: Float64Array } {
  const g = new Float64Array(d * d);
  const sum = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    for (let a = 0; a < d; a++) {
      sum[a]! += x[r * d + a]!;
      for (let b = 0; b < d; b++) g[a * d + b]! += (x[r * d + a]! - s[a]!) * (x[r * d + b]! - s[b]!);
    }
  }
  return { g, sum };
}

const close = (got: ArrayLike<number>, want: ArrayLike<number>, rel: number) =>
  expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(rel * Math.max(1e-300, maxAbs(want)));

describe('host accumulators', () => {
  it('HostGramF64 equals the naive float64 shifted Gram, sparse and dense, on odd shapes and batch splits', () => {
    let seed = 1;
    for (const [rows, d, p] of [
      [1, 1, 1],
      [17, 3, 0.3],
      [301, 37, 0.25],
      [129, 64, 0.9],
      [50, 7, 0],
    ] as const) {
      const x = Float64Array.from(sparseData(rows, d, p, seed++), (v, k) => (v === 0 ? 0 : v - 0.2 * (k % 3)));
      const shift = Float64Array.from({ length: d }, (_, j) => 0.1 * j - 0.05);
      const acc = new HostGramF64(d, shift);
      const cuts = [0, Math.min(rows, 1), Math.min(rows, 14), rows];
      for (let c = 0; c + 1 < cuts.length; c++) acc.add(x.subarray(cuts[c]! * d, cuts[c + 1]! * d), cuts[c + 1]! - cuts[c]!);
      expect(acc.rows).toBe(rows);
      expect(acc.isSparse).toBe(p <= 0.3);
      const ref = naiveGram(x, rows, d, shift);
      close(acc.gram(), ref.g, 1e-12);
      close(acc.sums(), ref.sum, 1e-12);
    }
  });

  it("HostGateStats: Σg and Σggᵀ of g = Σ_k w_k σ'(α_k p), by co-firing counts (ReLU) or per element", () => {
    const rows = 203;
    const h = 11;
    const r = rng(7);
    const pre = Float64Array.from({ length: rows * h }, () => 2 * r() - 1);
    const cases: [Activation, IntegrationPoints, boolean][] = [
      ['relu', integrationPoints('gradient', 0), true],
      ['relu', integrationPoints('trapezoidal', 3), true],
      ['identity', integrationPoints('gradient', 0), false],
      ['gelu', integrationPoints('gauss-legendre', 2), false],
      ['gelu_tanh', integrationPoints('trapezoidal', 0), false],
    ];
    for (const [a, pts, counts] of cases) {
      const acc = new HostGateStats(h, a, pts);
      expect(acc.gOn !== undefined).toBe(counts);
      acc.add(pre.subarray(0, 64 * h), 64);
      acc.add(pre.subarray(64 * h), rows - 64);
      const g = pre.map((p) => {
        let v = 0;
        for (let k = 0; k < pts.alphas.length; k++) v += pts.weights[k]! * actGrad(a, pts.alphas[k]! * p);
        return v;
      });
      const ref = naiveGram(g, rows, h, new Float64Array(h));
      close(acc.gram(), ref.g, 1e-12);
      close(acc.sums(), ref.sum, 1e-12);
    }
  });
});

describe('collectStats on the host', () => {
  const engine = useEngine();
  const n = 301;
  const d = 37;
  const x = sparseData(n, d, 0.2, 11);
  const model = randomMlpModel([d, 12, 5, 3], ['relu', 'relu', 'identity'], 3);
  const pts = integrationPoints('gradient', 0);
  const plan: StatsPlan = {
    nodes: [0, 1, 2].map((act) => ({ act, name: `layers.${act}`, folded: true })),
    gateLayers: [0, 1, 2],
  };
  const run = async (path: 'gpu' | 'host', extra: Partial<StatsPlan> = {}, range?: { start: number; end: number }): Promise<StatsResult> => {
    const e = await engine();
    const mlp = new GpuMlp(e, model, pts);
    try {
      return await collectStats(e, mlp, arraySource(x, n, d), { ...plan, ...extra, path }, 64, pts, () => {}, range);
    } finally {
      mlp.dispose();
    }
  };

  it('equals float64 per-datapoint references (covariances to 1e-12, gate counts exactly) and runs no kernel', async () => {
    const e = await engine();
    const before = e.counters.dispatches;
    const host = await run('host');
    expect(e.counters.dispatches).toBe(before);
    const acts: number[][][] = [[], [], []];
    const pres: number[][][] = [[], [], []];
    for (let s = 0; s < n; s++) {
      const f = forwardSampleF64(model, x, s);
      for (let a = 0; a < 3; a++) acts[a]!.push([...f.inputs[a]!]);
      for (let i = 0; i < 3; i++) pres[i]!.push([...f.pres[i]!]);
    }
    for (let a = 0; a < 3; a++) {
      const w = acts[a]![0]!.length;
      const flat = Float64Array.from(acts[a]!.flat());
      const mu = Float64Array.from({ length: w }, (_, j) => acts[a]!.reduce((t, row) => t + row[j]!, 0) / n);
      const ref = naiveGram(flat, n, w, mu).g.map((v) => v / n);
      const st = host.nodes.get(`layers.${a}`)!;
      expect(st.n).toBe(n);
      close(covariance(st), ref, 1e-12);
      // The shift is the first batch's mean.
      const first = Float64Array.from({ length: w }, (_, j) => acts[a]!.slice(0, 64).reduce((t, row) => t + row[j]!, 0) / 64);
      close(st.shift, first, 1e-14);
    }
    for (let i = 0; i < 3; i++) {
      const h = pres[i]![0]!.length;
      const g = Float64Array.from(pres[i]!.flat(), (p) => actGrad(model.layers[i]!.activation, p));
      const ref = naiveGram(g, n, h, new Float64Array(h));
      const gs = host.gates.get(i)!;
      expect(Array.from(gs.gram)).toEqual(Array.from(ref.g));
      expect(Array.from(gs.sum)).toEqual(Array.from(ref.sum));
      expect(gs.constGate).toBe(i === 2 ? undefined : 1);
    }
  });

  it('equals the GPU path within f32 tolerance, with the input Gram on the host or not', async () => {
    const gpu = await run('gpu', { inputGram: 'gpu' });
    for (const inputGram of ['gpu', 'host-sparse'] as const) {
      const early: NodeStats[] = [];
      const host = await run('host', { inputGram, onInputStats: (s) => early.push(s) });
      expect(early.length).toBe(inputGram === 'host-sparse' ? 1 : 0);
      for (const [name, a] of gpu.nodes) {
        const b = host.nodes.get(name)!;
        close(b.sum, a.sum, 1e-5);
        close(covariance(b), covariance(a), 1e-5);
      }
      for (const [i, a] of gpu.gates) {
        expect(Array.from(host.gates.get(i)!.gram)).toEqual(Array.from(a.gram));
      }
    }
  });

  it('shard partials add up to the whole (same shift, sums to 1e-12)', async () => {
    const whole = await run('host');
    const parts = [
      await run('host', {}, { start: 0, end: 128 }),
      await run('host', {}, { start: 128, end: 256 }),
      await run('host', {}, { start: 256, end: n }),
    ];
    for (const [name, w] of whole.nodes) {
      const ps = parts.map((p) => p.nodes.get(name)!);
      for (const p of ps) expect(Array.from(p.shift)).toEqual(Array.from(w.shift));
      expect(ps.reduce((t, p) => t + p.n, 0)).toBe(n);
      close(
        ps[0]!.gramShifted.map((v, k) => v + ps[1]!.gramShifted[k]! + ps[2]!.gramShifted[k]!),
        w.gramShifted,
        1e-12,
      );
      close(
        ps[0]!.sum.map((v, k) => v + ps[1]!.sum[k]! + ps[2]!.sum[k]!),
        w.sum,
        1e-12,
      );
    }
    for (const [i, w] of whole.gates) {
      const ps = parts.map((p) => p.gates.get(i)!);
      expect(Array.from(ps[0]!.gram.map((v, k) => v + ps[1]!.gram[k]! + ps[2]!.gram[k]!))).toEqual(Array.from(w.gram));
    }
  });
});

describe('the build honours stage_paths.stats', () => {
  const engine = useEngine();
  it("'host' runs no kernel in the statistics (edges off), 'gpu' does; both give the same bases", async () => {
    const n = 200;
    const x = sparseData(n, 13, 0.5, 21);
    const model = randomMlpModel([13, 9, 6, 4], ['relu', 'relu', 'identity'], 5);
    const base = {
      node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'],
      batch_size: 64,
      calculate_edges: false,
      truncation_threshold: 1e-6,
      threshold_mode: 'relative',
    };
    const res = [];
    for (const stats of ['host', 'gpu'] as const) {
      const e = await engine();
      const before = e.counters.dispatches;
      res.push(await buildInteractionBasis(e, model, arraySource(x, n, 13), parseConfig({ ...base, stage_paths: { stats } })));
      expect(e.counters.dispatches > before).toBe(stats === 'gpu');
      expect(stagePathChoices(e).find((c) => c.stage === 'stats')).toMatchObject({ path: stats, how: 'config' });
    }
    for (const [name, b] of res[0]!.bases) {
      const g = res[1]!.bases.get(name)!;
      expect(b.r).toBe(g.r);
      close(b.Lambda!, g.Lambda!, 1e-5);
    }
  });
});

describe('host degeneracy observer', () => {
  const engine = useEngine();
  it.each([
    // Four layers with a linear output: layer 2 takes the closed form, layer 1 the product carried
    // across datapoints, layer 0 the backward from it.
    { name: 'linear output', acts: ['relu', 'relu', 'relu', 'identity'] as Activation[] },
    // A ReLU output: no closed form, no carried product, the full backward for every layer.
    { name: 'ReLU output', acts: ['relu', 'relu', 'gelu', 'relu'] as Activation[] },
  ])('$name: equals the float64 reference (1e-12) and the GPU accumulator (1e-5, patterns exactly)', async ({ acts }) => {
    const n = 173;
    const d = 19;
    const x = sparseData(n, d, 0.4, 31);
    const model = randomMlpModel([d, 23, 17, 7, 5], acts, 9);
    const layers = [0, 1, 2, 3];
    const acc = new HostDegeneracyAccumulator(model, layers);
    for (let s = 0; s < n; s += 40) {
      const rows = Math.min(40, n - s);
      acc.addBatch(forwardRowsHost(model, x.subarray(s * d, (s + rows) * d), rows), rows);
    }
    const host = acc.result();
    const ref = degeneracyInputsCpu(model, x, n, { rule: { mode: 'relative', tau: 1e-6 }, layers });
    const gpu = await collectDegeneracyStats(await engine(), model, arraySource(x, n, d), layers, 40);
    expect(host.n).toBe(n);
    for (const s of ref) {
      close(host.jacobianGram.get(s.layer)!, s.jacobianGram, 1e-12);
      close(gpu.jacobianGram.get(s.layer)!, host.jacobianGram.get(s.layer)!, 1e-5);
      if (!s.hiddenStats) continue;
      const hs = host.hidden.get(s.layer)!;
      const gs = gpu.hidden.get(s.layer)!;
      close(hs.actGram, s.hiddenStats.actGram, 1e-12);
      close(hs.actMean, s.hiddenStats.actMean, 1e-12);
      for (const k of ['hashLo', 'hashHi', 'fireCount', 'cofire'] as const) expect(Array.from(hs.patterns[k])).toEqual(Array.from(s.hiddenStats.patterns[k]));
      for (const k of ['hashLo', 'hashHi', 'fireCount', 'cofire', 'words'] as const) expect(Array.from(hs.patterns[k]!)).toEqual(Array.from(gs.patterns[k]!));
      close(gs.actGram, hs.actGram, 1e-5);
    }
  });
});

describe('host degeneracy observer on its own thread', () => {
  it('gives the same statistics bit for bit as on the calling thread', async () => {
    const n = 211;
    const d = 17;
    const x = sparseData(n, d, 0.4, 41);
    const model = randomMlpModel([d, 13, 11, 4], ['relu', 'relu', 'identity'], 12);
    const layers = [0, 1, 2];
    const here = new HostDegeneracyAccumulator(model, layers);
    const there = await startDegeneracyThread(model, layers);
    expect(there, 'worker_threads are available in Node').toBeDefined();
    // One build at a time owns the thread; another one runs its observer on its own thread.
    expect(await startDegeneracyThread(model, layers)).toBeUndefined();
    for (let s = 0; s < n; s += 50) {
      const rows = Math.min(50, n - s);
      const f = forwardRowsHost(model, x.subarray(s * d, (s + rows) * d), rows);
      here.addBatch(f, rows);
      there!.addBatch(f, rows);
    }
    const a = here.result();
    const b = await there!.result();
    there!.dispose();
    const again = await startDegeneracyThread(model, layers);
    expect(again).toBeDefined();
    again!.dispose();
    expect(b.n).toBe(a.n);
    for (const [i, m] of a.jacobianGram) expect(Array.from(b.jacobianGram.get(i)!)).toEqual(Array.from(m));
    for (const [i, h] of a.hidden) {
      const g = b.hidden.get(i)!;
      expect(Array.from(g.actGram)).toEqual(Array.from(h.actGram));
      expect(Array.from(g.patterns.words!)).toEqual(Array.from(h.patterns.words!));
      expect(Array.from(g.patterns.cofire)).toEqual(Array.from(h.patterns.cofire));
    }
  });
});

describe('timing both statistics paths (ibgpu doctor)', () => {
  const engine = useEngine();
  afterEach(() => setTuningStore(undefined));
  it('times both paths, stores the comparison, and later choices on the engine follow it', async () => {
    const m = new Map<string, unknown>();
    setTuningStore({ location: 'memory', host: 'test', get: (k) => m.get(k), set: (k, v) => void m.set(k, v) });
    const e = await engine();
    const t = await timeStatsPaths(e);
    expect(t.gpuMs).toBeGreaterThan(0);
    expect(t.hostMs).toBeGreaterThan(0);
    expect(storedStageTiming(e, 'stats')).toEqual(t);
    expect(chooseStagePath(e, 'stats')).toMatchObject({ path: t.hostMs < t.gpuMs ? 'host' : 'gpu', how: 'measured' });
  });
});
