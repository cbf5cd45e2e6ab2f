// The statistics pass: one streamed forward pass that collects, in f64 on the host,
//   - per node layer: column sums and the shifted Gram Σ(x − s)(x − s)ᵀ, where the shift s is the
//     first batch's mean (the exact shifted-data formula makes this a one-pass two-pass-quality
//     centring: cancellation is governed by |μ − s|, not |μ|);
//   - per section (jacobian basis): column sums and Gram of the integrated activation
//     derivative g, the sufficient statistic for M' (see basis.ts).
// It runs on one of two paths (plan.path, chosen by the pipeline with chooseStagePath): 'gpu'
// (forward and Gram kernels, f32 per batch, f64 sums across batches) or 'host' (the float64
// forward of src/host/mlp-forward.ts and the accumulators of src/host/stats.ts, no GPU work
// unless the activation cache is filled for a GPU edge pass).

import { density, SparseGramF64 } from '../cpu/sparse-gram.js';
import { ColumnSumAccumulator, GramAccumulator } from '../kernels/gram.js';
import type { Engine } from '../runtime/engine.js';
import type { GateStats, NodeStats } from './basis.js';
import type { DataSource } from './data.js';
import type { ForwardResult, GpuMlp } from './gpu-model.js';
import type { ActivationCache } from './activation-cache.js';
import { actGrad, rootOfOne } from '../model/activations.js';
import type { IntegrationPoints } from './integration.js';
import type { MlpModel } from '../model/mlp.js';
import type { HostForward } from '../host/mlp-forward.js';
import { hostForwardRows } from '../host/mlp-forward-wasm.js';
import { startSparseGram } from '../host/sparse-gram-thread.js';
import { columnMeansF64, HostGateStats, HostGramF64 } from '../host/stats.js';
import type { StagePath } from '../runtime/stage-paths.js';

export interface StatsPlan {
  /** Node-layer statistics wanted: model activation index (0 = input, i+1 = output of layer i) → name. */
  nodes: { act: number; name: string; folded: boolean }[];
  /** Sections (model layer indices) whose gate statistics are wanted. */
  gateLayers: number[];
  /**
   * Optional extra consumer of every batch's forward pass (the degeneracy statistics of
   * src/ib/degeneracy-gpu.ts): the forward runs at least `upTo` layers, and `addBatch` records
   * its GPU work before the batch's buffers are released.
   */
  observer?: { upTo: number; addBatch(f: ForwardResult, rows: number): Promise<unknown> | void };
  /** Keeps the batches' hidden activations for the edge pass (activation-cache.ts). */
  cache?: ActivationCache;
  /** Where the input layer's statistics accumulate (default: chooseInputGramPath). */
  inputGram?: InputGramPath;
  /**
   * On the 'host-sparse' path: called with the input node layer's complete statistics as soon as
   * they are (before the GPU pass starts; on the host path, once the input Gram's thread is done,
   * usually during the pass), so that their eigendecomposition can run on a solver thread meanwhile.
   */
  onInputStats?: (s: NodeStats) => void;
  /** Where the pass runs (default 'gpu'); see the header. */
  path?: StagePath;
  /**
   * The host path's counterpart of `observer`: called with every batch's float64 forward pass
   * (at least `upTo` layers) after the batch's statistics are added.
   */
  hostObserver?: { upTo: number; addBatch(f: HostForward, rows: number): void };
}

export interface StatsResult {
  nodes: Map<string, NodeStats>;
  gates: Map<number, GateStats>;
  /** Wall time (ms) spent on the observer's work (plan.observer), booked apart from the statistics. */
  observerMs?: number;
}

export type Progress = (stage: string, done: number, total: number) => void;

