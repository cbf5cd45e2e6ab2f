// The host sparse path for input statistics (src/cpu/sparse-gram.ts), and collectStats taking it:
// the same covariance as the GPU path, to f32 rounding of the GPU's per-batch partials.
//
// Tolerances: SparseGramF64 is float64 throughout, so against the dense float64 reference it
// agrees to ≤ 1e-12 relative. GPU vs host covariances differ by the GPU's f32 batch partials:
// ≤ 1e-5 of the largest entry (rows of at most a few hundred, values O(1)).

import { describe, expect, it } from 'vitest';
import { gramF64 } from '../src/cpu/gram.js';
import { density, SparseGramF64 } from '../src/cpu/sparse-gram.js';
import { covariance, type NodeStats } from '../src/ib/basis.js';
import { arraySource } from '../src/ib/data.js';
import { GpuMlp } from '../src/ib/gpu-model.js';
import { integrationPoints } from '../src/ib/integration.js';
import type { MlpModel } from '../src/model/mlp.js';
import { chooseInputGramPath, collectStats, SPARSE_INPUT_DENSITY } from '../src/ib/stats.js';
import { useEngine } from './helpers/gpu.js';
import { maxAbs, maxAbsDiff } from './helpers/ib.js';
import { rng } from './helpers/random.js';

/** rows×d values, each non-zero with probability p (uniform in (0, 1], like pixel intensities). */
function sparseData(rows: number, d: number, p: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(rows * d);
  for (let k = 0; k < x.length; k++) if (r() < p) x[k] = Math.fround(1 - r());
  return x;
}

describe('SparseGramF64', () => {
  it('equals the dense float64 Gram and column sums, raw and shifted, on odd shapes and densities', () => {
    let seed = 1;
    for (const [rows, d, p] of [
      [1, 1, 1],
      [17, 3, 0.5],
      [300, 31, 0.2],
      [129, 64, 0.05],
      [50, 7, 0],
    ] as const) {
      const x = sparseData(rows, d, p, seed++);
      const acc = new SparseGramF64(d);
      const cut = Math.floor(rows / 2);
      acc.add(x.subarray(0, cut * d), cut);
      acc.add(x.subarray(cut * d), rows - cut);
      expect(acc.rows).toBe(rows);
      const shift = Float64Array.from({ length: d }, (_, j) => 0.1 * j + 0.05);
      for (const s of [undefined, shift]) {
        const ref = gramF64(x, rows, d, s);
        const got = acc.gram(s);
        expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(1e-12 * Math.max(1, maxAbs(ref)));
      }
      const sums = acc.sums();
      for (let j = 0; j < d; j++) {
        let t = 0;
        for (let i = 0; i < rows; i++) t += x[i * d + j]!;
        expect(sums[j]).toBeCloseTo(t, 10);
      }
    }
    expect(density(new Float32Array([0, 1, 0, 2]))).toBe(0.5);
    expect(() => new SparseGramF64(0)).toThrow(/positive integer/);
    expect(() => new SparseGramF64(3).add(new Float32Array(5), 2)).toThrow(/expected rows\*d/);
  });
});

describe('collectStats: input statistics on the host (sparse) or on the GPU', () => {
  const engine = useEngine();

  it('chooses the host path only for sparse inputs on software adapters', async () => {
    const e = await engine();
    const sparse = sparseData(64, 20, SPARSE_INPUT_DENSITY / 2, 3);
    const dense = sparseData(64, 20, 1, 4);
    expect(chooseInputGramPath(e, dense)).toBe('gpu');
    expect(chooseInputGramPath({ info: { ...e.info, isSoftware: false } }, sparse)).toBe('gpu');
    expect(chooseInputGramPath({ info: { ...e.info, isSoftware: true } }, sparse)).toBe('host-sparse');
  });

  it('gives the same input covariance and sums either way, over several batches', async () => {
    const e = await engine();
    const n = 1000;
    const d = 37;
    const x = sparseData(n, d, 0.2, 9);
    const r = rng(5);
    const model: MlpModel = {
      layers: [
        {
          name: 'layers.0',
          dIn: d,
          dOut: 12,
          activation: 'relu',
          W: Float32Array.from({ length: d * 12 }, () => r() - 0.5),
          b: Float32Array.from({ length: 12 }, () => 0.1 * (r() - 0.5)),
        },
        { name: 'layers.1', dIn: 12, dOut: 4, activation: 'identity', W: Float32Array.from({ length: 12 * 4 }, () => r() - 0.5), b: new Float32Array(4) },
      ],
    };
    const pts = integrationPoints('gradient', 0);
    const plan = {
      nodes: [
        { act: 0, name: 'layers.0', folded: true },
        { act: 1, name: 'layers.1', folded: true },
      ],
      gateLayers: [0],
    };
    const stats = [];
    const events: string[][] = [];
    const early: NodeStats[] = [];
    for (const inputGram of ['gpu', 'host-sparse'] as const) {
      const mlp = new GpuMlp(e, model, pts);
      const ev: string[] = [];
      const onInputStats = (s: NodeStats) => {
        ev.push('input');
        early.push(s);
      };
      stats.push(await collectStats(e, mlp, arraySource(x, n, d, 'sparse'), { ...plan, inputGram, onInputStats }, 128, pts, () => ev.push('batch')));
      events.push(ev);
      mlp.dispose();
    }
    const [gpu, host] = stats as [(typeof stats)[0], (typeof stats)[0]];
    const a = gpu.nodes.get('layers.0')!;
    const b = host.nodes.get('layers.0')!;
    // The host path hands over the finished input statistics before the GPU pass's first batch.
    expect(events[0]).not.toContain('input');
    expect(events[1]![0]).toBe('input');
    expect(events[1]!.filter((v) => v === 'batch')).toHaveLength(Math.ceil(n / 128));
    expect(early).toHaveLength(1);
    expect(early[0]).toBe(b);
    expect(b.n).toBe(n);
    expect(maxAbsDiff(a.sum, b.sum)).toBeLessThanOrEqual(1e-5 * maxAbs(b.sum));
    const ca = covariance(a);
    const cb = covariance(b);
    expect(maxAbsDiff(ca, cb)).toBeLessThanOrEqual(1e-5 * maxAbs(cb));
    // The host path is float64: against the dense float64 covariance it is exact to rounding.
    const mu = Float64Array.from({ length: d }, (_, j) => b.sum[j]! / n);
    const ref = gramF64(x, n, d, mu).map((v) => v / n);
    expect(maxAbsDiff(cb, ref)).toBeLessThanOrEqual(1e-12 * maxAbs(ref));
    // Other layers are untouched by the choice.
    expect(maxAbsDiff(gpu.nodes.get('layers.1')!.gramShifted, host.nodes.get('layers.1')!.gramShifted)).toBe(0);
  });
});
