// Float64 references for the Gram statistics (SPEC §2): column sums (for means) and the raw or
// shifted Gram sum Σ_r (x_r − s)(x_r − s)ᵀ. Both return SUMS; callers divide by N·P.
//
// These are the test oracles for the GPU kernels and the CPU baseline in the benchmarks, so the
// Gram is written to be reasonably fast: rows are taken in blocks of GRAM_ROW_BLOCK, shifted and
// transposed into a float64 panel (one column of the batch contiguous), and each upper-triangle
// entry gets one dot product of length GRAM_ROW_BLOCK per block, computed 2x2 register-blocked. The
// d×d output is then touched once per block instead of once per row, and only i ≤ j is computed
// (the symmetric half of the flops); the lower triangle is mirrored at the end.

import { checkShape } from '../errors.js';

/** Rows per block of the Gram sums (src/host/gram.ts blocks the same way to give the same bits). */
export const GRAM_ROW_BLOCK = 128;

function checkArgs(fn: string, x: ArrayLike<number>, rows: number, d: number, shift?: ArrayLike<number>): void {
  checkShape(Number.isInteger(rows) && rows >= 0, `${fn}: rows must be a non-negative integer, got ${rows}`);
  checkShape(Number.isInteger(d) && d >= 1, `${fn}: d must be a positive integer, got ${d}`);
  checkShape(x.length >= rows * d, `${fn}: x holds ${x.length} values, fewer than rows*d = ${rows}*${d}`);
  if (shift) checkShape(shift.length === d, `${fn}: shift has length ${shift.length}, expected d = ${d}`);
}

/** Σ_r x[r, :] as float64 (length d). `x` is row-major rows×d. */
export function columnSumsF64(x: ArrayLike<number>, rows: number, d: number): Float64Array {
  checkArgs('columnSumsF64', x, rows, d);
  const s = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    for (let j = 0; j < d; j++) s[j]! += x[o + j]!;
  }
  return s;
}

/**
 * Σ_r (x_r − shift)(x_r − shift)ᵀ in float64: a full symmetric d×d matrix, row-major. `x` is
 * row-major rows×d; `shift` (length d) defaults to zero.
 */
export function gramF64(x: ArrayLike<number>, rows: number, d: number, shift?: ArrayLike<number>): Float64Array {
  checkArgs('gramF64', x, rows, d, shift);
  const g = new Float64Array(d * d);
  const B = Math.min(GRAM_ROW_BLOCK, Math.max(rows, 1));
  const panel = new Float64Array(d * B); // panel[c * B + b] = x[r0 + b, c] − shift[c]
  const rowsOf = Int32Array.from({ length: d }, (_, i) => i); // panel row i is row i of g
  for (let r0 = 0; r0 < rows; r0 += B) {
    const nb = Math.min(B, rows - r0);
    if (nb < B) panel.fill(0); // zero tail rows contribute nothing
    for (let b = 0; b < nb; b++) {
      const o = (r0 + b) * d;
      for (let c = 0; c < d; c++) panel[c * B + b] = x[o + c]! - (shift ? shift[c]! : 0);
    }
    addPanelGramUpper(g, d, rowsOf, panel, d, B);
  }
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) g[j * d + i] = g[i * d + j]!;
  return g;
}

/**
 * g[idx[i]·stride + idx[j]] += <p_i, p_j> for i ≤ j < d, over the d rows of length B of the panel
 * p, 2x2 blocks of (i, j) per inner loop. idx places the rows in g (increasing, so the upper
 * triangle stays the upper triangle): the identity for gramF64, a compact Jacobian's unit list for
 * the host degeneracy statistics (src/host/degeneracy.ts), whose WebAssembly twin
 * (jacobian_gram.wat's gram_upper) sums in this order. Each entry of g gets one add per call.
 */
export function addPanelGramUpper(g: Float64Array, stride: number, idx: Int32Array, p: Float64Array, d: number, B: number): void {
  let i = 0;
  for (; i + 1 < d; i += 2) {
    const a0 = i * B;
    const a1 = a0 + B;
    const i0 = idx[i]!,
      i1 = idx[i + 1]!;
    const r0 = i0 * stride,
      r1 = i1 * stride;
    // the 2x2 block on the diagonal: (i,i), (i,i+1), (i+1,i+1)
    let s00 = 0,
      s01 = 0,
      s11 = 0;
    for (let b = 0; b < B; b++) {
      const u = p[a0 + b]!,
        v = p[a1 + b]!;
      s00 += u * u;
      s01 += u * v;
      s11 += v * v;
    }
    g[r0 + i0]! += s00;
    g[r0 + i1]! += s01;
    g[r1 + i1]! += s11;
    let j = i + 2;
    for (; j + 1 < d; j += 2) {
      const c0 = j * B;
      const c1 = c0 + B;
      let t00 = 0,
        t01 = 0,
        t10 = 0,
        t11 = 0;
      for (let b = 0; b < B; b++) {
        const u = p[a0 + b]!,
          v = p[a1 + b]!,
          w = p[c0 + b]!,
          z = p[c1 + b]!;
        t00 += u * w;
        t01 += u * z;
        t10 += v * w;
        t11 += v * z;
      }
      const j0 = idx[j]!,
        j1 = idx[j + 1]!;
      g[r0 + j0]! += t00;
      g[r0 + j1]! += t01;
      g[r1 + j0]! += t10;
      g[r1 + j1]! += t11;
    }
    if (j < d) {
      const c0 = j * B;
      let t0 = 0,
        t1 = 0;
      for (let b = 0; b < B; b++) {
        const w = p[c0 + b]!;
        t0 += p[a0 + b]! * w;
        t1 += p[a1 + b]! * w;
      }
      g[r0 + idx[j]!]! += t0;
      g[r1 + idx[j]!]! += t1;
    }
  }
  if (i < d) {
    // odd d: the last diagonal entry
    const a0 = i * B;
    let s = 0;
    for (let b = 0; b < B; b++) s += p[a0 + b]! * p[a0 + b]!;
    g[idx[i]! * stride + idx[i]!]! += s;
  }
}
