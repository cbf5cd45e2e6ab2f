// An MLP as an instance of the model floor (program.ts): its node layers cut the chain of folded
// layers into section programs, exactly as a transformer's node layers cut its module list.
//
// rib's MLP node layer `layers.i` is the input of layer i, folded: [x, 1] (SPEC §1.2); `output` is
// the last layer's output, unfolded. Each layer is `linear` with W̄_i = [[W, 0], [bᵀ, ρ]] followed
// by its activation over the whole value, the constant slot included: ρ solves σ(ρ) = 1, so the
// slot carries 1 on to the next layer (foldedWeight in mlp.ts). The model has no embedding: the
// program's input is the folded datapoint [x, 1] itself (one position per sample), and `pre` runs
// the layers before the first node layer.
//
// Every MLP build runs over this program through the one build driver (src/pipeline/driver.ts):
// the default build recognises each one-layer section and takes the MLP's exact shortcuts for it
// (gate-Gram M′, carried-Jacobian edges, host-sparse input statistics: src/ib/sections.ts); the
// generic passes (src/transformer/) run it for `"device": "cpu"` float64 builds.

import { IbgpuError } from '../errors.js';
import { foldedWeight, type MlpModel } from './mlp.js';
import type { ModelProgram, Op, SectionProgram, ValueInfo } from './program.js';

/** The model activation each node layer names: i = input of layer i, L = the output. */
function nodeIndices(model: MlpModel, nodeLayers: readonly string[]): number[] {
  const L = model.layers.length;
  const names = model.layers.map((l) => l.name);
  const valid = [...names, 'output'];
  const idx = nodeLayers.map((nl, j) => {
    if (nl === 'output') {
      if (j !== nodeLayers.length - 1)
        throw new IbgpuError('BAD_CONFIG', "'output' must be the last node layer", `the model's node layers are ${valid.join(', ')}`);
      return L;
    }
    const i = names.indexOf(nl);
    if (i < 0) throw new IbgpuError('BAD_CONFIG', `node layer '${nl}' is not a layer of the model`, `the model's node layers are ${valid.join(', ')}`);
    return i;
  });
  if (idx.length < 2) throw new IbgpuError('BAD_CONFIG', 'node_layers needs at least two entries', `the model's node layers are ${valid.join(', ')}`);
  for (let j = 1; j < idx.length; j++) {
    if (idx[j]! <= idx[j - 1]!) {
      throw new IbgpuError(
        'BAD_CONFIG',
        `node layers '${nodeLayers[j - 1]}' and '${nodeLayers[j]}' are out of order`,
        `list them in model order: ${valid.join(', ')}`,
      );
    }
  }
  return idx;
}

/** Width of model activation i: the folded input of layer i, or the unfolded output (i = L). */
function activationWidth(model: MlpModel, i: number): number {
  const L = model.layers.length;
  return i < L ? model.layers[i]!.dIn + 1 : model.layers[L - 1]!.dOut;
}

/** The section running model layers [from, to): its input is activation `from`, its output activation `to`. */
function layersSection(model: MlpModel, from: number, to: number, fromName: string, toName: string): SectionProgram {
  const values: ValueInfo[] = [{ width: activationWidth(model, from), positions: 1, label: `${fromName}/x` }];
  const ops: Op[] = [];
  let x = 0;
  for (let i = from; i < to; i++) {
    const W = foldedWeight(model, i);
    const name = model.layers[i]!.name;
    values.push({ width: W.cols, positions: 1, label: `${name}/pre` });
    const pre = values.length - 1;
    ops.push({ kind: 'linear', x, y: pre, W: W.data, wIn: W.rows, wOut: W.cols });
    values.push({ width: W.cols, positions: 1, label: `${name}/act` });
    const y = values.length - 1;
    ops.push({ kind: 'act', x: pre, y, act: model.layers[i]!.activation });
    x = y;
  }
  return { from: fromName, to: toName, values, inputs: [0], outputs: [x], ops };
}

/**
 * Compiles an MLP cut at `nodeLayers` (rib's names: 'layers.i' …, optionally 'output' last) into a
 * ModelProgram whose input is the folded datapoint [x, 1]. Node layers may skip layers: a section
 * then spans several, as rib's would.
 */
export function compileMlp(model: MlpModel, nodeLayers: readonly string[]): ModelProgram {
  const idx = nodeIndices(model, nodeLayers);
  const pre = layersSection(model, 0, idx[0]!, 'input', nodeLayers[0]!);
  const sections = idx.slice(1).map((to, j) => layersSection(model, idx[j]!, to, nodeLayers[j]!, nodeLayers[j + 1]!));
  return { pre, sections, nodeLayers: [...nodeLayers] };
}

/** Folds datapoints [n, d] (any numeric array) into the program input [n, d + 1]: x then 1. */
export function foldedInput(x: ArrayLike<number>, n: number, d: number): Float64Array {
  if (x.length !== n * d) throw new IbgpuError('SHAPE', `${x.length} input values for ${n} datapoints of ${d} features`);
  const out = new Float64Array(n * (d + 1));
  for (let r = 0; r < n; r++) {
    for (let k = 0; k < d; k++) out[r * (d + 1) + k] = x[r * d + k]!;
    out[r * (d + 1) + d] = 1;
  }
  return out;
}
