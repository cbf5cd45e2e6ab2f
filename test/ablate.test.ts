// Ablations (src/ablate/, src/cpu/ablation.ts): rib's schedules and edge mask on its own docstring
// examples; GPU node and edge ablations against the float64 reference on the synthetic fixture
// (its labels); nothing ablated reproduces the unablated score exactly, keeping every direction
// reproduces it to rounding; on the block-diagonal modular MLP of SPEC §9.3 the IB needs no
// cross-block edges.

import { beforeAll, describe, expect, it } from 'vitest';
import { ablatedLogitsF64, edgeMaskF64, rotationMatrixF64, scoresF64, type FoldedLayerF64 } from '../src/cpu/ablation.js';
import { ablationBasis, identityBasis, type AblationBasis, type BasisKind, type StoredBasis } from '../src/ablate/bases.js';
import { EvalSet, type Scores } from '../src/ablate/evaluate.js';
import { GpuFoldedMlp } from '../src/ablate/model.js';
import { edgeAblation, evalEdgeAblation, evalNodeAblation } from '../src/ablate/run.js';
import { makeSchedule, staticAblationCounts } from '../src/ablate/schedule.js';
import { act } from '../src/model/activations.js';
import type { LayerBasis } from '../src/ib/basis.js';
import { parseConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import { foldedWeight, type MlpModel } from '../src/model/mlp.js';
import { buildInteractionBasis, type IbResult } from '../src/ib/pipeline.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { toFloat64 } from '../src/io/tensor.js';
import { useEngine } from './helpers/gpu.js';
import { blockDiagonalProductSet, loadSyntheticFixture } from './helpers/ib.js';
import { gaussian, rng } from './helpers/random.js';
import { edgeSparsity } from '../src/report/sparsity.js';
import { parseAblationConfig } from '../src/ablate/config.js';
import { ablateCommand } from '../src/cli/ablate.js';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { writeNpy } from '../src/io/npy.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IbgpuError } from '../src/errors.js';

const engine = useEngine();
const FIXTURE = new URL('./fixtures/synthetic-mlp', import.meta.url).pathname;

describe('schedules (rib/ablations.py docstrings)', () => {
  it('exponential', () => {
    // rib lists vectors ablated from n down to 0 and iterates them reversed.
    const exp = (cutoff: number | null, n: number) => staticAblationCounts({ schedule_type: 'exponential', ablate_every_vec_cutoff: cutoff, exp_base: 2 }, n);
    expect(exp(null, 12)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(exp(0, 12)).toEqual([12, 11, 9, 5, 0].reverse());
    expect(exp(1, 12)).toEqual([12, 11, 10, 8, 4, 0].reverse());
    expect(exp(3, 12)).toEqual([12, 11, 10, 9, 8, 6, 2, 0].reverse());
    expect(exp(3, 24)).toEqual([24, 23, 22, 21, 20, 18, 14, 6, 0].reverse());
  });
  it('linear and specific points', () => {
    expect(staticAblationCounts({ schedule_type: 'linear', n_points: 3 }, 12)).toEqual([0, 6, 12]);
    expect(staticAblationCounts({ schedule_type: 'linear', n_points: 11 }, 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(staticAblationCounts({ schedule_type: 'linear', n_points: 3, specific_points: [1, 99] }, 12)).toEqual([0, 6, 11, 12]);
  });
  it('early stopping ends a static schedule once the score moved past the threshold', () => {
    const s = makeSchedule({ schedule_type: 'linear', n_points: 5, early_stopping_threshold: 0.1 }, 4, 'accuracy', 1);
    const seen: number[] = [];
    for (let n = s.next(); n !== undefined; n = s.next()) {
      seen.push(n);
      s.report(1 - 0.06 * n);
    }
    expect(seen).toEqual([0, 1, 2]);
  });
  it.each([['linear'], ['logarithmic']] as const)('bisect (%s) finds the largest count that keeps the score', (scaling) => {
    for (const [n, limit] of [
      [20, 11],
      [1000, 0],
      [1000, 999],
      [7, 3],
    ] as const) {
      // Score good (accuracy stays) up to `limit` ablated.
      const s = makeSchedule({ schedule_type: 'bisect', score_target_difference: 0.01, scaling }, n, 'accuracy', 0.9);
      for (let a = s.next(); a !== undefined; a = s.next()) s.report(a <= limit ? 0.895 : 0.5);
      expect(s.keptBound, `n=${n} limit=${limit}`).toBe(limit);
    }
  });
});

describe('edge mask and rotation (float64 references)', () => {
  it("rib's _get_edge_mask example", () => {
    const E = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
    expect(Array.from(edgeMaskF64(E, 3, 3, 2, true))).toEqual([1, 0, 0, 1, 0, 0, 1, 1, 1]);
    expect(Array.from(edgeMaskF64(E, 3, 3, 2, false))).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 1]);
    expect(Array.from(edgeMaskF64(E, 3, 3, 7, true))).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(Array.from(edgeMaskF64(E, 3, 3, 0, true))).toEqual([1, 0, 0, 1, 0, 0, 1, 0, 0]);
  });
  it('R keeps the leading directions: R = I at full rank, R² = R, and C⁺R zeroes the dropped coordinates', () => {
    const g = gaussian(rng(3));
    const dim = 7;
    const C = Float64Array.from({ length: dim * dim }, () => g());
    const Cpinv = invert(C, dim);
    const full = rotationMatrixF64({ dim, r: dim, C, Cpinv }, dim);
    for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) expect(full[i * dim + j]!).toBeCloseTo(i === j ? 1 : 0, 10);
    const R = rotationMatrixF64({ dim, r: dim, C, Cpinv }, 3);
    const R2 = mm(R, R, dim);
    for (let t = 0; t < dim * dim; t++) expect(R2[t]!).toBeCloseTo(R[t]!, 9);
    const P = mm(R, C, dim); // columns of C through R: the first 3 unchanged, the rest 0
    for (let i = 0; i < dim; i++) for (let k = 0; k < dim; k++) expect(P[i * dim + k]!).toBeCloseTo(k < 3 ? C[i * dim + k]! : 0, 9);
  });
});

describe('ablation config (rib field names)', () => {
  it("reads rib's mnist config and maps its basis names", () => {
    const c = parseAblationConfig({
      exp_name: 'rib_4-node-layers',
      ablation_type: 'rib',
      rib_results_path: 'x.pt',
      dtype: 'float32',
      seed: 0,
      batch_size: 512,
      eval_type: 'accuracy',
      schedule: { schedule_type: 'exponential', early_stopping_threshold: null, ablate_every_vec_cutoff: 10, exp_base: 2.0 },
      ablation_node_layers: ['layers.0', 'layers.1', 'layers.2'],
    });
    expect(c.ablation_type).toBe('ib');
    expect(c.schedule).toEqual({ schedule_type: 'exponential', ablate_every_vec_cutoff: 10, exp_base: 2 });
    expect(parseAblationConfig({ ablation_type: 'orthogonal' }).ablation_type).toBe('pca');
  });
  it.each([
    [{ ablation_type: 'rib', bogus: 1 }, /unknown field 'bogus'/],
    [{ ablation_type: 'svd' }, /ablation_type 'svd'/],
    [{ ablation_type: 'edge', schedule: { schedule_type: 'bisect' } }, /needs score_target_difference/],
    [{ ablation_type: 'rib', schedule: { schedule_type: 'linear', n_points: 5, exp_base: 2 } }, /exp_base is not a field of a linear schedule/],
    [{ ablation_type: 'rib', eval_type: 'kl' }, /eval_type/],
    [{ ablation_type: 'rib', dataset: { rows: [5, 2] } }, /dataset.rows/],
  ])('rejects %j', (raw, msg) => {
    expect(() => parseAblationConfig(raw)).toThrow(IbgpuError);
    expect(() => parseAblationConfig(raw)).toThrow(msg);
  });
});

describe('edge sparsity', () => {
  it('uniform, one-hot and zero-padded edge lists', () => {
    const u = edgeSparsity(new Float64Array(12).fill(2), 3, 4, -1, 12);
    expect([u.n50, u.n90, u.n99, u.nonzero]).toEqual([6, 11, 12, 12]);
    expect(u.gini).toBeCloseTo(0, 12);
    expect(u.entropy_bits).toBeCloseTo(Math.log2(12), 12);
    // The constant column (0) left out; padding to 20 edges makes 6 equal edges unequal.
    const E = [9, 1, 1, 1, 9, 1, 1, 1, 9, 1, 1, 1];
    const p = edgeSparsity(E, 3, 4, 0, 20);
    expect([p.edges, p.nonzero, p.mass, p.n50, p.n99]).toEqual([20, 9, 9, 5, 9]);
    expect(p.gini).toBeCloseTo((20 - 9) / 20, 12); // k equal values among n: G = 1 − k/n
    expect(p.effective_edges).toBeCloseTo(9, 9);
    const one = edgeSparsity([0, 0, 5, 0], 2, 2, -1, 4);
    expect([one.n50, one.n90, one.n99]).toEqual([1, 1, 1]);
    expect(one.gini).toBeCloseTo(0.75, 12);
  });
});

function mm(a: ArrayLike<number>, b: ArrayLike<number>, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) c[i * n + j]! += a[i * n + k]! * b[k * n + j]!;
  return c;
}

