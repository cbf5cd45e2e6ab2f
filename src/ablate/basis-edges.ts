// Squared edges (SPEC §5.2) of an MLP in any of the ablation bases, with the build's own edge
// pass: the IB's edges are the build's; the PCA and neuron bases get theirs here, so the three
// can be compared on the same data (src/report/sparsity.ts). The pass runs where this engine's
// builds run theirs (src/runtime/stage-paths.ts: GPU, or the host float64 pass).

import type { LayerBasis } from '../ib/basis.js';
import type { DataSource } from '../ib/data.js';
import { computeEdges, type EdgePair } from '../ib/edges.js';
import { computeEdgesHost } from '../host/edges.js';
import { chooseStagePath } from '../runtime/stage-paths.js';
import { GpuMlp } from '../ib/gpu-model.js';
import { integrationPoints, type IntegrationMethod } from '../ib/integration.js';
import { foldedWeight, type MlpModel } from '../model/mlp.js';
import type { Engine } from '../runtime/engine.js';
import type { AblationBasis } from './bases.js';

function asLayerBasis(name: string, b: AblationBasis, mean: Float64Array, centred: boolean): LayerBasis {
  return {
    name,
    dim: b.dim,
    centred,
    mean,
    gramEigenvalues: new Float64Array(0),
    U: new Float64Array(0),
    D: new Float64Array(0),
    k: b.r,
    C: Float64Array.from(b.C),
    Cpinv: Float64Array.from(b.Cpinv),
    r: b.r,
    dropped: { stage1: 0, stage2: 0 },
  };
}

/**
 * Edges of every section j of `sections` (node layer j → j+1; j+1 may be the unrotated logits,
 * `bases[j+1]` undefined) in the given bases. Keys `<in>-><out>`, values out × in.
 */
export async function basisEdges(
  engine: Engine,
  model: MlpModel,
  data: DataSource,
  nodeLayers: string[],
  sections: number[],
  bases: (AblationBasis | undefined)[],
  means: Float64Array[],
  centred: boolean[],
  integration: { method: IntegrationMethod; nIntervals: number },
  batchSize: number,
): Promise<Map<string, Float64Array>> {
  const pts = integrationPoints(integration.method, integration.nIntervals);
  const pairs: EdgePair[] = sections.map((j) => {
    const W = foldedWeight(model, j);
    const nb = bases[j + 1];
    return {
      layer: j,
      inName: nodeLayers[j]!,
      outName: nodeLayers[j + 1]!,
      basis: asLayerBasis(nodeLayers[j]!, bases[j]!, means[j]!, centred[j]!),
      formula: 'jacobian',
      Wbar: W.data,
      dimOut: W.cols,
      nextC: nb ? Float64Array.from(nb.C) : undefined,
      ro: nb ? nb.r : W.cols,
    };
  });
  if (chooseStagePath(engine, 'edges').path === 'host') return computeEdgesHost(model, data, pairs, batchSize, pts);
  const mlp = new GpuMlp(engine, model, pts);
  try {
    return await computeEdges(engine, mlp, data, pairs, batchSize);
  } finally {
    mlp.dispose();
  }
}
