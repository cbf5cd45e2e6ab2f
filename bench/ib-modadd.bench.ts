// The whole transformer build on rib's trained modular-addition model (1 layer, d 128, 4 heads ×
// 32, d_mlp 512; the 3830 training triples in rib's order; node layers ln1.0, ln2.0, unembed,
// output; last position after add_resid1; centred jacobian basis, squared edges), with per-stage
// times (statistics, bases with M′, edges), kept dimensions and the leading Λ against rib's stored
// values (SPEC-transformers §9.2: Λ_0 = 295856.17497 at ln2.0, 116757.2 at ln1.0). Thresholds: rib's
// absolute τ = 1e-15 and the relative 1e-10 sanity variant. The model is not part of the repository:
// the suite skips with a message when ../shared/data/rib-modadd beside the repository (or the folder given) is absent.
// It also times the degeneracy report: the rib-τ build without and with "degeneracy": true,
// alternately, three rounds after a warm-up pair (medians and their ratio).
//   npx tsx bench/ib-modadd.bench.ts [dir] [--cpu] [--gpu-only] [--example] [--no-degeneracy]
// --cpu also times the float64 CPU reference passes (minutes on two cores); --example also builds
// the shipped example (what `npm run gpu-check --short` runs).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadBuildConfig } from '../src/build/load.js';
import { parseConfig, type BuildConfig } from '../src/ib/config.js';
import type { IbResult } from '../src/ib/pipeline.js';
import { Engine } from '../src/runtime/engine.js';
import { loadTransformerBuild, runTransformerBuild } from '../src/transformer/build.js';
import { gpuPassesFactory } from '../src/transformer/gpu-passes.js';
import { printRows, saveRecord, type BenchRow } from './common.js';

const RIB = { ln2: 295856.17497, ln1: 116757.2 };

function describe(res: IbResult): string {
  const parts = [...res.bases.values()].map((b) => `${b.name} ${b.r}/${b.dim}${b.Lambda ? ` Λ0 ${b.Lambda[0]!.toFixed(2)}` : ''}`);
  return parts.join('; ');
}

/** The shipped example (examples/modadd-transformer: mod 13, 1 layer, d_model 32) built once on `engine`. */
async function shippedExampleRow(engine: Engine): Promise<BenchRow> {
  const { config, base } = await loadBuildConfig(resolve(import.meta.dirname, '..', 'examples', 'modadd-transformer', 'build.json'));
  const loaded = await loadTransformerBuild(config, base);
  const t0 = performance.now();
  const run = await runTransformerBuild(config, loaded, { base, gpu: gpuPassesFactory(engine, config.stage_paths) });
  const t = run.result.timings;
  return {
    case: `gpu shipped example (examples/modadd-transformer), N=${run.data.n}`,
    ms: performance.now() - t0,
    note: `stats ${t['stats']!.toFixed(0)} ms, bases ${t['bases']!.toFixed(0)} ms, edges ${t['edges']!.toFixed(0)} ms; ${describe(run.result)}`,
  };
}

