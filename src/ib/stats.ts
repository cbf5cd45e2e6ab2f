// The statistics pass: one streamed forward pass that collects, in f64 on the host,
//   - per node layer: column sums and the shifted Gram Σ(x − s)(x − s)ᵀ, where the shift s is the
//     first batch's mean (the exact shifted-data formula makes this a one-pass two-pass-quality
//     centring: cancellation is governed by |μ − s|, not |μ|);
//   - per section (jacobian basis): column sums and Gram of the integrated activation
//     derivative g, the sufficient statistic for M' (see basis.ts).

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

export interface StatsPlan {
  /** Node-layer statistics wanted: model activation index (0 = input, i+1 = output of layer i) → name. */
  nodes: { act: number; name: string; folded: boolean }[];
  /** Sections (model layer indices) whose gate statistics are wanted. */
  gateLayers: number[];
  /**
   * Optional extra consumer of every batch's forward pass (the degeneracy statistics of
   * src/report/degeneracy-gpu.ts): the forward runs at least `upTo` layers, and `addBatch` records
   * its GPU work before the batch's buffers are released.
   */
  observer?: { upTo: number; addBatch(f: ForwardResult, rows: number): Promise<unknown> | void };
  /** Keeps the batches' hidden activations for the edge pass (activation-cache.ts). */
  cache?: ActivationCache;
  /** Where the input layer's statistics accumulate (default: chooseInputGramPath). */
  inputGram?: InputGramPath;
  /**
   * On the 'host-sparse' path: called with the input node layer's complete statistics before
   * the GPU pass starts, so that their eigendecomposition can run on a solver thread meanwhile.
   */
  onInputStats?: (s: NodeStats) => void;
}

export interface StatsResult {
  nodes: Map<string, NodeStats>;
  gates: Map<number, GateStats>;
  /** Wall time (ms) spent on the observer's work (plan.observer), booked apart from the statistics. */
  observerMs?: number;
}

export type Progress = (stage: string, done: number, total: number) => void;

export async function collectStats(
  engine: Engine, mlp: GpuMlp, data: DataSource, plan: StatsPlan, batchSize: number,
  pts: IntegrationPoints, progress: Progress = () => {},
  /**
   * Accumulate only rows [start, end) (a shard of the dataset; default all). The shift is always
   * the mean of the dataset's first batch, so partial sums of different shards add up exactly.
   */
  range?: { start: number; end: number },
): Promise<StatsResult> {
  const model = mlp.model;
  const upTo0 = Math.max(0, ...plan.nodes.map((n) => n.act), ...plan.gateLayers.map((g) => g + 1));
  const upTo = Math.max(upTo0, plan.observer?.upTo ?? 0);
  const wantGate = (i: number) => plan.gateLayers.includes(i);
  const dims = (act: number) => (act === 0 ? model.layers[0]!.dIn : model.layers[act - 1]!.dOut);

  // Shifts: the mean of the first batch of each node layer.
  const rows0 = Math.min(batchSize, data.n);
  const x0host = await data.readRows(0, rows0);
  const x0 = engine.upload(x0host, 'batch');
  const f0 = mlp.forward(x0, rows0, () => false, upTo0);
  const shifts = new Map<number, Float64Array>();
  await Promise.all(plan.nodes.map(async (nd) => {
    const acc = new ColumnSumAccumulator(engine, dims(nd.act));
    await acc.addBatch(f0.acts[nd.act]!, rows0);
    const s = await acc.result();
    shifts.set(nd.act, s.map((v) => v / rows0));
  }));
  mlp.release(f0);
  engine.release(x0);

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
  let inputStats: NodeStats | undefined;
  if (inputPath === 'host-sparse' && inputNode) {
    const acc = new SparseGramF64(dims(0));
    for (let start = r0; start < r1; start += batchSize) {
      const rows = Math.min(batchSize, r1 - start);
      acc.add(await data.readRows(start, rows), rows);
    }
    const shift = shifts.get(0)!;
    inputStats = { name: inputNode.name, n: count, d: dims(0), folded: inputNode.folded, sum: acc.sums(), gramShifted: acc.gram(shift), shift: Float64Array.from(shift) };
    plan.onInputStats?.(inputStats);
  }
  const hostInput = inputStats !== undefined;
  const nodeAcc = plan.nodes.filter((nd) => !(hostInput && nd.act === 0)).map((nd) => ({
    nd,
    sum: new ColumnSumAccumulator(engine, dims(nd.act)),
    gram: new GramAccumulator(engine, dims(nd.act), { shift: shifts.get(nd.act)! }),
  }));
  const gateAcc = plan.gateLayers.map((i) => ({
    i,
    sum: new ColumnSumAccumulator(engine, model.layers[i]!.dOut),
    gram: new GramAccumulator(engine, model.layers[i]!.dOut),
  }));

  const inflight: Promise<unknown>[] = [];
  let observerMs = 0;
  for (let start = r0; start < r1; start += batchSize) {
    const rows = Math.min(batchSize, r1 - start);
    const xh = await data.readRows(start, rows);
    const x = engine.upload(xh, 'batch');
    const f = mlp.forward(x, rows, wantGate, upTo);
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
    mlp.release(f);
    engine.release(x);
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
      name: a.nd.name, n: count, d, folded: a.nd.folded,
      sum: await a.sum.result(), gramShifted: await a.gram.result(),
      shift: Float64Array.from(a.gram.shift ?? shifts.get(a.nd.act)!),
    });
    a.gram.dispose();
    a.sum.dispose();
  }
  const gates = new Map<number, GateStats>();
  for (const g of gateAcc) {
    const l = model.layers[g.i]!;
    const last = g.i === model.layers.length - 1;
    gates.set(g.i, {
      n: count, h: l.dOut, sum: await g.sum.result(), gram: await g.gram.result(),
      constGate: last ? undefined : constSlotGate(model, g.i, pts),
    });
    g.gram.dispose();
    g.sum.dispose();
  }
  return { nodes, gates, ...(plan.observer ? { observerMs } : {}) };
}

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
