// The dense row products of the transformer host forward (transformer-forward.ts: mulRowsF64 and
// actSectionFinish) in WebAssembly SIMD, with the row sums of src/host/wasm/edge_inputs.wat
// (gather_nonzeros, gemv_rows): per row, out = init + Σ x_i M[i, :] over the non-zero x_i in
// increasing i, two float64 lanes at a time, each column summed in the order of the JS loops, so
// the results are the same bits (test/host-rows-wasm.test.ts checks them bit for bit). These
// products are most of the host statistics pass and of the host edges' gate inputs on rib's
// modular addition (an MLP block's 128 × 512 maps over 3830 rows), where V8's scalar loops run at
// a fraction of the SIMD rate.
//
// Memory: one private instance per thread, kept and replaced by a larger one when a product needs
// more; each call copies its M in (rows padded to a multiple of 8 columns), then per row its x
// (k values) in and its output row (n values) out: O(k·n + rows·(k + n)) copies against
// O(rows·nnz·n) arithmetic. Where the module cannot run (src/host/wasm/load.ts, IBGPU_HOST_WASM=0)
// the functions answer false and the caller runs the JS loops.

import type { ActSectionMaps, MappedRowTables, TableForwardRows } from './transformer-forward.js';
import { act as actValue } from '../model/activations.js';
import { hostWasmEnabled, hostWasmInstance, WasmLayout } from './wasm/load.js';

interface RowSumExports {
  memory: WebAssembly.Memory;
  gather_nonzeros: (x: number, d: number, M: number, rowb: number, idx: number, val: number) => number;
  gemv_rows: (m: number, rowb: number, init: number, idx: number, val: number, out: number) => void;
}

/** Columns padded to a multiple of 8 (gemv_rows's block of four f64x2 accumulators). */
function padded(n: number): number {
  return Math.ceil(n / 8) * 8;
}

let kept: { ex: RowSumExports; bytes: number } | null | undefined;

/** This thread's instance with at least `bytes` of memory, or undefined where the module cannot run. */
function instance(bytes: number): RowSumExports | undefined {
  if (kept === null || !hostWasmEnabled()) return undefined;
  if (kept && kept.bytes >= bytes) return kept.ex;
  // Grown in steps, so a thread's sequence of products makes few instances.
  const want = Math.max(bytes, 2 * (kept?.bytes ?? 0), 1 << 20);
  const ex = hostWasmInstance<Omit<RowSumExports, 'memory'>>('edge_inputs', want);
  if (!ex) {
    kept = null;
    return undefined;
  }
  kept = { ex, bytes: want };
  return ex;
}

interface Layout {
  ex: RowSumExports;
  oM: number;
  oX: number;
  oInit: number;
  oOut: number;
  oIdx: number;
  oVal: number;
  rowb: number;
}

/** The regions of one product of k-long rows by M (k × n), M copied in; undefined where wasm cannot run. */
function layout(k: number, M: Float64Array, n: number): Layout | undefined {
  const np = padded(n);
  const lay = new WasmLayout();
  const oM = lay.region(k * np * 8);
  const oX = lay.region(k * 8);
  const oInit = lay.region(np * 8);
  const oOut = lay.region(np * 8);
  const oIdx = lay.region(k * 4);
  const oVal = lay.region(k * 8);
  const ex = instance(lay.top);
  if (!ex) return undefined;
  const buf = ex.memory.buffer;
  const dst = new Float64Array(buf, oM, k * np);
  for (let i = 0; i < k; i++) {
    dst.set(M.subarray(i * n, (i + 1) * n), i * np);
    dst.fill(0, i * np + n, (i + 1) * np);
  }
  // The padded columns of init must be zero (gemv_rows sums them like any other).
  new Float64Array(buf, oInit, np).fill(0);
  return { ex, oM, oX, oInit, oOut, oIdx, oVal, rowb: np * 8 };
}

/**
 * Rows [r0, r1) of X·M into out (X [rows, k], M [k, n], out [rows, n]), as mulRowsF64 computes
 * them (`add`: out += X·M, each entry's terms added to it in order of k, as a JS loop
 * `out[i, c] += X[i, a]·M[a, c]` over a skipping the zero X[i, a] adds them); false (nothing
 * written) where WebAssembly cannot run here.
 */
