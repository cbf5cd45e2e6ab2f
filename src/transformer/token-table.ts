// Node layer 0 of a transformer as a table per (token, position). When the embedding stage has no
// op that mixes positions (no attention, no lastPos), the node layer's row at position p of a
// sample is a function of that token and p alone, so vocab·P rows in float64 hold every row the
// data can produce. Where the vocabulary is no larger than N (rib's modular addition: 114·3 rows
// for 3830 triples) the passes read node layer 0 from the table instead of a GPU pass: its
// statistics as token counts times table rows, the attention closed forms' rows f·J and u = f·C
// as table rows times small matrices, all exact in float64.

import { embedF64, forwardF64 } from '../cpu/program-f64.js';
import { IbgpuError } from '../errors.js';
import type { GpuModel } from './gpu-model.js';

/**
 * Node layer 0's rows per (token, position), [vocab·P, d_in] in float64, when they are a function
 * of the token and its position only (an embedding stage without attention or lastPos) and the
 * table is smaller than the data (vocab ≤ N) and 64 MiB: the closed forms then read their rows
 * f·J and u = f·C from tables of vocab·P rows instead of a GPU pass over the data (rib's
 * modular addition: 114·3 rows for 3830 samples), exactly, in float64.
 */
export function tokenRowTable(model: GpuModel, s: number, N: number, widest: number): Float64Array | undefined {
  const mp = model.mp;
  const emb = mp.embed;
  if (s !== 0 || !emb || mp.pre.ops.some((op) => op.kind === 'attention' || op.kind === 'lastPos')) return undefined;
  const V = emb.vocab,
    P = model.P;
  if (V > N || V * P * widest * 8 > 64 * 2 ** 20) return undefined;
  const toks = new Int32Array(V * P);
  for (let v = 0; v < V; v++) toks.fill(v, v * P, (v + 1) * P);
  const vals = forwardF64(mp.pre, embedF64(emb, toks, V, P), V);
  const L = model.nodes[0]!;
  const out = new Float64Array(V * P * L.width);
  let c0 = 0;
  mp.pre.outputs.forEach((id, j) => {
    const w = L.widths[j]!;
    const x = vals[id]!;
    for (let row = 0; row < V * P; row++) for (let c = 0; c < w; c++) out[row * L.width + c0 + c] = x[row * w + c]!;
    c0 += w;
  });
  return out;
}

/** Rows [b·P, w] of samples [first, first + b) looked up in a per-(token, position) table [vocab·P, w]. */
export function lookupRows(
  table: Float64Array,
  w: number,
  tokens: ArrayLike<number>,
  vocab: number,
  P: number,
  first: number,
  b: number,
  shared: boolean,
): Float64Array {
  const out = shared ? new Float64Array(new SharedArrayBuffer(b * P * w * 8)) : new Float64Array(b * P * w);
  for (let i = 0; i < b * P; i++) {
    const t = tokens[first * P + i]!;
    if (!Number.isInteger(t) || t < 0 || t >= vocab) {
      throw new IbgpuError(
        'BAD_FILE',
        `token ${i % P} of sample ${first + Math.floor(i / P)} is ${t}, outside the vocabulary 0..${vocab - 1}`,
        'check that the dataset was tokenised for this model',
      );
    }
    const row = t * P + (i % P);
    out.set(table.subarray(row * w, (row + 1) * w), i * w);
  }
  return out;
}

/** Token i of the flattened [N, P] samples, checked against the vocabulary. */
function tokenAt(tokens: ArrayLike<number>, i: number, vocab: number, P: number): number {
  const t = tokens[i]!;
  if (!Number.isInteger(t) || t < 0 || t >= vocab) {
    throw new IbgpuError(
      'BAD_FILE',
      `token ${i % P} of sample ${Math.floor(i / P)} is ${t}, outside the vocabulary 0..${vocab - 1}`,
      'check that the dataset was tokenised for this model',
    );
  }
  return t;
}

/**
 * Statistics of node layer 0 from its table: the mean and the Gram (divided by N·P), centred at
 * `shift(mean)` when given, else raw, in float64 from the (token, position) counts.
 */
export function tableNodeStats(
  table: Float64Array,
  width: number,
  tokens: ArrayLike<number>,
  vocab: number,
  P: number,
  N: number,
  shift?: (mean: Float64Array) => Float64Array,
): { mean: Float64Array; gram: Float64Array; shift?: Float64Array } {
  const counts = new Float64Array(vocab * P);
  for (let i = 0; i < N * P; i++) {
    const t = tokenAt(tokens, i, vocab, P);
    counts[t * P + (i % P)]! += 1;
  }
  const rows = N * P;
  const mean = new Float64Array(width);
  for (let k = 0; k < vocab * P; k++) {
    const c = counts[k]!;
    if (c === 0) continue;
    for (let a = 0; a < width; a++) mean[a]! += c * table[k * width + a]!;
  }
  for (let a = 0; a < width; a++) mean[a] = mean[a]! / rows;
  const sh = shift?.(mean);
  const gram = new Float64Array(width * width);
  const x = new Float64Array(width);
  for (let k = 0; k < vocab * P; k++) {
    const c = counts[k]!;
    if (c === 0) continue;
    for (let a = 0; a < width; a++) x[a] = table[k * width + a]! - (sh ? sh[a]! : 0);
    for (let a = 0; a < width; a++) {
      const v = c * x[a]!;
      if (v === 0) continue;
      for (let b = 0; b < width; b++) gram[a * width + b]! += v * x[b]!;
    }
  }
  for (let i = 0; i < gram.length; i++) gram[i] = gram[i]! / rows;
  return { mean, gram, ...(sh ? { shift: sh } : {}) };
}

/**
 * The distinct table rows the samples use, numbered in order of first use: `ids` [N·P] the compact
 * row of each (sample, position) (shared memory with `shared`), `rows` the table row (token·P +
 * position) of each compact row. The table forms of the attention sums work per compact row.
 */
export function tableRowIds(tokens: ArrayLike<number>, vocab: number, P: number, N: number, shared: boolean): { ids: Int32Array; rows: Int32Array } {
  const ids = shared ? new Int32Array(new SharedArrayBuffer(N * P * 4)) : new Int32Array(N * P);
  const compact = new Int32Array(vocab * P).fill(-1);
  const rows: number[] = [];
  for (let i = 0; i < N * P; i++) {
    const t = tokenAt(tokens, i, vocab, P);
    const row = t * P + (i % P);
    if (compact[row]! < 0) compact[row] = rows.push(row) - 1;
    ids[i] = compact[row]!;
  }
  return { ids, rows: Int32Array.from(rows) };
}

/** The rows `rows` of a table [*, w], in that order. */
export function gatherRows(table: Float64Array, w: number, rows: Int32Array): Float64Array {
  const out = new Float64Array(rows.length * w);
  rows.forEach((row, i) => out.set(table.subarray(row * w, (row + 1) * w), i * w));
  return out;
}
