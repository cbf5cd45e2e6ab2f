// The WebAssembly SIMD kernel of the last-position attention edges in the table form
// (src/host/wasm/attention_edges.wat): the per-sample sums of addEdgeAttentionTableSums
// (attention-table-sums.ts, whose jsEdgeSampleKernel is the reference), two float64 lanes at a time
// over the input directions, with the same bits. On rib's modular addition that is K·(H + 1 + H·P)·r
// multiply-adds per sample (26·17·53), most of the edge pass of its attention section.
//
// Memory: one private instance per kernel (per chunk of samples on a thread), laid out once: Ỹ
// copied in with rows padded to a multiple of 8 columns (zeros), then each sample's U, Γ and ds,
// which the caller writes straight into views of the memory, and the partial E, copied in at
// `begin` and out at `end`.
//
// Undefined where the module cannot run (src/host/wasm/load.ts) or IBGPU_HOST_WASM=0: the caller
// runs the JS kernel instead.

import type { EdgeSampleKernel } from './attention-table-sums.js';
import { hostWasmInstance, WasmLayout } from './wasm/load.js';

interface AttentionEdgesExports {
  edge_sample: (K: number, A: number, NJ: number, rp: number, Yt: number, U: number, Gam: number, ds: number, E: number) => void;
  edge_prep: (H: number, P: number, rp: number, rho: number, prob: number, u: number, at: number, bt: number, U: number, Gam: number) => void;
}

/** The row tables from which the kernel writes each sample's U and Γ itself (EdgeSampleKernel.prepare). */
export interface EdgePrepTables {
  H: number;
  P: number;
  /** [R, r] u per row. */
  u: Float64Array;
  /** [R·H, r] each: EdgeRowTables.at and .bt. */
  at: Float64Array;
  bt: Float64Array;
}

/** Rows of r columns copied to rows of rp (the padding zero: fresh memory). */
function copyPadded(dst: Float64Array, src: Float64Array, r: number, rp: number): void {
  const rows = src.length / r;
  for (let i = 0; i < rows; i++) dst.set(src.subarray(i * r, (i + 1) * r), i * rp);
}

/**
 * The WebAssembly kernel for Yt [A·K, r] (Ỹ^a_k at row a·K + k), or undefined where it cannot run.
 * With `prep` (its tables copied in) the kernel has `prepare`: each sample's U and Γ written in
 * WebAssembly too (edge_prep, the same bits as addEdgeAttentionTableSums's loops).
 */
export function wasmEdgeSampleKernel(K: number, A: number, NJ: number, r: number, Yt: Float64Array, prep?: EdgePrepTables): EdgeSampleKernel | undefined {
  const rp = Math.ceil(r / 8) * 8;
  const lay = new WasmLayout();
  const oY = lay.region(A * K * rp * 8);
  const oU = lay.region(A * rp * 8);
  const oG = lay.region(NJ * rp * 8);
  const oD = lay.region(K * NJ * 8);
  const oE = lay.region(K * rp * 8);
  const oRho = lay.region(prep ? prep.P * 4 : 0);
  const oProb = lay.region(prep ? NJ * 8 : 0);
  const oUt = lay.region(prep ? (prep.u.length / r) * rp * 8 : 0);
  const oAt = lay.region(prep ? (prep.at.length / r) * rp * 8 : 0);
  const oBt = lay.region(prep ? (prep.bt.length / r) * rp * 8 : 0);
  const ex = hostWasmInstance<AttentionEdgesExports>('attention_edges', lay.top);
  if (!ex) return undefined;
  // The memory never grows again, so these views stay valid for the kernel's life.
  const buf = ex.memory.buffer;
  const y = new Float64Array(buf, oY, A * K * rp);
  for (let i = 0; i < A * K; i++) y.set(Yt.subarray(i * r, (i + 1) * r), i * rp);
  const e = new Float64Array(buf, oE, K * rp);
  let target: Float64Array | undefined;
  let prepare: EdgeSampleKernel['prepare'];
  if (prep) {
    const { H, P } = prep;
    copyPadded(new Float64Array(buf, oUt, (prep.u.length / r) * rp), prep.u, r, rp);
    copyPadded(new Float64Array(buf, oAt, (prep.at.length / r) * rp), prep.at, r, rp);
    copyPadded(new Float64Array(buf, oBt, (prep.bt.length / r) * rp), prep.bt, r, rp);
    const rho = new Int32Array(buf, oRho, P);
    const prob = new Float64Array(buf, oProb, NJ);
    prepare = (rh, pr) => {
      rho.set(rh);
      prob.set(pr);
      ex.edge_prep(H, P, rp, oRho, oProb, oUt, oAt, oBt, oU, oG);
    };
  }
  return {
    ...(prepare ? { prepare } : {}),
    rp,
    U: new Float64Array(buf, oU, A * rp),
    Gam: new Float64Array(buf, oG, NJ * rp),
    ds: new Float64Array(buf, oD, K * NJ),
    begin: (E) => {
      target = E;
      for (let k = 0; k < K; k++) e.set(E.subarray(k * r, (k + 1) * r), k * rp);
    },
    sample: () => ex.edge_sample(K, A, NJ, rp, oY, oU, oG, oD, oE),
    end: () => {
      const E = target!;
      for (let k = 0; k < K; k++) E.set(e.subarray(k * rp, k * rp + r), k * r);
      target = undefined;
    },
  };
}
