// The squared-edge pass of MLP sections on the host, in float64 (SPEC §5.2), chosen where it beats
// the adapter (src/runtime/stage-paths.ts: on a software adapter the "GPU" is these same cores
// and its edge kernels stall on every storage load). Same inputs and outputs as computeEdges of
// src/ib/edges.ts. Per block of rows:
//   x, f̂, p', g   the block's inputs (src/host/edge-inputs.ts): the forward pass, f̂ = Cᵀ[x; 1],
//                 p' = Qᵀ f̂ with Q = C⁺W̄, integrated gates g = Σ_k w_k σ'(α_k p')
//   E_ij  += Σ_n (Σ_h C^{ℓ+1}_{hi} g_nh Q_jh f̂_nj)²   (src/host/edges-squared.ts, carried J)
// Blocks are at least HOST_EDGE_BLOCK_ROWS rows (the sums do not depend on how rows are grouped,
// up to rounding). ReLU blocks are visited in sign-pattern order (src/cpu/gate-order.ts). Each
// block's visiting order is cut into HOST_EDGE_RUNS runs; run k always adds into partial sum k, whichever thread
// runs it, and the partials are added in a fixed order at the end, so the result is the same
// bits on any number of threads. The host worker threads (src/host/pool.ts) run both: a block's
// inputs, its rows split between the threads (each row computed alone, so the split changes no
// bits), and the block's runs, each job to a thread that is free (edgeThreads); this thread only
// reads the data and orders each block's rows (signPatternOrder), so preparing block b+1 and the
// kernel on block b both use every thread.
// Each thread holds the pass's sections and block-input operands ('edge-sections' of
// src/host/tasks.ts) from the pass's start to its end. Without threads the same functions run
// here, in the same order.

import { edgeInputRows, type EdgeInputPass, type EdgeInputRows } from './edge-inputs.js';
import { wasmEdgeInputs, type EdgeInputRowsFn } from './edge-inputs-wasm.js';
import { accumulateSquaredEdges, type SquaredEdgeRowKernel, type SquaredEdgeSection } from './edges-squared.js';
import { squaredEdgeRowKernel } from './edges-squared-wasm.js';
import { hostThreadPool, sharedBytes, sharedF64, type HeldState } from './pool.js';
import type { EdgeRun } from './tasks.js';
import { signPatternOrder } from '../cpu/gate-order.js';
import type { ForwardLayer } from '../cpu/mlp-forward.js';
import type { Activation } from '../model/activations.js';
import { checkShape } from '../errors.js';

/** Runs each block is cut into (the most threads that can share a block). */
export const HOST_EDGE_RUNS = 4;

/** Host threads loaded with one pass's sections. */
export interface EdgeThreadSet {
  /** Threads asked to hold the pass (some may join late, see edgeThreads). */
  readonly count: number;
  /** Runs `run` on the next free thread; resolves with its number of rank-1 updates. */
  run(run: EdgeRun): Promise<number>;
  /** Writes f̂ and gates of a range of a block's rows on the next free thread (edge-inputs.ts). */
  inputs(job: EdgeInputRows): Promise<void>;
  /** Drops the pass's sections (the threads stay for other work). */
  close(): Promise<void>;
}

/**
 * Up to `want` host threads (default: the pool's size; at most HOST_EDGE_RUNS), each holding
 * `sections` and the block-input operands `inputs` (their arrays must be shared, see sharedF64)
 * for one pass; undefined when none can be had. Passes may overlap: each holds its own copy of
 * the sections until `close`.
 *
 * Jobs (runs and block-input ranges) wait in one queue, first in first out, and each goes to a
 * thread that holds the pass, has no job of this pass outstanding and nothing else to do. A
 * thread busy with other work (the build's background eigensolve of a wide layer takes seconds on
 * one pool thread) thus gets none until it is free, instead of holding the pass's jobs behind
 * that work; the pass starts as soon as one thread holds it. Any thread may take any job: run k
 * always adds into partial k and a block's rows are computed each alone, so the bits do not depend
 * on which thread ran what.
 */
