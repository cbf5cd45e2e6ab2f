// The transformer statistics pass's forward on the host, in float64, for the two section shapes
// that have closed forms (src/transformer/host-stats.ts decides when they apply and builds the
// maps below from the float64 interpreter):
//   - an attention section cut to the last position whose input rows come from a table of
//     distinct rows (node layer 0 per (token, position)): the output at t* is linear in the
//     input row at t* and the attention output z_{t*} = Σ_u p_u^h v_u^h, so with the per-row tables
//     res(ρ) = f(ρ)·S and vz(ρ, h) = v^h(ρ)·Z^h a sample costs its softmax row and H·P axpys;
//   - a position-local section with one elementwise activation (an MLP block): x = f·A,
//     out = f·S + act(x)·R, with A, S, R the linear parts around the act.
// Both are the same functions as the program interpreter (src/cpu/program-f64.ts), summed in
// another order (agreement ~1e-15 relative). Pure functions over typed arrays: they run on the
// calling thread or on the host worker threads (tasks.ts) over ranges of rows.

import { act as actValue, type Activation } from '../model/activations.js';
import type { AttentionShape } from './attention-sums.js';
import { queryProbs } from './attention-sums.js';

/** The per-row tables of a last-position attention section's forward. */
export interface AttentionForwardTables {
  /** [R, m] [v | k | q] per distinct row (α = 1). */
  vkq: Float64Array;
  /** [N·P] the row of each (sample, position), sample-major. */
  ids: Int32Array;
  /** Output width. */
  dOut: number;
  /** [R, dOut] the residual path of the row at t*. */
  res: Float64Array;
  /** [R, H, dOut] v^h(row) mapped to the output through W_O and what follows. */
  vz: Float64Array;
}

/**
 * Output rows [n0, n1) (out is [N, dOut], written at the sample's row) and each sample's softmax
 * rows (probs [N, H·P]): the output is res(ρ_t*) + Σ_{h,u} p_u^h vz(ρ_u, h), so any linear map of
 * it is the same combination of the mapped tables (tableRowsTimes).
 */
export function attentionTableForward(sh: AttentionShape, tb: AttentionForwardTables, n0: number, n1: number, out: Float64Array, probs: Float64Array): void {
  const { P } = sh;
  const H = sh.heads;
  const t = P - 1;
  const { dOut, res, vz } = tb;
  const rho = new Int32Array(P);
  for (let n = n0; n < n1; n++) {
    for (let u = 0; u < P; u++) rho[u] = tb.ids[n * P + u]!;
    const prob = probs.subarray(n * H * P, (n + 1) * H * P);
    queryProbs(sh, tb.vkq, rho, prob);
    const o = n * dOut;
    const ro = rho[t]! * dOut;
    for (let k = 0; k < dOut; k++) out[o + k] = res[ro + k]!;
    for (let h = 0; h < H; h++)
      for (let u = 0; u < P; u++) {
        const p = prob[h * P + u]!;
        if (p === 0) continue;
        const vo = (rho[u]! * H + h) * dOut;
        for (let k = 0; k < dOut; k++) out[o + k]! += p * vz[vo + k]!;
      }
  }
}

/** The samples of an attention table forward, as a linear map of its rows reads them. */
export interface TableForwardRows {
  shape: Pick<AttentionShape, 'P' | 'heads'>;
  /** [N·P] the row of each (sample, position), sample-major. */
  ids: Int32Array;
  /** [N, H·P] each sample's softmax rows (attentionTableForward's probs). */
  probs: Float64Array;
}

/** The forward's row tables mapped by a linear map M: resM = res·M [R, w] and vzM = vz·M [R·H, w]. */
export interface MappedRowTables {
  resM: Float64Array;
  vzM: Float64Array;
  w: number;
}

/**
 * Rows [n0, n1) of f·M (out [N, w]) for the rows f of an attention table forward, from the mapped
 * tables: resM(ρ_t*) + Σ_{h,u} p_u^h vzM(ρ_u, h), 1 + H·P axpys of width w per sample instead of a
 * d-deep product.
 */
