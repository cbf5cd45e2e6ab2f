// `ibgpu build <config.json>` for transformers: a build config in rib's field names whose `arch`
// is a transformer config (TransformerLens fields, rib's modadd config.json with them under
// "model", or a HuggingFace GPT-2 / GPT-NeoX config.json), `model` a safetensors file, and data
// from rib's `dataset` block (modular arithmetic) or `data: {type: "npy", path}` token ids.
// The passes run on the GPU by default (a PassesFactory, e.g. gpu-passes.ts) with host float64
// bases in between; `"device": "cpu"` runs the float64 reference passes instead.

import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { modularArithmetic, parseModularArithmetic, type TokenDataset } from '../data/modular-arithmetic.js';
import { loadTokenNpy } from '../data/tokens.js';
import { IbgpuError } from '../errors.js';
import type { BuildConfig } from '../ib/config.js';
import { buildSummary, writeResults } from '../ib/results.js';
import type { OutputGuardOptions } from '../io/output-guard.js';
import type { Backend } from '../gpu/acquire.js';
import { Engine } from '../runtime/engine.js';
import { parseTransformerConfig, type TransformerConfig } from '../model/transformer/config.js';
import { loadTransformer, type TransformerModel } from '../model/transformer/weights.js';
import { readBases, readStats, runIdentity, writeStatsDir } from './split-files.js';
import { readJsonFile } from '../io/json.js';
import { looksLikeZip } from '../io/torch-pt.js';
import { gpuPassesFactory } from './gpu-passes.js';
import { readRibBases, readRibStats } from './rib-results.js';
import { runTransformer, type TransformerBuildRun, type TransformerRunOptions } from './run.js';

/** Whether an architecture JSON describes a transformer (rather than an MLP arch file). */
export function isTransformerArch(raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return false;
  const o = raw as Record<string, unknown>;
  const inner = typeof o['model'] === 'object' && o['model'] !== null ? (o['model'] as Record<string, unknown>) : undefined;
  return 'd_model' in o || 'n_embd' in o || 'hidden_size' in o || (inner !== undefined && 'd_model' in inner);
}

/** True when the config's `arch` file is a transformer config (the dispatch of `ibgpu build`). */
export async function isTransformerBuild(config: BuildConfig, base: string): Promise<boolean> {
  if (!config.arch) return config.dataset !== undefined || config.last_pos_module_type !== undefined;
  return isTransformerArch(await readJsonFile(resolve(base, config.arch), 'architecture file'));
}

export interface LoadedTransformerBuild {
  arch: TransformerConfig;
  model: TransformerModel;
  data: TokenDataset;
  /** The separate statistics data (gram_dataset), when the statistics are computed from it. */
  gramData?: TokenDataset;
}

/** Token data from a rib dataset block: modular arithmetic, or {"type": "npy", "path", "count"?} token ids. */
async function loadDatasetBlock(block: Record<string, unknown>, key: string, archRaw: unknown, arch: TransformerConfig, base: string): Promise<TokenDataset> {
  const type = block['type'] ?? block['dataset_type'];
  if (type === 'npy') {
    if (typeof block['path'] !== 'string') throw new IbgpuError('BAD_CONFIG', `${key}: {"type": "npy"} needs a "path" to the token ids`);
    const count = block['count'];
    if (count !== undefined && (typeof count !== 'number' || !Number.isInteger(count) || count < 1))
      throw new IbgpuError('BAD_CONFIG', `${key}.count must be a positive integer`);
    return loadTokenNpy(resolve(base, block['path']), { nCtx: arch.n_ctx, vocab: arch.d_vocab, ...(count !== undefined ? { count: count as number } : {}) });
  }
  if (type !== 'modular_arithmetic') {
    throw new IbgpuError(
      'BAD_CONFIG',
      `${key} type ${JSON.stringify(type)} is not built in`,
      'use {"type": "modular_arithmetic", ...}, or tokenised text as data: {"type": "npy", "path": ...}',
    );
  }
  // rib reads missing fields from the checkpoint's config (here: the arch file's "dataset" block).
  const archDs = (archRaw as Record<string, unknown>)['dataset'];
  const fallback = typeof archDs === 'object' && archDs !== null ? parseModularArithmetic({ ...(archDs as Record<string, unknown>) }) : {};
  const { type: _t, dataset_type: _dt, ...fields } = block;
  const spec = parseModularArithmetic(fields, fallback);
  if (spec.modulus + 1 > arch.d_vocab) {
    throw new IbgpuError(
      'BAD_CONFIG',
      `modulus ${spec.modulus} needs d_vocab ≥ ${spec.modulus + 1} (the "=" token is ${spec.modulus}); the model has ${arch.d_vocab}`,
    );
  }
  return modularArithmetic(spec);
}

