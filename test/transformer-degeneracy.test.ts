// The degeneracy report of a transformer's MLP blocks (src/transformer/degeneracy.ts) against
// float64 brute force (src/cpu/transformer-mlp-f64.ts: Jacobians by central differences through
// the program interpreter, no VJP code), on tiny seeded random transformers with planted units
// (a duplicated unit, a dead one, two always-on ones), through the float64 passes and the GPU
// passes; the overlap-corrected count against the Gauss–Newton nullity of the block's own
// parameters (finite differences through the plain TransformerLens forward pass).
//
// Tolerances: the f64 passes' Jacobian Gram eigenvalues agree with the differences to 1e-6 of
// the largest (central differences at h = 1e-6 in a piecewise-linear model: rounding ~ε/h);
// the GPU's (f32 arithmetic) to 1e-4. Counts must agree exactly.

import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { signPatternsCpu } from '../src/cpu/sign-patterns.js';
import { mlpBlockGaussNewton, mlpBlockStatsFd } from '../src/cpu/transformer-mlp-f64.js';
import { FiringBits, ShiftedMoments } from '../src/host/row-moments.js';
import { parseArch } from '../src/model/mlp.js';
import type { ModelProgram } from '../src/model/program.js';
import { randomTransformer, transformerConfig } from '../src/model/transformer/random.js';
import type { TransformerConfig } from '../src/model/transformer/config.js';
import type { LastPosModuleType } from '../src/model/transformer/modules.js';
import type { TransformerModel } from '../src/model/transformer/weights.js';
import type { DegeneracyReport, RankRule, SectionReport } from '../src/report/degeneracy.js';
import { mlpBlocksReport, type MlpBlockStats } from '../src/report/transformer-degeneracy.js';
import { transformerDegeneracy, transformerParameterCount } from '../src/transformer/degeneracy.js';
import { gpuPassesFactory } from '../src/transformer/gpu-passes.js';
import { PassesF64 } from '../src/transformer/passes-f64.js';
import type { TransformerPasses } from '../src/transformer/passes.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { runIbgpu } from './helpers/cli.js';
import { useEngine } from './helpers/gpu.js';

const EXAMPLE = join(import.meta.dirname, '..', 'examples', 'modadd-transformer');

const RULE: RankRule = { tau: 1e-6, mode: 'relative' };

function tiny(over: Partial<TransformerConfig>, seed: number): TransformerModel {
  const c = transformerConfig({ d_model: 4, n_heads: 1, d_head: 3, d_mlp: 7, d_vocab: 11, n_ctx: 3, n_layers: 1, ...over });
  return randomTransformer(c, seed);
}

/**
 * Plants in every block: unit 1 = 2 × unit 0 (same pattern, dependent pre-activations), unit 2
 * dead (no input weights, bias −1), units 3 and 4 always on (small input weights, bias +5).
 */
function plant(model: TransformerModel): TransformerModel {
  const { d_model: d, d_mlp: m } = model.config;
  for (const b of model.weights.blocks) {
    for (let k = 0; k < d; k++) {
      b.Win[k * m + 1] = 2 * b.Win[k * m]!;
      b.Win[k * m + 2] = 0;
      b.Win[k * m + 3] = 0.05 * b.Win[k * m + 3]!;
      b.Win[k * m + 4] = 0.05 * b.Win[k * m + 4]!;
    }
    b.bin[1] = 2 * b.bin[0]!;
    b.bin[2] = -1;
    b.bin[3] = 5;
    b.bin[4] = 5;
  }
  return model;
}

function tokens(n: number, P: number, vocab: number, seed: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length: n * P }, () => Math.floor(r() * vocab));
}

interface Case {
  model: TransformerModel;
  tok: Int32Array;
  n: number;
  P: number;
  lastPos: LastPosModuleType | null;
}

