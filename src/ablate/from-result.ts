// `ibgpu ablate`: node and edge ablations and the sparsity comparison of a build result, written
// next to it as ablations.json (runs of other types already there are kept), ablations.svg
// (score vs directions kept, IB vs PCA vs neuron) and ablations-edges.svg (edges needed vs the
// tolerated score difference).

import { join, resolve } from 'node:path';
import { IbgpuError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOwnedFiles, isResultDir, RESULT_ADDED_FILES } from '../io/output-guard.js';
import { loadNpy } from '../io/npy.js';
import { openSafetensors } from '../io/safetensors.js';
import { toFloat64 } from '../io/tensor.js';
import type { DataSource } from '../ib/data.js';
import type { BuildConfig } from '../ib/config.js';
import type { MlpModel } from '../model/mlp.js';
import type { Engine } from '../runtime/engine.js';
import { readEdges, type Manifest } from '../report/result-dir.js';
import { edgeSparsity, type SparsityRow } from '../report/sparsity.js';
import { VERSION } from '../version.js';
import { ablationBasis, BASIS_KINDS, identityBasis, type BasisKind, type StoredBasis } from './bases.js';
import { basisEdges } from './basis-edges.js';
import type { AblationConfig, AblationType } from './config.js';
import { EvalSet, type Scores } from './evaluate.js';
import { GpuFoldedMlp } from './model.js';
import { edgeAblation, nodeAblation, type EdgeLayerResult, type NodeLayerResult } from './run.js';
import { BASIS_COLORS, edgeAblationSvg, nodeAblationSvg, type Panel, type Series } from './svg.js';

export const ABLATIONS_FORMAT = 'ibgpu-ablations-1';
export const DEFAULT_EDGE_TARGETS: Record<'accuracy' | 'ce_loss', number[]> = {
  accuracy: [0.001, 0.003, 0.01, 0.03, 0.1],
  ce_loss: [0.001, 0.01, 0.03, 0.1, 0.3],
};

export interface AblationRun {
  ablation_type: AblationType;
  config: AblationConfig;
  eval_type: AblationConfig['eval_type'];
  no_ablation_result: number;
  no_ablation: Scores;
  dataset_rows: [number, number];
  time_s: number;
  node?: NodeLayerResult[];
  edge?: EdgeLayerResult[];
}

export interface AblationsFile {
  format: typeof ABLATIONS_FORMAT;
  ibgpu_version: string;
  updated: string;
  runs: Partial<Record<AblationType, AblationRun>>;
  sparsity?: { note: string; rows: SparsityRow[] };
}

export async function readStoredBases(dir: string, manifest: Manifest): Promise<Map<string, StoredBasis>> {
  const st = await openSafetensors(join(dir, 'basis.safetensors'));
  try {
    const out = new Map<string, StoredBasis>();
    for (const [name, l] of Object.entries(manifest.layers)) {
      const get = async (k: string) => (await st.readF64(`${name}/${k}`)).data;
      const D = await get('D');
      out.set(name, {
        dim: l.orig_dim,
        r: l.rib_dim,
        k: D.length,
        centred: l.centred,
        mean: await get('mean'),
        U: await get('U'),
        D,
        C: await get('C'),
        Cpinv: await get('C_pinv'),
        ...(st.has(`${name}/Lambda`) ? { Lambda: await get('Lambda') } : {}),
      });
    }
    return out;
  } finally {
    await st.close();
  }
}

/** Labels of the build's data: the MNIST digits' own, else an .npy file of class indices. */
export async function loadLabels(config: BuildConfig, labelsPath: string | undefined, n: number): Promise<ArrayLike<number>> {
  if (labelsPath) {
    const t = await loadNpy(resolve(labelsPath));
    if (t.shape.length !== 1) throw new IbgpuError('BAD_FILE', `${labelsPath}: labels must be a 1-D array, got shape [${t.shape.join(', ')}]`);
    return toFloat64(t);
  }
  if ((config.data?.type ?? 'mnist') === 'mnist') {
    const { loadMnistDigits } = await import('../data/mnist.js');
    return (await loadMnistDigits({ count: n })).labels;
  }
  throw new IbgpuError(
    'BAD_CONFIG',
    `the build's data (${config.data?.type}) has no labels ibgpu knows of`,
    'pass --labels FILE.npy (one class index per datapoint) or "labels" in the ablation config',
  );
}

