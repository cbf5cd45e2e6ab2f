// Visiting orders and gate-change lists for the squared-edge kernel of ReLU sections
// (shaders/edges_squared_delta.wgsl). The kernel carries each datapoint's Jacobian over to the
// next visited one and pays only for the gates that changed, so for ReLU sections (two-valued
// gates) the cost per row is the Hamming distance between consecutive firing patterns rather
// than the number of firing units; signPatternOrder finds an order that keeps it small.

import { popcount32 } from '../cpu/sign-patterns.js';

/** Candidates on each side of the current row that the nearest-neighbour chain compares. */
const CHAIN_WINDOW = 32;

/**
 * A visiting order of a batch (pre-activations or gates, rows × cols, row-major) in which
 * consecutive rows have similar sign patterns (pre[n, h] > 0). First the rows are sorted
 * lexicographically by pattern (unit 0 most significant); then a greedy chain walks that list,
 * each step moving to the unvisited row with the fewest differing units among the CHAIN_WINDOW
 * nearest unvisited rows on either side in sorted order. On rib's MNIST MLP the chain needs
 * ~15 changed units per row where the sorted list needs ~24 and the data order ~45; a full
 * nearest-neighbour chain (~14) costs O(rows²) and is not worth it. Ties go to the nearer row.
 */
export function signPatternOrder(pre: ArrayLike<number>, rows: number, cols: number): Uint32Array {
  const words = Math.ceil(cols / 32);
  const keys = new Uint32Array(rows * words);
  for (let n = 0; n < rows; n++) {
    for (let h = 0; h < cols; h++) {
      // Unit h sits at bit 31 − (h mod 32) of word h/32, so comparing words compares units in order.
      if (pre[n * cols + h]! > 0) keys[n * words + (h >> 5)]! |= 0x80000000 >>> (h & 31);
    }
  }
  const sorted = Array.from({ length: rows }, (_, i) => i);
  sorted.sort((a, b) => {
    for (let w = 0; w < words; w++) {
      const d = keys[a * words + w]! - keys[b * words + w]!;
      if (d !== 0) return d;
    }
    return a - b;
  });
  // Greedy chain over the sorted list; unvisited positions form a doubly linked list.
  const next = Int32Array.from({ length: rows }, (_, i) => i + 1);
  const prev = Int32Array.from({ length: rows }, (_, i) => i - 1);
  const unlink = (i: number): void => {
    if (prev[i]! >= 0) next[prev[i]!] = next[i]!;
    if (next[i]! < rows) prev[next[i]!] = prev[i]!;
  };
  const distance = (i: number, j: number): number => {
    const a = sorted[i]! * words;
    const b = sorted[j]! * words;
    let d = 0;
    for (let w = 0; w < words; w++) d += popcount32(keys[a + w]! ^ keys[b + w]!);
    return d;
  };
  const order = new Uint32Array(rows);
  let cur = 0;
  for (let t = 0; t < rows; t++) {
    order[t] = sorted[cur]!;
    unlink(cur);
    let best = -1;
    let bestD = Infinity;
    let lo = prev[cur]!;
    let hi = next[cur]!;
    for (let k = 0; k < CHAIN_WINDOW && (lo >= 0 || hi < rows); k++) {
      if (hi < rows) {
        const d = distance(cur, hi);
        if (d < bestD) {
          bestD = d;
          best = hi;
        }
        hi = next[hi]!;
      }
      if (lo >= 0) {
        const d = distance(cur, lo);
        if (d < bestD) {
          bestD = d;
          best = lo;
        }
        lo = prev[lo]!;
      }
    }
    cur = best;
  }
  return order;
}

/** Per visited row: [row, first change, change count, fresh flag]; the layout of `Visit` in the shader. */
export interface GateChanges {
  visits: Uint32Array;
  /** Interleaved (h: u32, Δg: f32) pairs, the layout of `Change` in the shader (at least one pair long). */
  changes: Uint32Array;
  /** Number of (h, Δg) pairs. */
  count: number;
}

/**
 * Lists, for each row in visiting order, the gates (rows × h, row-major) that differ from the
 * previously visited row, with their f32 differences. Rows at a chunk start (multiples of
 * `chunkRows`) and every `reset`-th row of a chunk are fresh: they list every nonzero gate.
 */
export function gateChanges(gates: Float32Array, rows: number, h: number, order: Uint32Array, chunkRows: number, reset: number): GateChanges {
  const visits = new Uint32Array(rows * 4);
  const isFresh = (n: number): boolean => (n % chunkRows) % reset === 0;
  // First pass: the list lengths, so the pairs array is allocated at its size.
  let total = 0;
  for (let n = 0, prevBase = 0; n < rows; n++) {
    const base = order[n]! * h;
    if (isFresh(n)) for (let k = 0; k < h; k++) total += gates[base + k] !== 0 ? 1 : 0;
    else for (let k = 0; k < h; k++) total += gates[base + k] !== gates[prevBase + k] ? 1 : 0;
    prevBase = base;
  }
  // Δg goes in through a Float32Array view of the same words, rounded to f32 (exact for
  // two-valued gates: ±w).
  const pairs = new Uint32Array(2 * Math.max(1, total));
  const dgs = new Float32Array(pairs.buffer);
  let count = 0;
  let prevBase = 0;
  for (let n = 0; n < rows; n++) {
    const row = order[n]!;
    const base = row * h;
    const fresh = isFresh(n);
    const first = count;
    if (fresh) {
      for (let k = 0; k < h; k++) {
        const g = gates[base + k]!;
        if (g !== 0) {
          pairs[2 * count] = k;
          dgs[2 * count + 1] = g;
          count++;
        }
      }
    } else {
      for (let k = 0; k < h; k++) {
        const g = gates[base + k]!;
        const p = gates[prevBase + k]!;
        if (g !== p) {
          pairs[2 * count] = k;
          dgs[2 * count + 1] = g - p;
          count++;
        }
      }
    }
    visits[4 * n] = row;
    visits[4 * n + 1] = first;
    visits[4 * n + 2] = count - first;
    visits[4 * n + 3] = fresh ? 1 : 0;
    prevBase = base;
  }
  return { visits, changes: pairs, count };
}
