// Writing a build result directory: basis.safetensors, edges.safetensors, manifest.json,
// graph.json and (when computed) degeneracy.json and modules.json (src/report/), all inside a
// ResultDir that appears only when complete.

import { ResultDir } from '../io/atomic.js';
import { RESULT_FORMAT, type OutputGuardOptions } from '../io/output-guard.js';
import { writeSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../io/tensor.js';
import { VERSION } from '../version.js';
import type { IbResult } from './pipeline.js';
import { layerIdentities } from './identities.js';
import { annotateGraph } from '../report/modularity.js';

export interface ResultMeta {
  adapter: string;
  data: string;
  configPath?: string;
  extra?: Record<string, unknown>;
  /** Extra files written into the result directory before the manifest (staged builds: their state files). */
  files?: (dir: ResultDir) => Promise<void>;
  /** The command's inputs (config, model, data), which the result directory may not replace. */
  guard?: OutputGuardOptions;
}

const f64 = (shape: number[], data: Float64Array): Tensor => ({ dtype: 'F64', shape, data });

export function basisTensors(res: IbResult): Record<string, Tensor> {
  const t: Record<string, Tensor> = {};
  for (const [name, b] of res.bases) {
    t[`${name}/mean`] = f64([b.dim], b.mean);
    t[`${name}/gram_eigenvalues`] = f64([b.gramEigenvalues.length], b.gramEigenvalues);
    t[`${name}/C`] = f64([b.dim, b.r], b.C);
    t[`${name}/C_pinv`] = f64([b.r, b.dim], b.Cpinv);
    // Absent for bases read from rib's results file, which do not keep the stage-1 eigenvectors.
    if (b.U.length === b.dim * b.k) {
      t[`${name}/U`] = f64([b.dim, b.k], b.U);
      t[`${name}/D`] = f64([b.k], b.D);
    }
    if (b.Lambda) t[`${name}/Lambda`] = f64([b.r], b.Lambda);
    if (b.V) t[`${name}/V`] = f64([b.k, b.r], b.V);
    if (b.Mprime) t[`${name}/M_prime`] = f64([b.dim, b.dim], b.Mprime);
  }
  return t;
}

export function edgeTensors(res: IbResult): Record<string, Tensor> {
  const t: Record<string, Tensor> = {};
  for (const [key, e] of res.edges) t[`edges/${key}/E_hat`] = f64([e.rows, e.cols], e.data);
  return t;
}

export function manifest(res: IbResult, meta: ResultMeta): Record<string, unknown> {
  const layers: Record<string, unknown> = {};
  for (const [name, b] of res.bases) {
    const s = res.stats.nodes.get(name);
    layers[name] = {
      orig_dim: b.dim,
      stage1_kept: b.k,
      rib_dim: b.r,
      dropped: b.dropped,
      centred: b.centred,
      lambda_max: b.Lambda ? Math.max(...b.Lambda) : null,
      identities: s ? layerIdentities(b, s, res.config.basis_formula) : null,
    };
  }
  return {
    format: RESULT_FORMAT,
    ibgpu_version: VERSION,
    created: new Date().toISOString(),
    adapter: meta.adapter,
    data: meta.data,
    dataset_size: res.n,
    config: res.config,
    config_path: meta.configPath ?? null,
    timings_ms: res.timings,
    layers,
    edges: Object.fromEntries([...res.edges].map(([k, e]) => [k, { shape: [e.rows, e.cols] }])),
    ...(meta.extra ?? {}),
  };
}

/** Layered graph for viewers: one node per basis direction, edges above `pruneRel`·max per layer pair. */
export function graphJson(res: IbResult, pruneRel = 1e-3, maxEdgesPerPair = 5000): Record<string, unknown> {
  const nodes: { id: string; layer: string; index: number; lambda: number | null }[] = [];
  const names = res.config.node_layers;
  for (const name of names) {
    const b = res.bases.get(name);
    const count = b ? b.r : firstEdgeRows(res, name);
    for (let i = 0; i < count; i++) nodes.push({ id: `${name}:${i}`, layer: name, index: i, lambda: b?.Lambda ? b.Lambda[i]! : null });
  }
  const edges: { source: string; target: string; weight: number }[] = [];
  for (const [key, e] of res.edges) {
    const [src, dst] = key.split('->') as [string, string];
    // By magnitude: squared edges are ≥ 0, legacy functional edges are signed (kept with their sign).
    let mx = 0;
    for (const v of e.data) mx = Math.max(mx, Math.abs(v));
    const cand: { i: number; j: number; w: number }[] = [];
    for (let i = 0; i < e.rows; i++) {
      for (let j = 0; j < e.cols; j++) {
        const w = e.data[i * e.cols + j]!;
        if (w !== 0 && Math.abs(w) >= pruneRel * mx) cand.push({ i, j, w });
      }
    }
    cand.sort((a, b) => Math.abs(b.w) - Math.abs(a.w));
    for (const c of cand.slice(0, maxEdgesPerPair)) edges.push({ source: `${src}:${c.j}`, target: `${dst}:${c.i}`, weight: c.w });
  }
  return { layers: names, nodes, edges, prune_relative: pruneRel };
}

function firstEdgeRows(res: IbResult, name: string): number {
  for (const [key, e] of res.edges) if (key.endsWith(`->${name}`)) return e.rows;
  return 0;
}

/**
 * What a result holds, in write order: the safetensors files (with their metadata), the JSON
 * files, and the manifest, which is written last (its presence marks a complete result).
 */
export function resultContents(
  res: IbResult,
  meta: ResultMeta,
): {
  tensors: [string, Record<string, Tensor>][];
  metadata: Record<string, string>;
  json: [string, unknown][];
  manifest: Record<string, unknown>;
} {
  const tensors: [string, Record<string, Tensor>][] = [['basis.safetensors', basisTensors(res)]];
  if (res.edges.size > 0) tensors.push(['edges.safetensors', edgeTensors(res)]);
  const graph = graphJson(res);
  if (res.modules) annotateGraph(graph, res.modules);
  const json: [string, unknown][] = [['graph.json', graph]];
  if (res.degeneracy) json.push(['degeneracy.json', res.degeneracy]);
  if (res.modules) json.push(['modules.json', res.modules]);
  return { tensors, metadata: { format: 'ibgpu-basis', ibgpu_version: VERSION }, json, manifest: manifest(res, meta) };
}

/** Writes everything into `target` atomically (nothing appears there unless all files were written). */
export async function writeResults(target: string, res: IbResult, meta: ResultMeta): Promise<string> {
  const dir = await ResultDir.create(target, { what: 'the build result', ...meta.guard });
  try {
    const c = resultContents(res, meta);
    for (const [name, t] of c.tensors) await writeSafetensors(dir.file(name), t, c.metadata);
    for (const [name, v] of c.json) await dir.writeJson(name, v);
    if (meta.files) await meta.files(dir);
    // The manifest lists every file: the output guard replaces this directory later only if it
    // holds nothing else.
    await dir.writeJson('manifest.json', { ...c.manifest, files: [...(await dir.files()), 'manifest.json'] }); // last: its presence marks a complete result
    await dir.commit();
    return dir.target;
  } finally {
    await dir.abort();
  }
}

/** The one JSON document `ibgpu build --json` (and staged builds, combine) print on stdout. */
export function buildSummary(
  dir: string,
  res: IbResult,
  meta: { adapter: string; data: string; configPath?: string; totalMs?: number },
): Record<string, unknown> {
  return {
    result: dir,
    config: meta.configPath ?? null,
    adapter: meta.adapter,
    data: meta.data,
    dataset_size: res.n,
    timings_ms: res.timings,
    ...(meta.totalMs !== undefined ? { total_ms: meta.totalMs } : {}),
    layers: Object.fromEntries([...res.bases].map(([k, b]) => [k, { dim: b.dim, stage1_kept: b.k, rib_dim: b.r }])),
    edges: Object.fromEntries([...res.edges].map(([k, e]) => [k, { shape: [e.rows, e.cols] }])),
  };
}