export async function edgeThreads(sections: SquaredEdgeSection[], inputs: EdgeInputPass, want?: number): Promise<EdgeThreadSet | undefined> {
  const pool = await hostThreadPool();
  if (!pool) return undefined;
  const n = Math.max(0, Math.min(HOST_EDGE_RUNS, pool.size, want ?? pool.size));
  if (n === 0) return undefined;
  // Idle threads first, so that the first hold answers at once where any thread is free.
  const idle = pool.idleThreads();
  const slots = [...idle, ...Array.from({ length: pool.size }, (_, t) => t).filter((t) => !idle.includes(t))].slice(0, n);
  const held: (HeldState<'edge-sections'> | undefined)[] = slots.map(() => undefined);
  const mine = new Set<number>(); // indices into slots with a job of this pass outstanding
  const queue: { go: (h: HeldState<'edge-sections'>) => Promise<unknown>; resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  let closed = false;
  const pump = (): void => {
    while (queue.length > 0) {
      const free = pool.idleThreads();
      let k = slots.findIndex((t, i) => held[i] !== undefined && !mine.has(i) && free.includes(t));
      // No free thread and nothing of this pass running: queue on a holding thread anyway (it
      // takes the job when its other work ends), so the pass cannot stall waiting for an event.
      if (k < 0 && mine.size === 0) k = held.findIndex((h) => h !== undefined);
      if (k < 0) return;
      const job = queue.shift()!;
      mine.add(k);
      job.go(held[k]!).then(
        (v) => {
          mine.delete(k);
          job.resolve(v);
          pump();
        },
        (e: Error) => {
          mine.delete(k);
          job.reject(e);
          pump();
        },
      );
    }
  };
  const holds = slots.map((thread, i) =>
    pool.hold('edge-sections', { sections, inputs }, { thread }).then((h) => {
      if (closed) void h.release();
      else {
        held[i] = h;
        pump();
      }
      return h;
    }),
  );
  try {
    await Promise.any(holds);
  } catch {
    return undefined; // no thread could hold the pass: it runs on this thread
  }
  const submit = <T>(go: (h: HeldState<'edge-sections'>) => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      queue.push({ go, resolve: resolve as (v: unknown) => void, reject });
      pump();
    });
  return {
    count: n,
    run: (r) => submit((h) => h.call('run', r)),
    inputs: (job) => submit((h) => h.call('inputs', job)),
    close: async () => {
      closed = true;
      await Promise.all(held.flatMap((h) => (h ? [h.release()] : [])));
    },
  };
}

/**
 * Rows per block at least (more when the batch is larger): the sign-pattern order finds closer
 * neighbours among more rows. On rib's MNIST MLP the first section's changed units per row go
 * from 16.4 (blocks of 1000) to 14.1 (5000) and 13.2 (10000); 4096 rows of f̂, gates and
 * activations stay a few tens of MB.
 */
export const HOST_EDGE_BLOCK_ROWS = 4096;

/** A section as the host pass needs it (src/ib/edges.ts's EdgePair is one). */
export interface HostEdgeSection {
  /** Model layer index of the section (its input node layer is that layer's input). */
  layer: number;
  inName: string;
  outName: string;
  /** The input node layer's basis: dim = d + 1 (folded), C dim × r, C⁺ r × dim. */
  basis: { dim: number; r: number; C: Float64Array; Cpinv: Float64Array };
  /** Folded weight, dim × dimOut. */
  Wbar: Float64Array;
  dimOut: number;
  /** Next node layer's C (dimOut × ro), or undefined for raw coordinates (ro = dimOut). */
  nextC: Float64Array | undefined;
  ro: number;
}

/** The model as the host pass reads it: its layers as the float64 forward pass reads them. */
export interface HostModel {
  readonly layers: readonly ForwardLayer[];
}

export interface HostEdgeOptions {
  /** Rows [start, end) only, sums divided by `divisor` (default N; 1 gives raw partial sums). */
  shard?: { start: number; end: number; divisor?: number };
  /** Threads (default: the machine's cores, at most MAX_EDGE_THREADS); 0 or 1 = this thread only. */
  threads?: number;
  /** Rank-1 updates made, per section key (for measurements). */
  counts?: Map<string, { rows: number; updates: number }>;
  /**
   * Filled with this thread's time preparing blocks (copying rows, orders; and the block inputs
   * when there are no threads) and the time it waited for the threads or ran the edge kernel
   * itself (for measurements).
   */
  timing?: { prepMs: number; kernelMs: number };
}

