// Staged, sharded and resumable transformer builds (README "Large datasets and many machines"),
// in the partial-file format of the MLP stages (src/ib/staged.ts: float64 safetensors, metadata
// with the config hash, data, shard, row range and a checksum; written atomically):
//
//   stats shard i/n   -> stats-0000i-of-0000n.safetensors          means and Grams of sequences [a, b)
//   combine           -> stats.safetensors + bases.state.safetensors (the bases that need no M′ pass:
//                        the final node layer's, or every one for basis_formula svd / pca)
//   mprime shard i/n  -> mprime-<layer>-0000i-of-0000n.safetensors  M′ of the next section whose
//                        output basis exists (M′ of node layer ℓ needs C of node layer ℓ+1, so
//                        these passes run from the output backwards, one round per section)
//   combine           -> bases.state.safetensors with that layer's basis added
//   edges shard i/n   -> edges-0000i-of-0000n.safetensors          every section's squared edges
//   combine           -> the result directory `ibgpu build` writes, plus the two stage files
//
// The passes divide by their own N·P (passes.ts), so a shard's partial holds its sequences'
// averages and combine weighs shard s by w_s = n_s / N, in row order. Means, M′ and edges are
// sums Σ_s w_s X_s; centred Grams are moved from each shard's centre μ̃_s to the global μ̃ first
// (the exact shifted-Gram identity). One shard (w = 1, no shift) reproduces the one-process build
// bit for bit; with several, the float64 sums are regrouped (relative differences ~1e-16 per
// entry, amplified in the bases only by the eigensolver's conditioning).
//
// What must hold for parts to combine: the same config (less paths, clustering and stage
// placement) and model weights (config_hash), the same token data (a SHA-256 of the token ids in
// `data`), for M′ and edge parts the very bases they were computed from (the bases file's
// checksum), shards tiling the sequences exactly once. Anything else is refused naming the file.

import type { StagePathRequests } from './gpu-passes.js';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { IbgpuError } from '../errors.js';
import type { LayerBasis } from '../ib/basis.js';
import type { BuildConfig } from '../ib/config.js';
import { integrationPoints } from '../ib/integration.js';
import type { IbResult } from '../ib/pipeline.js';
import {
  basesFromPartial,
  basesTensors,
  checkPartials,
  outRange,
  readPartial,
  shardRange,
  writePartial,
  tileOutBlocks,
  type EdgeSplit,
  type OutBlock,
  type Partial,
  type Shard,
  type Stage,
} from '../ib/staged.js';
import type { Tensor } from '../io/tensor.js';
import type { ModelProgram } from '../model/program.js';
import { compileTransformer } from '../model/transformer/compile.js';
import type { TokenDataset } from '../data/modular-arithmetic.js';
import { runBases, runEdges } from '../pipeline/driver.js';
import { mPrimeCut, sectionOutput, stochasticOf, transformerEdgePass, transformerGraphPlan, transformerMoments } from './pipeline.js';
import type { LoadedTransformerBuild } from './build.js';
import { GpuPasses } from './gpu-passes.js';
import type { NodeStatsResult, PassesFactory } from './passes.js';
import { PassesF64 } from './passes-f64.js';
import { runIdentity, type RunIdentity } from './split-files.js';

/** Marks a partial's layout as a transformer build's (combine dispatches on it). */
export const TRANSFORMER_KIND = 'transformer';

export type TransformerStage = 'stats' | 'mprime' | 'edges';

/** The data a stage reads, as it is recorded and compared: source, shape and a hash of the ids. */
export interface DataIdentity {
  data: string;
  n: number;
  P: number;
}

export function dataIdentity(d: TokenDataset): DataIdentity {
  const h = createHash('sha256');
  h.update(new Uint8Array(d.tokens.buffer, d.tokens.byteOffset, d.n * d.P * 4));
  return { data: `${d.source} [${d.n}×${d.P}] token sha256 ${h.digest('hex').slice(0, 16)}`, n: d.n, P: d.P };
}

/**
 * Hash of what determines the sums: the config less output paths, clustering, stage placement and
 * data paths (the data is compared by its token hash), and the model (architecture and weights).
 * `device` stays in: parts of the float64 and the GPU passes are not mixed.
 */
export function transformerConfigHash(config: BuildConfig, identity: RunIdentity): string {
  const h = createHash('sha256');
  const { out_dir: _o, modularity: _m, model: _p, arch: _a, data: _d, dataset: _ds, gram_dataset: _g, stage_paths: _s, ...rest } = config;
  const noPath = (v: unknown) => (v && typeof v === 'object' ? { ...(v as Record<string, unknown>), path: undefined } : (v ?? null));
  h.update(
    JSON.stringify(
      Object.keys(rest)
        .sort()
        .map((k) => [k, (rest as Record<string, unknown>)[k]]),
    ),
  );
  h.update(JSON.stringify([noPath(config.data), noPath(config.dataset), noPath(config.gram_dataset)]));
  h.update(JSON.stringify(identity));
  return h.digest('hex').slice(0, 32);
}

