// The dense float64 Gram Σ_r (x_r − s)(x_r − s)ᵀ of the host statistics pass (hidden layers, whose
// ReLU outputs are too dense for the sparse loop), as gramF64 (src/cpu/gram.ts, the reference)
// computes it and bit for bit: rows in blocks of GRAM_ROW_BLOCK (a short last block padded with
// zero rows), each entry's block sum a dot product over the block's rows in order from zero, the
// block sums added in order. The block products run as one WebAssembly SIMD matrix product each
// (the gemm of src/host/wasm/matmul.wat: panelᵀ·panel, one column per lane, so the same order per
// entry), which computes the whole square where the reference computes the upper triangle — twice
// the multiply-adds, still ~2.5x faster (bench/host-wasm-kernels.bench.ts). Falls back to gramF64 where
// the module cannot run (src/host/wasm/load.ts) or IBGPU_HOST_WASM=0.

import { GRAM_ROW_BLOCK, gramF64 } from '../cpu/gram.js';
import { checkShape } from '../errors.js';
import { gemmInstance } from './matmul.js';
import { hostWasmModule, WasmLayout } from './wasm/load.js';

/** gramF64(x, rows, d, shift), bit for bit (see the module comment). */
export function gramHost(x: ArrayLike<number>, rows: number, d: number, shift?: ArrayLike<number>): Float64Array {
  checkShape(
    Number.isInteger(rows) && rows >= 0 && Number.isInteger(d) && d >= 1 && x.length >= rows * d,
    `gramHost: expected rows*d = ${rows}*${d} values, got ${x.length}`,
  );
  if (shift) checkShape(shift.length === d, `gramHost: shift has length ${shift.length}, expected d = ${d}`);
  if (rows === 0 || !hostWasmModule('matmul')) return gramF64(x, rows, d, shift);
  const B = Math.min(GRAM_ROW_BLOCK, rows);
  const dp = Math.ceil(d / 4) * 4;
  const lay = new WasmLayout();
  const oP = lay.region(d * B * 8); // panel[c·B + b] = x[r0 + b, c] − s_c  (d × B: the product's A)
  const oX = lay.region(B * dp * 8); // the same block row-major, columns padded to 4 (B × dp: its B)
  const oC = lay.region(d * dp * 8);
  const ex = gemmInstance(lay.top);
  if (!ex) return gramF64(x, rows, d, shift);
  const buf = ex.memory.buffer;
  const P = new Float64Array(buf, oP, d * B);
  const X = new Float64Array(buf, oX, B * dp);
  const C = new Float64Array(buf, oC, d * dp);
  X.fill(0);
  const g = new Float64Array(d * d);
  for (let r0 = 0; r0 < rows; r0 += B) {
    const nb = Math.min(B, rows - r0);
    if (nb < B) {
      P.fill(0);
      X.fill(0);
    }
    for (let b = 0; b < nb; b++) {
      const o = (r0 + b) * d;
      for (let c = 0; c < d; c++) {
        const v = x[o + c]! - (shift ? shift[c]! : 0);
        P[c * B + b] = v;
        X[b * dp + c] = v;
      }
    }
    ex.gemm(oP, oX, oC, d, dp, B);
    for (let i = 0; i < d; i++) for (let j = i; j < d; j++) g[i * d + j]! += C[i * dp + j]!;
  }
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) g[j * d + i] = g[i * d + j]!;
  return g;
}
