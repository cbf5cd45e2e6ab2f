// rib's own stored results for a split transformer run: the results file rib's torch.save writes
// (RibBuildResults: `gram_matrices` and `mean_vectors` in `<exp_name>_rib_grams.pt`, plus
// `interaction_rotations` with `node_layer`, `C`, `C_pinv`, `Lambda` in `_rib_Cs.pt` /
// `_rib_graph.pt`; `config`), read by the checkpoint reader without Python, as
// `gram_matrices_path` (bases from rib's statistics) or `interaction_matrices_path` (edges from
// rib's bases).
//
// rib's file does not identify the model's weights (only the checkpoint path rib loaded), so that
// one check is left to the user and logged; the node layers, centring, last-position cut and
// LayerNorm-variance isolation are checked against rib's recorded config as for ibgpu's own files.

import type { LayerBasis } from '../ib/basis.js';
import { openTorchCheckpoint } from '../io/torch-pt.js';
import type { NodeStatsResult } from './passes.js';
import { badFile, checkContiguous, checkShared, type RunIdentity } from './split-files.js';

interface TensorMark {
  tensor: string;
}
const isTensor = (x: unknown): x is TensorMark => typeof x === 'object' && x !== null && typeof (x as TensorMark).tensor === 'string';

const HINT = "point interaction_matrices_path at rib's results file of this model and node layers (<exp_name>_rib_Cs.pt), or at an ibgpu result directory";

interface RibRun {
  root: Record<string, unknown>;
  stored: RunIdentity;
  means: Record<string, unknown>;
}

/** rib's recorded run, checked against this one (all but the weights, which rib's file does not identify). */
function ribRun(path: string, root: Record<string, unknown> | null, want: RunIdentity, hint: string, ln: boolean): RibRun {
  if (!root || typeof root !== 'object') throw badFile(path, 'not a rib results file', hint);
  const cfg = (typeof root['config'] === 'object' && root['config'] !== null ? root['config'] : {}) as Record<string, unknown>;
  const rots = Array.isArray(root['interaction_rotations']) ? (root['interaction_rotations'] as Record<string, unknown>[]) : [];
  const nodeLayers = Array.isArray(cfg['node_layers']) ? (cfg['node_layers'] as string[]) : rots.map((r) => String(r['node_layer']));
  // rib's defaults for fields its older configs lack.
  const stored: RunIdentity = {
    model: want.model,
    node_layers: nodeLayers,
    center: cfg['center'] === true,
    last_pos_module_type: typeof cfg['last_pos_module_type'] === 'string' ? cfg['last_pos_module_type'] : null,
    isolate_ln_var: cfg['isolate_ln_var'] === undefined ? true : cfg['isolate_ln_var'] === true,
  };
  checkShared(path, stored, want, hint, ln);
  checkContiguous(path, stored, want, "use node layers that follow each other in rib's build");
  const means = (typeof root['mean_vectors'] === 'object' && root['mean_vectors'] !== null ? root['mean_vectors'] : {}) as Record<string, unknown>;
  return { root, stored, means };
}

function weightsNote(path: string, root: Record<string, unknown>): string {
  const cfg = (root['config'] ?? {}) as Record<string, unknown>;
  const model = typeof cfg['tlens_model_path'] === 'string' ? ` (rib loaded ${cfg['tlens_model_path']})` : '';
  return `${path}${model}: rib's file does not identify the weights, so make sure it is this model`;
}

const STATS_HINT = "point gram_matrices_path at rib's statistics of this model and node layers (<exp_name>_rib_grams.pt), or at an ibgpu statistics directory";

/**
 * rib's statistics (means and Grams, centred as rib's `center` says) of this run's node layers
 * but `output`, in node-layer order.
 */