/** Rows [start, end) of a data source, with its labels. */
function sliceData(
  data: DataSource,
  labels: ArrayLike<number>,
  rows: [number, number] | undefined,
): { data: DataSource; labels: ArrayLike<number>; rows: [number, number] } {
  if (labels.length !== data.n) throw new IbgpuError('BAD_CONFIG', `the data has ${data.n} rows but ${labels.length} labels`);
  if (!rows) return { data, labels, rows: [0, data.n] };
  const [a, b] = rows;
  if (b > data.n) throw new IbgpuError('BAD_CONFIG', `dataset.rows [${a}, ${b}) reaches past the ${data.n} datapoints`);
  return {
    data: { n: b - a, d: data.d, description: `${data.description}, rows ${a}..${b}`, readRows: (s, c) => data.readRows(a + s, c) },
    labels: Array.from({ length: b - a }, (_, i) => labels[a + i]!),
    rows,
  };
}

export interface AblateInputs {
  engine: Engine;
  dir: string;
  manifest: Manifest;
  config: BuildConfig;
  model: MlpModel;
  data: DataSource;
  labels: ArrayLike<number>;
  log?: (m: string) => void;
}

/** Runs one ablation type on a build result (nothing written). */
export async function runAblation(inp: AblateInputs, cfg: AblationConfig): Promise<AblationRun> {
  const t0 = performance.now();
  const { engine, manifest, model } = inp;
  const log = inp.log ?? (() => {});
  const runner = new GpuFoldedMlp(engine, model);
  const stored = await readStoredBases(inp.dir, manifest);
  const nodeLayers = manifest.config.node_layers;
  // Node layer names → the runner's section index (the model's layer index; 'output' = L).
  const index = (name: string) => {
    const i = runner.nodeLayers.indexOf(name);
    if (i < 0) throw new IbgpuError('BAD_CONFIG', `node layer '${name}' is not a node layer of the model`, `node layers: ${runner.nodeLayers.join(', ')}`);
    return i;
  };
  const sliced = sliceData(inp.data, inp.labels, cfg.dataset?.rows);
  const ev = await EvalSet.create(engine, runner, sliced.data, sliced.labels, cfg.batch_size ?? 4096);
  try {
    const base = await ev.score(0, (b) => ev.actsAt(0, b));
    const baseScore = cfg.eval_type === 'accuracy' ? base.accuracy : base.ce_loss;
    log(`no ablation: accuracy ${base.accuracy.toFixed(4)}, ce_loss ${base.ce_loss.toFixed(4)} on ${ev.n} datapoints`);
    const run: AblationRun = {
      ablation_type: cfg.ablation_type,
      config: cfg,
      eval_type: cfg.eval_type,
      no_ablation_result: baseScore,
      no_ablation: base,
      dataset_rows: sliced.rows,
      time_s: 0,
    };
    if (cfg.ablation_type === 'edge') {
      const layers = cfg.ablation_node_layers ?? nodeLayers;
      if (!nodeLayers.join('|').includes(layers.join('|'))) {
        throw new IbgpuError('BAD_CONFIG', `ablation_node_layers ${layers.join(', ')} must be consecutive node layers of the build (${nodeLayers.join(', ')})`);
      }
      const edges = await readEdges(inp.dir);
      const schedule = cfg.schedule;
      const targets = schedule.schedule_type === 'bisect' ? (cfg.score_target_differences ?? [schedule.score_target_difference]) : undefined;
      run.edge = [];
      for (let t = 0; t + 1 < layers.length; t++) {
        const a = layers[t]!;
        const b = layers[t + 1]!;
        const E = edges.find((e) => e.from === a && e.to === b);
        if (!E) throw new IbgpuError('BAD_FILE', `edges.safetensors has no edges ${a}->${b}`, 'rebuild with calculate_edges: true');
        const sa = stored.get(a)!;
        const bin = ablationBasis(sa, 'ib');
        const sb = stored.get(b);
        const bout = sb ? ablationBasis(sb, 'ib') : identityBasis(runner.width(index(b)));
        log(`edge ablation ${a} -> ${b}: ${E.rows}x${E.cols} edges`);
        run.edge.push(await edgeAblation(engine, ev, index(a), bin, bout, E.data, schedule, cfg.eval_type, base, sa.centred, targets ? { targets } : {}));
      }
    } else {
      const layers = cfg.ablation_node_layers ?? nodeLayers.filter((l) => l !== 'output');
      run.node = [];
      for (const name of layers) {
        if (name === 'output') throw new IbgpuError('BAD_CONFIG', 'the output node layer cannot be ablated (rib: "Cannot ablate the output node layer")');
        const s = stored.get(name);
        if (!s) throw new IbgpuError('BAD_CONFIG', `node layer '${name}' has no basis in this result`);
        const b = ablationBasis(s, cfg.ablation_type);
        log(`${cfg.ablation_type} ablation of ${name}: ${b.r} of ${b.dim} directions`);
        run.node.push(await nodeAblation(ev, index(name), b, cfg.schedule, cfg.eval_type, base));
      }
    }
    run.time_s = (performance.now() - t0) / 1000;
    return run;
  } finally {
    ev.dispose();
    runner.dispose();
  }
}

