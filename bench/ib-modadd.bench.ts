// The whole transformer build on rib's trained modular-addition model (1 layer, d 128, 4 heads ×
// 32, d_mlp 512; the 3830 training triples in rib's order; node layers ln1.0, ln2.0, unembed,
// output; last position after add_resid1; centred jacobian basis, squared edges), with per-stage
// times (statistics, bases with M′, edges), kept dimensions and the leading Λ against rib's stored
// values (SPEC-transformers §9.2: Λ_0 = 295856.17497 at ln2.0, 116757.2 at ln1.0). Thresholds: rib's
// absolute τ = 1e-15 and the relative 1e-10 sanity variant. The model is not part of the repository:
// the suite skips with a message when ../shared/data/rib-modadd beside the repository (or the folder given) is absent.
//   npx tsx bench/ib-modadd.bench.ts [dir] [--cpu] [--gpu-only] [--example]
// --cpu also times the float64 CPU reference passes (minutes on two cores); --example also builds
// the shipped example (what `npm run gpu-check --short` runs).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadBuildConfig } from '../src/build/load.js';
import { parseConfig } from '../src/ib/config.js';
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
}

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
  for (const device of devices) {
    for (const [label, th] of [
      ['τ 1e-15 absolute (rib)', { truncation_threshold: 1e-15, threshold_mode: 'absolute' }],
      ['τ 1e-10 relative', { truncation_threshold: 1e-10, threshold_mode: 'relative' }],
      ['τ 1e-6 relative (default)', { truncation_threshold: 1e-6, threshold_mode: 'relative' }],
    ] as const) {
      const config = parseConfig({
        model: join(dir, 'weights.safetensors'),
        arch: join(dir, 'config.json'),
        node_layers: ['ln1.0', 'ln2.0', 'unembed', 'output'],
        last_pos_module_type: 'add_resid1',
        dataset: { type: 'modular_arithmetic', modulus: 113, fn_name: 'add', frac_train: 0.3, seed: 0, return_set: 'train' },
        basis_formula: 'jacobian',
        center: true,
        device,
        ...th,
      });
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
  return finish(rows, engine, opts);
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
    await runIbModaddBench(engine, { ...(dir ? { dir } : {}), cpu, example: args.includes('--example') });
  } finally {
    engine.dispose();
  }
}
