// `ibgpu build <config.json>` for transformers: a build config in rib's field names whose `arch`
// is a transformer config (TransformerLens fields, rib's modadd config.json with them under
// "model", or a HuggingFace GPT-2 / GPT-NeoX config.json), `model` a safetensors file, and data
// from rib's `dataset` block (modular arithmetic) or `data: {type: "npy", path}` token ids.
// The passes run on the GPU by default (a PassesFactory, e.g. gpu-passes.ts) with host float64
// bases in between; `"device": "cpu"` runs the float64 reference passes instead.

import { resolve } from 'node:path';
import { modularArithmetic, parseModularArithmetic, type TokenDataset } from '../data/modular-arithmetic.js';
import { loadTokenNpy } from '../data/tokens.js';
import { IbgpuError } from '../errors.js';
import type { BuildConfig } from '../ib/config.js';
import type { IbResult } from '../ib/pipeline.js';
import { buildSummary, writeResults } from '../ib/results.js';
import type { OutputGuardOptions } from '../io/output-guard.js';
import type { Backend } from '../gpu/acquire.js';
import { Engine } from '../runtime/engine.js';
import { gpuPassesFactory } from './gpu-passes.js';
import type { ModelProgram } from '../model/program.js';
import { compileTransformer } from '../model/transformer/compile.js';
import { parseTransformerConfig, type TransformerConfig } from '../model/transformer/config.js';
import { loadTransformer, type TransformerModel } from '../model/transformer/weights.js';
import { PassesF64 } from './passes-f64.js';
import type { PassesFactory, TransformerPasses } from './passes.js';
import { buildTransformer, type TransformerBuildOptions } from './pipeline.js';
import { readJsonFile } from '../io/json.js';

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
}

/** Loads the model (`model` + `arch`) and the token data a transformer build config names. */
export async function loadTransformerBuild(config: BuildConfig, base: string): Promise<LoadedTransformerBuild> {
  if (!config.model || !config.arch) {
    throw new IbgpuError('BAD_CONFIG', 'a transformer build needs "model" (a safetensors file) and "arch" (the model config JSON)', 'see examples/modadd-transformer/build.json');
  }
  const archRaw = await readJsonFile(resolve(base, config.arch), 'architecture file');
  const arch = parseTransformerConfig(archRaw, config.arch);
  const model = await loadTransformer(resolve(base, config.model), arch);
  let data: TokenDataset;
  if (config.dataset !== undefined) {
    if (config.data !== undefined) throw new IbgpuError('BAD_CONFIG', 'give either "dataset" (modular arithmetic) or "data" (token ids), not both');
    const type = config.dataset['type'] ?? config.dataset['dataset_type'];
    if (type !== 'modular_arithmetic') {
      throw new IbgpuError('BAD_CONFIG', `dataset type ${JSON.stringify(type)} is not built in`, 'use {"type": "modular_arithmetic", ...}, or tokenised text as data: {"type": "npy", "path": ...}');
    }
    // rib reads missing fields from the checkpoint's config (here: the arch file's "dataset" block).
    const archDs = (archRaw as Record<string, unknown>)['dataset'];
    const fallback = typeof archDs === 'object' && archDs !== null ? parseModularArithmetic({ ...(archDs as Record<string, unknown>) }) : {};
    const { type: _t, dataset_type: _dt, ...fields } = config.dataset;
    const spec = parseModularArithmetic(fields, fallback);
    if (spec.modulus + 1 > arch.d_vocab) {
      throw new IbgpuError('BAD_CONFIG', `modulus ${spec.modulus} needs d_vocab ≥ ${spec.modulus + 1} (the "=" token is ${spec.modulus}); the model has ${arch.d_vocab}`);
    }
    data = modularArithmetic(spec);
  } else if (config.data !== undefined) {
    if (config.data.type !== 'npy' || !config.data.path) {
      throw new IbgpuError('BAD_CONFIG', `transformer data must be token ids in a .npy file: data: {"type": "npy", "path": ...} (got type '${config.data.type}')`);
    }
    data = await loadTokenNpy(resolve(base, config.data.path), { nCtx: arch.n_ctx, vocab: arch.d_vocab, ...(config.data.count !== undefined ? { count: config.data.count } : {}) });
  } else {
    throw new IbgpuError('BAD_CONFIG', 'a transformer build needs data: a "dataset" block (modular arithmetic) or data: {"type": "npy", "path": ...}');
  }
  return { arch, model, data };
}