export async function collectStats(
  engine: Engine,
  mlp: GpuMlp,
  data: DataSource,
  plan: StatsPlan,
  batchSize: number,
  pts: IntegrationPoints,
  progress: Progress = () => {},
  /**
   * Accumulate only rows [start, end) (a shard of the dataset; default all). The shift is always
   * the mean of the dataset's first batch, so partial sums of different shards add up exactly.
   */
  range?: { start: number; end: number },
): Promise<StatsResult> {
  if (plan.path === 'host') return collectStatsHost(engine, mlp.model, data, plan, batchSize, pts, progress, range);
  if (plan.hostObserver) throw new Error("collectStats: a host observer needs the host path (plan.path = 'host')");
  const model = mlp.model;
  const upTo0 = Math.max(0, ...plan.nodes.map((n) => n.act), ...plan.gateLayers.map((g) => g + 1));
  const upTo = Math.max(upTo0, plan.observer?.upTo ?? 0);
  const wantGate = (i: number) => plan.gateLayers.includes(i);
  const dims = (act: number) => (act === 0 ? model.layers[0]!.dIn : model.layers[act - 1]!.dOut);

  // Shifts: the mean of the first batch of each node layer.
  const rows0 = Math.min(batchSize, data.n);
  const x0host = await data.readRows(0, rows0);
  const shifts = new Map<number, Float64Array>();
  await engine.withScope(async (first) => {
    const f0 = mlp.forward(first, first.upload(x0host, 'batch'), rows0, () => false, upTo0);
    await Promise.all(
      plan.nodes.map(async (nd) => {
        const acc = new ColumnSumAccumulator(engine, dims(nd.act));
        await acc.addBatch(f0.acts[nd.act]!, rows0);
        const s = await acc.result();
        shifts.set(
          nd.act,
          s.map((v) => v / rows0),
        );
      }),
    );
  });

  // The input layer's statistics come straight from the host rows; sparse inputs on a software
  // adapter are cheaper there (src/cpu/sparse-gram.ts). They are accumulated in a pass of their
  // own before the GPU pass (the rows are read twice): on a software adapter the GPU work runs on
  // this thread anyway, and finishing them first lets the input layer's eigendecomposition start
  // on a solver thread while the GPU pass runs.
  const inputPath = plan.inputGram ?? chooseInputGramPath(engine, x0host);
  const r0 = range?.start ?? 0;
  const r1 = range?.end ?? data.n;
  const count = r1 - r0;
  const inputNode = plan.nodes.find((nd) => nd.act === 0);
  const inputStats =
    inputPath === 'host-sparse' && inputNode ? await sparseInputStats(data, inputNode, dims(0), shifts.get(0)!, { start: r0, end: r1 }, batchSize) : undefined;
  if (inputStats) plan.onInputStats?.(inputStats);
  const hostInput = inputStats !== undefined;
  const nodeAcc = plan.nodes
    .filter((nd) => !(hostInput && nd.act === 0))
    .map((nd) => ({
      nd,
      sum: new ColumnSumAccumulator(engine, dims(nd.act)),
      gram: new GramAccumulator(engine, dims(nd.act), { shift: shifts.get(nd.act)! }),
    }));
  const gateAcc = plan.gateLayers.map((i) => ({
    i,
    sum: new ColumnSumAccumulator(engine, model.layers[i]!.dOut),
    gram: new GramAccumulator(engine, model.layers[i]!.dOut),
  }));

  // The accumulators' device buffers are released on every path, a throw included.
  try {
    const inflight: Promise<unknown>[] = [];
    let observerMs = 0;
    for (let start = r0; start < r1; start += batchSize) {
      const rows = Math.min(batchSize, r1 - start);
      const xh = await data.readRows(start, rows);
      const waits = await engine.withScope(async (batch) => {
        const f = mlp.forward(batch, batch.upload(xh, 'batch'), rows, wantGate, upTo);
        const waits: Promise<unknown>[] = [];
        for (const a of nodeAcc) {
          waits.push(a.sum.addBatch(f.acts[a.nd.act]!, rows));
          waits.push(Promise.resolve(a.gram.addBatch(f.acts[a.nd.act]!, rows)));
        }
        for (const g of gateAcc) {
          waits.push(g.sum.addBatch(f.gates[g.i]!, rows));
          waits.push(Promise.resolve(g.gram.addBatch(f.gates[g.i]!, rows)));
        }
        if (plan.observer) {
          // The observer's work runs on its own, after this batch's statistics are read back, so
          // that its time can be booked as its own stage (the manifest's timings) instead of
          // disappearing into the statistics pass; it gives up the overlap of the two.
          await Promise.all(waits.splice(0));
          const t0 = performance.now();
          await plan.observer.addBatch(f, rows);
          observerMs += performance.now() - t0;
        }
        plan.cache?.store(f, start, rows);
        return waits;
      });
      // Keep at most one batch of readbacks outstanding: overlaps host adds with GPU work while
      // bounding staging memory.
      if (inflight.length) await Promise.all(inflight.splice(0));
      inflight.push(Promise.all(waits));
      progress('stats', start + rows - r0, count);
    }
    await Promise.all(inflight);

    const nodes = new Map<string, NodeStats>();
    if (inputStats) nodes.set(inputStats.name, inputStats);
    for (const a of nodeAcc) {
      const d = dims(a.nd.act);
      nodes.set(a.nd.name, {
        name: a.nd.name,
        n: count,
        d,
        folded: a.nd.folded,
        sum: await a.sum.result(),
        gramShifted: await a.gram.result(),
        shift: Float64Array.from(a.gram.shift ?? shifts.get(a.nd.act)!),
      });
    }
    const gates = new Map<number, GateStats>();
    for (const g of gateAcc) {
      const l = model.layers[g.i]!;
      const last = g.i === model.layers.length - 1;
      gates.set(g.i, {
        n: count,
        h: l.dOut,
        sum: await g.sum.result(),
        gram: await g.gram.result(),
        constGate: last ? undefined : constSlotGate(model, g.i, pts),
      });
    }
    return { nodes, gates, ...(plan.observer ? { observerMs } : {}) };
  } finally {
    for (const a of [...nodeAcc, ...gateAcc]) {
      a.gram.dispose();
      a.sum.dispose();
    }
  }
}