/** A section prepared for the pass: its operands in shared memory and its partial sums. */
interface Prepared {
  p: HostEdgeSection;
  key: string;
  sec: SquaredEdgeSection;
  act: Activation;
  /** Operands of the block inputs (C and Q = C⁺W̄, shared). */
  inp: EdgeInputPass['sections'][number];
  /** HOST_EDGE_RUNS partial sums, each ro × r (views of one shared buffer). */
  partials: Float64Array[];
  /** This thread's row kernel (used only without threads). */
  kernel: SquaredEdgeRowKernel | undefined;
  updates: number;
}

/** One block's per-section inputs of the edge kernel. */
interface BlockInputs {
  rows: number;
  secs: { fhat: Float64Array; gates: Float64Array; order: Uint32Array }[];
}

function shared(n: number): Float64Array {
  return new Float64Array(sharedBytes(Math.max(1, n) * 8));
}

function prepare(p: HostEdgeSection, act: Activation): Prepared {
  const { dim, r, Cpinv } = p.basis;
  const h = p.dimOut;
  checkShape(
    p.basis.C.length === dim * r && Cpinv.length === r * dim && p.Wbar.length === dim * h,
    `host edges ${p.inName}->${p.outName}: basis or weight sizes disagree (dim ${dim}, r ${r}, dimOut ${h})`,
  );
  checkShape(p.nextC ? p.nextC.length === h * p.ro : p.ro === h, `host edges ${p.inName}->${p.outName}: next basis is not ${h} × ${p.ro}`);
  // Q = C⁺ W̄ in float64; B = Qᵀ (unit-major) for the kernel.
  const Q = new Float64Array(r * h);
  for (let j = 0; j < r; j++) {
    for (let k = 0; k < dim; k++) {
      const c = Cpinv[j * dim + k]!;
      if (c === 0) continue;
      for (let o = 0; o < h; o++) Q[j * h + o]! += c * p.Wbar[k * h + o]!;
    }
  }
  const B = shared(h * r);
  for (let j = 0; j < r; j++) for (let o = 0; o < h; o++) B[o * r + j] = Q[j * h + o]!;
  const A = p.nextC ? sharedF64(p.nextC) : undefined;
  const inp = { layer: p.layer, dim, r, C: sharedF64(p.basis.C), Q: sharedF64(Q), h, act };
  const n = p.ro * r;
  const all = new Float64Array(sharedBytes(Math.max(1, HOST_EDGE_RUNS * n) * 8));
  const partials = Array.from({ length: HOST_EDGE_RUNS }, (_, k) => all.subarray(k * n, (k + 1) * n));
  return { p, key: `${p.inName}->${p.outName}`, sec: { h, ro: p.ro, r, A, B }, act, inp, partials, kernel: undefined, updates: 0 };
}

/**
 * Shared buffers for one block's inputs of every section, sized for `rows` rows. The pass keeps
 * two sets and alternates them (one block runs on the threads while the next is prepared): fresh
 * shared memory per block would stay alive until the worker threads' own garbage collection, so
 * the pass's memory would grow with the number of rows.
 */
function blockBuffers(secs: Prepared[], rows: number, d0: number): { x: Float32Array; secs: BlockInputs['secs'] } {
  return { x: new Float32Array(sharedBytes(Math.max(1, rows * d0) * 4)), secs: sectionBuffers(secs, rows) };
}

function sectionBuffers(secs: Prepared[], rows: number): BlockInputs['secs'] {
  return secs.map((s) => ({
    fhat: shared(rows * s.p.basis.r),
    gates: shared(rows * s.p.dimOut),
    order: new Uint32Array(sharedBytes(Math.max(1, rows) * 4)),
  }));
}

/**
 * The visiting order of one section over a block whose gates are written: two-valued gates (ReLU)
 * change little between rows in sign-pattern order; other activations change every gate on every
 * row, so any order is as good.
 */