/** Refuses what the staged transformer build does not do, before any work. */
export function checkTransformerShardable(config: BuildConfig, shard: Shard): void {
  const bad = (m: string, hint: string) => new IbgpuError('BAD_CONFIG', m, hint);
  if (config.calculate_Cs === false)
    throw bad(
      'calculate_Cs: false already is a statistics-only run; staged builds compute statistics, bases and edges',
      'drop --stage/--resume, or drop calculate_Cs',
    );
  if (config.gram_matrices_path !== undefined || config.interaction_matrices_path !== undefined)
    throw bad(
      'gram_matrices_path / interaction_matrices_path load stored statistics or bases; staged builds compute their own',
      'run the split run without --stage/--resume, or drop the stored path and let the stats stage compute the statistics',
    );
  const formula = config.basis_formula;
  if (formula !== 'jacobian' && formula !== 'svd' && formula !== 'pca')
    throw bad(`basis_formula '${formula}' is not available for transformers`, "use 'jacobian', 'svd' or 'pca'");
  if (shard.count > 1 && stochasticOf(config) !== undefined)
    throw bad(
      'stochastic sources draw their signs per sample index, which a shard of the data does not carry yet',
      'run the stochastic build with --resume or as one shard (--shard 0/1)',
    );
}

/** Sequences [start, end) of shard i/n (as even as N allows); an empty shard is an error. */
export function sequenceRange(n: number, s: Shard): { start: number; end: number } {
  const r = shardRange(n, 1, s);
  if (r.end <= r.start)
    throw new IbgpuError('BAD_CONFIG', `shard ${s.index}/${s.count} of ${n} sequences is empty`, `use at most ${n} shards for this dataset`);
  return r;
}

/** stats-…, mprime-<layer>-…, edges-… (split over sequences) or edges-out-… (split over output rows). */
export function stagePartialName(stage: TransformerStage, s: Shard, layer?: string, split: EdgeSplit = 'data'): string {
  const pad = (v: number) => String(v).padStart(5, '0');
  const tag = stage === 'mprime' ? `-${layer}` : stage === 'edges' && split === 'out' ? '-out' : '';
  return `${stage}${tag}-${pad(s.index)}-of-${pad(s.count)}.safetensors`;
}

// ------------------------------------------------------------------ the run a stage belongs to

/**
 * The stage paths of a staged build: the GPU passes for the statistics and the edges. The host
 * statistics path keeps every node row of the data in memory for the passes after it (what shards
 * exist to avoid), and the host edge pass reads those rows, so a stage on its own cannot take
 * them; one shard gives the bits of a one-process build with these stage paths.
 */
export const STAGED_PATHS: StagePathRequests = { stats: 'gpu', edges: 'gpu' };

/** What every stage of one staged build shares: config, model, data, compiled program. */
export interface TransformerStageContext {
  config: BuildConfig;
  configPath: string;
  loaded: LoadedTransformerBuild;
  identity: RunIdentity;
  hash: string;
  /** The data M′ and the edges run on, and the data of the statistics (gram_dataset, else the same). */
  dataId: DataIdentity;
  statsId: DataIdentity;
  mp: ModelProgram;
  /** Passes over (part of) a dataset: the GPU passes on an engine, or the float64 reference. */
  passes: PassesFactory;
  /** For the partials' metadata: the adapter or 'cpu (float64 reference)'. */
  adapter: string;
  log?: (m: string) => void;
}

export function transformerStageContext(
  config: BuildConfig,
  configPath: string,
  loaded: LoadedTransformerBuild,
  gpu: PassesFactory | undefined,
  adapter: string,
): Omit<TransformerStageContext, 'log'> {
  const identity = runIdentity(loaded.model, config);
  const mp = compileTransformer(loaded.model, config.node_layers, { positions: loaded.data.P, lastPosModuleType: config.last_pos_module_type ?? null });
  const passes: PassesFactory = config.device === 'cpu' || !gpu ? async (m, t, n, P) => new PassesF64(m, t, n, P) : gpu;
  if (config.device !== 'cpu' && !gpu)
    throw new IbgpuError('BAD_CONFIG', 'no GPU passes were provided for this transformer build', 'set "device": "cpu" for the float64 reference');
  const dataId = dataIdentity(loaded.data);
  return {
    config,
    configPath,
    loaded,
    identity,
    hash: transformerConfigHash(config, identity),
    dataId,
    statsId: loaded.gramData ? dataIdentity(loaded.gramData) : dataId,
    mp,
    passes,
    adapter,
  };
}

function shardTokens(d: TokenDataset, r: { start: number; end: number }): Int32Array {
  return d.tokens.subarray(r.start * d.P, r.end * d.P);
}

