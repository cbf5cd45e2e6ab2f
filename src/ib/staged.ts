// The build split into stages and dataset shards, for datasets that take many machines:
//
//   stats shard i/n  (GPU)  -> stats-0000i-of-0000n.safetensors   partial f64 sums of rows [a, b)
//   combine stats    (host) -> stats.safetensors + bases.state.safetensors
//   edges shard i/n  (GPU, needs the bases) -> edges-0000i-of-0000n.safetensors
//   combine edges    (host) -> the result directory `ibgpu build` writes
//
// Shards are whole batches (shardRange), and every shard centres its Gram on the same shift (the
// mean of the dataset's first batch), so each per-batch f32 partial is bit-identical to the one
// the single-process build computes; combining only re-associates the float64 sums across shard
// boundaries (relative differences at the 1e-16 level, SPEC §5.5: dataset splits sum, N = full N).
//
// Every partial is float64 safetensors whose metadata carries the format, stage, a hash of the
// config and model weights, the data description and size, the shard and its row range, and a
// SHA-256 of the tensor data: combine refuses mismatched, overlapping, missing or corrupted
// partials with an IbgpuError naming the file.

import { createHash } from 'node:crypto';
import { IbgpuError } from '../errors.js';
import { openSafetensors, writeSafetensors } from '../io/safetensors.js';
import { toFloat64, type Tensor } from '../io/tensor.js';
import { tensorDigest } from '../io/tensor-digest.js';
import type { Engine } from '../runtime/engine.js';
import { VERSION } from '../version.js';
import type { GateStats, LayerBasis, NodeStats } from './basis.js';
import type { BuildConfig } from './config.js';
import type { DataSource } from './data.js';
import type { EdgePair } from './edges.js';
import { GpuMlp } from './gpu-model.js';
import { integrationPoints } from './integration.js';
import { isLegacyFormula } from './legacy.js';
import type { MlpModel } from '../model/mlp.js';
import type { IbResult } from './pipeline.js';
import { checkFinalRotation, edgePairOf, edgeStagePath, mlpEdgeSums, mlpGraphPlan, planNodes, statsPlanOf } from './sections.js';
import { compileMlp } from '../model/mlp-program.js';
import { runGraph } from '../pipeline/driver.js';
import { collectStats, type Progress, type StatsResult } from './stats.js';
import { chooseStagePath } from '../runtime/stage-paths.js';
import { modulesFromBuild } from './from-build.js';
import { modularityOptions } from '../report/config.js';

export const PARTIAL_FORMAT = 'ibgpu-partial';
/** 'mprime': the transformer stages' M′ rounds (src/transformer/staged.ts). */
export type Stage = 'stats' | 'edges' | 'bases' | 'mprime';

export interface Shard {
  index: number;
  count: number;
}

/** Rows [start, end) of shard i/n: whole batches, spread as evenly as the batch count allows. */
export function shardRange(n: number, batchSize: number, s: Shard): { start: number; end: number } {
  const nb = Math.ceil(n / batchSize);
  const b0 = Math.floor((s.index * nb) / s.count);
  const b1 = Math.floor(((s.index + 1) * nb) / s.count);
  return { start: Math.min(n, b0 * batchSize), end: Math.min(n, b1 * batchSize) };
}