function blockOrder(s: Prepared, rows: number, buf: BlockInputs['secs'][number]): BlockInputs['secs'][number] {
  const fhat = buf.fhat.subarray(0, rows * s.p.basis.r);
  const gates = buf.gates.subarray(0, rows * s.p.dimOut);
  const order = buf.order.subarray(0, Math.max(1, rows));
  if (s.act === 'relu') order.set(signPatternOrder(gates, rows, s.p.dimOut));
  else for (let n = 0; n < rows; n++) order[n] = n;
  return { fhat, gates, order };
}

/** Cuts a block's visiting order into HOST_EDGE_RUNS runs (some may be empty). */
function runBounds(rows: number, k: number): { from: number; to: number } {
  return { from: Math.floor((k * rows) / HOST_EDGE_RUNS), to: Math.floor(((k + 1) * rows) / HOST_EDGE_RUNS) };
}

/** Runs one block's edge kernel over every section: on the threads when there are any, else here. */
async function runBlock(secs: Prepared[], blk: BlockInputs, pool: EdgeThreadSet | undefined): Promise<void> {
  const jobs: Promise<void>[] = [];
  secs.forEach((s, si) => {
    const { fhat, gates, order } = blk.secs[si]!;
    for (let k = 0; k < HOST_EDGE_RUNS; k++) {
      const { from, to } = runBounds(blk.rows, k);
      if (to <= from) continue;
      if (pool) {
        // Each partial has one writer at a time: run k of a block is its only job that adds
        // into partial k, and a block's runs all end before the next block's start.
        jobs.push(
          pool.run({ section: si, E: s.partials[k]!, fhat, gates, order, from, to }).then((u) => {
            s.updates += u;
          }),
        );
      } else {
        s.kernel ??= squaredEdgeRowKernel(s.sec);
        s.updates += accumulateSquaredEdges(s.sec, s.partials[k]!, s.kernel, fhat, gates, order, from, to);
      }
    }
  });
  await Promise.all(jobs);
}

/**
 * The squared edges E [ro × r] of each section, keyed `${inName}->${outName}`: the mean over
 * rows (or the shard's rows, divided by its divisor) of (J̃_ij f̂_j)². `pts` are the integration
 * points; rows are read from `data` in blocks of max(batchSize, HOST_EDGE_BLOCK_ROWS).
 */
