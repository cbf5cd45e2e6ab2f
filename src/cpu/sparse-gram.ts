// Column sums and Gram matrix of mostly-zero rows, accumulated on the host in float64 from each
// row's non-zero entries only.
//
// Why: on a software adapter the "GPU" is these same CPU cores, and a dense GPU Gram of sparse
// data spends almost all of its multiply-adds on zeros. MNIST pixels are ~19 % non-zero, so the
// 784-wide input Gram costs (0.19)² ≈ 4 % of the dense work this way (and is exact in float64
// rather than f32 per batch). Real GPUs keep the dense kernel: collectStats chooses
// (chooseInputGramPath in src/ib/stats.ts).
//
// The Gram is accumulated raw (Σ x xᵀ) because a shift would make the rows dense; result(shift)
// converts exactly: Σ (x−s)(x−s)ᵀ = Σ x xᵀ − s Sᵀ − S sᵀ + n s sᵀ with S = Σ x.

import { checkShape } from '../errors.js';

/** Fraction of non-zero entries of the first `count` values of x. */
export function density(x: ArrayLike<number>, count = x.length): number {
  if (count === 0) return 0;
  let nz = 0;
  for (let i = 0; i < count; i++) if (x[i] !== 0) nz++;
  return nz / count;
}

export class SparseGramF64 {
  readonly d: number;
  private readonly g: Float64Array; // upper triangle (i <= j) of Σ x xᵀ, row-major d×d
  private readonly s: Float64Array;
  private n = 0;

  constructor(d: number) {
    checkShape(Number.isInteger(d) && d >= 1, `SparseGramF64: d must be a positive integer, got ${d}`);
    this.d = d;
    this.g = new Float64Array(d * d);
    this.s = new Float64Array(d);
  }

  get rows(): number {
    return this.n;
  }

  /** Adds `rows` row-major rows of x (rows×d). */
  add(x: Float32Array, rows: number): void {
    const d = this.d;
    checkShape(Number.isInteger(rows) && rows >= 0 && x.length >= rows * d, `SparseGramF64.add: expected rows*d = ${rows}*${d} values, got ${x.length}`);
    addSparseRowsGram(x, rows, d, this.g, this.s);
    this.n += rows;
  }

  /** Column sums S = Σ x (length d). */
  sums(): Float64Array {
    return Float64Array.from(this.s);
  }

  /** Full symmetric Σ (x − shift)(x − shift)ᵀ (d×d), from the raw sums; shift defaults to 0. */
  gram(shift?: ArrayLike<number>): Float64Array {
    return shiftedGram(this.g, this.s, this.n, this.d, shift);
  }
}

/**
 * g (the upper triangle i ≤ j of a row-major d×d Σ x xᵀ) += x xᵀ for `rows` row-major rows of x,
 * from each row's non-zero entries only (gathered per row into idx and val: d values each, for a
 * whole batch of rows); where s is given, also the column sums s += x over the same entries. The one sparse Gram loop of the
 * host: SparseGramF64 here and the sparse layers of HostGramF64 (src/host/stats.ts) both run it,
 * so they sum every entry in the same order. The O(m²) pair loop touches only g, idx and val,
 * whose types never change, so it stays monomorphic whichever array type x is.
 */
export function addSparseRowsGram(x: Float32Array | Float64Array, rows: number, d: number, g: Float64Array, s?: Float64Array): void {
  const idx = new Int32Array(d);
  const val = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let m = 0;
    for (let j = 0; j < d; j++) {
      const v = x[o + j]!;
      if (v !== 0) {
        idx[m] = j;
        val[m] = v;
        m++;
      }
    }
    for (let a = 0; a < m; a++) {
      const ia = idx[a]!;
      const va = val[a]!;
      if (s) s[ia]! += va;
      const row = ia * d;
      let b = a;
      // Unrolled by four: V8 does not vectorise, and the independent adds overlap (~2x faster on
      // MNIST rows).
      for (; b + 3 < m; b += 4) {
        g[row + idx[b]!]! += va * val[b]!;
        g[row + idx[b + 1]!]! += va * val[b + 1]!;
        g[row + idx[b + 2]!]! += va * val[b + 2]!;
        g[row + idx[b + 3]!]! += va * val[b + 3]!;
      }
      for (; b < m; b++) g[row + idx[b]!]! += va * val[b]!;
    }
  }
}

/**
 * The full symmetric Σ (x − shift)(x − shift)ᵀ (d×d) from the upper triangle of the raw Gram
 * g = Σ x xᵀ, the column sums s = Σ x and the row count n (shift defaults to 0).
 */
export function shiftedGram(g: Float64Array, s: Float64Array, n: number, d: number, shift?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    const si = shift ? shift[i]! : 0;
    for (let j = i; j < d; j++) {
      const sj = shift ? shift[j]! : 0;
      const v = g[i * d + j]! - si * s[j]! - s[i]! * sj + n * si * sj;
      out[i * d + j] = v;
      out[j * d + i] = v;
    }
  }
  return out;
}
