// Float64 accumulators of the statistics pass on the host (the 'host' stats path, chosen on
// software adapters where the "GPU" is these same CPU cores): per node layer the column sums and
// the shifted Gram Σ(x − s)(x − s)ᵀ, per section the sums and Gram of the integrated activation
// derivative g. They take the rows of a host forward pass (src/host/mlp-forward.ts) batch by batch.
//
// Why these shapes of loop:
//   - A layer whose first batch is at most SPARSE_ROW_DENSITY non-zero is accumulated raw
//     (Σ x xᵀ over each row's non-zeros only) and shifted exactly at the end:
//     Σ(x−s)(x−s)ᵀ = Σxxᵀ − sSᵀ − Ssᵀ + n ssᵀ, by the loop of src/cpu/sparse-gram.ts (the input's).
//     Denser layers (rib's MNIST MLP's ReLU outputs are ~68 % non-zero) subtract the shift from
//     each row and take the row-blocked, register-tiled Gram of src/cpu/gram.ts, which beats the
//     indexed scatter of the sparse loop above ~40 % density (measured on those layers: 110 ms
//     against 150 ms for 2 × 10k rows of width 100); the shift keeps the centring's
//     cancellation governed by |μ − s| instead of |μ|.
//   - For ReLU with integration points α > 0 every gate is 0 or gOn = Σ_k w_k, so Σ g gᵀ is gOn²
//     times the co-firing counts: the firing bits are packed 32 datapoints to a word and every
//     pair costs one popcount per word (exact integer counts; src/cpu/sign-patterns.ts).

import { actGrad, type Activation } from '../model/activations.js';
import { cofireCpu, packSignsCpu } from '../cpu/sign-patterns.js';
import { addSparseRowsGram, density, shiftedGram } from '../cpu/sparse-gram.js';
import { gramHost } from './gram.js';
import { checkShape } from '../errors.js';

/** Layers whose first batch is at most this dense accumulate the raw Gram over non-zeros. */
export const SPARSE_ROW_DENSITY = 0.4;

/** Column means of `rows` row-major rows of width d (sums in row order, then one division). */
export function columnMeansF64(x: Float64Array, rows: number, d: number): Float64Array {
  const s = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    for (let j = 0; j < d; j++) s[j]! += x[o + j]!;
  }
  for (let j = 0; j < d; j++) s[j] = s[j]! / rows;
  return s;
}

/**
 * Column sums and the Gram Σ(x − shift)(x − shift)ᵀ of float64 rows (shift all zeros for an
 * unshifted Gram). Sparse or dense accumulation is fixed by the first batch added (see header).
 */
export class HostGramF64 {
  readonly d: number;
  readonly shift: Float64Array;
  private sparse: boolean | undefined;
  private readonly g: Float64Array; // upper triangle (i <= j), row-major d×d
  private readonly s: Float64Array;
  private n = 0;

  constructor(d: number, shift?: ArrayLike<number>) {
    checkShape(Number.isInteger(d) && d >= 1, `HostGramF64: d must be a positive integer, got ${d}`);
    checkShape(!shift || shift.length === d, `HostGramF64: shift has length ${shift?.length}, expected ${d}`);
    this.d = d;
    this.shift = shift ? Float64Array.from(shift) : new Float64Array(d);
    this.g = new Float64Array(d * d);
    this.s = new Float64Array(d);
  }

  get rows(): number {
    return this.n;
  }

  /** True when the raw Gram is accumulated over each row's non-zeros. */
  get isSparse(): boolean {
    return this.sparse ?? false;
  }