export async function computeEdgesHost(
  model: HostModel,
  data: { readonly n: number; readRows(start: number, count: number): Promise<Float32Array> },
  pairs: HostEdgeSection[],
  batchSize: number,
  pts: { alphas: ArrayLike<number>; weights: ArrayLike<number> },
  progress: (stage: string, done: number, total: number) => void = () => {},
  { shard, threads, counts, timing }: HostEdgeOptions = {},
): Promise<Map<string, Float64Array>> {
  const out = new Map<string, Float64Array>();
  if (pairs.length === 0) return out;
  const r0 = shard?.start ?? 0;
  const r1 = shard?.end ?? data.n;
  const divisor = shard?.divisor ?? data.n;
  checkShape(Number.isInteger(batchSize) && batchSize >= 1, `host edges: batch size ${batchSize} is not a positive integer`);
  // Float64 weights once per pass, not once per block (shared: the threads hold them).
  const model64 = {
    layers: model.layers.map((l) => ({
      dIn: l.dIn,
      dOut: l.dOut,
      activation: l.activation,
      W: sharedF64(Float64Array.from(l.W)),
      b: sharedF64(Float64Array.from(l.b)),
    })),
  };
  const secs = pairs.map((p) => {
    const l = model64.layers[p.layer];
    checkShape(l !== undefined && l.dIn + 1 === p.basis.dim, `host edges ${p.inName}->${p.outName}: layer ${p.layer} does not take ${p.basis.dim - 1} inputs`);
    return prepare(p, l.activation);
  });
  const upTo = Math.max(...pairs.map((p) => p.layer));
  const pass: EdgeInputPass = {
    layers: model64.layers,
    upTo,
    sections: secs.map((s) => s.inp),
    alphas: Float64Array.from(pts.alphas),
    weights: Float64Array.from(pts.weights),
  };
  const pool =
    threads === undefined || threads > 1
      ? await edgeThreads(
          secs.map((s) => s.sec),
          pass,
          threads,
        )
      : undefined;
  let prepMs = 0;
  let kernelMs = 0;
  const blockRows = Math.max(batchSize, HOST_EDGE_BLOCK_ROWS);
  const d0 = model64.layers[0]!.dIn;
  const scratch = { bufs: [] };
  // Without threads, this thread's block-input preparer (WebAssembly where it runs), made on first use.
  let prep: EdgeInputRowsFn | undefined;
  const sets = [0, 1].map(() => blockBuffers(secs, Math.min(blockRows, Math.max(1, r1 - r0)), d0));
  let nextSet = 0;
  // A block is staged in two steps so that the threads compute the next block's inputs first and
  // then this block's runs, while this thread orders the next block's rows (signPatternOrder):
  // `fill` reads the rows and hands the inputs to the threads (or computes them here without
  // threads); `order` waits for them and orders each section's rows.
  const fill = async (start: number, rows: number): Promise<{ rows: number; set: (typeof sets)[number]; done: Promise<unknown> }> => {
    const x = await data.readRows(start, rows);
    const t0 = performance.now();
    const set = sets[nextSet]!;
    nextSet ^= 1;
    checkShape(x.length >= rows * d0, `host edges: the data gave ${x.length} values for ${rows} rows of ${d0}`);
    set.x.set(x.subarray(0, rows * d0));
    const out = set.secs.map((buf) => ({ fhat: buf.fhat, gates: buf.gates }));
    let done: Promise<unknown>;
    if (pool) {
      // Contiguous ranges of rows, two per thread, so that a thread that runs faster (or joins
      // late) takes a larger share.
      const parts = 2 * pool.count;
      done = Promise.all(
        Array.from({ length: parts }, (_, t) =>
          pool.inputs({
            x: set.x,
            out,
            from: Math.floor((t * rows) / parts),
            to: Math.floor(((t + 1) * rows) / parts),
          }),
        ),
      );
    } else {
      const job = { x: set.x, out, from: 0, to: rows };
      prep ??= wasmEdgeInputs(pass) ?? ((j: EdgeInputRows) => edgeInputRows(pass, j, scratch));
      prep(job);
      done = Promise.resolve();
    }
    prepMs += performance.now() - t0;
    return { rows, set, done };
  };
  const order = async (f: Awaited<ReturnType<typeof fill>>): Promise<BlockInputs> => {
    const t0 = performance.now();
    await f.done;
    const t1 = performance.now();
    const blk = { rows: f.rows, secs: secs.map((s, si) => blockOrder(s, f.rows, f.set.secs[si]!)) };
    const t2 = performance.now();
    kernelMs += t1 - t0;
    prepMs += t2 - t1;
    return blk;
  };
  try {
    let next = r0 < r1 ? await order(await fill(r0, Math.min(blockRows, r1 - r0))) : undefined;
    for (let b = r0; b < r1; b += blockRows) {
      const cur = next!;
      const nb = b + blockRows;
      // The next block's inputs are queued on the threads ahead of this block's runs, so that
      // this thread can order the next block while the threads run this one.
      const filled = nb < r1 ? await fill(nb, Math.min(blockRows, r1 - nb)) : undefined;
      let t0 = performance.now();
      const running = runBlock(secs, cur, pool);
      kernelMs += performance.now() - t0;
      next = filled ? await order(filled) : undefined;
      t0 = performance.now();
      await running;
      kernelMs += performance.now() - t0;
      progress('edges', b + cur.rows - r0, r1 - r0);
    }
  } finally {
    await pool?.close();
  }
  for (const s of secs) {
    const E = new Float64Array(s.p.ro * s.p.basis.r);
    for (const part of s.partials) for (let t = 0; t < E.length; t++) E[t]! += part[t]!;
    for (let t = 0; t < E.length; t++) E[t]! /= divisor;
    out.set(s.key, E);
    counts?.set(s.key, { rows: r1 - r0, updates: s.updates });
  }
  if (timing) {
    timing.prepMs = prepMs;
    timing.kernelMs = kernelMs;
  }
  return out;
}