function invert(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    for (const x of [m, inv]) for (let j = 0; j < n; j++) [x[c * n + j], x[p * n + j]] = [x[p * n + j]!, x[c * n + j]!];
    const d = m[c * n + c]!;
    for (const x of [m, inv]) for (let j = 0; j < n; j++) x[c * n + j]! /= d;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c]!;
      for (const x of [m, inv]) for (let j = 0; j < n; j++) x[r * n + j]! -= f * x[c * n + j]!;
    }
  }
  return inv;
}

// ------------------------------------------------------------------ GPU vs float64

function stored(b: LayerBasis): StoredBasis {
  return { dim: b.dim, r: b.r, k: b.k, centred: b.centred, mean: b.mean, U: b.U, D: b.D, C: b.C, Cpinv: b.Cpinv };
}

function foldedLayers(model: MlpModel): FoldedLayerF64[] {
  return model.layers.map((l, i) => {
    const w = foldedWeight(model, i);
    return { W: w.data, rows: w.rows, cols: w.cols, act: (v: number) => act(l.activation, v) };
  });
}

function xbarOf(x: Float32Array, n: number, d: number): Float64Array {
  const out = new Float64Array(n * (d + 1));
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < d; i++) out[s * (d + 1) + i] = x[s * d + i]!;
    out[s * (d + 1) + d] = 1;
  }
  return out;
}