/** The report from the brute-force statistics (same accounting as the production path). */
function referenceReport(t: Case): { rep: DegeneracyReport; margin: number } {
  const c = t.model.config;
  const ref = mlpBlockStatsFd(t.model, t.tok, t.n, t.P, t.lastPos);
  const act = c.act_fn === 'gelu_new' ? 'gelu_tanh' : c.act_fn;
  const blocks: MlpBlockStats[] = ref.map((b) => ({
    block: b.block,
    activation: act,
    dModel: c.d_model,
    dMlp: c.d_mlp,
    rows: b.rows,
    xCov: b.xCov,
    hMean: b.hMean,
    hCov: b.hCov,
    hGram: b.hGram,
    ...(act === 'relu' ? { patterns: signPatternsCpu(b.pre, b.rows, c.d_mlp) } : {}),
    jacobianPre: b.jacobianPre,
    jacobianOut: b.jacobianOut,
  }));
  const rep = mlpBlocksReport(blocks, RULE, {
    rawParams: transformerParameterCount(t.model),
    nLayers: c.n_layers,
    sequences: t.n,
    positions: ref[0]!.positions,
    rows: ref[0]!.rows,
    output_positions: 0,
    last_pos_module_type: t.lastPos,
    act_fn: c.act_fn,
    jacobians: { path: 'finite differences', vjps_per_sequence: 0, sequences: t.n, ms: 0 },
    forward_ms: 0,
  });
  return { rep, margin: Math.min(...ref.map((b) => b.margin)) };
}

async function measured(t: Case, passes: (mp: ModelProgram) => Promise<TransformerPasses>): Promise<DegeneracyReport> {
  return transformerDegeneracy(
    t.model,
    { tokens: t.tok, n: t.n, P: t.P },
    { threshold_mode: 'relative', truncation_threshold: 1e-6, last_pos_module_type: t.lastPos },
    passes,
  );
}

/** The counts of a section (everything but spectra and timings). */
function counts(s: SectionReport): unknown {
  const y = s.sync;
  return {
    section: s.section,
    rG: s.activation_degeneracy.rank,
    rJ: s.jacobian_degeneracy.rank,
    combined: s.combined_free,
    spec: s.free_spec,
    corrected: s.free_corrected,
    sync: y && { live: y.live, dead: y.dead, on: y.always_on, groups: y.groups.map((g) => [g.neurons, g.rank_pre, g.rank_jac]), near: y.near_pairs_total },
  };
}

function expectSpectraClose(a: DegeneracyReport, b: DegeneracyReport, tol: number): void {
  a.sections.forEach((s, i) => {
    const x = s.jacobian_degeneracy.eigenvalues!;
    const y = b.sections[i]!.jacobian_degeneracy.eigenvalues!;
    const mx = Math.max(...x);
    const err = Math.max(...x.map((v, k) => Math.abs(v - y[k]!)));
    expect(err / mx, `${s.section} E[JᵀJ] eigenvalues`).toBeLessThan(tol);
  });
}

const f64 =
  (t: Case) =>
  async (mp: ModelProgram): Promise<TransformerPasses> =>
    new PassesF64(mp, t.tok, t.n, t.P);

