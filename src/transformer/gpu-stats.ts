// Node-layer statistics of a transformer on the GPU (SPEC-transformers §4.1): per node layer the
// column sums Σ_{n,p} f_{n,p} and the Gram Σ_{n,p} (f_{n,p} − s)(f_{n,p} − s)ᵀ over all N·P rows
// (raw with no shift; two-pass centring passes the first pass's mean as the shift). Each batch's
// sums are f32 on the GPU (pairwise inside the batch), added across batches in float64 on the
// host (src/kernels/gram.ts). Results are SUMS; the caller divides by N·P_node.

import { checkShape } from '../errors.js';
import { ColumnSumAccumulator, GramAccumulator } from '../kernels/gram.js';
import type { Engine } from '../runtime/engine.js';
import { copyColumns } from '../kernels/transformer-elementwise.js';
import { concatTuple, samplesPerBatch, type GpuModel, type NodeLayout } from './gpu-model.js';

export interface NodeStatsGpu {
  name: string;
  /** Width of the node layer (its tuple concatenated, 1-slots included). */
  width: number;
  positions: number;
  /** Rows summed: N · positions. */
  rows: number;
  /** Σ rows, float64. */
  sum: Float64Array;
  /** Σ (x − shift)(x − shift)ᵀ, width × width row-major (absent when grams were not asked for). */
  gram?: Float64Array;
  /** The shift used, as the f32 values the GPU subtracted (zeros for the raw Gram). */
  shift: Float64Array;
}

export interface NodeStatsOptions {
  /** Node layer indices (default: all). */
  nodes?: readonly number[];
  /** Accumulate Grams too (default true); false gives the first pass of two-pass centring. */
  gram?: boolean;
  /** Per requested node, the Gram shift (default zero: the raw Gram). */
  shifts?: readonly (Float64Array | undefined)[];
  /** Samples per batch (default: from the batch buffer budget). */
  batch?: number;
}

/** Streams tokens [N, P] (sample-major) through the model and accumulates node statistics. */
export async function nodeStatsGpu(
  engine: Engine,
  model: GpuModel,
  tokens: ArrayLike<number>,
  N: number,
  opts: NodeStatsOptions = {},
): Promise<NodeStatsGpu[]> {
  const nodes = opts.nodes ?? model.nodes.map((_, i) => i);
  checkShape(
    nodes.length > 0 && nodes.every((i) => Number.isInteger(i) && i >= 0 && i < model.nodes.length),
    `nodeStatsGpu: node indices ${nodes.join(', ')} outside 0..${model.nodes.length - 1}`,
  );
  checkShape(
    Number.isInteger(N) && N >= 1 && tokens.length >= N * model.P,
    `nodeStatsGpu: ${tokens.length} tokens for N = ${N} samples of ${model.P} positions`,
  );
  const withGram = opts.gram ?? true;
  const last = Math.max(...nodes);
  const perSample = Math.max(model.forwardFloatsPerSample(), ...nodes.map((i) => model.nodes[i]!.width * model.nodes[i]!.positions));
  const B = opts.batch ?? samplesPerBatch(engine, perSample, N);
  const sums = nodes.map((i) => new ColumnSumAccumulator(engine, model.nodes[i]!.width));
  const shifts = nodes.map((i, k) => {
    const s = opts.shifts?.[k];
    checkShape(
      !s || s.length === model.nodes[i]!.width,
      `nodeStatsGpu: shift for ${model.nodes[i]!.name} has length ${s?.length}, expected ${model.nodes[i]!.width}`,
    );
    return s ?? new Float64Array(model.nodes[i]!.width);
  });
  const grams = withGram ? nodes.map((i, k) => new GramAccumulator(engine, model.nodes[i]!.width, opts.shifts?.[k] ? { shift: shifts[k] } : {})) : [];
  try {
    for (let first = 0; first < N; first += B) {
      const b = Math.min(B, N - first);
      const pending = engine.withScope((batch) => {
        const pending: Promise<void>[] = [];
        batch.adoptAll(
          model.forwardTo(tokens, first, b, last, (node, tuple) => {
            const k = nodes.indexOf(node);
            if (k < 0) return;
            const L = model.nodes[node]!;
            const rows = b * L.positions;
            const x = batch.adopt(concatTuple(engine, tuple, L.widths, rows));
            pending.push(sums[k]!.addBatch(x, rows));
            if (withGram) {
              const g = grams[k]!.addBatch(x, rows);
              if (g) pending.push(g);
            }
            batch.release(x);
          }),
        );
        return pending;
      });
      await Promise.all(pending);
    }
    return await Promise.all(
      nodes.map(async (i, k) => nodeStatsRecord(model.nodes[i]!, N, await sums[k]!.result(), withGram ? await grams[k]!.result() : undefined, shifts[k]!)),
    );
  } finally {
    for (const s of sums) s.dispose();
    for (const g of grams) g.dispose();
  }
}

/** A node's statistics over N samples; the shift is reported as the f32 values the GPU subtracted. */
function nodeStatsRecord(L: NodeLayout, N: number, sum: Float64Array, gram: Float64Array | undefined, shift: Float64Array): NodeStatsGpu {
  return {
    name: L.name,
    width: L.width,
    positions: L.positions,
    rows: N * L.positions,
    sum,
    ...(gram ? { gram } : {}),
    shift: Float64Array.from(Float32Array.from(shift)),
  };
}

/** Bytes of node activations kept on the GPU between the two passes of centring (64 MiB). */
export const NODE_CACHE_BYTES = 64 * 2 ** 20;

