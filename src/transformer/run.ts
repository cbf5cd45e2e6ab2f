// A transformer build from a model and token data in memory: compile at the node layers, make the
// passes (GPU, or the float64 reference for `"device": "cpu"`), run the pipeline. No file system:
// the library API, the browser entry (src/browser.ts) and the file-based build (build.ts, which
// adds stored statistics and bases) all run through here.

import type { TokenDataset } from '../data/modular-arithmetic.js';
import { IbgpuError } from '../errors.js';
import type { BuildConfig } from '../ib/config.js';
import type { IbResult } from '../ib/pipeline.js';
import { compileTransformer } from '../model/transformer/compile.js';
import type { TransformerModel } from '../model/transformer/weights.js';
import type { ModelProgram } from '../model/program.js';
import type { Engine } from '../runtime/engine.js';
import { addDegeneracy } from './degeneracy.js';
import { gpuPassesFactory } from './gpu-passes.js';
import { PassesF64 } from './passes-f64.js';
import type { NodeStatsResult, PassesFactory, TransformerPasses } from './passes.js';
import { buildTransformer, type TransformerBuildOptions } from './pipeline.js';

export interface TransformerRunOptions extends TransformerBuildOptions {
  /** Makes the GPU passes; required unless config.device is 'cpu'. */
  gpu?: PassesFactory;
  /** A separate statistics dataset (rib's gram_dataset), with positions of its own. */
  gramData?: TokenDataset;
}

export interface TransformerBuildRun {
  result: IbResult;
  data: TokenDataset;
  device: string;
  /** The passes' stagePaths() (absent for the float64 reference). */
  stagePaths?: Record<string, string>;
  /** A statistics-only run (calculate_Cs: false): the statistics, in node-layer order without `output`. */
  stats?: NodeStatsResult[];
  /** The data the statistics came from (gram_dataset, or the dataset). */
  statsData?: TokenDataset;
}

/**
 * Runs the build of `model` on `data`. Statistics come from the statistics pass over the data, over
 * `gramData`, or from `opts.stats`; `opts.bases` (stored bases) skips both for an edges-only run.
 * `"degeneracy": true` adds the MLP blocks' degeneracy report (degeneracy.ts) to the result.
 */
export async function runTransformer(
  config: BuildConfig,
  model: TransformerModel,
  data: TokenDataset,
  opts: TransformerRunOptions = {},
): Promise<TransformerBuildRun> {
  const { gpu: gpuOpt, gramData, ...buildOpts } = opts;
  const compile = (P: number): ModelProgram =>
    compileTransformer(model, config.node_layers, { positions: P, lastPosModuleType: config.last_pos_module_type ?? null });
  const mp = compile(data.P);
  const gpu = config.device === 'cpu' ? undefined : gpuOpt;
  if (config.device !== 'cpu' && !gpu)
    throw new IbgpuError('BAD_CONFIG', 'no GPU passes were provided for this transformer build', 'set "device": "cpu" for the float64 reference');
  const passesOn = async (m: ModelProgram, d: TokenDataset): Promise<TransformerPasses> =>
    gpu ? gpu(m, d.tokens, d.n, d.P) : new PassesF64(m, d.tokens, d.n, d.P);
  const passesFor = (m: ModelProgram): Promise<TransformerPasses> => passesOn(m, data);
  if (gramData && !buildOpts.stats && !buildOpts.bases) {
    // The statistics data may have other positions (TinyStories: n_ctx 511 for the Grams, 200 for
    // M′ and the edges): its own compiled program, each node layer divided by its own N·P_ℓ.
    buildOpts.stats = async () => {
      const g = await passesOn(compile(gramData.P), gramData);
      try {
        return await g.nodeStats(config.center);
      } finally {
        g.dispose?.();
      }
    };
  }
  const passes = await passesFor(mp);
  try {
    if (config.calculate_Cs === false) {
      const t0 = performance.now();
      const stats = await (buildOpts.stats ? buildOpts.stats() : passes.nodeStats(config.center));
      const result: IbResult = {
        config,
        bases: new Map(),
        edges: new Map(),
        stats: { nodes: new Map(), gates: new Map() },
        timings: { stats: performance.now() - t0 },
        n: (gramData ?? data).n,
      };
      return { result, data, device: passes.device, stats, statsData: gramData ?? data };
    }
    const result = await buildTransformer(passes, mp, config, { passesFor, ...buildOpts });
    if (config.degeneracy) await addDegeneracy(result, { model, data }, config, passesFor, buildOpts.logger);
    const stagePaths = passes.stagePaths?.();
    return { result, data, device: passes.device, ...(stagePaths ? { stagePaths } : {}) };
  } finally {
    passes.dispose?.();
  }
}

/**
 * The Interaction Basis of a transformer on `engine` (or in float64 on the CPU with
 * `"device": "cpu"`), from a model and token ids in memory: the library's and the browser's entry.
 * Stored statistics or bases (gram_matrices_path, interaction_matrices_path) are file workflows:
 * use buildFromConfigFile for those.
 */
export async function buildTransformerBasis(
  engine: Engine | undefined,
  model: TransformerModel,
  data: TokenDataset,
  config: BuildConfig,
  opts: Omit<TransformerRunOptions, 'gpu'> = {},
): Promise<IbResult> {
  for (const k of ['gram_matrices_path', 'interaction_matrices_path', 'gram_dataset', 'calculate_Cs'] as const) {
    if (config[k] !== undefined && !(k === 'calculate_Cs' && config[k])) {
      throw new IbgpuError(
        'BAD_CONFIG',
        k === 'calculate_Cs'
          ? 'calculate_Cs false writes the statistics to files, which this in-memory build does not do'
          : `${k} names files, which this in-memory build does not read`,
        `build from files (buildFromConfigFile / ibgpu build), or drop ${k}`,
      );
    }
  }
  if (config.device !== 'cpu' && !engine) throw new IbgpuError('BAD_CONFIG', 'no engine was given for a GPU build', 'pass an Engine, or set "device": "cpu"');
  const run = await runTransformer(config, model, data, {
    ...opts,
    ...(engine && config.device !== 'cpu' ? { gpu: gpuPassesFactory(engine, config.stage_paths) } : {}),
  });
  return run.result;
}
