// rib's split transformer runs over stored files (SPEC-transformers §8.1: GPT-2, Pythia and
// TinyStories run statistics, bases and edges as three configs sharing files), in ibgpu's own
// formats:
//
//   calculate_Cs: false      -> a result directory holding `grams.safetensors`: per node layer
//                               `<L>/mean` [d] and `<L>/gram` [d, d] (float64, divided by N·P_ℓ,
//                               centred or not as the run says), metadata format
//                               "ibgpu-transformer-stats", the run identity and a checksum;
//   gram_matrices_path       -> those statistics instead of the statistics pass;
//   interaction_matrices_path -> the bases of a result directory (basis.safetensors, and its
//                               manifest's `transformer_run` identity) for an edges-only run.
//
// A stored file is used only for the same model (a hash of its architecture and weights), the
// same centring and last-position cut, and node layers it holds (for bases: this run's node layers
// must be a contiguous run of the stored ones, rib's rule); anything else is refused naming both
// sides. The statistics directory follows the output guard's rules like every result directory.

import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { IbgpuError } from '../errors.js';
import type { LayerBasis } from '../ib/basis.js';
import type { BuildConfig } from '../ib/config.js';
import { ResultDir } from '../io/atomic.js';
import { RESULT_FORMAT, type OutputGuardOptions } from '../io/output-guard.js';
import { loadSafetensors, writeSafetensors } from '../io/safetensors.js';
import { toFloat64, type Tensor } from '../io/tensor.js';
import { tensorDigest } from '../io/tensor-digest.js';
import type { TransformerModel } from '../model/transformer/weights.js';
import { VERSION } from '../version.js';
import type { NodeStatsResult } from './passes.js';

export const STATS_FORMAT = 'ibgpu-transformer-stats';
export const STATS_FILE = 'grams.safetensors';

/** What a stored statistics or bases file must share with the run that loads it. */
export interface RunIdentity {
  /** sha256 (first 32 hex digits) of the architecture and every weight. */
  model: string;
  node_layers: string[];
  center: boolean;
  last_pos_module_type: string | null;
  isolate_ln_var: boolean;
}

/** Hash of the model's architecture fields and weights (float64, as loaded and converted). */
export function modelHash(model: TransformerModel): string {
  const h = createHash('sha256');
  const c = model.config;
  h.update(
    JSON.stringify(
      Object.keys(c)
        .sort()
        .map((k) => [k, (c as unknown as Record<string, unknown>)[k]]),
    ),
  );
  const add = (name: string, a: Float64Array | undefined): void => {
    h.update(`${name}:${a ? a.length : -1};`);
    if (a) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  };
  const w = model.weights;
  add('WE', w.WE);
  add('Wpos', w.Wpos);
  w.blocks.forEach((b, i) => {
    for (const [k, v] of Object.entries(b)) add(`${i}.${k}`, v as Float64Array);
  });
  add('WU', w.WU);
  add('bU', w.bU);
  return h.digest('hex').slice(0, 32);
}

export function runIdentity(model: TransformerModel, config: BuildConfig): RunIdentity {
  return {
    model: modelHash(model),
    node_layers: [...config.node_layers],
    center: config.center,
    last_pos_module_type: config.last_pos_module_type ?? null,
    isolate_ln_var: config.isolate_ln_var ?? true,
  };
}

export function badFile(path: string, msg: string, hint: string): IbgpuError {
  return new IbgpuError('BAD_FILE', `${path}: ${msg}`, hint);
}

/** Refuses a stored file whose model, centring or last-position cut differ from this run's. */
export function checkShared(path: string, stored: RunIdentity, want: RunIdentity, hint: string, ln: boolean): void {
  const diff = (what: string, a: unknown, b: unknown): void => {
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      throw badFile(path, `it was computed with ${what} ${JSON.stringify(a)}, this run has ${JSON.stringify(b)}`, hint);
    }
  };
  if (stored.model !== want.model)
    throw badFile(path, `it was computed for another model (weights hash ${stored.model}; this run's model hashes to ${want.model})`, hint);
  diff('center =', stored.center, want.center);
  diff('last_pos_module_type =', stored.last_pos_module_type, want.last_pos_module_type);
  if (ln) diff('isolate_ln_var =', stored.isolate_ln_var, want.isolate_ln_var);
}

