// rib's own stored bases as `interaction_matrices_path` for an edges-only transformer run: the
// results file rib's torch.save writes (`<exp_name>_rib_Cs.pt` or `_rib_graph.pt`, RibBuildResults:
// `interaction_rotations` with `node_layer`, `C`, `C_pinv`, `Lambda`; `mean_vectors`; `config`),
// read by the checkpoint reader without Python. So bases rib computed can get their edges here.
//
// rib's file does not identify the model's weights (only the checkpoint path rib loaded), so that
// one check is left to the user and logged; the node layers, centring, last-position cut and
// LayerNorm-variance isolation are checked against rib's recorded config as for ibgpu's own files.

import type { LayerBasis } from '../ib/basis.js';
import { openTorchCheckpoint } from '../io/torch-pt.js';
import { badFile, checkShared, contiguousRun, type RunIdentity } from './split-files.js';

interface TensorMark {
  tensor: string;
}
const isTensor = (x: unknown): x is TensorMark => typeof x === 'object' && x !== null && typeof (x as TensorMark).tensor === 'string';

const HINT = "point interaction_matrices_path at rib's results file of this model and node layers (<exp_name>_rib_Cs.pt), or at an ibgpu result directory";

/** The bases in rib's results file at `path` for this run's node layers (all but `output`). */
export async function readRibBases(path: string, want: RunIdentity, log: (m: string) => void = () => {}): Promise<Map<string, LayerBasis>> {
  const ck = await openTorchCheckpoint(path);
  try {
    const root = ck.structure() as Record<string, unknown> | null;
    const rots = root?.['interaction_rotations'];
    if (!root || !Array.isArray(rots)) throw badFile(path, 'it holds no interaction_rotations (not a rib results file)', HINT);
    const cfg = (typeof root['config'] === 'object' && root['config'] !== null ? root['config'] : {}) as Record<string, unknown>;
    const entries = new Map<string, Record<string, unknown>>();
    for (const r of rots as Record<string, unknown>[]) entries.set(String(r['node_layer']), r);
    const nodeLayers = Array.isArray(cfg['node_layers']) ? (cfg['node_layers'] as string[]) : [...entries.keys()];
    // rib's defaults for fields its older configs lack.
    const stored: RunIdentity = {
      model: want.model,
      node_layers: nodeLayers,
      center: cfg['center'] === undefined ? false : cfg['center'] === true,
      last_pos_module_type: typeof cfg['last_pos_module_type'] === 'string' ? cfg['last_pos_module_type'] : null,
      isolate_ln_var: cfg['isolate_ln_var'] === undefined ? true : cfg['isolate_ln_var'] === true,
    };
    checkShared(path, stored, want, HINT, true);
    if (!contiguousRun(want.node_layers, stored.node_layers)) {
      throw badFile(
        path,
        `its node layers (${stored.node_layers.join(', ')}) do not contain this run's node layers (${want.node_layers.join(', ')}) as a contiguous run`,
        "use node layers that follow each other in rib's build, or build the bases for these node layers",
      );
    }
    const means = (typeof root['mean_vectors'] === 'object' && root['mean_vectors'] !== null ? root['mean_vectors'] : {}) as Record<string, unknown>;
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
    const model = typeof cfg['tlens_model_path'] === 'string' ? ` (rib loaded ${cfg['tlens_model_path']})` : '';
    log(`bases from rib's results file ${path}${model}: rib's file does not identify the weights, so make sure it is this model`);
    return bases;
  } finally {
    await ck.close();
  }
}
