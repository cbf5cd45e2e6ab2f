// The forward pass of an MLP over a batch of rows on the host, in float64, for the host paths of
// the statistics and edge passes (chosen on software adapters, where the "GPU" is these same CPU
// cores and dense kernels spend their loads on zeros).
//
// Each pre-activation row is built as p = b + Σ_i x_i W[i, :] over the non-zero x_i only, in
// increasing i: MNIST pixels are ~19 % non-zero and a ReLU layer's outputs about half, so the
// work follows the non-zeros, and W's [in, out] row-major layout makes every term a contiguous
// axpy. Skipping a zero x_i adds an exact ±0, so the values equal forwardSampleF64's
// (src/cpu/mlp-forward.ts) bit for bit.

import { act as actF64, type Activation } from '../model/activations.js';
import type { ForwardLayer } from '../cpu/mlp-forward.js';
import { checkShape } from '../errors.js';

export interface HostForward {
  readonly rows: number;
  /** acts[a]: rows × width row-major; a = 0 is the input, a = i + 1 the output of layer i. */
  readonly acts: Float64Array[];
  /** pres[i]: rows × dOut row-major pre-activations of layer i (i < upTo). */
  readonly pres: Float64Array[];
}

/**
 * p[o] = b[o] + Σ_{i: x_i ≠ 0} x_i W[i, :] for one row; `out` is overwritten. (The axpy is
 * unrolled by four: V8 does not vectorise, and this is ~1.5x the plain loop.)
 */
function affineRow(x: Float64Array, xo: number, dIn: number, W: Float64Array, b: Float64Array, dOut: number, out: Float64Array, oo: number): void {
  for (let o = 0; o < dOut; o++) out[oo + o] = b[o]!;
  for (let i = 0; i < dIn; i++) {
    const v = x[xo + i]!;
    if (v === 0) continue;
    const w = i * dOut;
    let o = 0;
    for (; o + 4 <= dOut; o += 4) {
      out[oo + o]! += v * W[w + o]!;
      out[oo + o + 1]! += v * W[w + o + 1]!;
      out[oo + o + 2]! += v * W[w + o + 2]!;
      out[oo + o + 3]! += v * W[w + o + 3]!;
    }
    for (; o < dOut; o++) out[oo + o]! += v * W[w + o]!;
  }
}

/**
 * Buffers one caller reuses across forward passes (every value is overwritten): a long-lived
 * caller that allocated fresh arrays per batch would leave the freeing to its garbage collector,
 * which on an idle worker thread can lag far behind, so its memory grew with the number of rows.
 */
export interface ForwardScratch {
  bufs: Float64Array[];
}

/** `n` values of scratch slot `k` (grown when too short), or a fresh array without scratch. */
function take(scratch: ForwardScratch | undefined, k: number, n: number): Float64Array {
  if (!scratch) return new Float64Array(n);
  let b = scratch.bufs[k];
  if (!b || b.length < n) {
    b = new Float64Array(n);
    scratch.bufs[k] = b;
  }
  return b.subarray(0, n);
}

/**
 * Runs layers 0..upTo−1 on `rows` row-major rows of x (the first layer's dIn wide). `activate`
 * defaults to the model's activation functions in float64. With `scratch`, the returned arrays
 * are views of its buffers, valid until the next call with the same scratch.
 */
export function forwardRowsHost(
  model: { readonly layers: readonly ForwardLayer[] },
  x: ArrayLike<number>,
  rows: number,
  upTo = model.layers.length,
  activate: (a: Activation, v: number) => number = actF64,
  scratch?: ForwardScratch,
): HostForward {
  checkShape(Number.isInteger(upTo) && upTo >= 0 && upTo <= model.layers.length, `forwardRowsHost: upTo = ${upTo} is outside 0..${model.layers.length}`);
  const d0 = model.layers[0]!.dIn;
  checkShape(Number.isInteger(rows) && rows >= 0 && x.length >= rows * d0, `forwardRowsHost: expected rows*d = ${rows}*${d0} values, got ${x.length}`);
  const x0 = take(scratch, 0, rows * d0);
  for (let k = 0; k < x0.length; k++) x0[k] = x[k]!;
  const acts: Float64Array[] = [x0];
  const pres: Float64Array[] = [];
  for (let li = 0; li < upTo; li++) {
    const l = model.layers[li]!;
    const inp = acts[li]!;
    // Float64 copies keep the inner loop on one array type (monomorphic, no conversions).
    const W = l.W instanceof Float64Array ? l.W : Float64Array.from(l.W);
    const b = l.b instanceof Float64Array ? l.b : Float64Array.from(l.b);
    const p = take(scratch, 1 + 2 * li, rows * l.dOut);
    for (let r = 0; r < rows; r++) affineRow(inp, r * l.dIn, l.dIn, W, b, l.dOut, p, r * l.dOut);
    const a = take(scratch, 2 + 2 * li, p.length);
    for (let k = 0; k < p.length; k++) a[k] = activate(l.activation, p[k]!);
    pres.push(p);
    acts.push(a);
  }
  return { rows, acts, pres };
}