function meta(c: TransformerStageContext, stage: Stage, id: DataIdentity, range: { start: number; end: number }, shard: string, layout: object) {
  return {
    stage,
    config_hash: c.hash,
    config: JSON.stringify(c.config),
    config_path: c.configPath,
    data: id.data,
    data_n: id.n,
    row_start: range.start,
    row_end: range.end,
    shard,
    batch_size: c.config.batch_size,
    adapter: c.adapter,
    layout: JSON.stringify({ kind: TRANSFORMER_KIND, ...layout }),
  };
}

const f64 = (shape: number[], data: Float64Array): Tensor => ({ dtype: 'F64', shape, data });

// ------------------------------------------------------------------ stats

interface StatsLayout {
  kind: typeof TRANSFORMER_KIND;
  centred: boolean;
  nodes: { name: string; dim: number; positions: number }[];
  /** The data M′ and the edges will run on (the bases state carries it on). */
  dataset: DataIdentity;
  identity: RunIdentity;
  /** Where each node layer's statistics came from (the passes' stagePaths). */
  paths?: Record<string, string>;
}

/** Statistics of shard i/n of the statistics data, written to `path`. */
export async function runTransformerStatsShard(c: TransformerStageContext, shard: Shard, path: string): Promise<void> {
  checkTransformerShardable(c.config, shard);
  const d = c.loaded.gramData ?? c.loaded.data;
  const range = sequenceRange(d.n, shard);
  const mp =
    d === c.loaded.data
      ? c.mp
      : compileTransformer(c.loaded.model, c.config.node_layers, { positions: d.P, lastPosModuleType: c.config.last_pos_module_type ?? null });
  const passes = await c.passes(mp, shardTokens(d, range), range.end - range.start, d.P);
  try {
    const stats = await passes.nodeStats(c.config.center);
    const t: Record<string, Tensor> = {};
    const names = c.config.node_layers.filter((n) => n !== 'output');
    const nodes = stats.map((s, i) => {
      t[`node/${names[i]}/mean`] = f64([s.dim], s.mean);
      t[`node/${names[i]}/gram`] = f64([s.dim, s.dim], s.gram);
      return { name: names[i]!, dim: s.dim, positions: s.positions };
    });
    const paths = passes.stagePaths?.();
    const layout: Omit<StatsLayout, 'kind'> = { centred: c.config.center, nodes, dataset: c.dataId, identity: c.identity, ...(paths ? { paths } : {}) };
    await writePartial(path, t, meta(c, 'stats', c.statsId, range, `${shard.index}/${shard.count}`, layout));
  } finally {
    passes.dispose?.();
  }
}

function layoutOf<T>(p: Partial): T & { kind?: string } {
  return JSON.parse(p.meta.layout) as T & { kind?: string };
}

export function isTransformerPartial(p: Partial): boolean {
  return layoutOf<object>(p).kind === TRANSFORMER_KIND;
}

function tensor(p: Partial, k: string): Float64Array {
  const v = p.tensors[k];
  if (!v) throw new IbgpuError('BAD_FILE', `${p.path}: tensor '${k}' is missing`, 'the file is damaged; rerun its shard');
  return v;
}

/** The centre of a Gram: the mean with the constant slot (last) at 0 (SPEC-transformers §4.1). */
function centreOf(mean: Float64Array): Float64Array {
  const m = Float64Array.from(mean);
  m[m.length - 1] = 0;
  return m;
}

/**
 * Statistics of all sequences from shard partials in row order: means Σ w_s μ_s; Grams Σ w_s G_s
 * with each centred G_s first moved to the global centre, G_s + δ_s e_sᵀ + e_s δ_sᵀ + e_s e_sᵀ
 * (δ_s = μ_s − μ̃_s, e_s = μ̃_s − μ̃). One shard: its own numbers unchanged.
 */
export function sumTransformerStats(sorted: Partial[]): NodeStatsResult[] {
  const N = sorted[0]!.meta.data_n;
  const layout = layoutOf<StatsLayout>(sorted[0]!);
  return layout.nodes.map((nd) => {
    const d = nd.dim;
    const means = sorted.map((p) => tensor(p, `node/${nd.name}/mean`));
    const w = sorted.map((p) => (p.meta.row_end - p.meta.row_start) / N);
    if (sorted.length === 1) return { mean: means[0]!, gram: tensor(sorted[0]!, `node/${nd.name}/gram`), dim: d, positions: nd.positions };
    const mean = new Float64Array(d);
    sorted.forEach((_p, s) => {
      for (let i = 0; i < d; i++) mean[i]! += w[s]! * means[s]![i]!;
    });
    const centre = layout.centred ? centreOf(mean) : undefined;
    const gram = new Float64Array(d * d);
    sorted.forEach((p, s) => {
      const g = tensor(p, `node/${nd.name}/gram`);
      const ws = w[s]!;
      if (!centre) {
        for (let i = 0; i < d * d; i++) gram[i]! += ws * g[i]!;
        return;
      }
      const ms = centreOf(means[s]!);
      const e = Float64Array.from(ms, (v, i) => v - centre[i]!);
      const dl = Float64Array.from(means[s]!, (v, i) => v - ms[i]!);
      for (let i = 0; i < d; i++) {
        for (let j = 0; j < d; j++) gram[i * d + j]! += ws * (g[i * d + j]! + dl[i]! * e[j]! + e[i]! * dl[j]! + e[i]! * e[j]!);
      }
    });
    return { mean, gram, dim: d, positions: nd.positions };
  });
}