export interface CentredStatsOptions {
  nodes?: readonly number[];
  /** The Gram shift of a node from its column sums and row count (e.g. μ̃: the mean, last entry 0). */
  shiftFor: (sum: Float64Array, rows: number, node: number) => Float64Array;
  batch?: number;
  /** Keep node activations of the first pass for the second up to this many bytes (default NODE_CACHE_BYTES). */
  cacheBytes?: number;
  /**
   * When the activations were kept, leave them with the model afterwards (GpuModel.keepNode), so
   * that the later passes over the same tokens start from them instead of running the model again.
   */
  keepInModel?: boolean;
}

/**
 * Two-pass centred statistics: column sums first, then Grams shifted by shiftFor(sums). When the
 * node activations of all N samples fit `cacheBytes` they stay on the GPU after the first pass,
 * so the model runs once (modadd: 11.5 MB); otherwise the second pass runs the forward again.
 */
export async function centredNodeStatsGpu(
  engine: Engine,
  model: GpuModel,
  tokens: ArrayLike<number>,
  N: number,
  opts: CentredStatsOptions,
): Promise<NodeStatsGpu[]> {
  const nodes = opts.nodes ?? model.nodes.map((_, i) => i);
  const bytes = N * nodes.reduce((a, i) => a + model.nodes[i]!.width * model.nodes[i]!.positions * 4, 0);
  if (bytes > (opts.cacheBytes ?? NODE_CACHE_BYTES)) {
    const first = await nodeStatsGpu(engine, model, tokens, N, { nodes, gram: false, batch: opts.batch });
    return nodeStatsGpu(engine, model, tokens, N, { nodes, batch: opts.batch, shifts: first.map((s, k) => opts.shiftFor(s.sum, s.rows, nodes[k]!)) });
  }
  checkShape(
    Number.isInteger(N) && N >= 1 && tokens.length >= N * model.P,
    `centredNodeStatsGpu: ${tokens.length} tokens for N = ${N} samples of ${model.P} positions`,
  );
  const last = Math.max(...nodes);
  const perSample = Math.max(model.forwardFloatsPerSample(), ...nodes.map((i) => model.nodes[i]!.width * model.nodes[i]!.positions));
  const B = opts.batch ?? samplesPerBatch(engine, perSample, N);
  const sums = nodes.map((i) => new ColumnSumAccumulator(engine, model.nodes[i]!.width));
  const cache: { rows: number; bufs: GPUBuffer[] }[] = [];
  // Holds the first pass's node activations until the second pass has read them, and the
  // whole-data buffers until they are handed to the model.
  const held = engine.scope();
  try {
    for (let first = 0; first < N; first += B) {
      const b = Math.min(B, N - first);
      const bufs: GPUBuffer[] = new Array<GPUBuffer>(nodes.length);
      const pending: Promise<void>[] = [];
      engine.withScope((batch) =>
        batch.adoptAll(
          model.forwardTo(tokens, first, b, last, (node, tuple) => {
            const k = nodes.indexOf(node);
            if (k < 0) return;
            const L = model.nodes[node]!;
            bufs[k] = held.adopt(concatTuple(engine, tuple, L.widths, b * L.positions));
            pending.push(sums[k]!.addBatch(bufs[k], b * L.positions));
          }),
        ),
      );
      cache.push({ rows: b, bufs });
      await Promise.all(pending);
    }
    const sumv = await Promise.all(sums.map((s) => s.result()));
    const shifts = nodes.map((i, k) => {
      const L = model.nodes[i]!;
      const s = opts.shiftFor(sumv[k]!, N * L.positions, i);
      checkShape(s.length === L.width, `centredNodeStatsGpu: shift for ${L.name} has length ${s.length}, expected ${L.width}`);
      return s;
    });
    const grams = nodes.map((i, k) => new GramAccumulator(engine, model.nodes[i]!.width, { shift: shifts[k] }));
    // Whole-data buffers for the model to keep (one batch: its buffers as they are).
    const keep = opts.keepInModel
      ? nodes.map((i, k) => {
          if (cache.length === 1) return cache[0]!.bufs[k]!;
          const L = model.nodes[i]!;
          return held.alloc(Math.max(16, N * L.positions * L.width * 4), 'tf.node-kept');
        })
      : undefined;
    let row = 0;
    try {
      while (cache.length > 0) {
        const { rows: b, bufs } = cache.shift()!;
        const pending: Promise<void>[] = [];
        bufs.forEach((x, k) => {
          const L = model.nodes[nodes[k]!]!;
          const p = grams[k]!.addBatch(x, b * L.positions);
          if (p) pending.push(p);
          if (keep && keep[k] !== x) {
            copyColumns(engine, {
              src: { buf: x, ld: L.width },
              dst: { buf: keep[k]!, ld: L.width, row0: row * L.positions },
              groups: 1,
              per: b * L.positions,
              width: L.width,
            });
          }
        });
        row += b;
        held.release(...bufs.filter((x) => !keep?.includes(x)));
        await Promise.all(pending);
      }
      // The model owns the kept buffers from here on (its node cache).
      keep?.forEach((buf, k) => model.keepNode(nodes[k]!, tokens, N, held.keep(buf)));
      return await Promise.all(nodes.map(async (i, k) => nodeStatsRecord(model.nodes[i]!, N, sumv[k]!, await grams[k]!.result(), shifts[k]!)));
    } finally {
      for (const g of grams) g.dispose();
    }
  } finally {
    for (const s of sums) s.dispose();
    held.close();
  }
}