/**
 * Loads the model (`model` + `arch`) and the token data a transformer build config names, and the
 * separate statistics data (`gram_dataset`) when the statistics are computed from it.
 */
export async function loadTransformerBuild(config: BuildConfig, base: string): Promise<LoadedTransformerBuild> {
  if (!config.model || !config.arch) {
    throw new IbgpuError(
      'BAD_CONFIG',
      'a transformer build needs "model" (a safetensors file) and "arch" (the model config JSON)',
      'see examples/modadd-transformer/build.json',
    );
  }
  checkWorkflow(config);
  const archRaw = await readJsonFile(resolve(base, config.arch), 'architecture file');
  const arch = parseTransformerConfig(archRaw, config.arch);
  const model = await loadTransformer(resolve(base, config.model), arch);
  // rib loads gram_dataset only when the statistics are computed here.
  const gramData =
    config.gram_dataset !== undefined && config.gram_matrices_path === undefined && config.interaction_matrices_path === undefined
      ? await loadDatasetBlock(config.gram_dataset, 'gram_dataset', archRaw, arch, base)
      : undefined;
  let data: TokenDataset;
  if (config.dataset !== undefined) {
    if (config.data !== undefined) throw new IbgpuError('BAD_CONFIG', 'give either "dataset" (modular arithmetic) or "data" (token ids), not both');
    data = await loadDatasetBlock(config.dataset, 'dataset', archRaw, arch, base);
  } else if (config.data !== undefined) {
    if (config.data.type !== 'npy' || !config.data.path) {
      throw new IbgpuError(
        'BAD_CONFIG',
        `transformer data must be token ids in a .npy file: data: {"type": "npy", "path": ...} (got type '${config.data.type}')`,
      );
    }
    data = await loadTokenNpy(resolve(base, config.data.path), {
      nCtx: arch.n_ctx,
      vocab: arch.d_vocab,
      ...(config.data.count !== undefined ? { count: config.data.count } : {}),
    });
  } else if (config.calculate_Cs === false && gramData) {
    data = gramData; // rib: a statistics-only run needs no dataset besides gram_dataset
  } else {
    throw new IbgpuError('BAD_CONFIG', 'a transformer build needs data: a "dataset" block (modular arithmetic) or data: {"type": "npy", "path": ...}');
  }
  return { arch, model, data, ...(gramData ? { gramData } : {}) };
}

/** rib's rules for the split runs (RibBuildConfig.verify_model_info), with the fix. */
export function checkWorkflow(config: BuildConfig): void {
  const bad = (m: string, hint: string) => new IbgpuError('BAD_CONFIG', m, hint);
  const cs = config.calculate_Cs !== false;
  if (!cs && config.calculate_edges)
    throw bad(
      'calculate_Cs: false computes only the statistics, but calculate_edges is true',
      'set "calculate_edges": false as well (rib requires it), or drop calculate_Cs',
    );
  if (!cs && config.gram_matrices_path !== undefined)
    throw bad('gram_matrices_path loads statistics to compute bases from, but calculate_Cs is false', 'drop one of them');
  if (!cs && config.interaction_matrices_path !== undefined)
    throw bad('interaction_matrices_path loads bases for an edges run, but calculate_Cs is false', 'drop one of them');
  if (config.interaction_matrices_path !== undefined && !config.calculate_edges)
    throw bad(
      'interaction_matrices_path loads stored bases, which is only useful to compute edges, but calculate_edges is false',
      'set "calculate_edges": true',
    );
}

