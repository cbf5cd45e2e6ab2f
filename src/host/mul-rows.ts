// Dense float64 products X·M on the calling thread, for the transformer closed forms'
// sample-independent matrices and token-table products (src/transformer/gpu-attention-closed.ts,
// gpu-mdash-local.ts, host-stats.ts): WebAssembly SIMD where it runs (rows-times-wasm.ts), else the
// JS loop. Both sum every entry over k in order from its start
// value with the zero X entries skipped, so the two give the same bits and a caller never needs a
// fallback of its own.

import { wasmMulRows } from './rows-times-wasm.js';
import { mulRowsF64 } from './transformer-forward.js';

/**
 * X·M (X [rows, k], M [k, n], row-major) into `out` (a new array when not given); `add`: out += X·M,
 * each entry's terms added to its value in order of k.
 */
export function mulRows(X: Float64Array, rows: number, k: number, M: Float64Array, n: number, out = new Float64Array(rows * n), add = false): Float64Array {
  if (!wasmMulRows(X, k, M, n, 0, rows, out, add)) mulRowsF64(X, k, M, n, 0, rows, out, add);
  return out;
}