// ------------------------------------------------------------------ the stage directory

interface BasesStateLayout {
  kind: typeof TRANSFORMER_KIND;
  layers: { name: string; dim: number; k: number; r: number; centred: boolean; dropped: { stage1: number; stage2: number }; fields: string[] }[];
  /** The node layer whose M′ pass comes next (null: every basis is built). */
  next: string | null;
  dataset: DataIdentity;
  stats_data: DataIdentity;
  identity: RunIdentity;
  /** Shards each M′ round was combined from, and the stats combine's. */
  rounds: Record<string, string>;
  paths: Record<string, string>;
}

/** The stage directory's state: combined statistics, the bases so far, what comes next. */
export interface TransformerStageState {
  dir: string;
  stats: NodeStatsResult[];
  bases: Map<string, LayerBasis>;
  layout: BasesStateLayout;
  config: BuildConfig;
  hash: string;
  /** Checksum of bases.state.safetensors: M′ and edge partials record the one they used. */
  basesChecksum: string;
  configPath: string;
  adapter: string;
}

/**
 * The bases stage of a staged build: the build driver's, with the transformer specialisations, over
 * the combined statistics, from the bases the stage directory holds already (`stored`) and the M′
 * of this round (`round`, combined from its partials); it stops at the first node layer whose M′
 * a later round computes. A combine holds no model, so no step here may read the width of an
 * unrotated final node layer (none does: PCA bases and an M′ computed by the shards ignore it).
 */
async function stagedBases(
  config: BuildConfig,
  stats: NodeStatsResult[],
  stored: ReadonlyMap<string, LayerBasis>,
  round?: { section: number; M: Float64Array },
): Promise<Map<string, LayerBasis>> {
  const names = config.node_layers;
  const moments = transformerMoments(names, stats, config.center);
  const r = await runBases({
    nodeLayers: names,
    finalWidth: () => {
      throw new Error("a staged combine has no model to take the final node layer's width from");
    },
    plan: transformerGraphPlan(config, names, moments, { mPrime: (l) => (round && l === round.section ? round.M : undefined) }),
    stored,
  });
  return r.bases;
}

/** The next node layer (from the output backwards) without a basis, or null. */
function nextLayer(config: BuildConfig, bases: Map<string, LayerBasis>): string | null {
  const names = config.node_layers;
  for (let l = names.length - 2; l >= 0; l--) if (!bases.has(names[l]!)) return names[l]!;
  return null;
}

async function writeState(
  dir: string,
  common: ReturnType<typeof meta>,
  config: BuildConfig,
  bases: Map<string, LayerBasis>,
  rest: Omit<BasesStateLayout, 'kind' | 'layers' | 'next'>,
): Promise<void> {
  // Node-layer order, the final node layer last, as the one-process build lists them.
  const ordered = new Map<string, LayerBasis>();
  for (const n of config.node_layers) if (bases.has(n)) ordered.set(n, bases.get(n)!);
  const bt = basesTensors(ordered);
  const layout = { kind: TRANSFORMER_KIND, layers: bt.layout.layers, next: nextLayer(config, ordered), ...rest };
  await writePartial(`${dir}/bases.state.safetensors`, bt.tensors, { ...common, stage: 'bases', layout: JSON.stringify(layout) });
}

/**
 * Combines stats partials (checked to belong together and tile the sequences) into `dir`: stats.safetensors (the statistics of all sequences)
 * and bases.state.safetensors (the final node layer's basis; every basis for svd / pca).
 */