function parseIdentity(path: string, raw: unknown): RunIdentity {
  const o = (typeof raw === 'string' ? JSON.parse(raw) : raw) as Partial<RunIdentity> | undefined;
  if (!o || typeof o.model !== 'string' || !Array.isArray(o.node_layers) || typeof o.center !== 'boolean') {
    throw badFile(path, 'it does not record the run it came from (model, node layers, centring)', 'use a file written by an ibgpu transformer build');
  }
  return {
    model: o.model,
    node_layers: o.node_layers,
    center: o.center,
    last_pos_module_type: o.last_pos_module_type ?? null,
    isolate_ln_var: o.isolate_ln_var ?? true,
  };
}

export interface StatsSource {
  /** Where the statistics' sequences came from, their count and positions. */
  data: string;
  n: number;
  P: number;
}

/**
 * Writes the statistics of every node layer but `output` (in `names` order) as a result directory
 * `target` holding grams.safetensors and manifest.json. Returns the directory.
 */
export async function writeStatsDir(
  target: string,
  names: readonly string[],
  stats: readonly NodeStatsResult[],
  identity: RunIdentity,
  src: StatsSource,
  o: { configPath?: string; config: BuildConfig; guard?: OutputGuardOptions; timings: Record<string, number>; adapter: string },
): Promise<string> {
  const tensors: Record<string, Tensor> = {};
  const positions: Record<string, number> = {};
  stats.forEach((s, i) => {
    const name = names[i]!;
    tensors[`${name}/mean`] = { dtype: 'F64', shape: [s.dim], data: s.mean };
    tensors[`${name}/gram`] = { dtype: 'F64', shape: [s.dim, s.dim], data: s.gram };
    positions[name] = s.positions;
  });
  const dir = await ResultDir.create(target, { what: 'the statistics', ...o.guard });
  try {
    await writeSafetensors(dir.file(STATS_FILE), tensors, {
      format: STATS_FORMAT,
      ibgpu_version: VERSION,
      run: JSON.stringify(identity),
      positions: JSON.stringify(positions),
      data: src.data,
      data_n: String(src.n),
      data_positions: String(src.P),
      checksum: tensorDigest(tensors),
    });
    await dir.writeJson('manifest.json', {
      format: RESULT_FORMAT,
      kind: 'transformer-statistics',
      ibgpu_version: VERSION,
      created: new Date().toISOString(),
      adapter: o.adapter,
      data: src.data,
      dataset_size: src.n,
      positions: src.P,
      config: o.config,
      config_path: o.configPath ?? null,
      timings_ms: o.timings,
      transformer_run: identity,
      files: [STATS_FILE, 'manifest.json'],
    });
    await dir.commit();
    return dir.target;
  } finally {
    await dir.abort();
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new IbgpuError('BAD_CONFIG', `${p} does not exist`, 'check the path in the config (paths are relative to the config file)');
    throw e;
  }
}

/**
 * Reads stored statistics (a grams.safetensors, or the directory holding one) for this run's node
 * layers, after checking that they belong to the same model, centring and last-position cut.
 */
export async function readStats(path: string, want: RunIdentity): Promise<NodeStatsResult[]> {
  const file = (await isDir(path)) ? join(path, STATS_FILE) : path;
  const hint = 'compute the statistics for this model and configuration first (a run with "calculate_Cs": false), or drop gram_matrices_path';
  try {
    await stat(file);
  } catch {
    throw badFile(
      path,
      `not ibgpu transformer statistics: there is no ${file === path ? 'such file' : STATS_FILE} (it is written by a run with "calculate_Cs": false)`,
      'point gram_matrices_path at the directory such a run wrote',
    );
  }
  const { tensors, metadata } = await loadSafetensors(file);
  if (metadata['format'] !== STATS_FORMAT) {
    throw badFile(
      file,
      `not ibgpu transformer statistics (metadata format = ${JSON.stringify(metadata['format'])}, expected "${STATS_FORMAT}")`,
      'point gram_matrices_path at the directory a "calculate_Cs": false run wrote',
    );
  }
  if (metadata['checksum'] !== tensorDigest(tensors)) throw badFile(file, 'checksum mismatch: the file is damaged', 'rerun the statistics');
  const stored = parseIdentity(file, metadata['run']);
  checkShared(file, stored, want, hint, false);
  const positions = JSON.parse(metadata['positions'] ?? '{}') as Record<string, number>;
  const names = want.node_layers.filter((n) => n !== 'output');
  const missing = names.filter((n) => !(`${n}/gram` in tensors));
  if (missing.length > 0) {
    throw badFile(
      file,
      `it holds no statistics for node layer(s) ${missing.join(', ')} (it has ${stored.node_layers.join(', ')}; this run needs ${names.join(', ')})`,
      hint,
    );
  }
  return names.map((n) => {
    const mean = toFloat64(tensors[`${n}/mean`]!);
    return { mean, gram: toFloat64(tensors[`${n}/gram`]!), dim: mean.length, positions: positions[n] ?? 0 };
  });
}