/**
 * The statistics pass on the host in float64 (plan.path = 'host'): the same statistics as the GPU
 * pass, with the same shift rule (the first batch's mean, here from the float64 forward) and the
 * same split of the input layer (host-sparse when chooseInputGramPath says so, finished before the
 * pass for onInputStats). The GPU is touched only to fill plan.cache (a GPU edge pass's
 * activations, the float64 values rounded to f32).
 */
async function collectStatsHost(
  engine: Engine,
  model: MlpModel,
  data: DataSource,
  plan: StatsPlan,
  batchSize: number,
  pts: IntegrationPoints,
  progress: Progress,
  range?: { start: number; end: number },
): Promise<StatsResult> {
  if (plan.observer) throw new Error('collectStats: the GPU observer needs the GPU path; pass a hostObserver instead');
  const cacheActs = plan.cache?.acts ?? [];
  const upTo0 = Math.max(0, ...plan.nodes.map((n) => n.act), ...plan.gateLayers.map((g) => g + 1), ...cacheActs);
  const upTo = Math.max(upTo0, plan.hostObserver?.upTo ?? 0);
  const dims = (act: number) => (act === 0 ? model.layers[0]!.dIn : model.layers[act - 1]!.dOut);
  const r0 = range?.start ?? 0;
  const r1 = range?.end ?? data.n;
  const count = r1 - r0;

  const rows0 = Math.min(batchSize, data.n);
  const x0host = await data.readRows(0, rows0);
  const shiftUpTo = Math.max(0, ...plan.nodes.map((n) => n.act));
  const forward = hostForwardRows(model);
  const f0 = forward(x0host, rows0, shiftUpTo);
  const shifts = new Map<number, Float64Array>();
  for (const nd of plan.nodes) shifts.set(nd.act, columnMeansF64(f0.acts[nd.act]!, rows0, dims(nd.act)));

  // The input layer: the sparse host Gram (as on the GPU path) from the raw rows, on a host thread
  // beside the forward pass (src/host/sparse-gram-thread.ts). Its batches are posted up to
  // INPUT_GRAM_AHEAD_BYTES ahead of the pass, so that on a small dataset the Gram is complete, and
  // its eigensolve under way (onInputStats), while this thread is still in the forward pass.
  const inputNode = plan.nodes.find((nd) => nd.act === 0);
  const inputPath = plan.inputGram ?? chooseInputGramPath(engine, x0host);
  const inputGram = inputPath === 'host-sparse' && inputNode ? await startSparseGram(dims(0)) : undefined;
  const nodeAcc = plan.nodes.filter((nd) => !(inputGram && nd.act === 0)).map((nd) => ({ nd, acc: new HostGramF64(dims(nd.act), shifts.get(nd.act)) }));
  const gateAcc = plan.gateLayers.map((i) => ({ i, acc: new HostGateStats(model.layers[i]!.dOut, model.layers[i]!.activation, pts) }));

  const starts: number[] = [];
  for (let start = r0; start < r1; start += batchSize) starts.push(start);
  const rowsOf = (b: number): number => Math.min(batchSize, r1 - starts[b]!);
  const ahead = Math.max(1, Math.floor(INPUT_GRAM_AHEAD_BYTES / (batchSize * dims(0) * 4)));
  const read = new Map<number, Float32Array>(); // batches read (and posted to the Gram) but not yet forwarded
  let posted = 0;
  let inputStats: Promise<NodeStats> | undefined;
  const feed = async (upTo: number): Promise<void> => {
    for (; posted < Math.min(upTo, starts.length); posted++) {
      const x = await data.readRows(starts[posted]!, rowsOf(posted));
      read.set(posted, x);
      inputGram?.add(x, rowsOf(posted));
    }
    if (inputGram && inputNode && !inputStats && posted === starts.length) {
      const shift = shifts.get(0)!;
      inputStats = inputGram.result(shift).then((r) => {
        const st: NodeStats = {
          name: inputNode.name,
          n: r.n,
          d: dims(0),
          folded: inputNode.folded,
          sum: r.sum,
          gramShifted: r.gram,
          shift: Float64Array.from(shift),
        };
        plan.onInputStats?.(st);
        return st;
      });
      inputStats.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
    }
  };

  let observerMs = 0;
  try {
    for (let b = 0; b < starts.length; b++) {
      await feed(b + ahead);
      const start = starts[b]!;
      const rows = rowsOf(b);
      const f = forward(read.get(b)!, rows, upTo);
      read.delete(b);
      for (const a of nodeAcc) a.acc.add(f.acts[a.nd.act]!, rows);
      for (const g of gateAcc) g.acc.add(f.pres[g.i]!, rows);
      if (plan.hostObserver) {
        const t0 = performance.now();
        plan.hostObserver.addBatch(f, rows);
        observerMs += performance.now() - t0;
      }
      for (const a of cacheActs) plan.cache!.storeRows(a, start, rows, Float32Array.from(f.acts[a]!));
      progress('stats', start + rows - r0, count);
      // Lets the thread's replies in between batches (the input Gram's result starts its eigensolve).
      if (inputGram?.threaded) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await feed(starts.length); // an empty range posts nothing, but still asks for the result
  } finally {
    inputGram?.dispose();
  }

  const nodes = new Map<string, NodeStats>();
  if (inputStats) {
    const st = await inputStats;
    nodes.set(st.name, st);
  }
  for (const { nd, acc } of nodeAcc) {
    nodes.set(nd.name, { name: nd.name, n: count, d: acc.d, folded: nd.folded, sum: acc.sums(), gramShifted: acc.gram(), shift: Float64Array.from(acc.shift) });
  }
  const gates = new Map<number, GateStats>();
  for (const { i, acc } of gateAcc) {
    const last = i === model.layers.length - 1;
    gates.set(i, { n: count, h: acc.h, sum: acc.sums(), gram: acc.gram(), constGate: last ? undefined : constSlotGate(model, i, pts) });
  }
  return { nodes, gates, ...(plan.hostObserver ? { observerMs } : {}) };
}

/** How far (in bytes of float32 rows) the host pass posts batches to the input Gram's thread ahead of its forward pass. */
export const INPUT_GRAM_AHEAD_BYTES = 64 * 2 ** 20;

/** Where the input layer's Gram and column sums are accumulated. */
export type InputGramPath = 'gpu' | 'host-sparse';

/** Inputs at most this dense take the host sparse path on software adapters. */
export const SPARSE_INPUT_DENSITY = 0.3;

/**
 * 'host-sparse' on software adapters when the first batch is at most SPARSE_INPUT_DENSITY
 * non-zero (MNIST: 0.19), else 'gpu'. Decided from the dataset's first batch, which every shard
 * reads, so all shards of a build take the same path.
 */
export function chooseInputGramPath(engine: Pick<Engine, 'info'>, firstBatch: ArrayLike<number>): InputGramPath {
  return engine.info.isSoftware && density(firstBatch) <= SPARSE_INPUT_DENSITY ? 'host-sparse' : 'gpu';
}

/**
 * Derivative of the folded constant output slot: its pre-activation at α·f is α·ρ (the bias slot
 * of f is 1), so g_const = ρ-free Σ_k w_k σ'(α_k ρ) — W̄ carries the ρ factor.
 */
export function constSlotGate(model: MlpModel, i: number, pts: IntegrationPoints): number {
  const a = model.layers[i]!.activation;
  const rho = rootOfOne(a);
  let g = 0;
  for (let k = 0; k < pts.alphas.length; k++) g += pts.weights[k]! * actGrad(a, pts.alphas[k]! * rho);
  return g;
}

/**
 * The input node layer's statistics from the raw rows [range.start, range.end) on the host
 * (src/cpu/sparse-gram.ts: only each row's non-zeros), shifted by `shift`.
 */
async function sparseInputStats(
  data: DataSource,
  node: { name: string; folded: boolean },
  d: number,
  shift: Float64Array,
  range: { start: number; end: number },
  batchSize: number,
): Promise<NodeStats> {
  const acc = new SparseGramF64(d);
  for (let start = range.start; start < range.end; start += batchSize) {
    const rows = Math.min(batchSize, range.end - start);
    acc.add(await data.readRows(start, rows), rows);
  }
  return {
    name: node.name,
    n: range.end - range.start,
    d,
    folded: node.folded,
    sum: acc.sums(),
    gramShifted: acc.gram(shift),
    shift: Float64Array.from(shift),
  };
}