async function buildIb(model: MlpModel, x: Float32Array, n: number): Promise<IbResult> {
  const nodes = [...model.layers.map((l) => l.name), 'output'];
  const config = parseConfig({ node_layers: nodes, batch_size: 512, center: true });
  return buildInteractionBasis(await engine(), model, arraySource(x, n, model.layers[0]!.dIn), config);
}

/** CE tolerance: f32 logits of an O(10)-deep sum, relative to the loss scale. */
const CE_TOL = 2e-5;

describe('synthetic fixture: GPU ablations against float64', () => {
  let model: MlpModel;
  let x: Float32Array;
  let n: number;
  let labels: Float64Array;
  let res: IbResult;
  let ev: EvalSet;
  let runner: GpuFoldedMlp;
  let xbar: Float64Array;
  let base: Scores;
  const ref = (iv: Parameters<typeof ablatedLogitsF64>[3]) => scoresF64(ablatedLogitsF64(foldedLayers(model), xbar, n, iv), n, 8, labels);

  beforeAll(async () => {
    ({ model, x, n } = await loadSyntheticFixture(FIXTURE));
    labels = toFloat64((await loadSafetensors(`${FIXTURE}/inputs.safetensors`)).tensors['labels']!);
    res = await buildIb(model, x, n);
    runner = new GpuFoldedMlp(await engine(), model);
    // Batches of 700 rows: several batches, the last one partial.
    ev = await EvalSet.create(await engine(), runner, arraySource(x, n, 16), labels, 700);
    xbar = xbarOf(x, n, 16);
    base = await ev.score(0, (b) => ev.actsAt(0, b));
  }, 60_000);

  it('the unablated score matches the float64 forward pass', () => {
    const r = ref({ kind: 'none' });
    console.log(`synthetic fixture: accuracy ${base.accuracy} (f64 ${r.accuracy}), ce ${base.ce_loss} (f64 ${r.ce_loss})`);
    expect(Math.abs(base.accuracy - r.accuracy) * n).toBeLessThanOrEqual(1);
    expect(Math.abs(base.ce_loss - r.ce_loss)).toBeLessThan(CE_TOL * Math.max(1, r.ce_loss));
  });

  it('ablating nothing at any node layer reproduces the unablated score exactly', async () => {
    for (let j = 0; j < 3; j++) {
      const b = ablationBasis(stored(res.bases.get(`layers.${j}`)!), 'ib');
      const s = await evalNodeAblation(ev, j, b, null);
      expect(s.accuracy).toBe(base.accuracy);
      expect(s.ce_loss).toBe(base.ce_loss);
    }
  });

  it.each(['ib', 'pca', 'neuron'] as BasisKind[])(
    '%s: keeping every direction equals the unablated score to rounding; fewer match float64',
    async (kind) => {
      for (let j = 0; j < 3; j++) {
        const b = ablationBasis(stored(res.bases.get(`layers.${j}`)!), kind);
        const all = await evalNodeAblation(ev, j, b, b.r);
        console.log(
          `${kind} layers.${j}: all ${b.r} directions kept: |Δ CE| = ${Math.abs(all.ce_loss - base.ce_loss).toExponential(2)}, Δ accuracy = ${all.accuracy - base.accuracy}`,
        );
        // The fixture's dropped directions carry no variance (exact planted relations): only f32
        // rounding of the rotated forward pass differs. Measured |Δ CE| ≤ 2.2e-9 (the neuron basis, a
        // permutation, 0 exactly); bound 1e-6.
        expect(Math.abs(all.ce_loss - base.ce_loss), `${kind} layers.${j} all`).toBeLessThan(1e-6);
        expect(Math.abs(all.accuracy - base.accuracy) * n).toBeLessThanOrEqual(2);
        for (const keep of [0, 2, Math.max(1, Math.floor(b.r / 3)), b.r - 1]) {
          const s = await evalNodeAblation(ev, j, b, keep);
          const r = ref({ kind: 'rotate', layer: j, R: rotationMatrixF64(b, keep) });
          expect(Math.abs(s.ce_loss - r.ce_loss), `${kind} layers.${j} keep ${keep}`).toBeLessThan(CE_TOL * Math.max(1, r.ce_loss));
          expect(Math.abs(s.accuracy - r.accuracy) * n, `${kind} layers.${j} keep ${keep}`).toBeLessThanOrEqual(2);
        }
      }
    },
    60_000,
  );

  it('edge ablation matches float64 for several edge counts of every layer pair', async () => {
    const names = ['layers.0', 'layers.1', 'layers.2', 'output'];
    for (let j = 0; j < 3; j++) {
      const bin = ablationBasis(stored(res.bases.get(names[j]!)!), 'ib');
      const nb = res.bases.get(names[j + 1]!);
      const bout: AblationBasis = nb ? ablationBasis(stored(nb), 'ib') : identityBasis(8);
      const E = res.edges.get(`${names[j]}->${names[j + 1]}`)!;
      for (const kept of [5, Math.floor((E.rows * (E.cols - 1)) / 2)]) {
        const mask = edgeMaskF64(E.data, E.rows, E.cols, kept, true);
        const s = await evalEdgeAblation(await engine(), ev, j, bin, bout, mask);
        const r = ref({ kind: 'edges', layer: j, inBasis: bin, outBasis: bout, mask });
        expect(Math.abs(s.ce_loss - r.ce_loss), `${names[j]} kept ${kept}`).toBeLessThan(CE_TOL * Math.max(1, r.ce_loss));
        expect(Math.abs(s.accuracy - r.accuracy) * n, `${names[j]} kept ${kept}`).toBeLessThanOrEqual(2);
      }
    }
  }, 60_000);
});