export function tableRowsTimes(fw: TableForwardRows, mt: MappedRowTables, n0: number, n1: number, out: Float64Array): void {
  const { shape, ids, probs } = fw;
  const { P, heads: H } = shape;
  const t = P - 1;
  const { resM, vzM, w } = mt;
  for (let n = n0; n < n1; n++) {
    const o = n * w;
    const ro = ids[n * P + t]! * w;
    for (let k = 0; k < w; k++) out[o + k] = resM[ro + k]!;
    for (let h = 0; h < H; h++)
      for (let u = 0; u < P; u++) {
        const p = probs[(n * H + h) * P + u]!;
        if (p === 0) continue;
        const vo = (ids[n * P + u]! * H + h) * w;
        for (let k = 0; k < w; k++) out[o + k]! += p * vzM[vo + k]!;
      }
  }
}

/** The linear parts of a one-activation section: x = f·A, out = f·S + act(x)·R. */
export interface ActSectionMaps {
  act: Activation;
  d: number;
  m: number;
  dOut: number;
  /** d × m. */
  A: Float64Array;
  /** d × dOut: the paths that avoid the act. */
  S: Float64Array;
  /** m × dOut. */
  R: Float64Array;
}

/**
 * Rows [n0, n1) of a one-activation section: f [rows, d] in, the act's inputs x [rows, m] and the
 * outputs out [rows, dOut] written at the same rows. Zero inputs and zero activations are skipped
 * (ReLU: about half the units).
 */
export function actSectionForward(mp: ActSectionMaps, f: Float64Array, n0: number, n1: number, x: Float64Array, out: Float64Array): void {
  const { d, m, dOut, A, S } = mp;
  const relu = mp.act === 'relu';
  const y = new Float64Array(m);
  for (let n = n0; n < n1; n++) {
    const fo = n * d;
    const xo = n * m;
    const oo = n * dOut;
    for (let c = 0; c < m; c++) x[xo + c] = 0;
    for (let k = 0; k < dOut; k++) out[oo + k] = 0;
    for (let i = 0; i < d; i++) {
      const v = f[fo + i]!;
      if (v === 0) continue;
      const ao = i * m;
      for (let c = 0; c < m; c++) x[xo + c]! += v * A[ao + c]!;
      const so = i * dOut;
      for (let k = 0; k < dOut; k++) out[oo + k]! += v * S[so + k]!;
    }
    finishRow(mp, x, xo, out, oo, y, relu);
  }
}

/** out += act(x)·R for one row whose x and f·S part are in place. */
function finishRow(mp: ActSectionMaps, x: Float64Array, xo: number, out: Float64Array, oo: number, y: Float64Array, relu: boolean): void {
  const { m, dOut, R } = mp;
  for (let c = 0; c < m; c++) {
    const p = x[xo + c]!;
    y[c] = relu ? (p > 0 ? p : 0) : actValue(mp.act, p);
  }
  for (let c = 0; c < m; c++) {
    const v = y[c]!;
    if (v === 0) continue;
    const ro = c * dOut;
    for (let k = 0; k < dOut; k++) out[oo + k]! += v * R[ro + k]!;
  }
}

/** Rows [n0, n1) of a one-activation section whose x = f·A and f·S are already in x and out: out += act(x)·R. */
export function actSectionFinish(mp: ActSectionMaps, n0: number, n1: number, x: Float64Array, out: Float64Array): void {
  const y = new Float64Array(mp.m);
  const relu = mp.act === 'relu';
  for (let n = n0; n < n1; n++) finishRow(mp, x, n * mp.m, out, n * mp.dOut, y, relu);
}

/**
 * Rows [r0, r1) of X·M (X [rows, k], M [k, n], out [rows, n]), each row summed over k in order, so
 * the result does not depend on how the rows are split between threads; `add`: out += X·M, the
 * terms added to each entry's value in the same order.
 */
export function mulRowsF64(X: Float64Array, k: number, M: Float64Array, n: number, r0: number, r1: number, out: Float64Array, add = false): void {
  for (let i = r0; i < r1; i++) {
    const o = i * n;
    if (!add) for (let c = 0; c < n; c++) out[o + c] = 0;
    for (let a = 0; a < k; a++) {
      const v = X[i * k + a]!;
      if (v === 0) continue;
      const mo = a * n;
      for (let c = 0; c < n; c++) out[o + c]! += v * M[mo + c]!;
    }
  }
}
