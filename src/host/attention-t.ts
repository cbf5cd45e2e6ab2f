// T^{a,h} = Σ_k Y_k^a dz_k^hᵀ (d × dV) of the last-position attention closed form
// (src/transformer/gpu-attention-closed.ts): sample-independent setup of the M′ assembly, A·H
// products of K terms each (on rib's modular addition 20 · 113 · 129 · 32 multiply-adds, the
// largest part of that setup). Each block is a row product (rows-times-wasm.ts: every entry summed
// over k in increasing order from +0, the zero Y terms skipped), in WebAssembly SIMD where it runs
// and in the JS loop otherwise: the same bits either way. Host code only.

import { wasmMulRows } from './rows-times-wasm.js';

/**
 * T^{a,h} for a < Y.length and h < H, in the order (a, h): Y^a is K × d, DZ is K × H·dV
 * (dz_k^h at columns h·dV..). `wasm` false runs the JS loops only (the reference).
 */
export function attentionT(Y: Float64Array[], DZ: Float64Array, K: number, d: number, H: number, dV: number, wasm = true): Float64Array[] {
  const HdV = H * dV;
  const T: Float64Array[] = [];
  // Y^a transposed (d × K: the rows of the product) and dz^h (K × dV) for the row products.
  const yt = new Float64Array(d * K);
  const dzh = Array.from({ length: H }, (_, h) => {
    const z = new Float64Array(K * dV);
    for (let k = 0; k < K; k++) z.set(DZ.subarray(k * HdV + h * dV, k * HdV + (h + 1) * dV), k * dV);
    return z;
  });
  for (const y of Y) {
    if (wasm) for (let k = 0; k < K; k++) for (let i = 0; i < d; i++) yt[i * K + k] = y[k * d + i]!;
    for (let h = 0; h < H; h++) {
      const M = new Float64Array(d * dV);
      if (!wasm || !wasmMulRows(yt, K, dzh[h]!, dV, 0, d, M)) {
        for (let k = 0; k < K; k++)
          for (let i = 0; i < d; i++) {
            const v = y[k * d + i]!;
            if (v === 0) continue;
            for (let j = 0; j < dV; j++) M[i * dV + j]! += v * DZ[k * HdV + h * dV + j]!;
          }
      }
      T.push(M);
    }
  }
  return T;
}

/**
 * Z = ΩQ Qᵀ + ΩK Kᵀ (dV × d) of one (a, h) block of the closed form's X_m: Z[j, i] = 0 +
 * Σ_{c < dH, in order} (ΩQ[j, c]·J[i, qc + c] + ΩK[j, c]·J[i, kc + c]), J [d, m]. The reference of
 * attention_mdash.wat's omega_rows (attention-mdash-wasm.ts), which the caller runs where it can.
 */
export function omegaRows(
  omq: Float64Array,
  omk: Float64Array,
  J: Float64Array,
  m: number,
  qc: number,
  kc: number,
  d: number,
  dV: number,
  dH: number,
  Zm: Float64Array,
): void {
  for (let j = 0; j < dV; j++) {
    const jo = j * dH;
    for (let i2 = 0; i2 < d; i2++) {
      const qo = i2 * m + qc,
        ko = i2 * m + kc;
      let acc = 0;
      for (let c = 0; c < dH; c++) acc += omq[jo + c]! * J[qo + c]! + omk[jo + c]! * J[ko + c]!;
      Zm[j * d + i2] = acc;
    }
  }
}