const INDEX_VARS = ['JOB_COMPLETION_INDEX', 'SLURM_ARRAY_TASK_ID', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK'] as const;
const COUNT_VARS = ['SLURM_ARRAY_TASK_COUNT', 'OMPI_COMM_WORLD_SIZE', 'PMI_SIZE'] as const;

/**
 * The shard of this process: `--shard i/n`, or `--shards n` with the index from the job
 * scheduler (JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID, OMPI_COMM_WORLD_RANK, PMI_RANK); the count
 * may also come from SLURM_ARRAY_TASK_COUNT / OMPI_COMM_WORLD_SIZE / PMI_SIZE.
 */
export function resolveShard(shard: string | undefined, shards: string | undefined, env: Record<string, string | undefined> = process.env): Shard {
  const bad = (m: string) =>
    new IbgpuError(
      'BAD_CONFIG',
      m,
      'use --shard i/n (0 <= i < n), or --shards n with the index in JOB_COMPLETION_INDEX / SLURM_ARRAY_TASK_ID / OMPI_COMM_WORLD_RANK / PMI_RANK',
    );
  const int = (v: string, what: string) => {
    if (!/^\d+$/.test(v.trim())) throw bad(`${what} must be a non-negative integer, got ${JSON.stringify(v)}`);
    return Number(v.trim());
  };
  let index: number | undefined;
  let count: number | undefined;
  if (shard !== undefined) {
    const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(shard);
    if (!m) throw bad(`--shard must look like i/n, got ${JSON.stringify(shard)}`);
    index = Number(m[1]);
    count = Number(m[2]);
  } else {
    const iv = INDEX_VARS.find((k) => env[k] !== undefined && env[k] !== '');
    if (iv) index = int(env[iv]!, iv);
    if (shards !== undefined) count = int(shards, '--shards');
    else {
      const cv = COUNT_VARS.find((k) => env[k] !== undefined && env[k] !== '');
      if (cv) count = int(env[cv]!, cv);
    }
    if (index === undefined && count === undefined) return { index: 0, count: 1 };
    if (index === undefined) throw bad(`--shards ${count} given but no shard index: none of ${INDEX_VARS.join(', ')} is set`);
    if (count === undefined) throw bad(`shard index ${index} from the environment but no shard count`);
  }
  if (shards !== undefined && shard !== undefined && int(shards, '--shards') !== count) throw bad(`--shard ${shard} and --shards ${shards} disagree`);
  if (!(count >= 1) || !(index >= 0) || index >= count) throw bad(`shard ${index}/${count} is out of range`);
  return { index, count };
}

/**
 * Hash of everything that determines the sums: the config (less output paths / clustering, and
 * less stage_paths: where a stage runs changes its rounding only, as 'auto' may anyway from one
 * machine to the next) and the model weights.
 */
export function configHash(config: BuildConfig, model: MlpModel): string {
  const h = createHash('sha256');
  const { out_dir: _o, modularity: _m, model: _p, arch: _a, data: _d, stage_paths: _s, ...rest } = config;
  const keys = Object.keys(rest).sort();
  h.update(JSON.stringify(keys.map((k) => [k, (rest as Record<string, unknown>)[k]])));
  h.update(JSON.stringify(config.data ? { ...config.data, path: undefined } : null));
  for (const l of model.layers) {
    h.update(JSON.stringify([l.name, l.dIn, l.dOut, l.activation]));
    h.update(new Uint8Array(l.W.buffer, l.W.byteOffset, l.W.byteLength));
    h.update(new Uint8Array(l.b.buffer, l.b.byteOffset, l.b.byteLength));
  }
  return h.digest('hex').slice(0, 32);
}

/** The stages that can be split need no extra data passes inside the bases stage. */
export function checkShardable(config: BuildConfig): void {
  if (isLegacyFormula(config.basis_formula)) {
    throw new IbgpuError(
      'BAD_CONFIG',
      `basis_formula '${config.basis_formula}' needs one extra pass over the data per section inside the bases stage; staged/sharded builds support jacobian, svd, pca and neuron`,
      'run it as one process (ibgpu build without --stage)',
    );
  }
  if (config.degeneracy) {
    throw new IbgpuError(
      'BAD_CONFIG',
      'the degeneracy statistics are not collected by staged/sharded builds',
      'set "degeneracy": false (and run `ibgpu report --recompute` on the result), or build in one process',
    );
  }
}

// ------------------------------------------------------------------ partial files

export interface PartialMeta {
  format: typeof PARTIAL_FORMAT;
  stage: Stage;
  config_hash: string;
  /** The parsed config (JSON) and the absolute path it came from. */
  config: string;
  config_path: string;
  data: string;
  data_n: number;
  row_start: number;
  row_end: number;
  shard: string;
  batch_size: number;
  adapter: string;
  ibgpu_version: string;
  /** Stage-specific layout (JSON). */
  layout: string;
  /** sha256 over the tensors (names and bytes, in name order). */
  checksum: string;
}

export async function writePartial(
  path: string,
  tensors: Record<string, Tensor>,
  meta: Omit<PartialMeta, 'checksum' | 'format' | 'ibgpu_version'>,
): Promise<void> {
  const full: PartialMeta = { format: PARTIAL_FORMAT, ibgpu_version: VERSION, ...meta, checksum: tensorDigest(tensors) };
  const md: Record<string, string> = {};
  for (const [k, v] of Object.entries(full)) md[k] = String(v);
  await writeSafetensors(path, tensors, md); // atomic: temp file + fsync + rename
}

export interface Partial {
  path: string;
  meta: PartialMeta;
  tensors: Record<string, Float64Array>;
  shapes: Record<string, number[]>;
}

/** Reads and verifies a partial (header, metadata, checksum); BAD_FILE names the problem. */
export async function readPartial(path: string, want?: Stage): Promise<Partial> {
  const f = await openSafetensors(path); // truncation and malformed headers are rejected here
  try {
    const m = f.metadata;
    if (m['format'] !== PARTIAL_FORMAT) {
      throw new IbgpuError(
        'BAD_FILE',
        `${path}: not an ibgpu partial (metadata format = ${JSON.stringify(m['format'])})`,
        'pass files written by `ibgpu build --stage …` or `ibgpu combine`',
      );
    }
    for (const k of ['stage', 'config_hash', 'data', 'data_n', 'row_start', 'row_end', 'shard', 'checksum', 'layout', 'config']) {
      if (m[k] === undefined) throw new IbgpuError('BAD_FILE', `${path}: partial metadata lacks '${k}'`, 'the file is damaged; rerun its shard');
    }
    if (want && m['stage'] !== want) {
      throw new IbgpuError('BAD_FILE', `${path}: a '${m['stage']}' file where a '${want}' file was expected`);
    }
    const tensors: Record<string, Float64Array> = {};
    const shapes: Record<string, number[]> = {};
    const raw: Record<string, Tensor> = {};
    for (const k of f.keys()) {
      const t = await f.read(k);
      raw[k] = t;
      tensors[k] = toFloat64(t);
      shapes[k] = t.shape;
    }
    const sum = tensorDigest(raw);
    if (sum !== m['checksum']) {
      throw new IbgpuError(
        'BAD_FILE',
        `${path}: checksum mismatch (data ${sum.slice(0, 23)}…, recorded ${m['checksum']!.slice(0, 23)}…): the file is corrupted`,
        'delete it and rerun its shard or stage',
      );
    }
    const meta = {
      ...(m as unknown as PartialMeta),
      data_n: Number(m['data_n']),
      row_start: Number(m['row_start']),
      row_end: Number(m['row_end']),
      batch_size: Number(m['batch_size']),
    };
    return { path, meta, tensors, shapes };
  } finally {
    await f.close();
  }
}

/** A previously written partial that can be reused for this exact work, or why not. */
export async function reusablePartial(
  path: string,
  stage: Stage,
  hash: string,
  range: { start: number; end: number },
  n: number,
): Promise<{ ok: true; p: Partial } | { ok: false; why: string }> {
  let p: Partial;
  try {
    p = await readPartial(path, stage);
  } catch (e) {
    if ((e as IbgpuError).code === 'BAD_FILE' && /cannot open \(ENOENT\)/.test((e as Error).message)) return { ok: false, why: 'absent' };
    return { ok: false, why: (e as Error).message };
  }
  if (p.meta.config_hash !== hash) return { ok: false, why: `${path} was written for another config or model (hash ${p.meta.config_hash} ≠ ${hash})` };
  if (p.meta.row_start !== range.start || p.meta.row_end !== range.end || p.meta.data_n !== n) {
    return {
      ok: false,
      why: `${path} covers rows [${p.meta.row_start}, ${p.meta.row_end}) of ${p.meta.data_n}, this run needs [${range.start}, ${range.end}) of ${n}`,
    };
  }
  return { ok: true, p };
}

export function partialName(stage: Stage, s: Shard): string {
  const pad = (v: number) => String(v).padStart(5, '0');
  return `${stage}-${pad(s.index)}-of-${pad(s.count)}.safetensors`;
}

// ------------------------------------------------------------------ stats stage

interface StatsLayout {
  nodes: { name: string; d: number; folded: boolean }[];
  gates: { i: number; h: number; constGate: number | null }[];
}

function statsTensors(s: StatsResult): { tensors: Record<string, Tensor>; layout: StatsLayout } {
  const t: Record<string, Tensor> = {};
  const f64 = (shape: number[], data: Float64Array): Tensor => ({ dtype: 'F64', shape, data });
  const layout: StatsLayout = { nodes: [], gates: [] };
  for (const [name, n] of s.nodes) {
    t[`node/${name}/sum`] = f64([n.d], n.sum);
    t[`node/${name}/gram_shifted`] = f64([n.d, n.d], n.gramShifted);
    t[`node/${name}/shift`] = f64([n.d], n.shift);
    layout.nodes.push({ name, d: n.d, folded: n.folded });
  }
  for (const [i, g] of s.gates) {
    t[`gate/${i}/sum`] = f64([g.h], g.sum);
    t[`gate/${i}/gram`] = f64([g.h, g.h], g.gram);
    layout.gates.push({ i, h: g.h, constGate: g.constGate ?? null });
  }
  return { tensors: t, layout };
}

function statsFromPartial(p: Partial, n: number): StatsResult {
  const layout = JSON.parse(p.meta.layout) as StatsLayout;
  const get = (k: string) => {
    const v = p.tensors[k];
    if (!v) throw new IbgpuError('BAD_FILE', `${p.path}: tensor '${k}' is missing`, 'the file is damaged; rerun its shard');
    return v;
  };
  const nodes = new Map<string, NodeStats>();
  for (const l of layout.nodes) {
    nodes.set(l.name, {
      name: l.name,
      n,
      d: l.d,
      folded: l.folded,
      sum: get(`node/${l.name}/sum`),
      gramShifted: get(`node/${l.name}/gram_shifted`),
      shift: get(`node/${l.name}/shift`),
    });
  }
  const gates = new Map<number, GateStats>();
  for (const g of layout.gates) {
    gates.set(g.i, { n, h: g.h, sum: get(`gate/${g.i}/sum`), gram: get(`gate/${g.i}/gram`), constGate: g.constGate ?? undefined });
  }
  return { nodes, gates };
}

export interface StageContext {
  engine: Engine;
  model: MlpModel;
  data: DataSource;
  config: BuildConfig;
  configPath: string;
  hash: string;
  progress?: Progress;
}

function baseMeta(c: StageContext, stage: Stage, range: { start: number; end: number }, shard: string, layout: unknown) {
  return {
    stage,
    config_hash: c.hash,
    config: JSON.stringify(c.config),
    config_path: c.configPath,
    data: c.data.description,
    data_n: c.data.n,
    row_start: range.start,
    row_end: range.end,
    shard,
    batch_size: c.config.batch_size,
    adapter: c.engine.adapterName,
    layout: JSON.stringify(layout),
  };
}

/** Stats stage of one shard: partial sums of its rows, written to `path`. */
export async function runStatsShard(c: StageContext, shard: Shard, path: string): Promise<{ start: number; end: number }> {
  checkShardable(c.config);
  const range = shardRange(c.data.n, c.config.batch_size, shard);
  const { statNodes, gateLayers } = statsPlanOf(planNodes(c.model, c.config.node_layers), c.config);
  const pts = integrationPoints(c.config.integration_method, c.config.n_intervals);
  const mlp = new GpuMlp(c.engine, c.model, pts);
  try {
    const where = chooseStagePath(c.engine, 'stats', c.config.stage_paths?.stats ?? 'auto').path;
    const s = await collectStats(c.engine, mlp, c.data, { nodes: statNodes, gateLayers, path: where }, c.config.batch_size, pts, c.progress, range);
    const { tensors, layout } = statsTensors(s);
    await writePartial(path, tensors, baseMeta(c, 'stats', range, `${shard.index}/${shard.count}`, layout));
  } finally {
    mlp.dispose();
  }
  return range;
}

/** Checks that partials belong together and tile [0, N) in whole; returns them in row order. */
export function checkPartials(parts: Partial[], stage: Stage): Partial[] {
  if (parts.length === 0) throw new IbgpuError('BAD_CONFIG', `no ${stage} partials given`);
  const a = parts[0]!;
  for (const p of parts) {
    if (p.meta.stage !== stage)
      throw new IbgpuError('BAD_FILE', `${p.path} is a '${p.meta.stage}' partial, ${a.path} a '${stage}' one`, 'combine one stage at a time');
    if (p.meta.config_hash !== a.meta.config_hash) {
      throw new IbgpuError(
        'BAD_FILE',
        `${p.path} was built with another config or model than ${a.path} (hash ${p.meta.config_hash} ≠ ${a.meta.config_hash})`,
        'rerun every shard with the same config and model',
      );
    }
    if (p.meta.data !== a.meta.data || p.meta.data_n !== a.meta.data_n) {
      throw new IbgpuError(
        'BAD_FILE',
        `${p.path} covers data '${p.meta.data}' (${p.meta.data_n}), ${a.path} '${a.meta.data}' (${a.meta.data_n})`,
        'every shard must read the same dataset',
      );
    }
    if (JSON.stringify(p.shapes) !== JSON.stringify(a.shapes)) throw new IbgpuError('BAD_FILE', `${p.path}: tensor shapes differ from ${a.path}'s`);
  }
  const sorted = [...parts].sort((x, y) => x.meta.row_start - y.meta.row_start);
  let pos = 0;
  for (const p of sorted) {
    if (p.meta.row_start < pos)
      throw new IbgpuError(
        'BAD_FILE',
        `${p.path} (rows [${p.meta.row_start}, ${p.meta.row_end})) overlaps a shard before it, which ends at row ${pos}`,
        'pass each shard once, all from the same --shards count',
      );
    if (p.meta.row_start > pos)
      throw new IbgpuError(
        'BAD_FILE',
        `rows [${pos}, ${p.meta.row_start}) of ${a.meta.data_n} are in no partial`,
        'a shard is missing: run it and pass its file too',
      );
    pos = p.meta.row_end;
  }
  if (pos !== a.meta.data_n)
    throw new IbgpuError(
      'BAD_FILE',
      `rows [${pos}, ${a.meta.data_n}) of ${a.meta.data_n} are in no partial`,
      'a shard is missing: run it and pass its file too',
    );
  return sorted;
}

/** Sums stats partials (in row order) into the full statistics. */
export function sumStats(sorted: Partial[]): StatsResult {
  const n = sorted[0]!.meta.data_n;
  const acc: Record<string, Float64Array> = {};
  for (const [k, v] of Object.entries(sorted[0]!.tensors)) acc[k] = Float64Array.from(v);
  for (const p of sorted.slice(1)) {
    for (const [k, v] of Object.entries(p.tensors)) {
      const a = acc[k]!;
      if (k.endsWith('/shift')) {
        for (let i = 0; i < v.length; i++) {
          if (v[i] !== a[i])
            throw new IbgpuError(
              'BAD_FILE',
              `${p.path}: its Gram shift differs from ${sorted[0]!.path}'s`,
              'every shard centres on the first batch of the dataset: was the batch size or data changed between shards, or did shards run their stats on different paths (set stage_paths.stats to the same value for all)?',
            );
        }
        continue;
      }
      for (let i = 0; i < v.length; i++) a[i]! += v[i]!;
    }
  }
  return statsFromPartial({ ...sorted[0]!, tensors: acc }, n);
}

// ------------------------------------------------------------------ bases

/**
 * The bases from complete statistics (host, float64), as the single-process build makes them: the
 * build driver's bases stage with the same MLP section specialisations (src/ib/sections.ts).
 */
export async function basesFromStats(model: MlpModel, config: BuildConfig, stats: StatsResult): Promise<Map<string, LayerBasis>> {
  checkShardable(config);
  const plan = planNodes(model, config.node_layers);
  checkFinalRotation(plan, config);
  const g = await runGraph({
    program: compileMlp(model, config.node_layers),
    calculateEdges: false,
    statistics: () => Promise.resolve(stats),
    plan: (s) => mlpGraphPlan(model, plan, config, s, undefined),
  });
  return g.bases;
}

interface BasesLayout {
  layers: { name: string; dim: number; k: number; r: number; centred: boolean; dropped: { stage1: number; stage2: number }; fields: string[] }[];
}

const BASIS_FIELDS = ['mean', 'gramEigenvalues', 'U', 'D', 'V', 'Lambda', 'Mprime', 'LambdaPrime', 'C', 'Cpinv'] as const;

export function basesTensors(bases: Map<string, LayerBasis>): { tensors: Record<string, Tensor>; layout: BasesLayout } {
  const t: Record<string, Tensor> = {};
  const layout: BasesLayout = { layers: [] };
  for (const [name, b] of bases) {
    const fields: string[] = [];
    for (const f of BASIS_FIELDS) {
      const v = b[f];
      if (v) {
        t[`${name}/${f}`] = { dtype: 'F64', shape: [v.length], data: v };
        fields.push(f);
      }
    }
    layout.layers.push({ name, dim: b.dim, k: b.k, r: b.r, centred: b.centred, dropped: b.dropped, fields });
  }
  return { tensors: t, layout };
}

export function basesFromPartial(p: Partial): Map<string, LayerBasis> {
  const layout = JSON.parse(p.meta.layout) as BasesLayout;
  const out = new Map<string, LayerBasis>();
  for (const l of layout.layers) {
    const b: Record<string, unknown> = { name: l.name, dim: l.dim, k: l.k, r: l.r, centred: l.centred, dropped: l.dropped };
    for (const f of l.fields) {
      const v = p.tensors[`${l.name}/${f}`];
      if (!v)
        throw new IbgpuError('BAD_FILE', `${p.path}: tensor '${l.name}/${f}' is missing`, 'the file is damaged; rerun `ibgpu combine` on the stats partials');
      b[f] = v;
    }
    out.set(l.name, b as unknown as LayerBasis);
  }
  return out;
}

/** Writes stats.safetensors and bases.state.safetensors (each atomically) from sorted stats partials. */
export async function combineStats(model: MlpModel, sorted: Partial[], dir: string): Promise<{ stats: StatsResult; bases: Map<string, LayerBasis> }> {
  const a = sorted[0]!.meta;
  const config = JSON.parse(a.config) as BuildConfig;
  const stats = sumStats(sorted);
  const bases = await basesFromStats(model, config, stats);
  const all = { start: 0, end: a.data_n };
  const common = { ...a, row_start: all.start, row_end: all.end, shard: `combined ${sorted.length}` };
  const st = statsTensors(stats);
  await writePartial(`${dir}/stats.safetensors`, st.tensors, { ...stripMeta(common), stage: 'stats', layout: JSON.stringify(st.layout) });
  const bt = basesTensors(bases);
  await writePartial(`${dir}/bases.state.safetensors`, bt.tensors, { ...stripMeta(common), stage: 'bases', layout: JSON.stringify(bt.layout) });
  return { stats, bases };
}

function stripMeta(m: PartialMeta): Omit<PartialMeta, 'checksum' | 'format' | 'ibgpu_version'> {
  const { checksum: _c, format: _f, ibgpu_version: _v, ...rest } = m;
  return rest;
}

/** Loads the combined stats and bases a stats combine wrote into `dir`, checking they belong to `hash`. */
export async function loadStage(dir: string, hash?: string): Promise<{ stats: StatsResult; bases: Map<string, LayerBasis>; meta: PartialMeta }> {
  const sp = await readPartial(`${dir}/stats.safetensors`, 'stats');
  const bp = await readPartial(`${dir}/bases.state.safetensors`, 'bases');
  if (sp.meta.config_hash !== bp.meta.config_hash)
    throw new IbgpuError(
      'BAD_FILE',
      `${dir}: stats.safetensors and bases.state.safetensors come from different builds`,
      'rerun `ibgpu combine` on the stats partials',
    );
  if (hash && bp.meta.config_hash !== hash) {
    throw new IbgpuError(
      'BAD_FILE',
      `${dir}/bases.state.safetensors was built for another config or model (hash ${bp.meta.config_hash} ≠ ${hash})`,
      "point --bases at the combine output of this config's stats shards",
    );
  }
  return { stats: statsFromPartial(sp, sp.meta.data_n), bases: basesFromPartial(bp), meta: bp.meta };
}

// ------------------------------------------------------------------ edges stage

function edgePairs(model: MlpModel, config: BuildConfig, bases: Map<string, LayerBasis>): EdgePair[] {
  const plan = planNodes(model, config.node_layers);
  return plan.slice(0, -1).map((_p, j) => edgePairOf(model, plan, j, bases, config.basis_formula));
}

/**
 * How the edge stage is split (SPEC §5.5): 'data' — every shard takes a block of datapoints and
 * writes raw sums that combine adds up; 'out' — every shard takes all datapoints but a block of
 * each pair's output rows (its next-layer basis directions), and combine concatenates the blocks.
 */
export type EdgeSplit = 'data' | 'out';

interface EdgesLayout {
  split: EdgeSplit;
  /** rows/cols: the full E of the pair; [row0, row1): the output rows this partial holds. */
  pairs: OutBlock[];
}

/** The output rows [row0, row1) of one pair (rows × cols in full) that an output-split edge partial holds. */
export interface OutBlock {
  key: string;
  rows: number;
  cols: number;
  row0: number;
  row1: number;
}

/**
 * Copies the blocks of pair `pr` that output-split edge partials hold into one rows × cols E, in
 * row order: `put(part, offset)` writes the part's block at E offset `offset`. Each block
 * must have the pair's shape, and together they must tile its rows once (an overlap, a gap or a
 * missing shard is refused).
 */
export function tileOutBlocks<P extends { path: string }>(
  pr: OutBlock,
  parts: readonly P[],
  blockOf: (part: P) => OutBlock | undefined,
  put: (part: P, offset: number) => void,
): void {
  const mine = parts
    .map((p) => ({ p, b: blockOf(p) }))
    .filter((x): x is { p: P; b: OutBlock } => x.b !== undefined && x.b.row1 > x.b.row0)
    .sort((x, y) => x.b.row0 - y.b.row0);
  let pos = 0;
  for (const { p, b } of mine) {
    if (b.rows !== pr.rows || b.cols !== pr.cols)
      throw new IbgpuError('BAD_FILE', `${p.path}: pair ${pr.key} is ${b.rows}×${b.cols}, expected ${pr.rows}×${pr.cols}`);
    if (b.row0 !== pos) {
      throw new IbgpuError(
        'BAD_FILE',
        b.row0 < pos
          ? `${p.path}: output rows [${b.row0}, ${b.row1}) of ${pr.key} overlap another partial's`
          : `output rows [${pos}, ${b.row0}) of ${pr.key} are in no partial`,
        'pass every output-split shard exactly once',
      );
    }
    put(p, b.row0 * pr.cols);
    pos = b.row1;
  }
  if (pos !== pr.rows)
    throw new IbgpuError('BAD_FILE', `output rows [${pos}, ${pr.rows}) of ${pr.key} are in no partial`, 'a shard is missing: run it and pass its file too');
}

/** Output rows [a, b) of a pair with `ro` rows in shard s (even blocks; some may be empty). */
export function outRange(ro: number, s: Shard): { a: number; b: number } {
  return { a: Math.floor((s.index * ro) / s.count), b: Math.floor(((s.index + 1) * ro) / s.count) };
}

export function edgesPartialName(s: Shard, split: EdgeSplit): string {
  return split === 'out' ? partialName('edges', s).replace(/^edges-/, 'edges-out-') : partialName('edges', s);
}

/** Edge stage of one shard: raw (undivided) sums of E over its rows (or its output block), written to `path`. */
export async function runEdgesShard(
  c: StageContext,
  bases: Map<string, LayerBasis>,
  shard: Shard,
  path: string,
  split: EdgeSplit = 'data',
): Promise<{ start: number; end: number }> {
  checkShardable(c.config);
  const range = split === 'data' ? shardRange(c.data.n, c.config.batch_size, shard) : { start: 0, end: c.data.n };
  const pts = integrationPoints(c.config.integration_method, c.config.n_intervals);
  const all = edgePairs(c.model, c.config, bases);
  const layout: EdgesLayout = { split, pairs: [] };
  const pairs: EdgePair[] = [];
  for (const p of all) {
    const key = `${p.inName}->${p.outName}`;
    if (split === 'data') {
      pairs.push(p);
      layout.pairs.push({ key, rows: p.ro, cols: p.basis.r, row0: 0, row1: p.ro });
      continue;
    }
    const { a, b } = outRange(p.ro, shard);
    layout.pairs.push({ key, rows: p.ro, cols: p.basis.r, row0: a, row1: b });
    if (b <= a) continue;
    // The block's output directions: columns [a, b) of the next basis (or of the identity).
    const sub = new Float64Array(p.dimOut * (b - a));
    for (let h = 0; h < p.dimOut; h++) {
      for (let i = a; i < b; i++) sub[h * (b - a) + i - a] = p.nextC ? p.nextC[h * p.ro + i]! : h === i ? 1 : 0;
    }
    pairs.push({ ...p, nextC: sub, ro: b - a });
  }
  const t: Record<string, Tensor> = {};
  if (pairs.length > 0) {
    // Raw sums (divisor 1): combine divides by the full N. Functional edges carry their factor 2.
    const shardRows = { shard: { ...range, divisor: 1 } };
    // The same edge pass as the one-process build's MLP sections (src/ib/sections.ts), over this shard.
    const onHost = edgeStagePath(c.engine, c.config).path === 'host';
    const E = await mlpEdgeSums({ engine: c.engine, model: c.model, data: c.data, config: c.config, pts, onHost, ...shardRows }, pairs, c.progress);
    for (const p of pairs) {
      const key = `${p.inName}->${p.outName}`;
      t[`edges/${key}/E_sum`] = { dtype: 'F64', shape: [p.ro, p.basis.r], data: E.get(key)! };
    }
  }
  await writePartial(path, t, baseMeta(c, 'edges', range, `${shard.index}/${shard.count}${split === 'out' ? ' out' : ''}`, layout));
  return range;
}

/** Checks edge partials split over output rows: all cover every datapoint, blocks tile each pair. */
function checkOutSplit(parts: Partial[]): void {
  const a = parts[0]!;
  for (const p of parts) {
    if (p.meta.config_hash !== a.meta.config_hash) {
      throw new IbgpuError(
        'BAD_FILE',
        `${p.path} was built with another config or model than ${a.path} (hash ${p.meta.config_hash} ≠ ${a.meta.config_hash})`,
        'rerun every shard with the same config and model',
      );
    }
    if (p.meta.data !== a.meta.data || p.meta.data_n !== a.meta.data_n || p.meta.row_start !== 0 || p.meta.row_end !== p.meta.data_n) {
      throw new IbgpuError('BAD_FILE', `${p.path}: an output-split edge partial must cover all ${a.meta.data_n} datapoints of '${a.meta.data}'`);
    }
    if ((JSON.parse(p.meta.layout) as EdgesLayout).split !== 'out')
      throw new IbgpuError('BAD_FILE', `${p.path} is split over data, ${a.path} over output rows`, 'combine partials of one split at a time');
  }
}

/** Sums edge partials in row order (or concatenates output blocks), divides by N, and assembles the full build result. */
export function combineEdges(parts: Partial[], stage: { stats: StatsResult; bases: Map<string, LayerBasis>; meta: PartialMeta }): IbResult {
  const a = parts[0]!.meta;
  if (a.config_hash !== stage.meta.config_hash) {
    throw new IbgpuError(
      'BAD_FILE',
      `${parts[0]!.path} was built with another config or model than the bases (hash ${a.config_hash} ≠ ${stage.meta.config_hash})`,
      'run the edge shards with --bases pointing at this stats combine',
    );
  }
  if (a.data_n !== stage.meta.data_n || a.data !== stage.meta.data)
    throw new IbgpuError('BAD_FILE', `the edge partials cover data '${a.data}' (${a.data_n}), the statistics '${stage.meta.data}' (${stage.meta.data_n})`);
  const t0 = performance.now();
  const config = JSON.parse(a.config) as BuildConfig;
  const layout = JSON.parse(a.layout) as EdgesLayout;
  const n = a.data_n;
  const edges = new Map<string, { data: Float64Array; rows: number; cols: number }>();
  if (layout.split === 'out') {
    checkOutSplit(parts);
    const layouts = new Map(parts.map((p) => [p, JSON.parse(p.meta.layout) as EdgesLayout]));
    for (const pr of layout.pairs) {
      const acc = new Float64Array(pr.rows * pr.cols);
      tileOutBlocks(
        pr,
        parts,
        (p) => layouts.get(p)!.pairs.find((x) => x.key === pr.key),
        (p, o) => {
          const v = p.tensors[`edges/${pr.key}/E_sum`]!;
          for (let i = 0; i < v.length; i++) acc[o + i] = v[i]! / n;
        },
      );
      edges.set(pr.key, { data: acc, rows: pr.rows, cols: pr.cols });
    }
  } else {
    const sorted = checkPartials(parts, 'edges');
    for (const l of layout.pairs) {
      const k = `edges/${l.key}/E_sum`;
      const acc = Float64Array.from(sorted[0]!.tensors[k]!);
      for (const p of sorted.slice(1)) {
        const v = p.tensors[k]!;
        for (let i = 0; i < v.length; i++) acc[i]! += v[i]!;
      }
      for (let i = 0; i < acc.length; i++) acc[i]! /= n;
      edges.set(l.key, { data: acc, rows: l.rows, cols: l.cols });
    }
  }
  const res: IbResult = { config, bases: stage.bases, edges, stats: stage.stats, timings: {}, n };
  res.timings['combine_edges'] = performance.now() - t0;
  if (edges.size > 0) {
    const t1 = performance.now();
    res.modules = modulesFromBuild(config.node_layers, stage.bases, edges, modularityOptions(config.modularity));
    res.timings['modules'] = performance.now() - t1;
  }
  return res;
}

/** The result without edges (calculate_edges: false), straight from a stats combine. */
export function resultWithoutEdges(config: BuildConfig, stage: { stats: StatsResult; bases: Map<string, LayerBasis>; meta: PartialMeta }): IbResult {
  return { config, bases: stage.bases, edges: new Map(), stats: stage.stats, timings: {}, n: stage.meta.data_n };
}