describe('transformer MLP-block degeneracy', () => {
  const engine = useEngine();
  const gpu = (t: Case) => async (mp: ModelProgram) => gpuPassesFactory(await engine())(mp, t.tok, t.n, t.P);

  /**
   * Case t's report through the float64 passes, checked, with the report through the GPU passes,
   * against the float64 reference `ref`: the same counts, and spectra within 1e-6 (f64) and 1e-4
   * (the GPU's f32 statistics).
   */
  async function measuredLikeReference(t: Case, ref: DegeneracyReport): Promise<DegeneracyReport> {
    const cpu = await measured(t, f64(t));
    const onGpu = await measured(t, gpu(t));
    expect(cpu.sections.map(counts)).toEqual(ref.sections.map(counts));
    expect(onGpu.sections.map(counts)).toEqual(ref.sections.map(counts));
    expectSpectraClose(cpu, ref, 1e-6);
    expectSpectraClose(onGpu, ref, 1e-4);
    return cpu;
  }

  const planted: Case = { model: plant(tiny({}, 11)), tok: tokens(40, 3, 11, 5), n: 40, P: 3, lastPos: 'add_resid1' };

  it('finds the planted duplicate, dead and always-on units, with the counts of the float64 reference (f64 and GPU passes)', async () => {
    const { rep: ref, margin } = referenceReport(planted);
    expect(margin, 'no pre-activation near a kink').toBeGreaterThan(1e-4);
    const cpu = await measuredLikeReference(planted, ref);
    const sync = cpu.sections[0]!.sync!;
    expect(sync.dead).toEqual([2]);
    expect(sync.always_on).toEqual([3, 4]);
    const dup = sync.groups.find((g) => g.neurons.includes(0))!;
    expect(dup.neurons).toEqual([0, 1]);
    expect(dup.rank_pre).toBe(1); // unit 1 = 2 × unit 0
    expect(sync.groups.find((g) => g.neurons.includes(3))!.neurons).toEqual([3, 4]);
    // 40 sequences cut to the last position: 40 rows; J w.r.t. 11 logits at one position.
    expect(cpu.scope).toMatchObject({ model: 'transformer', sequences: 40, positions: 1, rows: 40, output_positions: 1 });
    expect(cpu.totals.effective_scope).toBe('mlp_blocks');
    expect(cpu.totals.covered_params).toBe(5 * 7 + 8 * 4);
    expect(cpu.totals.effective_corrected).toBe(cpu.totals.covered_params - cpu.totals.free_corrected);
    expect(cpu.notes.join(' ')).toMatch(/not counted: attention/);
  });

  it('the overlap-corrected count equals the Gauss–Newton nullity of the block parameters (1 layer, with and without the add_resid1 cut)', async () => {
    for (const t of [planted, { ...planted, lastPos: null }, { ...planted, model: plant(tiny({}, 23)), lastPos: 'unembed' as const }]) {
      const { rep, margin } = referenceReport(t);
      expect(margin).toBeGreaterThan(1e-4);
      const gn = mlpBlockGaussNewton(t.model, t.tok, t.n, t.P, t.lastPos, 0);
      expect(gn.gapAtCut, `clear gap (${t.lastPos})`).toBeGreaterThan(1e3);
      expect(gn.params).toBe(rep.totals.covered_params);
      expect(rep.totals.free_corrected, `cut ${t.lastPos}`).toBe(gn.nullity);
      const cpu = await measured(t, f64(t));
      expect(cpu.totals.free_corrected).toBe(gn.nullity);
    }
  });

  it('on unplanted random blocks the counts are a lower bound: W_in can have more free directions than d·n − r_G·r_J', async () => {
    // The Kronecker count assumes rank E[J_pᵀJ_p ⊗ f fᵀ] = r_G·r_J; with 7 ReLUs feeding a
    // 4-wide residual it can be smaller. Measured (f64, gap > 1e6 at the cut): seed 11 nullity 8
    // against 7 counted, seed 12 9 against 7, seeds 13 and 14 equal (7); the excess lies in
    // W_in, b_in alone (nullity 1 and 2 where the count gives 0).
    const found: number[][] = [];
    for (const seed of [11, 12, 13, 14]) {
      const t: Case = { model: tiny({}, seed), tok: tokens(40, 3, 11, 5), n: 40, P: 3, lastPos: 'add_resid1' };
      const cpu = await measured(t, f64(t));
      const gn = mlpBlockGaussNewton(t.model, t.tok, t.n, t.P, t.lastPos, 0);
      const gnIn = mlpBlockGaussNewton(t.model, t.tok, t.n, t.P, t.lastPos, 0, { only: ['Win', 'bin'] });
      expect(gn.gapAtCut).toBeGreaterThan(1e3);
      expect(gn.nullity).toBeGreaterThanOrEqual(cpu.totals.free_corrected);
      expect(gnIn.nullity).toBeGreaterThanOrEqual(cpu.sections[0]!.combined_free);
      found.push([gn.nullity, cpu.totals.free_corrected, gnIn.nullity, cpu.sections[0]!.combined_free]);
    }
    expect(found).toEqual([
      [8, 7, 1, 0],
      [9, 7, 2, 0],
      [7, 7, 0, 0],
      [7, 7, 0, 0],
    ]);
  });

  it('two blocks with LayerNorm, every position (cut at unembed): reference counts through the f64 and GPU passes', async () => {
    const t: Case = {
      model: plant(tiny({ n_layers: 2, normalization_type: 'LNPre', d_mlp: 5, d_model: 6, n_heads: 2 }, 7)),
      tok: tokens(23, 3, 11, 9),
      n: 23,
      P: 3,
      lastPos: 'unembed',
    };
    const { rep: ref } = referenceReport(t);
    const cpu = await measuredLikeReference(t, ref);
    expect(cpu.sections.map((s) => s.section)).toEqual([
      'mlp_in.0 -> mlp_act.0',
      'mlp_out.0 -> add_resid2.0',
      'mlp_in.1 -> mlp_act.1',
      'mlp_out.1 -> add_resid2.1',
    ]);
    expect(cpu.scope).toMatchObject({ positions: 3, rows: 69 });
    // LayerNorm's output is centred: x̂ spans at most d_model − 1 directions, so r_G ≤ d_model.
    expect(cpu.sections[0]!.activation_degeneracy.rank).toBeLessThanOrEqual(6);
  });

  it('GELU blocks: (a) and (b) only, and the report says so', async () => {
    const t: Case = { model: tiny({ act_fn: 'gelu' }, 3), tok: tokens(30, 3, 11, 4), n: 30, P: 3, lastPos: 'add_resid1' };
    const { rep: ref } = referenceReport(t);
    const cpu = await measured(t, f64(t));
    expect(cpu.sections.map(counts)).toEqual(ref.sections.map(counts));
    expect(cpu.sections[0]!.sync).toBeUndefined();
    expect(cpu.sections[0]!.free_corrected).toBe(cpu.sections[0]!.combined_free);
    expect(cpu.notes.join(' ')).toMatch(/gelu blocks: \(a\) and \(b\) only/);
    // Parallel attention and MLP (Pythia), rotary positions, LayerNorm, gelu_new, every cut.
    const model = randomTransformer(
      transformerConfig({
        d_model: 6,
        n_heads: 2,
        d_head: 4,
        d_mlp: 5,
        d_vocab: 11,
        n_ctx: 4,
        n_layers: 2,
        normalization_type: 'LNPre',
        parallel_attn_mlp: true,
        positional_embedding_type: 'rotary',
        rotary_dim: 2,
        act_fn: 'gelu_new',
      }),
      3,
    );
    for (const lastPos of ['add_resid1', 'unembed', null] as const) {
      const p: Case = { model, tok: tokens(20, 4, 11, 5), n: 20, P: 4, lastPos };
      const r = referenceReport(p).rep;
      const got = await measured(p, f64(p));
      expect(got.sections.map(counts), `cut ${lastPos}`).toEqual(r.sections.map(counts));
      expectSpectraClose(got, r, 1e-6);
      expect(got.notes.join(' ')).toMatch(/gelu_new blocks/);
    }
  });
});

