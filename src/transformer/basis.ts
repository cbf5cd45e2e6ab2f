// Host float64 bases of transformer node layers, following rib (SPEC §3–4 with the transformer
// additions of SPEC-transformers §4.2; the conventions of the synthetic-transformer fixtures'
// README, "The basis"):
//   stage 1: |eigh| of the centred Gram, descending; at ln1_out/ln2_out with isolate_ln_var the
//     variance coordinate 0 is split off first (eigenvector e_0, eigenvalue G[0,0]); when centring,
//     the constant direction leads: [const, (var,) rest]; eigenvalues ≤ τ are dropped.
//   W = Y U, W⁺ = Uᵀ Y⁻¹, R = W D^{-1/2}, R⁺ = D^{1/2} W⁺ (src/ib/basis.ts yTimesU / uTYinv).
//   svd/pca: C = W, C⁺ = W⁺.
//   jacobian: M = R⁺ M′ R⁺ᵀ; the n_m = center + isolate leading directions keep M's diagonal as Λ,
//     the rest are |eig(M[n_m:, n_m:])| descending; Λ < τ dropped; C = R V diag(√Λ),
//     C⁺ = diag(1/√Λ) Vᵀ R⁺.
// A transformer node can hold several constant slots (each head's v 1-slot, ρ, the 0-slots);
// centring makes all but the last zero rows of the Gram, which the eigensolver splits off.

import { matmulF64 } from '../cpu/matmul.js';
import {
  cut,
  eigAbsSorted,
  rotationFromEigenbasis,
  stage1Fields,
  symmetrize,
  uTYinv,
  yTimesU,
  type LayerBasis,
  type Stage1,
  type Threshold,
} from '../ib/basis.js';

export interface NodeMoments {
  name: string;
  dim: number;
  /** Mean over samples and positions, [dim]. */
  mean: Float64Array;
  /** Σ (f − μ̃)(f − μ̃)ᵀ / (N·P_ℓ) (centred) or Σ f fᵀ / (N·P_ℓ), [dim, dim]. */
  gram: Float64Array;
  centred: boolean;
}

/** Whether rib isolates the LayerNorm variance at this node (by module type only, §4.2). */
export function isolatesLnVar(name: string, isolateLnVar: boolean): boolean {
  const type = name.split('.')[0];
  return isolateLnVar && (type === 'ln1_out' || type === 'ln2_out');
}

export interface TransformerStage1 extends Stage1 {
  /** Leading directions kept out of stage 2's rotation: const (centred) and var (isolated). */
  masked: number;
}

export function stage1Transformer(s: NodeMoments, th: Threshold, isolateVar: boolean): TransformerStage1 {
  const D = s.dim;
  // Coordinates split off before the eigensolver: the variance (coordinate 0, rib's masked
  // eigendecomposition) and, when centring, the constant slot (last). The centred Gram's last row
  // is (0, …, 0, 1) in exact arithmetic (Σ(f − μ) = 0 and the slot is 1), so its eigenvector is
  // e_last with eigenvalue 1: deflated analytically (SPEC §3.3) rather than found as rib does
  // (|u_last| > 1e-6, which float32 statistics break), and moved to the front.
  const lead: number[] = [];
  if (s.centred) lead.push(D - 1);
  if (isolateVar) lead.push(0);
  const rest = Array.from({ length: D }, (_, i) => i).filter((i) => !lead.includes(i));
  const m = rest.length;
  const sub = new Float64Array(m * m);
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) sub[i * m + j] = s.gram[rest[i]! * D + rest[j]!]!;
  const e = eigAbsSorted(sub, m);
  // Columns: [const (centred), var (isolated), rest by |eigenvalue| descending].
  const values = new Float64Array(D);
  const vectors = new Float64Array(D * D);
  lead.forEach((coord, c) => {
    values[c] = coord === D - 1 && s.centred ? 1 : s.gram[coord * D + coord]!;
    vectors[coord * D + c] = 1;
  });
  for (let c = 0; c < m; c++) {
    values[lead.length + c] = e.values[c]!;
    for (let i = 0; i < m; i++) vectors[rest[i]! * D + lead.length + c] = e.vectors[i * m + c]!;
  }
  const masked = lead.length;
  const tau = cut(th, values);
  const keep: number[] = [];
  for (let c = 0; c < D; c++) if (values[c]! > tau) keep.push(c);
  // The masked directions lead the order; one dropped by the threshold is no longer masked.
  const maskedKept = keep.filter((c) => c < masked).length;
  const k = keep.length;
  const U = new Float64Array(D * k);
  const Dk = new Float64Array(k);
  keep.forEach((src, c) => {
    Dk[c] = values[src]!;
    for (let i = 0; i < D; i++) U[i * k + c] = vectors[i * D + src]!;
  });
  const all = Float64Array.from(values).sort().reverse();
  return { dim: D, mean: s.mean, centred: s.centred, gramEigenvalues: all, U, D: Dk, k, dropped: D - k, masked: maskedKept };
}