describe('block-diagonal modular MLP (SPEC §9.3): the IB needs no cross-block edges', () => {
  // The model and product-set data of test/ib-closed-forms.test.ts (test/helpers/ib.ts); labels
  // are the model's own predictions, so the unablated accuracy is 1 and the CE is the model's
  // confidence.
  const { model, blockOf, x, N } = blockDiagonalProductSet();

  it('bisected edge masks keep no cross-block edge, and dropping every cross-block edge leaves the score', async () => {
    const res = await buildIb(model, x, N);
    const logits = ablatedLogitsF64(foldedLayers(model), xbarOf(x, N, 7), N, { kind: 'none' });
    const labels = Array.from({ length: N }, (_, s) => {
      let best = 0;
      for (let c = 1; c < 5; c++) if (logits[s * 5 + c]! > logits[s * 5 + best]!) best = c;
      return best;
    });
    const runner = new GpuFoldedMlp(await engine(), model);
    const ev = await EvalSet.create(await engine(), runner, arraySource(x, N, 7), labels, 1024);
    const base = await ev.score(0, (b) => ev.actsAt(0, b));
    expect(base.accuracy).toBe(1);
    const names = ['layers.0', 'layers.1', 'layers.2', 'output'];
    const blockOfDir = (name: string): number[] => {
      const b = res.bases.get(name);
      if (!b) return Array.from({ length: 5 }, (_, u) => (u < 2 ? 0 : 1));
      const li = Number(name.split('.')[1]);
      return Array.from({ length: b.r }, (_, k) => {
        if (k === 0) return -1; // constant direction: free
        const m = [0, 0];
        for (let u = 0; u < b.dim - 1; u++) m[blockOf[li]![u]!]! += b.C[u * b.r + k]! ** 2;
        return m[0]! > m[1]! ? 0 : 1;
      });
    };
    for (let j = 0; j < 3; j++) {
      const bin = ablationBasis(stored(res.bases.get(names[j]!)!), 'ib');
      const nbas = res.bases.get(names[j + 1]!);
      const bout = nbas ? ablationBasis(stored(nbas), 'ib') : identityBasis(5);
      const E = res.edges.get(`${names[j]}->${names[j + 1]}`)!;
      const bi = blockOfDir(names[j]!);
      const bo = blockOfDir(names[j + 1]!);
      const cross = (o: number, i: number) => bi[i] !== -1 && bo[o] !== -1 && bi[i] !== bo[o];
      // 1. Every cross-block edge dropped (all within-block ones kept): the score is unchanged.
      const within = new Uint8Array(E.rows * E.cols);
      for (let o = 0; o < E.rows; o++) for (let i = 0; i < E.cols; i++) within[o * E.cols + i] = cross(o, i) ? 0 : 1;
      const s = await evalEdgeAblation(await engine(), ev, j, bin, bout, within);
      console.log(`modular ${names[j]}: CE ${s.ce_loss} without cross-block edges, ${base.ce_loss} unablated`);
      expect(Math.abs(s.ce_loss - base.ce_loss)).toBeLessThan(1e-5);
      expect(s.accuracy).toBe(1);
      // 2. Bisection for the edges needed within 1e-4 of the CE: its mask has no cross-block edge.
      const r = await edgeAblation(await engine(), ev, j, bin, bout, E.data, { schedule_type: 'bisect', score_target_difference: 1e-4 }, 'ce_loss', base, true);
      const req = r.required[0]!;
      let crossKept = 0;
      for (let o = 0; o < E.rows; o++) for (let i = 0; i < E.cols; i++) if (req.edge_mask[o]![i] && cross(o, i)) crossKept++;
      console.log(`modular ${names[j]}: ${req.n_edges_required} edges needed of ${r.countable_edges}, cross-block kept ${crossKept}`);
      expect(crossKept).toBe(0);
      expect(req.n_edges_required).toBeGreaterThan(0);
    }
    ev.dispose();
    runner.dispose();
  }, 60_000);
});