describe('ibgpu build / report with a transformer degeneracy report', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('build with "degeneracy": true writes degeneracy.json, report prints it, --recompute reproduces it, --gauss-newton says what is supported', async () => {
    const d = await mkdtemp(join(tmpdir(), 'ibgpu-tdeg-'));
    dirs.push(d);
    for (const f of ['weights.safetensors', 'config.json', 'build.json']) await copyFile(join(EXAMPLE, f), join(d, f));
    const cfg = JSON.parse(await readFile(join(d, 'build.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(d, 'deg.json'), JSON.stringify({ ...cfg, degeneracy: true }));
    const built = await runIbgpu(d, ['build', 'deg.json', '-o', 'with', '--quiet']);
    expect(built.code, built.err).toBe(0);
    const stored = JSON.parse(await readFile(join(d, 'with', 'degeneracy.json'), 'utf8')) as DegeneracyReport;
    expect(stored.format).toBe('ibgpu-degeneracy');
    expect(stored.scope).toMatchObject({ model: 'transformer', sequences: 169, positions: 1, rows: 169, output_positions: 1, act_fn: 'relu' });
    expect(stored.sections.map((s) => s.section)).toEqual(['mlp_in.0 -> mlp_act.0', 'mlp_out.0 -> add_resid2.0']);
    expect(stored.sections[0]!.sync!.fire_count).toHaveLength(32);
    const manifest = JSON.parse(await readFile(join(d, 'with', 'manifest.json'), 'utf8')) as { timings_ms: Record<string, number> };
    expect(manifest.timings_ms['degeneracy']).toBeGreaterThan(0);

    const shown = await runIbgpu(d, ['report', 'with']);
    expect(shown.code, shown.err).toBe(0);
    expect(shown.out).toMatch(/MLP blocks of a transformer, 169 rows \(169 sequences × 1 position\(s\)\)/);
    expect(shown.out).toMatch(/mlp_in\.0 -> mlp_act\.0 +544 +16\/17/);
    expect(shown.out).toMatch(/NOT counted, so no whole-model total: attention/);
    expect(shown.out).not.toMatch(/^ {2}effective parameters ≈/m);

    // A build without the report: report says so; --recompute measures the same counts.
    const plain = await runIbgpu(d, ['build', 'build.json', '-o', 'without', '--quiet']);
    expect(plain.code, plain.err).toBe(0);
    expect((await runIbgpu(d, ['report', 'without'])).out).toMatch(/no degeneracy\.json/);
    const re = await runIbgpu(d, ['report', 'without', '--recompute', '--json']);
    expect(re.code, re.err).toBe(0);
    const again = (JSON.parse(re.out) as { degeneracy: DegeneracyReport }).degeneracy;
    expect(again.sections.map(counts)).toEqual(stored.sections.map(counts));
    expect(JSON.parse(await readFile(join(d, 'without', 'degeneracy.json'), 'utf8')).scope.model).toBe('transformer');

    const gn = await runIbgpu(d, ['report', 'with', '--gauss-newton']);
    expect(gn.code).toBe(2);
    expect(gn.err).toMatch(/--gauss-newton computes the Gauss–Newton nullity of a whole MLP; for transformer results it is not available/);
    expect(gn.err).toMatch(/fix: drop --gauss-newton/);
    expect(gn.err).not.toMatch(/type must be "mlp"/);
  }, 60_000);
});

describe('row accumulators (src/host/row-moments.ts)', () => {
  it('chunked moments and firing bits equal the one-shot float64 and integer references (chunks not multiples of 32)', () => {
    const r = mulberry32(17);
    const rows = 101;
    const d = 5;
    const stride = 7;
    // A large common offset in column 0: the shifted sums must not lose its small spread.
    const data = Float64Array.from({ length: rows * stride }, (_, i) => (i % stride === 1 ? 1e4 : 0) + r() - 0.5);
    const mom = new ShiftedMoments(d);
    const bits = new FiringBits(d, rows);
    for (const [a, b] of [
      [0, 1],
      [1, 38],
      [38, 70],
      [70, 101],
    ] as const) {
      const blk = { data: data.subarray(a * stride, b * stride), rows: b - a, stride, offset: 1 };
      mom.add(blk);
      bits.add(blk);
    }
    const m = mom.result();
    const x = Float64Array.from({ length: rows * d }, (_, i) => data[Math.floor(i / d) * stride + 1 + (i % d)]!);
    const mean = Array.from({ length: d }, (_, a) => x.filter((_, i) => i % d === a).reduce((t, v) => t + v, 0) / rows);
    for (let a = 0; a < d; a++) {
      expect(Math.abs(m.mean[a]! - mean[a]!)).toBeLessThan(1e-12 * Math.max(1, Math.abs(mean[a]!)));
      for (let b = 0; b < d; b++) {
        let c = 0;
        for (let q = 0; q < rows; q++) c += ((x[q * d + a]! - mean[a]!) * (x[q * d + b]! - mean[b]!)) / rows;
        expect(Math.abs(m.cov[a * d + b]! - c)).toBeLessThan(1e-13);
        expect(Math.abs(m.gram[a * d + b]! - (c + mean[a]! * mean[b]!))).toBeLessThan(1e-12 * Math.max(1, Math.abs(mean[a]! * mean[b]!)));
      }
    }
    const ref = signPatternsCpu(x, rows, d);
    const got = bits.result({ cofire: true });
    expect(Array.from(got.words!)).toEqual(Array.from(ref.words!));
    expect(Array.from(got.hashLo)).toEqual(Array.from(ref.hashLo));
    expect(Array.from(got.cofire)).toEqual(Array.from(ref.cofire));
    expect(() => bits.add({ data, rows: 1, stride, offset: 1 })).toThrow(/exceed/);
  });

  it('an MLP-only step given a transformer config says so instead of "only MLPs are supported"', () => {
    expect(() => parseArch({ model: { d_model: 16, n_layers: 1 } }, 'config.json')).toThrow(/config\.json: this is a transformer config/);
    expect(() => parseArch({ type: 'cnn' })).toThrow(/type must be "mlp" \(got "cnn"\)/);
  });
});
