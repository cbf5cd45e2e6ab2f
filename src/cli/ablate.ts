// `ibgpu ablate <result-dir>`: node ablations in the IB, PCA and neuron bases and edge ablations
// of the IB graph (rib/ablations.py), evaluated on the GPU against the data's labels, plus the
// edge-sparsity comparison of the three bases. Writes ablations.json, ablations.svg and
// ablations-edges.svg into the result directory.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { IbgpuError } from '../errors.js';
import type { Backend } from '../gpu/acquire.js';
import { parseConfig } from '../ib/config.js';
import { ABLATION_TYPES, parseAblationConfig, parseAblationType, type AblationConfig, type AblationType } from '../ablate/config.js';
import {
  checkAblationOutput,
  DEFAULT_EDGE_TARGETS,
  loadLabels,
  runAblation,
  sparsityComparison,
  writeAblations,
  type AblationRun,
} from '../ablate/from-result.js';
import { formatSparsity } from '../report/sparsity.js';
import { formatAblationSummary } from '../ablate/format.js';
import { readResultDir } from '../report/result-dir.js';

export interface AblateCliOptions {
  type?: string[];
  config?: string;
  schedule?: string;
  cutoff?: string;
  expBase?: string;
  nPoints?: string;
  target?: string[];
  earlyStop?: string;
  eval?: string;
  layers?: string;
  rows?: string;
  labels?: string;
  batchSize?: string;
  sparsity?: boolean;
  json?: boolean;
  quiet?: boolean;
  backend?: Backend;
}

export function registerAblate(program: Command, backendOpt: () => import('commander').Option, setCode: (c: number) => void): void {
  program
    .command('ablate')
    .description('ablations (rib/ablations.py) in the IB, PCA and neuron bases and of the IB edges, on the GPU; edge sparsity per basis')
    .argument('<result-dir>', 'directory written by `ibgpu build`')
    .option('--type <types...>', `ablation types: ${ABLATION_TYPES.join(' ')} (rib's rib/orthogonal too; default: all four)`)
    .option('--config <file>', "ablation config with rib's field names (ablation_type, schedule, eval_type, ablation_node_layers, …)")
    .option('--schedule <type>', 'exponential | linear | bisect (default: exponential for nodes, bisect for edges)')
    .option('--cutoff <n>', 'exponential: ablate_every_vec_cutoff (default 10)')
    .option('--exp-base <x>', 'exponential: exp_base (default 2)')
    .option('--n-points <n>', 'linear: n_points')
    .option('--target <x...>', 'bisect: score_target_difference(s); edges: one bisection per value')
    .option('--early-stop <x>', 'static schedules: early_stopping_threshold')
    .option('--eval <type>', 'accuracy | ce_loss', 'accuracy')
    .option('--layers <list>', 'ablation_node_layers, comma-separated')
    .option('--rows <a:b>', "evaluate on datapoints [a, b) of the build's data")
    .option('--labels <file>', '.npy of class indices, one per datapoint (the MNIST digits bring their own)')
    .option('--batch-size <n>', 'rows per GPU batch', '4096')
    .option('--no-sparsity', 'skip the edge-sparsity comparison (it computes PCA and neuron edges)')
    .option('--json', 'print ablations.json')
    .option('--quiet', 'no progress output')
    .addOption(backendOpt())
    .action(async (dir: string, o: AblateCliOptions) => {
      setCode(await ablateCommand(dir, o));
    });
}

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new IbgpuError('BAD_CONFIG', `--${name} must be an integer >= ${min}, got '${v}'`);
  return x;
}

function float(name: string, v: string, min: number): number {
  const x = Number(v);
  if (!Number.isFinite(x) || x < min) throw new IbgpuError('BAD_CONFIG', `--${name} must be a number >= ${min}, got '${v}'`);
  return x;
}