  /** Adds `rows` row-major rows of x (rows×d, float64). */
  add(x: Float64Array, rows: number): void {
    const d = this.d;
    checkShape(Number.isInteger(rows) && rows >= 0 && x.length >= rows * d, `HostGramF64.add: expected rows*d = ${rows}*${d} values, got ${x.length}`);
    this.sparse ??= density(x, rows * d) <= SPARSE_ROW_DENSITY;
    const { g, s } = this;
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      for (let j = 0; j < d; j++) s[j]! += x[o + j]!;
    }
    // Σ x xᵀ over each row's non-zeros (upper triangle).
    if (this.sparse) addSparseRowsGram(x, rows, d, g);
    else {
      // Shifted rows in row blocks with 2×2 register tiles (gramF64; gramHost runs it in WebAssembly SIMD, same bits).
      const b = gramHost(x, rows, d, this.shift);
      for (let i = 0; i < d; i++) for (let j = i; j < d; j++) g[i * d + j]! += b[i * d + j]!;
    }
    this.n += rows;
  }

  /** Column sums Σ x. */
  sums(): Float64Array {
    return Float64Array.from(this.s);
  }

  /** The full symmetric Σ(x − shift)(x − shift)ᵀ (d×d). */
  gram(): Float64Array {
    const { d, g } = this;
    // The raw sums of the sparse layers shift exactly at the end (see the header).
    if (this.sparse) return shiftedGram(g, this.s, this.n, d, this.shift);
    const out = new Float64Array(d * d);
    for (let i = 0; i < d; i++) {
      for (let j = i; j < d; j++) {
        const v = g[i * d + j]!;
        out[i * d + j] = v;
        out[j * d + i] = v;
      }
    }
    return out;
  }
}

/** Integration points of the gate g = Σ_k w_k σ'(α_k p) (src/ib/integration.ts). */
export interface GatePoints {
  alphas: ArrayLike<number>;
  weights: ArrayLike<number>;
}

/**
 * Sums and Gram Σ g gᵀ of a section's integrated activation derivative g = Σ_k w_k σ'(α_k p),
 * from the section's pre-activations p (bias included). ReLU with every α_k > 0 takes the
 * co-firing count path (header); other activations compute g per element and accumulate its Gram.
 */
export class HostGateStats {
  readonly h: number;
  /** g's value where a ReLU fires (undefined: the general path). */
  readonly gOn: number | undefined;
  private readonly counts: Float64Array | undefined; // Σ [p_a > 0][p_b > 0], full d×d
  private readonly general: HostGramF64 | undefined;
  private fired: Float64Array | undefined;
  private n = 0;

  constructor(
    h: number,
    readonly activation: Activation,
    private readonly pts: GatePoints,
  ) {
    checkShape(Number.isInteger(h) && h >= 1, `HostGateStats: h must be a positive integer, got ${h}`);
    this.h = h;
    let positive = pts.alphas.length > 0;
    for (let k = 0; k < pts.alphas.length; k++) if (!(pts.alphas[k]! > 0)) positive = false;
    if (activation === 'relu' && positive) {
      let g = 0;
      for (let k = 0; k < pts.alphas.length; k++) g += pts.weights[k]! * actGrad('relu', pts.alphas[k]!);
      this.gOn = g;
      this.counts = new Float64Array(h * h);
      this.fired = new Float64Array(h);
    } else {
      this.gOn = undefined;
      this.general = new HostGramF64(h);
    }
  }

  /** Adds `rows` rows of pre-activations p (rows×h, bias included). */
  add(pre: Float64Array, rows: number): void {
    const h = this.h;
    checkShape(Number.isInteger(rows) && rows >= 0 && pre.length >= rows * h, `HostGateStats.add: expected rows*h = ${rows}*${h} values, got ${pre.length}`);
    if (rows === 0) return;
    if (this.counts) {
      const words = packSignsCpu(rows * h === pre.length ? pre : pre.subarray(0, rows * h), rows, h);
      const c = cofireCpu(words, h, rows);
      const { counts, fired } = this;
      for (let i = 0; i < c.length; i++) counts[i]! += c[i]!;
      for (let a = 0; a < h; a++) fired![a]! += c[a * h + a]!;
    } else {
      const g = new Float64Array(rows * h);
      const { alphas, weights } = this.pts;
      const K = alphas.length;
      const a = this.activation;
      for (let i = 0; i < rows * h; i++) {
        const p = pre[i]!;
        let v = 0;
        for (let k = 0; k < K; k++) v += weights[k]! * actGrad(a, alphas[k]! * p);
        g[i] = v;
      }
      this.general!.add(g, rows);
    }
    this.n += rows;
  }

  get rows(): number {
    return this.n;
  }

  /** Σ g (length h). */
  sums(): Float64Array {
    if (this.general) return this.general.sums();
    return Float64Array.from(this.fired!, (c) => c * this.gOn!);
  }

  /** Σ g gᵀ (h×h). */
  gram(): Float64Array {
    if (this.general) return this.general.gram();
    const g2 = this.gOn! * this.gOn!;
    return Float64Array.from(this.counts!, (c) => c * g2);
  }
}
