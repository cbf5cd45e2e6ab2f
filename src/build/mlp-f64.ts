// An MLP build with `"device": "cpu"`: the MLP compiled into section programs
// (src/model/mlp-program.ts) and run through the same float64 passes and pipeline as a
// transformer (src/transformer/passes-f64.ts, pipeline.ts). Every sum is float64, so rib's
// absolute thresholds (e.g. τ = 1e-15) mean what they mean in rib; the GPU/host pipeline
// (src/ib/) with its MLP shortcuts stays the default.
//
// Cost: the passes keep every node layer's activations of the whole dataset in memory and take M′
// from per-sample VJPs, N·K·d² per section (K kept output directions, d the input width): seconds
// for the synthetic fixtures, minutes for a 785-wide MNIST input layer.

import { IbgpuError } from '../errors.js';
import { refuseStochastic, type BuildConfig } from '../ib/config.js';
import type { DataSource } from '../ib/data.js';
import type { IbResult } from '../ib/pipeline.js';
import { compileMlp, foldedInput } from '../model/mlp-program.js';
import type { MlpModel } from '../model/mlp.js';
import { buildTransformerF64 } from '../transformer/pipeline.js';

/** Activations held in memory by the float64 passes, at most (bytes). */
export const MLP_F64_MAX_BYTES = 4 * 2 ** 30;

/** Rows read from the data source at a time while loading it. */
const READ_ROWS = 8192;

/** What the float64 passes of an MLP cannot do, refused before any work (also by `--plan`). */
export function checkMlpF64Config(config: BuildConfig): void {
  refuseStochastic(config, 'MLP builds');
  const unsupported = (what: string, fix: string): never => {
    throw new IbgpuError('BAD_CONFIG', `${what} is not available with "device": "cpu" for MLPs (the float64 section-program passes)`, fix);
  };
  if (config.degeneracy) unsupported('the degeneracy report', 'set "degeneracy": false, or drop "device": "cpu" (the statistics pass collects it)');
  for (const k of ['gram_dataset', 'calculate_Cs', 'gram_matrices_path', 'interaction_matrices_path'] as const) {
    if (config[k] !== undefined && !(k === 'calculate_Cs' && config[k] === true)) unsupported(k, `remove ${k}`);
  }
}

export async function buildMlpF64(model: MlpModel, data: DataSource, config: BuildConfig, logger?: { info(msg: string): void }): Promise<IbResult> {
  const d = model.layers[0]!.dIn;
  if (data.d !== d) {
    throw new IbgpuError(
      'SHAPE',
      `data has ${data.d} features per datapoint, the model's first layer takes ${d}`,
      'use the data the model was trained on (or fix the arch file)',
    );
  }
  if (data.n < 1) throw new IbgpuError('SHAPE', 'the dataset is empty');
  checkMlpF64Config(config);
  const mp = compileMlp(model, config.node_layers);
  const width = model.layers.reduce((a, l) => a + l.dIn + 1, model.layers[model.layers.length - 1]!.dOut);
  const bytes = data.n * width * 8;
  if (bytes > MLP_F64_MAX_BYTES) {
    throw new IbgpuError(
      'LIMIT_EXCEEDED',
      `the float64 passes would hold ${(bytes / 2 ** 30).toFixed(1)} GiB of activations (${data.n} datapoints × ${width} values), more than ${MLP_F64_MAX_BYTES / 2 ** 30} GiB`,
      'drop "device": "cpu" (the GPU/host pipeline streams the data), or build on a subset of the data',
    );
  }
  const x = new Float32Array(data.n * d);
  for (let s = 0; s < data.n; s += READ_ROWS) {
    const count = Math.min(READ_ROWS, data.n - s);
    x.set(await data.readRows(s, count), s * d);
  }
  logger?.info(`float64 section-program passes on the CPU: ${data.n} datapoints, sections ${mp.sections.map((s) => `${s.from}->${s.to}`).join(', ')}`);
  return buildTransformerF64(mp, foldedInput(x, data.n, d), data.n, 1, config, logger ? { logger } : {});
}