export interface TransformerBuildRun {
  result: IbResult;
  data: TokenDataset;
  device: string;
}

/**
 * Runs a transformer build. `gpu` makes the GPU passes (required unless config.device is 'cpu');
 * 'cpu' uses the float64 reference passes.
 */
export async function runTransformerBuild(
  config: BuildConfig,
  loaded: LoadedTransformerBuild,
  opts: TransformerBuildOptions & { gpu?: PassesFactory } = {},
): Promise<TransformerBuildRun> {
  const { model, data } = loaded;
  const mp = compileTransformer(model, config.node_layers, { positions: data.P, lastPosModuleType: config.last_pos_module_type ?? null });
  const gpu = config.device === 'cpu' ? undefined : opts.gpu;
  if (config.device !== 'cpu' && !gpu) throw new IbgpuError('BAD_CONFIG', 'no GPU passes were provided for this transformer build', 'set "device": "cpu" for the float64 reference');
  const passesFor = async (m: ModelProgram): Promise<TransformerPasses> => (gpu ? gpu(m, data.tokens, data.n, data.P) : new PassesF64(m, data.tokens, data.n, data.P));
  const passes = await passesFor(mp);
  try {
    const result = await buildTransformer(passes, mp, config, { passesFor, ...opts });
    return { result, data, device: passes.device };
  } finally {
    passes.dispose?.();
  }
}

/** Lines `ibgpu build` prints after a transformer build. */
export function summaryLines(run: TransformerBuildRun, totalMs: number): string[] {
  const res = run.result;
  const lines = [`\nInteraction Basis of ${run.data.n} sequences × ${run.data.P} positions on ${run.device} in ${(totalMs / 1000).toFixed(2)} s (${Object.entries(res.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`).join(', ')})`];
  for (const [name, b] of res.bases) {
    lines.push(`  ${name.padEnd(14)} dim ${String(b.dim).padStart(5)}  stage 1 keeps ${String(b.k).padStart(5)}  basis ${String(b.r).padStart(5)}${b.Lambda ? `  Λ_0 ${b.Lambda[0]!.toExponential(6)}` : ''}`);
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
  const engine = cpu ? undefined : o.engine ?? (await Engine.create(o.backend ? { backend: o.backend } : {}));
  try {
    log.info(`ibgpu build: ${configPath}`);
    log.info(`transformer: ${loaded.arch.n_layers} layers, d_model ${loaded.arch.d_model}, ${loaded.data.n} sequences × ${loaded.data.P} positions; passes on ${engine ? engine.adapterName : 'the CPU (float64)'}`);
    const t0 = performance.now();
    const run = await runTransformerBuild(config, loaded, { logger: log, ...(engine ? { gpu: gpuPassesFactory(engine) } : {}) });
    const totalMs = performance.now() - t0;
    const adapter = engine ? engine.adapterName : 'cpu (float64 reference)';
    const dir = await writeResults(out, run.result, {
      adapter,
      data: run.data.source,
      configPath,
      extra: { total_ms: totalMs, model: 'transformer', passes: run.device, positions: run.data.P },
      ...(o.guard ? { guard: o.guard } : {}),
    });
    return { dir, run, totalMs, adapter };
  } finally {
    if (engine && engine !== o.engine) engine.dispose();
  }
}

/** `ibgpu build` for a transformer config (the CLI dispatches here by arch type). */
export async function transformerBuildCommand(configPath: string, base: string, config: BuildConfig, out: string, o: TransformerCommandOptions): Promise<number> {
  const quiet = o.quiet === true || o.json === true;
  const log = (m: string) => { if (!quiet) console.error(m); };
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
