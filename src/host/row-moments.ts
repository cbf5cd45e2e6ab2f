// Float64 host accumulators over rows that arrive in chunks (a transformer's (datapoint, position)
// rows, src/transformer/degeneracy.ts): the mean and covariance of a block of columns, and the
// firing bits of pre-activations packed as the sign-pattern kernels pack them.
//
// The moments are summed about a shift (the first chunk's mean), so the covariance suffers no
// cancellation when the mean is large against the spread (a residual stream's offset, an
// always-on ReLU's constant part).

import { gramProductHost } from './matmul.js';
import { cofireCpu, fireCountCpu, hashPatternsCpu, type SignPatternResult } from '../cpu/sign-patterns.js';

/** Columns [offset, offset + d) of a chunk of row-major rows with `stride` values per row. */
export interface RowBlock {
  data: Float64Array;
  rows: number;
  stride: number;
  offset: number;
}

export interface Moments {
  rows: number;
  /** (1/R) Σ x. */
  mean: Float64Array;
  /** (1/R) Σ (x − μ)(x − μ)ᵀ, d×d. */
  cov: Float64Array;
  /** (1/R) Σ x xᵀ = cov + μμᵀ, d×d. */
  gram: Float64Array;
}

export class ShiftedMoments {
  private shift: Float64Array | undefined;
  private readonly s1: Float64Array;
  private readonly s2: Float64Array;
  private rows = 0;

  constructor(readonly d: number) {
    this.s1 = new Float64Array(d);
    this.s2 = new Float64Array(d * d);
  }

  /** Adds the rows of `b`: their deviations from the shift, then Σ c cᵀ as one blocked product. */
  add(b: RowBlock): void {
    const { d } = this;
    const rows = b.rows;
    if (rows === 0) return;
    if (!this.shift) {
      const s = new Float64Array(d);
      for (let r = 0; r < rows; r++) for (let a = 0; a < d; a++) s[a]! += b.data[r * b.stride + b.offset + a]!;
      for (let a = 0; a < d; a++) s[a] = s[a]! / rows;
      this.shift = s;
    }
    const s = this.shift;
    const c = new Float64Array(rows * d);
    for (let r = 0; r < rows; r++) {
      const o = r * b.stride + b.offset;
      for (let a = 0; a < d; a++) {
        const v = b.data[o + a]! - s[a]!;
        c[r * d + a] = v;
        this.s1[a]! += v;
      }
    }
    const g = gramProductHost(c, rows, d);
    for (let i = 0; i < d * d; i++) this.s2[i]! += g[i]!;
    this.rows += rows;
  }

  result(): Moments {
    const { d, rows } = this;
    const s = this.shift ?? new Float64Array(d);
    const m = Float64Array.from(this.s1, (v) => (rows ? v / rows : 0)); // mean of x − shift
    const mean = Float64Array.from(m, (v, a) => v + s[a]!);
    const cov = new Float64Array(d * d);
    const gram = new Float64Array(d * d);
    for (let a = 0; a < d; a++) {
      for (let e = a; e < d; e++) {
        // s2 is symmetric up to rounding; its upper triangle is used.
        const c = (rows ? this.s2[a * d + e]! / rows : 0) - m[a]! * m[e]!;
        cov[a * d + e] = c;
        cov[e * d + a] = c;
        const g = c + mean[a]! * mean[e]!;
        gram[a * d + e] = g;
        gram[e * d + a] = g;
      }
    }
    return { rows, mean, cov, gram };
  }
}

/**
 * Firing bits s_a(r) = [pre[r, a] > 0] of `d` units over `totalRows` rows, packed neuron-major
 * (bit r % 32 of word r >> 5 of unit a) as rows arrive, in row order; then the hashes, firing
 * counts and (optionally) co-firing counts of src/cpu/sign-patterns.ts's exact integer routines.
 */
export class FiringBits {
  private readonly W: number;
  private readonly words: Uint32Array;
  private next = 0;

  constructor(
    readonly d: number,
    readonly totalRows: number,
  ) {
    this.W = Math.ceil(totalRows / 32);
    this.words = new Uint32Array(d * this.W);
  }

  add(b: RowBlock): void {
    if (this.next + b.rows > this.totalRows) throw new Error(`FiringBits: ${this.next + b.rows} rows exceed the ${this.totalRows} announced`);
    const { d, W, words } = this;
    for (let r = 0; r < b.rows; r++) {
      const g = this.next + r;
      const bit = (1 << (g & 31)) >>> 0;
      const w = g >>> 5;
      const o = r * b.stride + b.offset;
      for (let a = 0; a < d; a++) if (b.data[o + a]! > 0) words[a * W + w]! |= bit;
    }
    this.next += b.rows;
  }

  result(opts: { cofire: boolean }): SignPatternResult {
    if (this.next !== this.totalRows) throw new Error(`FiringBits: ${this.next} of ${this.totalRows} rows were added`);
    const { d, words } = this;
    const n = this.totalRows;
    const { hashLo, hashHi } = hashPatternsCpu(words, d, n);
    return { n, d, hashLo, hashHi, fireCount: fireCountCpu(words, d, n), cofire: opts.cofire ? cofireCpu(words, d, n) : new Float64Array(0), words };
  }
}

/**
 * The result of the first `units` of r's units: the same bits FiringBits of `units` units would give
 * over those columns (words are neuron-major, so theirs are a prefix; hashes and counts are per
 * unit; the co-firing counts are the leading block).
 */
export function firstUnits(r: SignPatternResult, units: number): SignPatternResult {
  if (!(units >= 1 && units <= r.d)) throw new Error(`firstUnits: ${units} units of ${r.d}`);
  if (units === r.d) return r;
  const W = Math.ceil(r.n / 32);
  let cofire = new Float64Array(0);
  if (r.cofire.length > 0) {
    cofire = new Float64Array(units * units);
    for (let a = 0; a < units; a++) cofire.set(r.cofire.subarray(a * r.d, a * r.d + units), a * units);
  }
  return {
    n: r.n,
    d: units,
    hashLo: r.hashLo.slice(0, units),
    hashHi: r.hashHi.slice(0, units),
    fireCount: r.fireCount.slice(0, units),
    cofire,
    ...(r.words ? { words: r.words.slice(0, units * W) } : {}),
  };
}