export async function combineTransformerStats(parts: Partial[], dir: string): Promise<TransformerStageState> {
  const sorted = checkPartials(parts, 'stats');
  const a = sorted[0]!;
  const layout = layoutOf<StatsLayout>(a);
  const config = JSON.parse(a.meta.config) as BuildConfig;
  const stats = sumTransformerStats(sorted);
  const common = { ...stripMeta(a), row_start: 0, row_end: a.meta.data_n, shard: `combined ${sorted.length}` };
  const t: Record<string, Tensor> = {};
  layout.nodes.forEach((nd, i) => {
    t[`node/${nd.name}/mean`] = f64([nd.dim], stats[i]!.mean);
    t[`node/${nd.name}/gram`] = f64([nd.dim, nd.dim], stats[i]!.gram);
  });
  await writePartial(`${dir}/stats.safetensors`, t, { ...common, stage: 'stats', layout: a.meta.layout });
  // The final node layer's basis, and every one for svd / pca.
  const bases = await stagedBases(config, stats, new Map());
  const ds = layout.dataset;
  await writeState(dir, { ...common, data: ds.data, data_n: ds.n, row_end: ds.n }, config, bases, {
    dataset: ds,
    stats_data: { data: a.meta.data, n: a.meta.data_n, P: layout.nodes[0]?.positions ?? 0 },
    identity: layout.identity,
    rounds: { stats: `${sorted.length} shard(s)` },
    paths: { ...(layout.paths ?? {}) },
  });
  return loadTransformerStage(dir);
}

function stripMeta(p: Partial) {
  const { checksum: _c, format: _f, ibgpu_version: _v, ...rest } = p.meta;
  return rest;
}

/** Reads and verifies a stage directory (both files, same build; `hash`: this config's). */
export async function loadTransformerStage(dir: string, hash?: string): Promise<TransformerStageState> {
  const sp = await readPartial(`${dir}/stats.safetensors`, 'stats');
  const bp = await readPartial(`${dir}/bases.state.safetensors`, 'bases');
  if (!isTransformerPartial(bp) || !isTransformerPartial(sp))
    throw new IbgpuError('BAD_FILE', `${dir} holds the stage files of an MLP build`, 'point --bases at the combine output of this transformer config');
  if (sp.meta.config_hash !== bp.meta.config_hash)
    throw new IbgpuError(
      'BAD_FILE',
      `${dir}: stats.safetensors and bases.state.safetensors come from different builds`,
      'rerun `ibgpu combine` on the stats partials',
    );
  if (hash && bp.meta.config_hash !== hash)
    throw new IbgpuError(
      'BAD_FILE',
      `${dir}/bases.state.safetensors was built for another config, model or data (hash ${bp.meta.config_hash} ≠ ${hash})`,
      "point --bases at the combine output of this config's stats shards",
    );
  const config = JSON.parse(bp.meta.config) as BuildConfig;
  const layout = layoutOf<BasesStateLayout>(bp);
  const stats = sumTransformerStats([sp]);
  return {
    dir,
    stats,
    bases: basesFromPartial(bp),
    layout,
    config,
    hash: bp.meta.config_hash,
    basesChecksum: bp.meta.checksum,
    configPath: bp.meta.config_path,
    adapter: bp.meta.adapter,
  };
}

/** The stage directory must belong to this run: same hash and the data the context reads. */
export function checkStageFor(c: TransformerStageContext, st: TransformerStageState): void {
  if (st.hash !== c.hash)
    throw new IbgpuError(
      'BAD_FILE',
      `${st.dir}/bases.state.safetensors was built for another config, model or data (hash ${st.hash} ≠ ${c.hash})`,
      "point --bases at the combine output of this config's stats shards",
    );
  if (st.layout.dataset.data !== c.dataId.data)
    throw new IbgpuError(
      'BAD_FILE',
      `${st.dir}: its bases were built for data '${st.layout.dataset.data}', this run reads '${c.dataId.data}'`,
      'run every stage on the same data',
    );
}

// ------------------------------------------------------------------ M′

interface MprimeLayout {
  kind: typeof TRANSFORMER_KIND;
  layer: string;
  section: number;
  dim: number;
  bases_checksum: string;
  path?: string;
}

/** M′ of the stage's next node layer over shard i/n of the dataset, written to `dir`; returns the path. */
export async function runTransformerMprimeShard(c: TransformerStageContext, st: TransformerStageState, shard: Shard, dir: string): Promise<string> {
  checkTransformerShardable(c.config, shard);
  checkStageFor(c, st);
  const layer = st.layout.next;
  if (layer === null)
    throw new IbgpuError('BAD_CONFIG', `every basis in ${st.dir} is built already: there is no M′ pass left`, 'run --stage edges --bases with it');
  const path = `${dir}/${stagePartialName('mprime', shard, layer)}`;
  const l = c.config.node_layers.indexOf(layer);
  const d = c.loaded.data;
  const range = sequenceRange(d.n, shard);
  const tokens = shardTokens(d, range);
  const ns = range.end - range.start;
  const pts = integrationPoints(c.config.integration_method, c.config.n_intervals);
  // Naive gradient flow: node layer ℓ < L−1 differentiates the final node layer's basis through
  // the sections ℓ … L−1 composed, as the one-process build does (mPrimeCut).
  const cut = mPrimeCut(c.mp, c.config, l);
  const mp = cut?.program ?? c.mp;
  const { Chat, rOut } = sectionOutput(c.mp, st.bases, cut?.outSection ?? l);
  const passes = await c.passes(mp, tokens, ns, d.P);
  try {
    const M = await passes.mPrime(l, Chat, rOut, pts, stochasticOf(c.config));
    const dim = st.stats[l]!.dim;
    const where = passes.stagePaths?.()[`m_prime ${layer}->${c.config.node_layers[l + 1]}`];
    const layout: Omit<MprimeLayout, 'kind'> = { layer, section: l, dim, bases_checksum: st.basesChecksum, ...(where ? { path: where } : {}) };
    await writePartial(path, { [`mprime/${layer}`]: f64([dim, dim], M) }, meta(c, 'mprime', c.dataId, range, `${shard.index}/${shard.count}`, layout));
  } finally {
    passes.dispose?.();
  }
  return path;
}

