// Deterministic random numbers for tests (mulberry32 + Box-Muller).
import { mulberry32 } from '../../src/util/mulberry32.js';

/** Uniform in [0, 1), a pure function of the seed (the library's one small generator). */
export const rng = mulberry32;

export function gaussian(rand: () => number): () => number {
  return () => {
    const u = Math.max(rand(), 1e-300);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
}

export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const g = gaussian(rng(seed));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = g() * scale;
  return out;
}

/** n standard Gaussian entries in float64, a pure function of the seed. */
export function randomF64(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  return Float64Array.from({ length: n }, () => g());
}

/**
 * Cuts of rows into three uneven runs [cuts[i], cuts[i+1]) (one of a single row), fewer where
 * rows is too small: what passes that carry state from row to row are tested over.
 */
export function unevenRuns(rows: number): number[] {
  return [0, Math.floor(rows / 3), Math.floor(rows / 3) + 1, rows].filter((c, i, a) => i === 0 || c > a[i - 1]!);
}

/** rows × cols Gaussian entries scaled by 1/√rows (a random basis-like matrix of order-1 products). */
export function randomMatrix(rows: number, cols: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  return Float64Array.from({ length: rows * cols }, () => g() / Math.sqrt(rows));
}
