// The bases ablations rotate into, per node layer, as (C, C⁺) with the leading direction first:
//   ib      the Interaction Basis: C, C⁺ of the build (rib's ablation_type 'rib');
//   pca     the orthogonal basis of the build's Gram eigenvectors, W = Y U, W⁺ = Uᵀ Y⁻¹ with the
//           centring matrix Y = I − e_d μ̃ᵀ (rib's 'orthogonal'; SPEC §3.5): constant direction
//           first, then descending variance;
//   neuron  the standard basis (C = a permutation, C⁺ = its transpose): the constant slot first,
//           then neurons by descending second moment E[f_i²] (from the build's Gram eigenpairs and
//           mean), so "keep n" keeps the n neurons that carry the most activation.

import type { BasisF64 } from '../cpu/ablation.js';

export type BasisKind = 'ib' | 'pca' | 'neuron';
export const BASIS_KINDS: readonly BasisKind[] = ['ib', 'pca', 'neuron'];

/** What a build stores per node layer (basis.safetensors). */
export interface StoredBasis {
  dim: number;
  r: number;
  k: number;
  centred: boolean;
  mean: Float64Array;
  U: Float64Array;
  D: Float64Array;
  C: Float64Array;
  Cpinv: Float64Array;
  Lambda?: Float64Array;
}

export interface AblationBasis extends BasisF64 {
  kind: BasisKind;
  /** Index of the constant direction among the columns, or -1. */
  constant: number;
}

export function ablationBasis(s: StoredBasis, kind: BasisKind): AblationBasis {
  const { dim } = s;
  if (kind === 'ib') return { kind, dim, r: s.r, C: s.C, Cpinv: s.Cpinv, constant: s.centred ? 0 : -1 };
  const d = dim - 1; // the bias slot
  if (kind === 'pca') {
    const k = s.k;
    const C = Float64Array.from(s.U);
    const Cpinv = new Float64Array(k * dim);
    for (let c = 0; c < k; c++) for (let j = 0; j < dim; j++) Cpinv[c * dim + j] = s.U[j * k + c]!;
    if (s.centred) {
      // Y U changes the last row: W[d, :] = U[d, :] − μ̃ᵀU; Uᵀ Y⁻¹ adds U[d, c]·μ̃_j to column j.
      for (let c = 0; c < k; c++) {
        let m = 0;
        for (let i = 0; i < d; i++) m += s.mean[i]! * s.U[i * k + c]!;
        C[d * k + c] = s.U[d * k + c]! - m;
        for (let j = 0; j < d; j++) Cpinv[c * dim + j]! += s.U[d * k + c]! * s.mean[j]!;
      }
    }
    return { kind, dim, r: k, C, Cpinv, constant: s.centred ? 0 : -1 };
  }
  // Second moments: diag of the stored (centred or raw) Gram from its kept eigenpairs, plus μ² when centred.
  const m2 = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let v = 0;
    for (let c = 0; c < s.k; c++) v += s.U[i * s.k + c]! ** 2 * s.D[c]!;
    m2[i] = v + (s.centred ? s.mean[i]! ** 2 : 0);
  }
  const order = [d, ...Array.from({ length: d }, (_, i) => i).sort((a, b) => m2[b]! - m2[a]! || a - b)];
  const C = new Float64Array(dim * dim);
  const Cpinv = new Float64Array(dim * dim);
  order.forEach((unit, col) => {
    C[unit * dim + col] = 1;
    Cpinv[col * dim + unit] = 1;
  });
  return { kind, dim, r: dim, C, Cpinv, constant: 0 };
}

/** The identity basis of an unrotated node layer (the logits). */
export function identityBasis(dim: number): AblationBasis {
  const C = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) C[i * dim + i] = 1;
  return { kind: 'ib', dim, r: dim, C, Cpinv: C, constant: -1 };
}