/** True when `inner` appears in `outer` as a contiguous run (rib's check for stored Cs). */
function contiguousRun(inner: readonly string[], outer: readonly string[]): boolean {
  for (let s = 0; s + inner.length <= outer.length; s++) if (inner.every((n, i) => outer[s + i] === n)) return true;
  return false;
}

/** Refuses stored bases whose node layers do not hold this run's as a contiguous run (rib's rule). */
export function checkContiguous(path: string, stored: RunIdentity, want: RunIdentity, hint: string): void {
  if (!contiguousRun(want.node_layers, stored.node_layers)) {
    throw badFile(
      path,
      `its node layers (${stored.node_layers.join(', ')}) do not contain this run's node layers (${want.node_layers.join(', ')}) as a contiguous run`,
      hint,
    );
  }
}

/**
 * Reads the bases of a result directory (or its basis.safetensors) for an edges-only run: this
 * run's node layers must be a contiguous run of the stored ones, from the same model, centring,
 * last-position cut and LayerNorm-variance isolation.
 */
export async function readBases(path: string, want: RunIdentity): Promise<Map<string, LayerBasis>> {
  const dir = (await isDir(path)) ? path : dirname(path);
  const file = (await isDir(path)) ? join(path, 'basis.safetensors') : path;
  const hint =
    'point interaction_matrices_path at the result directory of a transformer build of this model and node layers (e.g. one with "calculate_edges": false)';
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw badFile(join(dir, 'manifest.json'), `cannot read the build's manifest (${(e as Error).message})`, hint);
  }
  if (manifest['format'] !== RESULT_FORMAT || manifest['transformer_run'] === undefined) {
    throw badFile(dir, 'not the result of an ibgpu transformer build (its manifest has no transformer_run)', hint);
  }
  if (manifest['kind'] === 'transformer-statistics')
    throw badFile(
      dir,
      'it holds only statistics (a "calculate_Cs": false run), no bases',
      'pass it as gram_matrices_path to compute the bases, then use that result here',
    );
  const stored = parseIdentity(dir, manifest['transformer_run']);
  checkShared(dir, stored, want, hint, true);
  checkContiguous(dir, stored, want, 'use node layers that follow each other in the stored build, or rebuild the bases for these node layers');
  const { tensors, metadata } = await loadSafetensors(file);
  if (metadata['format'] !== 'ibgpu-basis') throw badFile(file, `not an ibgpu basis file (metadata format = ${JSON.stringify(metadata['format'])})`, hint);
  const layers = (manifest['layers'] ?? {}) as Record<string, { stage1_kept?: number; dropped?: { stage1: number; stage2: number }; centred?: boolean }>;
  const bases = new Map<string, LayerBasis>();
  for (const name of want.node_layers) {
    if (name === 'output') continue;
    const get = (k: string): Tensor | undefined => tensors[`${name}/${k}`];
    const C = get('C');
    const Cp = get('C_pinv');
    const mean = get('mean');
    if (!C || !Cp || !mean) throw badFile(file, `the basis of node layer ${name} is missing`, hint);
    const [dim, r] = C.shape as [number, number];
    const U = get('U');
    const opt = (k: string): Float64Array | undefined => {
      const t = get(k);
      return t ? toFloat64(t) : undefined;
    };
    const b: LayerBasis = {
      name,
      dim,
      r,
      centred: layers[name]?.centred ?? stored.center,
      mean: toFloat64(mean),
      gramEigenvalues: opt('gram_eigenvalues') ?? new Float64Array(0),
      U: U ? toFloat64(U) : new Float64Array(0),
      D: opt('D') ?? new Float64Array(0),
      k: U ? U.shape[1]! : (layers[name]?.stage1_kept ?? r),
      C: toFloat64(C),
      Cpinv: toFloat64(Cp),
      dropped: layers[name]?.dropped ?? { stage1: 0, stage2: 0 },
    };
    const V = opt('V');
    const Lambda = opt('Lambda');
    const Mprime = opt('M_prime');
    if (V) b.V = V;
    if (Lambda) b.Lambda = Lambda;
    if (Mprime) b.Mprime = Mprime;
    bases.set(name, b);
  }
  return bases;
}
