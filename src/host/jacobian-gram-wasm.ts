// The host degeneracy observer's per-datapoint loops (src/host/degeneracy.ts: the Jacobian Gram's
// pair sums and CarriedProduct's rank-1 updates) in WebAssembly SIMD (src/host/wasm/jacobian_gram.wat),
// the same bits as the JS loops there, which stay the reference and the fallback
// (test/host-jacobian-gram-wasm.test.ts checks them bit for bit). On rib's MNIST MLP these two
// loops were ~85% of the observer's time in V8's scalar code.
//
// Memory: one private instance per accumulator, sized once for its whole layout (the layers'
// Jacobian sums M, the compact Jacobians, T and its factors), so that the typed-array views the
// accumulator keeps over it stay valid for the build. Where the module cannot run
// (src/host/wasm/load.ts) or IBGPU_HOST_WASM=0 there is none and the JS loops serve.

import { hostWasmInstance, WasmLayout } from './wasm/load.js';

export interface JacobianGramExports {
  memory: WebAssembly.Memory;
  /** M[idx[k], idx[q]] += Σ_o G[o, k]·G[o, q], k ≤ q < m (see the .wat header). */
  gram_upper(G: number, sb: number, n: number, m: number, idx: number, M: number, hb: number): void;
  /** T[a, :] += (sign·Wa[a])·Wb[:] for a < rows, zero weights skipped (see the .wat header). */
  rank1_rows(T: number, tb: number, Wa: number, ab: number, Wb: number, cb: number, rows: number, sign: number): void;
}

/** A kernel instance with its memory laid out by `lay` (regions taken before this call), or undefined. */
export function jacobianGramInstance(lay: WasmLayout): JacobianGramExports | undefined {
  return hostWasmInstance<Omit<JacobianGramExports, 'memory'>>('jacobian_gram', lay.top);
}