export function wasmMulRows(X: Float64Array, k: number, M: Float64Array, n: number, r0: number, r1: number, out: Float64Array, add = false): boolean {
  const L = layout(k, M, n);
  if (!L) return false;
  const { ex, oM, oX, oInit, oOut, oIdx, oVal, rowb } = L;
  const buf = ex.memory.buffer;
  const x = new Float64Array(buf, oX, k);
  const init = new Float64Array(buf, oInit, n);
  const o = new Float64Array(buf, oOut, n);
  for (let i = r0; i < r1; i++) {
    x.set(X.subarray(i * k, (i + 1) * k));
    if (add) init.set(out.subarray(i * n, (i + 1) * n));
    const nz = ex.gather_nonzeros(oX, k, oM, rowb, oIdx, oVal);
    ex.gemv_rows(nz, rowb, oInit, oIdx, oVal, oOut);
    out.set(o, i * n);
  }
  return true;
}

/**
 * Rows [n0, n1) of a one-activation section whose x = f·A and f·S are in x and out: out += act(x)·R,
 * as actSectionFinish computes them (the act in JS, the same function); false where WebAssembly
 * cannot run here.
 */
export function wasmActSectionFinish(mp: ActSectionMaps, n0: number, n1: number, x: Float64Array, out: Float64Array): boolean {
  const { m, dOut, R } = mp;
  const L = layout(m, R, dOut);
  if (!L) return false;
  const { ex, oM, oX, oInit, oOut, oIdx, oVal, rowb } = L;
  const buf = ex.memory.buffer;
  const y = new Float64Array(buf, oX, m);
  const init = new Float64Array(buf, oInit, dOut);
  const o = new Float64Array(buf, oOut, dOut);
  const relu = mp.act === 'relu';
  for (let n = n0; n < n1; n++) {
    const xo = n * m;
    for (let c = 0; c < m; c++) {
      const p = x[xo + c]!;
      y[c] = relu ? (p > 0 ? p : 0) : actValue(mp.act, p);
    }
    init.set(out.subarray(n * dOut, (n + 1) * dOut));
    const nz = ex.gather_nonzeros(oX, m, oM, rowb, oIdx, oVal);
    ex.gemv_rows(nz, rowb, oInit, oIdx, oVal, oOut);
    out.set(o, n * dOut);
  }
  return true;
}

/**
 * Rows [n0, n1) of f·M for rows f of an attention table forward (out [N, w]), as tableRowsTimes
 * (transformer-forward.ts) computes them: resM(ρ_t*) + Σ_{h,u} p_u^h vzM(ρ_u, h), the terms in the
 * order h, u with the zero p skipped; false (nothing written) where WebAssembly cannot run here.
 */
export function wasmTableRowsTimes(fw: TableForwardRows, mt: MappedRowTables, n0: number, n1: number, out: Float64Array): boolean {
  const { shape, ids, probs } = fw;
  const { P, heads: H } = shape;
  const t = P - 1;
  const { resM, vzM, w } = mt;
  const wp = padded(w);
  const rowb = wp * 8;
  const R = w > 0 ? resM.length / w : 0;
  const lay = new WasmLayout();
  const oRes = lay.region(R * rowb);
  const oVz = lay.region(R * H * rowb);
  const oOut = lay.region(rowb);
  const oIdx = lay.region(H * P * 4);
  const oVal = lay.region(H * P * 8);
  const ex = instance(lay.top);
  if (!ex) return false;
  const buf = ex.memory.buffer;
  const copy = (src: Float64Array, rows: number, at: number): void => {
    const dst = new Float64Array(buf, at, rows * wp);
    for (let i = 0; i < rows; i++) {
      dst.set(src.subarray(i * w, (i + 1) * w), i * wp);
      dst.fill(0, i * wp + w, (i + 1) * wp);
    }
  };
  copy(resM, R, oRes);
  copy(vzM, R * H, oVz);
  const idx = new Int32Array(buf, oIdx, H * P);
  const val = new Float64Array(buf, oVal, H * P);
  const o = new Float64Array(buf, oOut, w);
  for (let n = n0; n < n1; n++) {
    let nt = 0;
    for (let h = 0; h < H; h++)
      for (let u = 0; u < P; u++) {
        const p = probs[(n * H + h) * P + u]!;
        if (p === 0) continue;
        idx[nt] = oVz + (ids[n * P + u]! * H + h) * rowb;
        val[nt++] = p;
      }
    ex.gemv_rows(nt, rowb, oRes + ids[n * P + t]! * rowb, oIdx, oVal, oOut);
    out.set(o, n * w);
  }
  return true;
}