/** Parts of a later stage must come from this stage directory's current bases. */
function checkAgainstState(parts: Partial[], st: TransformerStageState, what: string): void {
  for (const p of parts) {
    if (p.meta.config_hash !== st.hash)
      throw new IbgpuError(
        'BAD_FILE',
        `${p.path} was built with another config, model or data than ${st.dir} (hash ${p.meta.config_hash} ≠ ${st.hash})`,
        `run the ${what} shards with --bases pointing at this stage directory`,
      );
    if (p.meta.data !== st.layout.dataset.data || p.meta.data_n !== st.layout.dataset.n)
      throw new IbgpuError('BAD_FILE', `${p.path} covers data '${p.meta.data}', the bases in ${st.dir} '${st.layout.dataset.data}'`);
    if (layoutOf<{ bases_checksum: string }>(p).bases_checksum !== st.basesChecksum)
      throw new IbgpuError(
        'BAD_FILE',
        `${p.path} was computed from other bases than those now in ${st.dir}/bases.state.safetensors`,
        `rerun its ${what} shard with --bases ${st.dir}`,
      );
  }
}

/** Adds the basis of the node layer the M′ partials are for to the stage directory `dir`. */
export async function combineTransformerMprime(
  parts: Partial[],
  st: TransformerStageState,
  dir: string,
): Promise<{ state: TransformerStageState; basis: LayerBasis }> {
  const sorted = checkPartials(parts, 'mprime');
  const lay = layoutOf<MprimeLayout>(sorted[0]!);
  for (const p of sorted) {
    if (layoutOf<MprimeLayout>(p).layer !== lay.layer)
      throw new IbgpuError(
        'BAD_FILE',
        `${p.path} holds M′ of ${layoutOf<MprimeLayout>(p).layer}, ${sorted[0]!.path} of ${lay.layer}`,
        'combine one node layer at a time',
      );
  }
  if (st.layout.next !== lay.layer)
    throw new IbgpuError(
      'BAD_FILE',
      st.bases.has(lay.layer)
        ? `${sorted[0]!.path} holds M′ of ${lay.layer}, whose basis ${st.dir} has already (${st.layout.next === null ? 'every basis is built' : `M′ of ${st.layout.next} is next`})`
        : `${sorted[0]!.path} holds M′ of ${lay.layer}, but ${st.dir} needs M′ of ${st.layout.next ?? '(none)'} first`,
      'combine the partials of the round the stage directory names next',
    );
  checkAgainstState(sorted, st, 'M′');
  const N = sorted[0]!.meta.data_n;
  const key = `mprime/${lay.layer}`;
  let M = tensor(sorted[0]!, key);
  if (sorted.length > 1) {
    M = new Float64Array(M.length);
    for (const p of sorted) {
      const w = (p.meta.row_end - p.meta.row_start) / N;
      const v = tensor(p, key);
      for (let i = 0; i < v.length; i++) M[i]! += w * v[i]!;
    }
  }
  const config = st.config;
  const bases = await stagedBases(config, st.stats, st.bases, { section: lay.section, M });
  const basis = bases.get(lay.layer)!;
  const bp = await readPartial(`${st.dir}/bases.state.safetensors`, 'bases');
  if (dir !== st.dir) {
    // Another output directory: it gets the statistics too, so that it is a stage directory.
    const sp = await readPartial(`${st.dir}/stats.safetensors`, 'stats');
    const raw: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(sp.tensors)) raw[k] = f64(sp.shapes[k]!, v);
    await writePartial(`${dir}/stats.safetensors`, raw, stripMeta(sp));
  }
  const { kind: _k, layers: _l, next: _n, ...rest } = st.layout;
  const paths = { ...rest.paths, ...(lay.path ? { [`m_prime ${lay.layer}`]: lay.path } : {}) };
  await writeState(dir, stripMeta(bp), config, bases, {
    ...rest,
    paths,
    rounds: { ...rest.rounds, [`m_prime ${lay.layer}`]: `${sorted.length} shard(s)` },
  });
  return { state: await loadTransformerStage(dir), basis };
}