describe('ibgpu ablate on a result directory', () => {
  it('writes ablations.json and the figures from a build of the fixture; labels from an .npy file', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'ibgpu-ablate-'));
    try {
      const cfg = join(tmp, 'build.json');
      writeFileSync(
        cfg,
        JSON.stringify({
          node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'],
          model: join(FIXTURE, 'weights.safetensors'),
          arch: join(FIXTURE, 'arch.json'),
          data: { type: 'safetensors', path: join(FIXTURE, 'inputs.safetensors'), key: 'X' },
          batch_size: 512,
        }),
      );
      const dir = join(tmp, 'result');
      await buildFromConfigFile(await engine(), cfg, { out: dir });
      // Without labels the command says where to get them.
      await expect(ablateCommand(dir, { type: ['ib'], quiet: true, sparsity: false })).rejects.toThrow(/--labels/);
      const labels = toFloat64((await loadSafetensors(`${FIXTURE}/inputs.safetensors`)).tensors['labels']!);
      const npy = join(tmp, 'labels.npy');
      await writeNpy(npy, { dtype: 'I32', shape: [labels.length], data: Int32Array.from(labels) });
      const code = await ablateCommand(dir, { type: ['rib', 'edge'], schedule: 'linear', nPoints: '3', eval: 'ce_loss', labels: npy, quiet: true });
      expect(code).toBe(0);
      const f = JSON.parse(readFileSync(join(dir, 'ablations.json'), 'utf8')) as import('../src/ablate/from-result.js').AblationsFile;
      expect(Object.keys(f.runs).sort()).toEqual(['edge', 'ib']);
      expect(f.runs.ib!.node!.map((l) => l.node_layer)).toEqual(['layers.0', 'layers.1', 'layers.2']);
      expect(f.runs.ib!.node![0]!.points.length).toBe(3);
      expect(f.runs.edge!.edge!.length).toBe(3);
      expect(f.sparsity!.rows.length).toBe(9);
      expect(existsSync(join(dir, 'ablations.svg'))).toBe(true);
      // A later run of another type keeps these.
      expect(await ablateCommand(dir, { type: ['neuron'], schedule: 'linear', nPoints: '2', eval: 'ce_loss', labels: npy, quiet: true, sparsity: false })).toBe(
        0,
      );
      const g = JSON.parse(readFileSync(join(dir, 'ablations.json'), 'utf8')) as typeof f;
      expect(Object.keys(g.runs).sort()).toEqual(['edge', 'ib', 'neuron']);
      expect(g.sparsity!.rows.length).toBe(9);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);
});