export async function readRibStats(path: string, want: RunIdentity, log: (m: string) => void = () => {}): Promise<NodeStatsResult[]> {
  const ck = await openTorchCheckpoint(path);
  try {
    const root = ck.structure() as Record<string, unknown> | null;
    const grams = root?.['gram_matrices'];
    if (!root || typeof grams !== 'object' || grams === null || Object.keys(grams).length === 0) {
      throw badFile(path, 'it holds no gram_matrices (not a rib results file with statistics)', STATS_HINT);
    }
    const { stored, means } = ribRun(path, root, want, STATS_HINT, false);
    const out: NodeStatsResult[] = [];
    for (const name of want.node_layers) {
      if (name === 'output') continue;
      const g = (grams as Record<string, unknown>)[name];
      if (!isTensor(g)) throw badFile(path, `rib's file has no Gram matrix for node layer ${name}`, STATS_HINT);
      const gram = await ck.readF64(g.tensor);
      const dim = gram.shape[0]!;
      if (gram.shape.length !== 2 || gram.shape[1] !== dim)
        throw badFile(path, `node layer ${name}: the Gram is ${gram.shape.join('×')}, not square`, STATS_HINT);
      const m = means[name];
      if (stored.center && !isTensor(m)) throw badFile(path, `rib's file has no mean vector for the centred node layer ${name}`, STATS_HINT);
      const mean = isTensor(m) ? (await ck.readF64(m.tensor)).data : new Float64Array(dim);
      if (mean.length !== dim) throw badFile(path, `node layer ${name}: the mean has ${mean.length} entries, the Gram ${dim}`, STATS_HINT);
      out.push({ mean, gram: gram.data, dim, positions: 0 });
    }
    log(`statistics from rib's results file ${weightsNote(path, root)}`);
    return out;
  } finally {
    await ck.close();
  }
}

/** The bases in rib's results file at `path` for this run's node layers (all but `output`). */
export async function readRibBases(path: string, want: RunIdentity, log: (m: string) => void = () => {}): Promise<Map<string, LayerBasis>> {
  const ck = await openTorchCheckpoint(path);
  try {
    const root = ck.structure() as Record<string, unknown> | null;
    const rots = root?.['interaction_rotations'];
    if (!root || !Array.isArray(rots)) throw badFile(path, 'it holds no interaction_rotations (not a rib results file)', HINT);
    const entries = new Map<string, Record<string, unknown>>();
    for (const r of rots as Record<string, unknown>[]) entries.set(String(r['node_layer']), r);
    const { stored, means } = ribRun(path, root, want, HINT, true);
    const bases = new Map<string, LayerBasis>();
    for (const name of want.node_layers) {
      if (name === 'output') continue;
      const e = entries.get(name);
      if (!e || !isTensor(e['C']) || !isTensor(e['C_pinv'])) {
        throw badFile(
          path,
          `rib's file has no basis for node layer ${name}`,
          'rib rotates the last node layer only with rotate_final_node_layer: true; ' + HINT,
        );
      }
      const C = await ck.readF64(e['C'].tensor);
      const Cp = await ck.readF64(e['C_pinv'].tensor);
      const [dim, r] = C.shape as [number, number];
      if (Cp.shape[0] !== r || Cp.shape[1] !== dim) throw badFile(path, `node layer ${name}: C is ${dim}×${r} but C_pinv is ${Cp.shape.join('×')}`, HINT);
      const m = means[name];
      if (stored.center && !isTensor(m)) throw badFile(path, `rib's file has no mean vector for the centred node layer ${name}`, HINT);
      const mean = isTensor(m) ? (await ck.readF64(m.tensor)).data : new Float64Array(dim);
      const L = e['Lambda'];
      const b: LayerBasis = {
        name,
        dim,
        r,
        centred: stored.center,
        mean,
        gramEigenvalues: new Float64Array(0),
        U: new Float64Array(0),
        D: new Float64Array(0),
        k: r,
        C: C.data,
        Cpinv: Cp.data,
        dropped: { stage1: 0, stage2: 0 },
      };
      // rib keeps every eigenvalue of M in Lambda; C's r columns go with the r largest.
      if (isTensor(L)) b.Lambda = (await ck.readF64(L.tensor)).data.slice(0, r);
      bases.set(name, b);
    }
    log(`bases from rib's results file ${weightsNote(path, root)}`);
    return bases;
  } finally {
    await ck.close();
  }
}
