// The pipeline from files, for tools that use ibgpu as a backend: a build config (rib's field
// names plus model/arch/data paths, relative to the config file), optionally written to a
// result directory exactly as `ibgpu build` writes it.

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { loadData, loadModel } from './load.js';
import { buildMlpF64 } from './mlp-f64.js';
import { IbgpuError } from '../errors.js';
import { checkReplaceableDir } from '../io/output-guard.js';
import type { Engine } from '../runtime/engine.js';
import { parseConfig, type BuildConfig } from '../ib/config.js';
import { buildInteractionBasis, type BuildOptions, type IbResult } from '../ib/pipeline.js';
import { writeResults } from '../ib/results.js';
import { isTransformerBuild, transformerBuildToDir, loadTransformerBuild, runTransformerBuild, workflowInputs } from '../transformer/build.js';
import { gpuPassesFactory } from '../transformer/gpu-passes.js';

export interface BuildFromFilesOptions extends BuildOptions {
  /** Write the result directory here (atomically: complete or absent). */
  out?: string;
  /** Config fields that override the file's (e.g. { batch_size: 4096 }). */
  overrides?: Record<string, unknown>;
}

export interface BuildFromFilesResult {
  config: BuildConfig;
  result: IbResult;
  /** The result directory, when `out` was given. */
  dir?: string;
}

/** Runs `ibgpu build <configPath>` as a library call on an engine the caller owns. */
export async function buildFromConfigFile(engine: Engine, configPath: string, opts: BuildFromFilesOptions = {}): Promise<BuildFromFilesResult> {
  const path = resolve(configPath);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new IbgpuError(
      err.code === 'ENOENT' ? 'BAD_FILE' : 'BAD_CONFIG',
      `cannot read the build config ${path}: ${err.message}`,
      'pass the path of a JSON build config (see README: "What it computes")',
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new IbgpuError('BAD_CONFIG', `${path} is not a JSON object`);
  const config = parseConfig({ ...(raw as Record<string, unknown>), ...(opts.overrides ?? {}) });
  const base = dirname(path);
  const guard = {
    what: 'the build result',
    inputs: [...[path, config.model, config.arch].filter((p): p is string => !!p).map((p) => resolve(base, p)), ...workflowInputs(config, base)],
  };
  if (opts.out) await checkReplaceableDir(opts.out, guard); // before any computation
  // Transformer configs (their arch file is a transformer config) go to the transformer build.
  if (await isTransformerBuild(config, base)) {
    if (opts.out) {
      const { dir, run } = await transformerBuildToDir(path, base, config, resolve(opts.out), {
        engine,
        guard,
        ...(opts.logger ? { logger: opts.logger } : {}),
      });
      return { config, result: run.result, dir };
    }
    const run = await runTransformerBuild(config, await loadTransformerBuild(config, base), {
      gpu: gpuPassesFactory(engine, config.stage_paths),
      base,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    return { config, result: run.result };
  }
  const model = await loadModel(config, base);
  const data = await loadData(config, base);
  let result: IbResult;
  try {
    // "device": "cpu": the float64 section-program passes, as for transformers (mlp-f64.ts).
    result = config.device === 'cpu' ? await buildMlpF64(model, data, config, opts.logger) : await buildInteractionBasis(engine, model, data, config, opts);
  } finally {
    await data.close?.();
  }
  const dir = opts.out
    ? await writeResults(resolve(opts.out), result, { adapter: engine.adapterName, data: data.description, configPath: path, guard })
    : undefined;
  return { config, result, ...(dir ? { dir } : {}) };
}
