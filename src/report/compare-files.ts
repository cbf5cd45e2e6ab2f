// The two sides `ibgpu compare` reads: an ibgpu result directory, or rib's results file
// (RibBuildResults as rib's torch.save writes it: `interaction_rotations` with `node_layer`, `C`,
// `Lambda`; `edges` with `in_node_layer`, `out_node_layer`, `E_hat`).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { IbgpuError } from '../errors.js';
import { loadSafetensors } from '../io/safetensors.js';
import { toFloat64 } from '../io/tensor.js';
import { openTorchCheckpoint } from '../io/torch-pt.js';
import type { BuildSide, SideBasis } from './compare.js';
import { readEdges, readResultDir } from './result-dir.js';

/** An ibgpu build result directory. */
export async function readResultSide(dir: string): Promise<BuildSide> {
  const { manifest } = await readResultDir(dir);
  const bases = new Map<string, SideBasis>();
  const { tensors } = await loadSafetensors(join(dir, 'basis.safetensors'));
  for (const name of manifest.config.node_layers) {
    const C = tensors[`${name}/C`];
    if (!C || C.shape.length !== 2) continue;
    const L = tensors[`${name}/Lambda`];
    const [dim, r] = C.shape as [number, number];
    bases.set(name, { dim, r, C: toFloat64(C), ...(L ? { Lambda: toFloat64(L) } : {}) });
  }
  const edges: BuildSide['edges'] = new Map();
  for (const e of existsSync(join(dir, 'edges.safetensors')) ? await readEdges(dir) : []) {
    edges.set(`${e.from}->${e.to}`, { rows: e.rows, cols: e.cols, data: Float64Array.from(e.data) });
  }
  return { label: dir, nodeLayers: manifest.config.node_layers, bases, edges };
}

interface TensorMark {
  tensor: string;
}
const isTensor = (x: unknown): x is TensorMark => typeof x === 'object' && x !== null && typeof (x as TensorMark).tensor === 'string';

/** rib's results file (`*_rib_graph.pt`, `*_rib_Cs.pt`). */
export async function readRibResultsSide(path: string): Promise<BuildSide> {
  const ck = await openTorchCheckpoint(path);
  try {
    const root = ck.structure() as Record<string, unknown>;
    const rots = root?.['interaction_rotations'];
    if (!Array.isArray(rots)) {
      throw new IbgpuError('BAD_FILE', `${path} holds no interaction_rotations`, "pass rib's results file (RibBuildResults, e.g. <exp_name>_rib_graph.pt)");
    }
    const nodeLayers: string[] = [];
    const bases = new Map<string, SideBasis>();
    for (const raw of rots as Record<string, unknown>[]) {
      const name = String(raw['node_layer']);
      nodeLayers.push(name);
      const C = raw['C'];
      if (!isTensor(C)) continue;
      const c = await ck.readF64(C.tensor);
      const [dim, r] = c.shape as [number, number];
      const L = raw['Lambda'];
      // rib keeps every eigenvalue of M in Lambda; C's r columns go with the r largest.
      const Lambda = isTensor(L) ? (await ck.readF64(L.tensor)).data.slice(0, r) : undefined;
      bases.set(name, { dim, r, C: c.data, ...(Lambda ? { Lambda } : {}) });
    }
    const edges: BuildSide['edges'] = new Map();
    for (const raw of (Array.isArray(root['edges']) ? root['edges'] : []) as Record<string, unknown>[]) {
      const E = raw['E_hat'];
      if (!isTensor(E)) continue;
      const e = await ck.readF64(E.tensor);
      edges.set(`${String(raw['in_node_layer'])}->${String(raw['out_node_layer'])}`, { rows: e.shape[0]!, cols: e.shape[1]!, data: e.data });
    }
    return { label: path, nodeLayers, bases, edges };
  } finally {
    await ck.close();
  }
}

/**
 * rib's float64 outputs as the fixtures and the rib baseline tool save them: `<L>/C`, `<L>/Lambda`
 * and `edges/<a>-><b>/E_hat` in a safetensors file, the node layers in the JSON beside it
 * (`rib_config.node_layers` or `node_layers`), else in the order the tensors name them.
 */
export async function readRibReferenceSide(path: string): Promise<BuildSide> {
  const { tensors } = await loadSafetensors(path);
  const json = path.replace(/\.safetensors$/, '.json');
  let nodeLayers: string[] | undefined;
  if (json !== path && existsSync(json)) {
    const meta = JSON.parse(readFileSync(json, 'utf8')) as { node_layers?: string[]; rib_config?: { node_layers?: string[] } };
    nodeLayers = meta.rib_config?.node_layers ?? meta.node_layers;
  }
  const bases = new Map<string, SideBasis>();
  const edges: BuildSide['edges'] = new Map();
  const seen: string[] = [];
  for (const [key, t] of Object.entries(tensors)) {
    const edge = /^edges\/(.+)->(.+)\/E_hat$/.exec(key);
    if (edge) {
      edges.set(`${edge[1]}->${edge[2]}`, { rows: t.shape[0]!, cols: t.shape[1]!, data: toFloat64(t) });
      continue;
    }
    const c = /^(.+)\/C$/.exec(key);
    if (!c || t.shape.length !== 2) continue;
    const name = c[1]!;
    seen.push(name);
    const L = tensors[`${name}/Lambda`];
    const [dim, r] = t.shape as [number, number];
    bases.set(name, { dim, r, C: toFloat64(t), ...(L ? { Lambda: toFloat64(L).slice(0, r) } : {}) });
  }
  if (bases.size === 0) {
    throw new IbgpuError(
      'BAD_FILE',
      `${path} holds no <node layer>/C tensors`,
      "pass an ibgpu result directory, rib's results file (.pt) or a rib reference .safetensors",
    );
  }
  return { label: path, nodeLayers: nodeLayers ?? seen, bases, edges };
}

/** A result directory, rib's results file, or rib's outputs saved as safetensors. */
export async function readBuildSide(path: string): Promise<BuildSide> {
  if (existsSync(path) && statSync(path).isDirectory()) return readResultSide(path);
  if (path.endsWith('.safetensors')) return readRibReferenceSide(path);
  return readRibResultsSide(path);
}