/** Stored files and statistics data a transformer config reads: the output may not replace them. */
export function workflowInputs(config: BuildConfig, base: string): string[] {
  const g = config.gram_dataset?.['path'];
  return [config.gram_matrices_path, config.interaction_matrices_path, typeof g === 'string' ? g : undefined]
    .filter((p): p is string => typeof p === 'string')
    .map((p) => resolve(base, p));
}

export type { TransformerBuildRun } from './run.js';

/** Whether `path` is a file in torch.save's ZIP format (rib's results), not a result directory. */
async function isTorchFile(path: string): Promise<boolean> {
  const st = await stat(path).catch(() => undefined);
  if (!st?.isFile()) return false;
  const fh = await open(path, 'r');
  try {
    const head = new Uint8Array(4);
    await fh.read(head, 0, 4, 0);
    return looksLikeZip(head);
  } finally {
    await fh.close();
  }
}

/**
 * Runs a transformer build from files: runTransformer with the stored statistics
 * (gram_matrices_path) or bases (interaction_matrices_path: an ibgpu result or rib's results file) the config names, read relative to
 * `opts.base`, after rib's checks of those split runs.
 */
export async function runTransformerBuild(
  config: BuildConfig,
  loaded: LoadedTransformerBuild,
  opts: TransformerRunOptions & { base?: string } = {},
): Promise<TransformerBuildRun> {
  const { model, data, gramData } = loaded;
  checkWorkflow(config);
  const { base, ...runOpts } = opts;
  const stored = (p: string): string => resolve(base ?? '.', p);
  if (config.interaction_matrices_path !== undefined) {
    const path = stored(config.interaction_matrices_path);
    runOpts.bases = (await isTorchFile(path))
      ? await readRibBases(path, runIdentity(model, config), (m) => runOpts.logger?.info(m))
      : await readBases(path, runIdentity(model, config));
  } else if (config.gram_matrices_path !== undefined) {
    const path = stored(config.gram_matrices_path);
    const st = (await isTorchFile(path))
      ? await readRibStats(path, runIdentity(model, config), (m) => runOpts.logger?.info(m))
      : await readStats(path, runIdentity(model, config));
    runOpts.stats = async () => st;
  }
  return runTransformer(config, model, data, { ...runOpts, ...(gramData ? { gramData } : {}) });
}