/** svd/pca basis (also the rotated final node layer): C = Y U, C⁺ = Uᵀ Y⁻¹. */
export function svdBasis(s: NodeMoments, st: TransformerStage1): LayerBasis {
  return {
    ...stage1Fields(s.name, st),
    C: yTimesU(st),
    Cpinv: uTYinv(st),
    r: st.k,
    dropped: { stage1: st.dropped, stage2: 0 },
  };
}

/** The unrotated basis C = C⁺ = I (a final node layer that is not rotated). */
export function identityBasis(s: NodeMoments): LayerBasis {
  const I = new Float64Array(s.dim * s.dim);
  for (let i = 0; i < s.dim; i++) I[i * s.dim + i] = 1;
  return {
    name: s.name,
    dim: s.dim,
    centred: false,
    mean: s.mean,
    gramEigenvalues: new Float64Array(0),
    U: I,
    D: new Float64Array(s.dim).fill(1),
    k: s.dim,
    C: I,
    Cpinv: Float64Array.from(I),
    r: s.dim,
    dropped: { stage1: 0, stage2: 0 },
  };
}

/**
 * R⁺ = D^{1/2} Uᵀ Y⁻¹ (k×dim): the map M′ ↦ M = R⁺ M′ R⁺ᵀ, and what the M′ pass needs no more than
 * the stage-1 result for.
 */
export function rPlus(st: TransformerStage1): Float64Array {
  const Wp = uTYinv(st);
  for (let c = 0; c < st.k; c++) {
    const sd = Math.sqrt(st.D[c]!);
    for (let j = 0; j < st.dim; j++) Wp[c * st.dim + j] = Wp[c * st.dim + j]! * sd;
  }
  return Wp;
}

/** Stage 2 of the jacobian basis from M′ (dim×dim, already divided by N·P_in). */
export function jacobianBasis(s: NodeMoments, st: TransformerStage1, Mprime: Float64Array, th: Threshold): LayerBasis {
  const { k, dim } = st;
  const Rp = rPlus(st);
  const M = matmulF64(matmulF64(Rp, Mprime, { m: k, n: dim, k: dim }), Rp, { m: k, n: k, k: dim, transB: true });
  symmetrize(M, k);
  const nm = st.masked;
  const ks = k - nm;
  const sub = new Float64Array(ks * ks);
  for (let i = 0; i < ks; i++) for (let j = 0; j < ks; j++) sub[i * ks + j] = M[(i + nm) * k + j + nm]!;
  const e = eigAbsSorted(sub, ks);
  const lam = new Float64Array(k);
  for (let i = 0; i < nm; i++) lam[i] = M[i * k + i]!;
  lam.set(e.values, nm);
  // Second truncation (SPEC §4.8): Λ < τ dropped (Λ == τ kept). rib counts masked entries among
  // the small ones and then drops the smallest unmasked direction instead (countMasked, rib_compat).
  const tau = cut(th, lam);
  const unmaskedKeep: number[] = [];
  for (let c = nm; c < k; c++) if (lam[c]! >= tau && lam[c]! > 0) unmaskedKeep.push(c);
  if (th.countMasked) for (let c = 0; c < nm; c++) if (lam[c]! < tau && unmaskedKeep.length > 0) unmaskedKeep.pop();
  const keep = [...Array.from({ length: nm }, (_, i) => i), ...unmaskedKeep];
  const r = keep.length;
  // V (k×r): identity on the masked block, eigenvectors of the rest.
  const V = new Float64Array(k * r);
  const Lambda = new Float64Array(r);
  keep.forEach((src, m) => {
    Lambda[m] = lam[src]!;
    if (src < nm) V[src * r + m] = 1;
    else for (let i = 0; i < ks; i++) V[(i + nm) * r + m] = e.vectors[i * ks + src - nm]!;
  });
  const { C, Cpinv } = rotationFromEigenbasis(st, yTimesU(st), uTYinv(st), V, Lambda, r);
  return {
    ...stage1Fields(s.name, st),
    V,
    Lambda,
    Mprime,
    C,
    Cpinv,
    r,
    dropped: { stage1: st.dropped, stage2: k - r },
  };
}
