// Node-layer statistics of a transformer on the GPU (SPEC-transformers §4.1): per node layer the
// column sums Σ_{n,p} f_{n,p} and the Gram Σ_{n,p} (f_{n,p} − s)(f_{n,p} − s)ᵀ over all N·P rows
// (raw with no shift; two-pass centring passes the first pass's mean as the shift). Each batch's
// sums are f32 on the GPU (pairwise inside the batch), added across batches in float64 on the
// host (src/kernels/gram.ts). Results are SUMS; the caller divides by N·P_node.

import { checkShape } from '../errors.js';
import { ColumnSumAccumulator, GramAccumulator } from '../kernels/gram.js';
import type { Engine } from '../runtime/engine.js';
import { concatTuple, samplesPerBatch, type GpuModel } from './gpu-model.js';

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
export async function nodeStatsGpu(engine: Engine, model: GpuModel, tokens: ArrayLike<number>, N: number, opts: NodeStatsOptions = {}): Promise<NodeStatsGpu[]> {
  const nodes = opts.nodes ?? model.nodes.map((_, i) => i);
  checkShape(nodes.length > 0 && nodes.every((i) => Number.isInteger(i) && i >= 0 && i < model.nodes.length), `nodeStatsGpu: node indices ${nodes.join(', ')} outside 0..${model.nodes.length - 1}`);
  checkShape(Number.isInteger(N) && N >= 1 && tokens.length >= N * model.P, `nodeStatsGpu: ${tokens.length} tokens for N = ${N} samples of ${model.P} positions`);
  const withGram = opts.gram ?? true;
  const last = Math.max(...nodes);
  const perSample = Math.max(model.forwardFloatsPerSample(), ...nodes.map((i) => model.nodes[i]!.width * model.nodes[i]!.positions));
  const B = opts.batch ?? samplesPerBatch(engine, perSample, N);
  const sums = nodes.map((i) => new ColumnSumAccumulator(engine, model.nodes[i]!.width));
  const shifts = nodes.map((i, k) => {
    const s = opts.shifts?.[k];
    checkShape(!s || s.length === model.nodes[i]!.width, `nodeStatsGpu: shift for ${model.nodes[i]!.name} has length ${s?.length}, expected ${model.nodes[i]!.width}`);
    return s ?? new Float64Array(model.nodes[i]!.width);
  });
  const grams = withGram ? nodes.map((i, k) => new GramAccumulator(engine, model.nodes[i]!.width, opts.shifts?.[k] ? { shift: shifts[k] } : {})) : [];
  try {
    for (let first = 0; first < N; first += B) {
      const b = Math.min(B, N - first);
      const pending: Promise<void>[] = [];
      const out = model.forwardTo(tokens, first, b, last, (node, tuple) => {
        const k = nodes.indexOf(node);
        if (k < 0) return;
        const L = model.nodes[node]!;
        const rows = b * L.positions;
        const x = concatTuple(engine, tuple, L.widths, rows);
        pending.push(sums[k]!.addBatch(x, rows));
        if (withGram) {
          const g = grams[k]!.addBatch(x, rows);
          if (g) pending.push(g);
        }
        engine.release(x);
      });
      engine.release(...out);
      await Promise.all(pending);
    }
    return await Promise.all(nodes.map(async (i, k) => {
      const L = model.nodes[i]!;
      return {
        name: L.name, width: L.width, positions: L.positions, rows: N * L.positions,
        sum: await sums[k]!.result(),
        ...(withGram ? { gram: await grams[k]!.result() } : {}),
        shift: Float64Array.from(Float32Array.from(shifts[k]!)),
      };
    }));
  } finally {
    for (const s of sums) s.dispose();
    for (const g of grams) g.dispose();
  }
}