/** Lines `ibgpu build` prints after a transformer build. */
export function summaryLines(run: TransformerBuildRun, totalMs: number): string[] {
  const res = run.result;
  if (run.stats) {
    const d = run.statsData!;
    return [
      `\nStatistics (means and ${res.config.center ? 'centred ' : ''}Grams) of ${run.stats.length} node layers over ${d.n} sequences × ${d.P} positions on ${run.device} in ${(totalMs / 1000).toFixed(2)} s`,
    ];
  }
  const lines = [
    `\nInteraction Basis of ${run.data.n} sequences × ${run.data.P} positions on ${run.device} in ${(totalMs / 1000).toFixed(2)} s (${Object.entries(
      res.timings,
    )
      .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`)
      .join(', ')})`,
  ];
  for (const [name, b] of res.bases) {
    lines.push(
      `  ${name.padEnd(14)} dim ${String(b.dim).padStart(5)}  stage 1 keeps ${String(b.k).padStart(5)}  basis ${String(b.r).padStart(5)}${b.Lambda ? `  Λ_0 ${b.Lambda[0]!.toExponential(6)}` : ''}`,
    );
  }
  for (const [k, e] of res.edges) lines.push(`  edges ${k}: ${e.rows}×${e.cols}`);
  return lines;
}

export interface TransformerCommandOptions {
  backend?: Backend;
  quiet?: boolean;
  /** One JSON document on stdout (`ibgpu build --json`). */
  json?: boolean;
  /** What the output guard protects (the command's inputs); the CLI checked the target already. */
  guard?: OutputGuardOptions;
  /** Config fields that override the file's were already applied by the caller. */
  logger?: { info(msg: string): void };
}

/**
 * The whole `ibgpu build` of a transformer config: load, build (GPU passes on a fresh engine
 * unless "device": "cpu"), write the result directory `out` with the existing writer. Returns
 * the directory and the run.
 */
export async function transformerBuildToDir(
  configPath: string,
  base: string,
  config: BuildConfig,
  out: string,
  o: TransformerCommandOptions & { engine?: Engine } = {},
): Promise<{ dir: string; run: TransformerBuildRun; totalMs: number; adapter: string }> {
  const log = o.logger ?? { info: () => {} };
  const loaded = await loadTransformerBuild(config, base);
  const cpu = config.device === 'cpu';
  const engine = cpu ? undefined : (o.engine ?? (await Engine.create(o.backend ? { backend: o.backend } : {})));
  try {
    log.info(`ibgpu build: ${configPath}`);
    log.info(
      `transformer: ${loaded.arch.n_layers} layers, d_model ${loaded.arch.d_model}, ${loaded.data.n} sequences × ${loaded.data.P} positions; passes on ${engine ? engine.adapterName : 'the CPU (float64)'}`,
    );
    const t0 = performance.now();
    const run = await runTransformerBuild(config, loaded, { logger: log, base, ...(engine ? { gpu: gpuPassesFactory(engine, config.stage_paths) } : {}) });
    const totalMs = performance.now() - t0;
    const adapter = engine ? engine.adapterName : 'cpu (float64 reference)';
    // What a later run loading this result's statistics or bases must share with it (split-files.ts).
    const identity = runIdentity(loaded.model, config);
    const dir = run.stats
      ? await writeStatsDir(
          out,
          config.node_layers.filter((n) => n !== 'output'),
          run.stats,
          identity,
          { data: run.statsData!.source, n: run.statsData!.n, P: run.statsData!.P },
          {
            config,
            configPath,
            timings: run.result.timings,
            adapter,
            ...(o.guard ? { guard: o.guard } : {}),
          },
        )
      : await writeResults(out, run.result, {
          adapter,
          data: run.data.source,
          configPath,
          extra: {
            total_ms: totalMs,
            model: 'transformer',
            passes: run.device,
            positions: run.data.P,
            transformer_run: identity,
            ...(run.stagePaths ? { stage_paths: run.stagePaths } : {}),
          },
          ...(o.guard ? { guard: o.guard } : {}),
        });
    return { dir, run, totalMs, adapter };
  } finally {
    if (engine && engine !== o.engine) engine.dispose();
  }
}

/** `ibgpu build` for a transformer config (the CLI dispatches here by arch type). */
export async function transformerBuildCommand(
  configPath: string,
  base: string,
  config: BuildConfig,
  out: string,
  o: TransformerCommandOptions,
): Promise<number> {
  const quiet = o.quiet === true || o.json === true;
  const log = (m: string) => {
    if (!quiet) console.error(m);
  };
  const { dir, run, totalMs, adapter } = await transformerBuildToDir(configPath, base, config, out, { ...o, logger: { info: log } });
  if (o.json) {
    console.log(JSON.stringify(buildSummary(dir, run.result, { adapter, data: run.data.source, configPath, totalMs }), null, 2));
  } else if (o.quiet) {
    console.log(dir);
  } else {
    for (const line of summaryLines(run, totalMs)) console.log(line);
    console.log(`results: ${dir}`);
  }
  return 0;
}