/** Edge sparsity per layer pair and basis (IB edges from the build; PCA and neuron edges computed now). */
export async function sparsityComparison(inp: AblateInputs): Promise<SparsityRow[]> {
  const { engine, manifest, model, config } = inp;
  const stored = await readStoredBases(inp.dir, manifest);
  const nodeLayers = manifest.config.node_layers;
  const all = [...model.layers.map((l) => l.name), 'output'];
  const ibEdges = await readEdges(inp.dir);
  const rows: SparsityRow[] = [];
  const sections = nodeLayers.slice(0, -1).map((n) => all.indexOf(n));
  const widths = all.map((_, j) => (j < model.layers.length ? model.layers[j]!.dIn + 1 : model.layers[model.layers.length - 1]!.dOut));
  const perKind = new Map<BasisKind, Map<string, Float64Array>>();
  const basesOf = (kind: BasisKind) =>
    all.map((n) => {
      const s = stored.get(n);
      return s && nodeLayers.includes(n) ? ablationBasis(s, kind) : undefined;
    });
  for (const kind of ['pca', 'neuron'] as const) {
    inp.log?.(`edges in the ${kind} basis`);
    const bases = basesOf(kind);
    const means = all.map((n) => stored.get(n)?.mean ?? new Float64Array(0));
    const centred = all.map((n) => stored.get(n)?.centred ?? false);
    perKind.set(
      kind,
      await basisEdges(
        engine,
        model,
        inp.data,
        all,
        sections,
        bases,
        means,
        centred,
        { method: config.integration_method, nIntervals: config.n_intervals },
        config.batch_size,
      ),
    );
  }
  for (const j of sections) {
    const a = all[j]!;
    const b = all[j + 1]!;
    const pair = `${a}->${b}`;
    const padTo = (widths[j]! - 1) * widths[j + 1]!;
    for (const kind of BASIS_KINDS) {
      let E: ArrayLike<number> | undefined;
      let rowsN: number;
      let cols: number;
      let skip: number;
      if (kind === 'ib') {
        const m = ibEdges.find((e) => e.from === a && e.to === b);
        if (!m) continue;
        E = m.data;
        rowsN = m.rows;
        cols = m.cols;
        skip = stored.get(a)!.centred ? 0 : -1;
      } else {
        const bases = basesOf(kind);
        E = perKind.get(kind)!.get(pair);
        if (!E) continue;
        cols = bases[j]!.r;
        rowsN = E.length / cols;
        skip = bases[j]!.constant;
      }
      rows.push({ pair, basis: kind, ...edgeSparsity(E, rowsN, cols, skip, padTo) });
    }
  }
  return rows;
}

