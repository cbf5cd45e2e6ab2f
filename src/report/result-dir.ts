// Reading what `ibgpu report` needs from a build's result directory, and rewriting the report
// files atomically.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IbgpuError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOwnedFiles, isResultDir } from '../io/output-guard.js';
import { loadSafetensors } from '../io/safetensors.js';
import { toFloat64 } from '../io/tensor.js';
import { DEGENERACY_FORMAT, type DegeneracyReport } from './degeneracy.js';
import { graphLayers, MODULES_FORMAT, type EdgeMatrix, type GraphLayer, type ModulesReport } from './modularity.js';

export interface ManifestLayer {
  orig_dim: number;
  stage1_kept: number;
  rib_dim: number;
  dropped: { stage1: number; stage2: number };
  centred: boolean;
}

export interface Manifest {
  dataset_size: number;
  data: string;
  adapter: string;
  config: Record<string, unknown> & { node_layers: string[] };
  config_path: string | null;
  layers: Record<string, ManifestLayer>;
  [k: string]: unknown;
}

export interface ResultDirContents {
  dir: string;
  manifest: Manifest;
  degeneracy?: DegeneracyReport;
  modules?: ModulesReport;
  graph?: Record<string, unknown>;
}

async function readJsonFile(path: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IbgpuError(
      'BAD_FILE',
      `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'is this an `ibgpu build` result directory?',
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new IbgpuError('BAD_FILE', `${path} is not valid JSON: ${(e as Error).message}`, 'the file is damaged; rerun `ibgpu build`');
  }
}

export async function readResultDir(dir: string): Promise<ResultDirContents> {
  const manifest = (await readJsonFile(join(dir, 'manifest.json'), true)) as Manifest;
  if (!manifest || typeof manifest !== 'object' || !manifest.config || !Array.isArray(manifest.config.node_layers)) {
    throw new IbgpuError(
      'BAD_FILE',
      `${join(dir, 'manifest.json')} is not an ibgpu build manifest`,
      'point `ibgpu report` at a directory written by `ibgpu build`',
    );
  }
  const degeneracy = (await readJsonFile(join(dir, 'degeneracy.json'), false)) as DegeneracyReport | undefined;
  if (degeneracy && degeneracy.format !== DEGENERACY_FORMAT)
    throw new IbgpuError('BAD_FILE', `${join(dir, 'degeneracy.json')} is not an ibgpu degeneracy report`);
  const modules = (await readJsonFile(join(dir, 'modules.json'), false)) as ModulesReport | undefined;
  if (modules && modules.format !== MODULES_FORMAT) throw new IbgpuError('BAD_FILE', `${join(dir, 'modules.json')} is not an ibgpu modules report`);
  const graph = (await readJsonFile(join(dir, 'graph.json'), false)) as Record<string, unknown> | undefined;
  return { dir, manifest, ...(degeneracy ? { degeneracy } : {}), ...(modules ? { modules } : {}), ...(graph ? { graph } : {}) };
}

/** The edge matrices of edges.safetensors (keys `edges/<in>-><out>/E_hat`). */
export async function readEdges(dir: string): Promise<EdgeMatrix[]> {
  const path = join(dir, 'edges.safetensors');
  let tensors: Awaited<ReturnType<typeof loadSafetensors>>['tensors'];
  try {
    ({ tensors } = await loadSafetensors(path));
  } catch (e) {
    if (e instanceof IbgpuError) throw e;
    throw new IbgpuError('BAD_FILE', `cannot read ${path}: ${(e as Error).message}`, 'was the build run with calculate_edges: false? Modules need the edges');
  }
  const out: EdgeMatrix[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const m = /^edges\/(.+)->(.+)\/E_hat$/.exec(name);
    if (!m || t.shape.length !== 2) continue;
    out.push({ from: m[1]!, to: m[2]!, rows: t.shape[0]!, cols: t.shape[1]!, data: toFloat64(t) });
  }
  return out;
}

/** Graph layers of a result directory (basis sizes and centring from the manifest). */
export function resultGraphLayers(manifest: Manifest, edges: EdgeMatrix[]): GraphLayer[] {
  return graphLayers(
    manifest.config.node_layers,
    (name) => {
      const l = manifest.layers[name];
      return l ? { r: l.rib_dim, centred: l.centred } : undefined;
    },
    edges,
  );
}

/**
 * Rewrites one JSON file of the result directory atomically, only inside a directory that is an
 * ibgpu build result (src/io/output-guard.ts).
 */
export async function writeResultJson(dir: string, name: string, value: unknown): Promise<void> {
  await checkOwnedFiles(dir, [name], isResultDir, { what: `the updated ${name}`, flag: 'the result directory' });
  await writeFileAtomic(join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
}