// ------------------------------------------------------------------ edges

interface EdgesLayout {
  kind: typeof TRANSFORMER_KIND;
  /** 'data': sums over a block of sequences; 'out': all sequences, output rows [row0, row1) of each pair. */
  split: EdgeSplit;
  pairs: OutBlock[];
  bases_checksum: string;
  paths?: Record<string, string>;
}

function checkBasesComplete(st: TransformerStageState): void {
  if (st.layout.next !== null)
    throw new IbgpuError(
      'BAD_CONFIG',
      `the bases in ${st.dir} are not complete: M′ of ${st.layout.next} is next`,
      `run --stage mprime --bases ${st.dir} on every shard and combine its partials first`,
    );
}

/**
 * The passes' stage paths with the sections' edge paths in network order (the driver runs the last
 * sections first), after the others: the order the partial and the result's manifest list them in.
 */
function edgePathsInNetworkOrder(paths: Record<string, string>, pairs: readonly OutBlock[]): Record<string, string> {
  const edgeKeys = pairs.map((p) => `edges ${p.key}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(paths)) if (!edgeKeys.includes(k)) out[k] = v;
  for (const k of edgeKeys) if (paths[k] !== undefined) out[k] = paths[k];
  return out;
}

/**
 * Every section's squared edges on shard i/n, written to `path`: over its block of sequences
 * (split 'data'), or over all sequences for its block of each section's output rows (split 'out',
 * rib's dist_split_over out_dim: each output direction's row needs only its own column of C).
 */
export async function runTransformerEdgesShard(
  c: TransformerStageContext,
  st: TransformerStageState,
  shard: Shard,
  path: string,
  split: EdgeSplit = 'data',
): Promise<void> {
  checkTransformerShardable(c.config, shard);
  if (split === 'out' && stochasticOf(c.config)?.edges !== undefined)
    throw new IbgpuError(
      'BAD_CONFIG',
      'stochastic edge sources draw their signs per output row index, which an output block renumbers',
      'split the edges over the data (--split data)',
    );
  checkStageFor(c, st);
  checkBasesComplete(st);
  const d = c.loaded.data;
  const range = split === 'data' ? sequenceRange(d.n, shard) : { start: 0, end: d.n };
  const names = c.config.node_layers;
  const pts = integrationPoints(c.config.integration_method, c.config.n_intervals);
  const passes = await c.passes(c.mp, shardTokens(d, range), range.end - range.start, d.P);
  try {
    // The linear closed forms take the second moment of their input from the statistics; the
    // one-process build has it from its own statistics pass over the same data.
    if (passes instanceof GpuPasses && !c.loaded.gramData) passes.useStatistics(st.stats, c.config.center);
    // The edge pass of the one-process build's transformer sections, over this shard's sequences
    // (or, split over output rows, this shard's block of each section's rows), run by the driver.
    const block = split === 'out' ? (_l: number, rOut: number) => outRange(rOut, shard) : undefined;
    const pass = transformerEdgePass(passes, c.mp, pts, stochasticOf(c.config), block);
    const g = await runEdges(
      c.mp,
      st.bases,
      c.mp.sections.map(() => pass),
    );
    const t: Record<string, Tensor> = {};
    const pairs: EdgesLayout['pairs'] = [];
    for (let l = 0; l < names.length - 1; l++) {
      const key = `${names[l]}->${names[l + 1]}`;
      const E = g.edges.get(key)!;
      const { rOut } = sectionOutput(c.mp, st.bases, l);
      const { a, b } = block ? block(l, rOut) : { a: 0, b: rOut };
      pairs.push({ key, rows: rOut, cols: E.cols, row0: a, row1: b });
      if (E.rows > 0) t[`edges/${key}/E`] = f64([E.rows, E.cols], E.data);
    }
    const paths = passes.stagePaths?.();
    const layout: Omit<EdgesLayout, 'kind'> = {
      split,
      pairs,
      bases_checksum: st.basesChecksum,
      ...(paths ? { paths: edgePathsInNetworkOrder(paths, pairs) } : {}),
    };
    await writePartial(path, t, meta(c, 'edges', c.dataId, range, `${shard.index}/${shard.count}${split === 'out' ? ' out' : ''}`, layout));
  } finally {
    passes.dispose?.();
  }
}

/** The partial file of `stage` for `shard` in `dir` (M′: of the next node layer of `st`). */
export function stagePartialPath(dir: string, stage: TransformerStage, shard: Shard, st?: TransformerStageState, split: EdgeSplit = 'data'): string {
  return join(dir, stagePartialName(stage, shard, st?.layout.next ?? undefined, split));
}

/**
 * One shard of `stage` into its partial file in `dir` (stagePartialPath): the statistics, M′ of the
 * next node layer of the stage directory `st`, or the edges from its complete bases. The one
 * dispatch that `ibgpu build --stage` and the one-process resume share; returns the path.
 */
export async function runTransformerShard(
  c: TransformerStageContext,
  stage: TransformerStage,
  st: TransformerStageState | undefined,
  shard: Shard,
  dir: string,
  split: EdgeSplit = 'data',
): Promise<string> {
  if (stage === 'stats') {
    const path = stagePartialPath(dir, stage, shard);
    await runTransformerStatsShard(c, shard, path);
    return path;
  }
  if (!st)
    throw new IbgpuError('BAD_CONFIG', `the ${stage} stage needs the stage directory of the bases`, 'pass --bases DIR (the directory `ibgpu combine` writes)');
  if (stage === 'mprime') return runTransformerMprimeShard(c, st, shard, dir);
  const path = stagePartialPath(dir, stage, shard, st, split);
  await runTransformerEdgesShard(c, st, shard, path, split);
  return path;
}

/** Edge partials split over output rows: one split, every sequence, the same pairs; blocks tile each pair's rows. */
function concatOutBlocks(parts: Partial[], st: TransformerStageState): IbResult['edges'] {
  const a = parts[0]!;
  checkAgainstState(parts, st, 'edge');
  const lays = parts.map((p) => layoutOf<EdgesLayout>(p));
  parts.forEach((p, i) => {
    if (lays[i]!.split !== 'out')
      throw new IbgpuError('BAD_FILE', `${p.path} is split over the data, ${a.path} over output rows`, 'combine partials of one split at a time');
    if (p.meta.row_start !== 0 || p.meta.row_end !== p.meta.data_n)
      throw new IbgpuError('BAD_FILE', `${p.path}: an output-split edge partial must cover all ${p.meta.data_n} sequences`);
  });
  const edges: IbResult['edges'] = new Map();
  for (const pr of lays[0]!.pairs) {
    const E = new Float64Array(pr.rows * pr.cols);
    tileOutBlocks(
      pr,
      parts,
      (p) => lays[parts.indexOf(p)]!.pairs.find((x) => x.key === pr.key),
      (p, o) => E.set(tensor(p, `edges/${pr.key}/E`), o),
    );
    edges.set(pr.key, { data: E, rows: pr.rows, cols: pr.cols });
  }
  return edges;
}

/** The build result from edge partials and the stage directory's bases: sums in row order with weights n_s/N, or output blocks concatenated. */
export function combineTransformerEdges(parts: Partial[], st: TransformerStageState): IbResult {
  checkBasesComplete(st);
  if (parts.length === 0) throw new IbgpuError('BAD_CONFIG', 'no edge partials given');
  if (layoutOf<EdgesLayout>(parts[0]!).split === 'out') return { ...transformerResultWithoutEdges(st), edges: concatOutBlocks(parts, st) };
  const sorted = checkPartials(parts, 'edges');
  checkAgainstState(sorted, st, 'edge');
  const N = sorted[0]!.meta.data_n;
  const layout = layoutOf<EdgesLayout>(sorted[0]!);
  const edges: IbResult['edges'] = new Map();
  for (const pr of layout.pairs) {
    const k = `edges/${pr.key}/E`;
    let E = tensor(sorted[0]!, k);
    if (sorted.length > 1) {
      E = new Float64Array(E.length);
      for (const p of sorted) {
        if (layoutOf<EdgesLayout>(p).split !== 'data')
          throw new IbgpuError('BAD_FILE', `${p.path} is split over output rows, ${sorted[0]!.path} over the data`, 'combine partials of one split at a time');
        const w = (p.meta.row_end - p.meta.row_start) / N;
        const v = tensor(p, k);
        for (let i = 0; i < v.length; i++) E[i]! += w * v[i]!;
      }
    }
    edges.set(pr.key, { data: E, rows: pr.rows, cols: pr.cols });
  }
  return { ...transformerResultWithoutEdges(st), edges };
}

/** The result of a stage directory whose bases are complete, without edges (calculate_edges: false). */
export function transformerResultWithoutEdges(st: TransformerStageState): IbResult {
  checkBasesComplete(st);
  const bases = new Map<string, LayerBasis>();
  for (const n of st.config.node_layers) if (st.bases.has(n)) bases.set(n, st.bases.get(n)!);
  return { config: st.config, bases, edges: new Map(), stats: { nodes: new Map(), gates: new Map() }, timings: {}, n: st.layout.dataset.n };
}

/** The manifest fields a one-process transformer build writes, for a staged result. */
export function transformerManifestExtra(st: TransformerStageState, edgePaths?: Record<string, string>): Record<string, unknown> {
  return {
    model: 'transformer',
    positions: st.layout.dataset.P,
    transformer_run: st.layout.identity,
    stage_paths: { ...st.layout.paths, ...(edgePaths ?? {}) },
    staged: { config_hash: st.hash, rounds: st.layout.rounds },
  };
}