export interface IbModaddBenchOptions {
  /** rib's model folder (default ../shared/data/rib-modadd beside the repository). */
  dir?: string;
  cpu?: boolean;
  gpu?: boolean;
  /** Also (or, with `ribModel: false`, only) build the shipped example. */
  example?: boolean;
  ribModel?: boolean;
  /** Write the record (default true). */
  save?: boolean;
  /**
   * Also time the degeneracy report (default true): the rib-τ build without and with
   * "degeneracy": true, interleaved over `degeneracyRounds` rounds (default 3), medians.
   */
  degeneracy?: boolean;
  degeneracyRounds?: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function runIbModaddBench(engine: Engine | undefined, opts: IbModaddBenchOptions = {}): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  if (opts.example && engine) rows.push(await shippedExampleRow(engine));
  const dir = opts.dir ?? resolve(import.meta.dirname, '..', '..', 'shared', 'data', 'rib-modadd');
  if (opts.ribModel === false) return finish(rows, engine, opts);
  if (!existsSync(join(dir, 'weights.safetensors'))) {
    console.log(`ib-modadd: rib's modular-addition model is not at ${dir} (it is not part of the repository): skipped`);
    return finish(rows, engine, opts);
  }
  const devices: ('gpu' | 'cpu')[] = [];
  if (opts.gpu !== false && engine) devices.push('gpu');
  if (opts.cpu) devices.push('cpu');
  const baseConfig = (device: 'gpu' | 'cpu', extra: Record<string, unknown>) =>
    parseConfig({
      model: join(dir, 'weights.safetensors'),
      arch: join(dir, 'config.json'),
      node_layers: ['ln1.0', 'ln2.0', 'unembed', 'output'],
      last_pos_module_type: 'add_resid1',
      dataset: { type: 'modular_arithmetic', modulus: 113, fn_name: 'add', frac_train: 0.3, seed: 0, return_set: 'train' },
      basis_formula: 'jacobian',
      center: true,
      device,
      ...extra,
    });
  for (const device of devices) {
    for (const [label, th] of [
      ['τ 1e-15 absolute (rib)', { truncation_threshold: 1e-15, threshold_mode: 'absolute' }],
      ['τ 1e-10 relative', { truncation_threshold: 1e-10, threshold_mode: 'relative' }],
      ['τ 1e-6 relative (default)', { truncation_threshold: 1e-6, threshold_mode: 'relative' }],
    ] as const) {
      const config = baseConfig(device, th);
      const loaded = await loadTransformerBuild(config, '/');
      const t0 = performance.now();
      const run = await runTransformerBuild(config, loaded, engine && device === 'gpu' ? { gpu: gpuPassesFactory(engine, config.stage_paths) } : {});
      const total = performance.now() - t0;
      const t = run.result.timings;
      const l2 = run.result.bases.get('ln2.0')!.Lambda![0]!;
      const l1 = run.result.bases.get('ln1.0')!.Lambda![0]!;
      rows.push({
        case: `${device} ${label}, N=${run.data.n}`,
        ms: total,
        note: `stats ${t['stats']!.toFixed(0)} ms, bases ${t['bases']!.toFixed(0)} ms (M' ${t['m_prime']!.toFixed(0)}), edges ${t['edges']!.toFixed(0)} ms; ${describe(run.result)}; Λ0 rel. to rib: ln2.0 ${((l2 - RIB.ln2) / RIB.ln2).toExponential(1)}, ln1.0 ${((l1 - RIB.ln1) / RIB.ln1).toExponential(1)}`,
      });
    }
  }
  if (engine && opts.gpu !== false && opts.degeneracy !== false) rows.push(...(await degeneracyRows(engine, baseConfig, opts.degeneracyRounds ?? 3)));
  return finish(rows, engine, opts);
}

/**
 * The degeneracy report's cost (README "Degeneracy report", transformers): rib's configuration
 * (τ = 1e-15 absolute) built without and with "degeneracy": true, alternately, `rounds` times
 * after one warm-up pair; the medians, the report's own stage time and the ratio of the builds.
 */
async function degeneracyRows(engine: Engine, baseConfig: (device: 'gpu', extra: Record<string, unknown>) => BuildConfig, rounds: number): Promise<BenchRow[]> {
  const th = { truncation_threshold: 1e-15, threshold_mode: 'absolute' };
  const plainConfig = baseConfig('gpu', th);
  const degConfig = baseConfig('gpu', { ...th, degeneracy: true });
  const loaded = await loadTransformerBuild(plainConfig, '/');
  const build = async (config: BuildConfig): Promise<{ ms: number; t: Record<string, number> }> => {
    const t0 = performance.now();
    const run = await runTransformerBuild(config, loaded, { gpu: gpuPassesFactory(engine, config.stage_paths) });
    return { ms: performance.now() - t0, t: run.result.timings };
  };
  await build(plainConfig);
  await build(degConfig);
  const plain: number[] = [];
  const withDeg: number[] = [];
  const deg: number[] = [];
  for (let r = 0; r < rounds; r++) {
    plain.push((await build(plainConfig)).ms);
    const d = await build(degConfig);
    withDeg.push(d.ms);
    deg.push(d.t['degeneracy']!);
  }
  const p = median(plain);
  const w = median(withDeg);
  return [
    { case: `gpu τ 1e-15 absolute (rib), plain build, median of ${rounds}`, ms: p, note: `builds ${plain.map((x) => x.toFixed(0)).join(', ')} ms` },
    {
      case: `gpu τ 1e-15 absolute (rib), with "degeneracy": true, median of ${rounds}`,
      ms: w,
      note: `${(w / p).toFixed(2)}x the plain build; degeneracy stage ${median(deg).toFixed(0)} ms (${deg.map((x) => x.toFixed(0)).join(', ')}); builds ${withDeg.map((x) => x.toFixed(0)).join(', ')} ms`,
    },
  ];
}

function finish(rows: BenchRow[], engine: Engine | undefined, opts: IbModaddBenchOptions): BenchRow[] {
  printRows('ib-modadd (rib modular addition, per stage)', rows);
  if (rows.length > 0 && opts.save !== false) saveRecord('ib-modadd', engine, rows);
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const gpuOnly = args.includes('--gpu-only');
  const cpu = args.includes('--cpu') && !gpuOnly;
  const dir = args.find((a) => !a.startsWith('--'));
  const engine = await Engine.create();
  try {
    await runIbModaddBench(engine, { ...(dir ? { dir } : {}), cpu, example: args.includes('--example'), degeneracy: !args.includes('--no-degeneracy') });
  } finally {
    engine.dispose();
  }
}