/** Ablation configs from --config or the command line (one per type). */
async function configsOf(o: AblateCliOptions): Promise<AblationConfig[]> {
  if (o.config) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(resolve(o.config), 'utf8'));
    } catch (e) {
      throw new IbgpuError(
        'BAD_CONFIG',
        `cannot read the ablation config ${o.config}: ${(e as Error).message}`,
        "pass a JSON file with rib's AblationConfig fields",
      );
    }
    const c = parseAblationConfig(raw);
    // A labels path in the config is relative to the config file.
    return [c.labels ? { ...c, labels: resolve(dirname(resolve(o.config)), c.labels) } : c];
  }
  const types: AblationType[] = (o.type ?? ABLATION_TYPES).map(parseAblationType);
  const evalType = o.eval ?? 'accuracy';
  if (evalType !== 'accuracy' && evalType !== 'ce_loss') throw new IbgpuError('BAD_CONFIG', `--eval must be accuracy or ce_loss, got '${evalType}'`);
  const targets = o.target?.map((v) => float('target', v, 0));
  let rows: [number, number] | undefined;
  if (o.rows) {
    const m = /^(\d+):(\d+)$/.exec(o.rows);
    if (!m || Number(m[1]) >= Number(m[2])) throw new IbgpuError('BAD_CONFIG', `--rows must be a:b with a < b, got '${o.rows}'`);
    rows = [Number(m[1]), Number(m[2])];
  }
  return types.map((t) => {
    const kind = o.schedule ?? (t === 'edge' ? 'bisect' : 'exponential');
    const schedule: Record<string, unknown> = { schedule_type: kind };
    if (kind === 'exponential') {
      schedule['ablate_every_vec_cutoff'] = int('cutoff', o.cutoff, 0) ?? 10;
      if (o.expBase) schedule['exp_base'] = float('exp-base', o.expBase, 1);
    }
    if (kind === 'linear') schedule['n_points'] = int('n-points', o.nPoints, 2) ?? 20;
    if (kind === 'bisect') schedule['score_target_difference'] = targets?.[0] ?? DEFAULT_EDGE_TARGETS[evalType][0];
    if (o.earlyStop !== undefined && kind !== 'bisect') schedule['early_stopping_threshold'] = float('early-stop', o.earlyStop, 0);
    return parseAblationConfig({
      ablation_type: t,
      schedule,
      eval_type: evalType,
      ...(o.layers ? { ablation_node_layers: o.layers.split(',').map((s) => s.trim()) } : {}),
      batch_size: int('batch-size', o.batchSize, 1) ?? 4096,
      ...(rows ? { dataset: { rows } } : {}),
      ...(o.labels ? { labels: o.labels } : {}),
      ...(t === 'edge' && kind === 'bisect' ? { score_target_differences: targets ?? DEFAULT_EDGE_TARGETS[evalType] } : {}),
    });
  });
}

export async function ablateCommand(dirArg: string, o: AblateCliOptions): Promise<number> {
  const dir = resolve(dirArg);
  const log = (m: string) => {
    if (!o.quiet) console.error(m);
  };
  const { manifest } = await readResultDir(dir);
  const configs = await configsOf(o);
  await checkAblationOutput(dir);
  const { loadModel, loadData } = await import('../build/load.js');
  const base = manifest.config_path ? dirname(resolve(manifest.config_path)) : dir;
  const config = parseConfig(manifest.config);
  const model = await loadModel(config, base);
  const data = await loadData(config, base);
  const { Engine } = await import('../runtime/engine.js');
  const engine = await Engine.create(o.backend ? { backend: o.backend } : {});
  try {
    const labels = await loadLabels(config, configs[0]!.labels, data.n);
    const inp = { engine, dir, manifest, config, model, data, labels, log };
    const runs: AblationRun[] = [];
    for (const c of configs) {
      log(`ablate: ${c.ablation_type} (${c.schedule.schedule_type}, ${c.eval_type}) on ${engine.adapterName}`);
      const run = await runAblation(inp, c);
      log(`  ${run.time_s.toFixed(1)} s`);
      runs.push(run);
    }
    let sparsity: Awaited<ReturnType<typeof sparsityComparison>> | undefined;
    if (o.sparsity !== false) {
      if (existsSync(resolve(dir, 'edges.safetensors'))) sparsity = await sparsityComparison(inp);
      else log('no edges.safetensors (built with calculate_edges: false): the sparsity comparison needs the IB edges, skipped');
    }
    const f = await writeAblations(dir, runs, sparsity);
    if (o.json) {
      console.log(JSON.stringify(f, null, 2));
      return 0;
    }
    console.log(formatAblationSummary(runs));
    if (sparsity) console.log(`\n${formatSparsity(sparsity)}`);
    console.log(`\nwrote ${resolve(dir, 'ablations.json')} and the figures ablations.svg / ablations-edges.svg`);
    return 0;
  } finally {
    await data.close?.();
    engine.dispose();
  }
}