export const SPARSITY_NOTE =
  "Edges from the constant direction are left out (free in edge ablations). Each basis's edge list is " +
  'padded with zero edges to (dim_in − 1)·dim_out, the folded widths without the constant input, so bases that keep different ' +
  'numbers of directions are compared over the same count; n50/n90/n99 are the fewest edges holding that share of the edge mass.';

export async function readAblations(dir: string): Promise<AblationsFile | undefined> {
  const { readFile } = await import('node:fs/promises');
  try {
    const v = JSON.parse(await readFile(join(dir, 'ablations.json'), 'utf8')) as AblationsFile;
    if (v.format !== ABLATIONS_FORMAT) throw new IbgpuError('BAD_FILE', `${join(dir, 'ablations.json')} is not an ibgpu ablations file`);
    return v;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export function nodePanels(f: AblationsFile): Panel[] {
  const layers = new Map<string, Series[]>();
  for (const kind of BASIS_KINDS) {
    const run = f.runs[kind];
    for (const l of run?.node ?? []) {
      const s = layers.get(l.node_layer) ?? [];
      s.push({
        label: kind === 'ib' ? 'IB' : kind === 'pca' ? 'PCA' : 'neuron',
        color: BASIS_COLORS[kind]!,
        points: l.points.map((p) => ({ x: p.kept, y: p.score })),
      });
      layers.set(l.node_layer, s);
    }
  }
  return [...layers].map(([title, series]) => ({ title, series }));
}

export function edgeSeries(f: AblationsFile): Series[] {
  return (f.runs.edge?.edge ?? [])
    .filter((l) => l.required.length > 0)
    .map((l) => ({
      label: `${l.node_layer} → ${l.next_node_layer}`,
      color: '',
      points: l.required.map((r) => ({ x: Math.max(r.score_target_difference, 1e-6), y: Math.max(r.n_edges_required, 1) })),
    }));
}

/**
 * Throws BAD_OUTPUT unless `dir` is an ibgpu build result (ablation files are written only into
 * one, next to what they were computed from) and writable. Called before any computation.
 */
export async function checkAblationOutput(dir: string): Promise<void> {
  await checkOwnedFiles(dir, RESULT_ADDED_FILES, isResultDir, { what: 'the ablation results', flag: 'the result directory' });
  if (!(await isResultDir(dir))) {
    throw new IbgpuError('BAD_OUTPUT', `${dir} is not an ibgpu build result (no ibgpu manifest.json)`, 'pass the directory `ibgpu build` wrote');
  }
}

/** Merges runs into ablations.json and redraws the figures. */
export async function writeAblations(dir: string, runs: AblationRun[], sparsity: SparsityRow[] | undefined): Promise<AblationsFile> {
  await checkAblationOutput(dir);
  const prev = await readAblations(dir);
  const f: AblationsFile = { format: ABLATIONS_FORMAT, ibgpu_version: VERSION, updated: new Date().toISOString(), runs: { ...(prev?.runs ?? {}) } };
  for (const r of runs) f.runs[r.ablation_type] = r;
  const sp = sparsity ? { note: SPARSITY_NOTE, rows: sparsity } : prev?.sparsity;
  if (sp) f.sparsity = sp;
  await writeFileAtomic(join(dir, 'ablations.json'), `${JSON.stringify(f)}\n`);
  const panels = nodePanels(f);
  const evalType = Object.values(f.runs)[0]?.eval_type ?? 'accuracy';
  if (panels.length) await writeFileAtomic(join(dir, 'ablations.svg'), nodeAblationSvg(panels, `Node ablations: ${evalType} vs directions kept`, evalType));
  const es = edgeSeries(f);
  if (es.length)
    await writeFileAtomic(join(dir, 'ablations-edges.svg'), edgeAblationSvg(es, 'Edge ablation: IB edges needed', `tolerated ${evalType} difference`));
  return f;
}
