// Float64 CPU reference of rib's legacy formulas for MLP sections, written directly from
// SPEC §3–§4.8 and §5.3 with per-datapoint loops (test oracle for src/ib/legacy.ts and
// src/ib/edges-functional.ts; it shares no code with them).
//
//   section:   F̂(u) = Ĉᵀ σ(W̄ᵀ u)           (folded W̄, Ĉ the next basis or the identity)
//   Jacobian:  J(u) = Ĉᵀ diag(σ'(W̄ᵀu)) W̄ᵀ   (chain rule, ro × dim)
//   (1-0)*alpha:  g = Σ_k w_k J(α_k f)ᵀ F̂(f)
//   (1-alpha)^2:  g = 2 Σ_k w_k J(α_k f)ᵀ [F̂(f) − F̂(α_k f)]
//   M' = E[g gᵀ], Λ' = E[g fᵀ]; stage 1 as rib (eigendecompose the Gram, move the constant
//   direction first when centring, keep D > τ); M = R⁺M'R⁺ᵀ; V = masked eigenvectors of M;
//   Λ_k = |(Vᵀ R⁺Λ'R V)_kk|; order (masked first, then Λ descending), drop Λ < τ; C = R V Λ^{1/2}.
//   functional edges: E_ij = (2/N) Σ_n Σ_k w_k [F̂_i(u) − F̂_i(α_k u)] ∂F̂_i/∂u_j(α_k u) u_j
//   with F̂ seen from u = f̂ = Cᵀf through f = C⁺ᵀu.

import { act, actGrad, type Activation } from '../model/activations.js';
import { matmulF64 } from './matmul.js';
import { symEig } from './eigh.js';

export type LegacyFormulaRef = '(1-0)*alpha' | '(1-alpha)^2';

export interface RefPoints {
  alphas: ArrayLike<number>;
  weights: ArrayLike<number>;
}

export interface RefSection {
  /** Folded weight, dim × dimOut. */
  Wbar: Float64Array;
  dim: number;
  dimOut: number;
  act: Activation;
  /** Next basis Ĉ (dimOut × ro) or undefined (identity, ro = dimOut). */
  Cn: Float64Array | undefined;
  ro: number;
}

/** F̂(u) = Ĉᵀ σ(W̄ᵀu) for one point u (length dim). */
export function sectionHat(s: RefSection, u: ArrayLike<number>): Float64Array {
  const y = new Float64Array(s.dimOut);
  for (let h = 0; h < s.dimOut; h++) {
    let p = 0;
    for (let j = 0; j < s.dim; j++) p += s.Wbar[j * s.dimOut + h]! * u[j]!;
    y[h] = act(s.act, p);
  }
  if (!s.Cn) return y;
  const out = new Float64Array(s.ro);
  for (let i = 0; i < s.ro; i++) {
    let t = 0;
    for (let h = 0; h < s.dimOut; h++) t += s.Cn[h * s.ro + i]! * y[h]!;
    out[i] = t;
  }
  return out;
}

/** J(u) = ∂F̂/∂u (ro × dim) by the chain rule. */
export function sectionJacobian(s: RefSection, u: ArrayLike<number>): Float64Array {
  const gp = new Float64Array(s.dimOut);
  for (let h = 0; h < s.dimOut; h++) {
    let p = 0;
    for (let j = 0; j < s.dim; j++) p += s.Wbar[j * s.dimOut + h]! * u[j]!;
    gp[h] = actGrad(s.act, p);
  }
  const J = new Float64Array(s.ro * s.dim);
  for (let i = 0; i < s.ro; i++) {
    for (let j = 0; j < s.dim; j++) {
      let t = 0;
      for (let h = 0; h < s.dimOut; h++) {
        const c = s.Cn ? s.Cn[h * s.ro + i]! : h === i ? 1 : 0;
        if (c !== 0) t += c * gp[h]! * s.Wbar[j * s.dimOut + h]!;
      }
      J[i * s.dim + j] = t;
    }
  }
  return J;
}

/** The legacy gradient g(x) (length dim) of one datapoint's folded activation f. */
export function legacyGradientRef(s: RefSection, f: ArrayLike<number>, formula: LegacyFormulaRef, pts: RefPoints): Float64Array {
  const c = sectionHat(s, f);
  const g = new Float64Array(s.dim);
  const u = new Float64Array(s.dim);
  for (let k = 0; k < pts.alphas.length; k++) {
    const a = pts.alphas[k]!;
    for (let j = 0; j < s.dim; j++) u[j] = a * f[j]!;
    const J = sectionJacobian(s, u);
    let v: Float64Array = c;
    if (formula === '(1-alpha)^2') {
      const fa = sectionHat(s, u);
      v = c.map((ci, i) => 2 * (ci - fa[i]!));
    }
    const w = pts.weights[k]!;
    for (let j = 0; j < s.dim; j++) {
      let t = 0;
      for (let i = 0; i < s.ro; i++) t += J[i * s.dim + j]! * v[i]!;
      g[j]! += w * t;
    }
  }
  return g;
}

/** M' = (1/N) Σ g gᵀ and Λ' = (1/N) Σ g fᵀ over N × dim folded activations F. */
export function legacyMoments(s: RefSection, F: Float64Array, n: number, formula: LegacyFormulaRef, pts: RefPoints): { Mp: Float64Array; Lp: Float64Array } {
  const d = s.dim;
  const Mp = new Float64Array(d * d);
  const Lp = new Float64Array(d * d);
  for (let r = 0; r < n; r++) {
    const f = F.subarray(r * d, (r + 1) * d);
    const g = legacyGradientRef(s, f, formula, pts);
    for (let a = 0; a < d; a++) {
      for (let b = 0; b < d; b++) {
        Mp[a * d + b]! += (g[a]! * g[b]!) / n;
        Lp[a * d + b]! += (g[a]! * f[b]!) / n;
      }
    }
  }
  return { Mp, Lp };
}

export interface RefBasis {
  C: Float64Array;
  Cpinv: Float64Array;
  Lambda: Float64Array;
  r: number;
  dim: number;
}

/**
 * The legacy basis from SPEC §3–§4.9 (relative thresholds τ·max, as ibgpu's default mode; the
 * stage-2 cut counts only unmasked entries). F holds N × dim folded activations (last column 1).
 */
export function legacyBasisRef(F: Float64Array, n: number, dim: number, centred: boolean, tau: number, Mp: Float64Array, Lp: Float64Array): RefBasis {
  const d = dim - 1;
  const mu = new Float64Array(dim);
  for (let r = 0; r < n; r++) for (let j = 0; j < dim; j++) mu[j]! += F[r * dim + j]! / n;
  const mut = Float64Array.from(mu);
  mut[d] = 0;
  // Gram: centred (f − μ̃)(f − μ̃)ᵀ or raw.
  const G = new Float64Array(dim * dim);
  for (let r = 0; r < n; r++) {
    for (let a = 0; a < dim; a++) {
      const xa = F[r * dim + a]! - (centred ? mut[a]! : 0);
      for (let b = 0; b < dim; b++) G[a * dim + b]! += (xa * (F[r * dim + b]! - (centred ? mut[b]! : 0))) / n;
    }
  }
  const e = symEig(G, dim);
  let order = Array.from({ length: dim }, (_, i) => i).sort((x, y) => Math.abs(e.values[y]!) - Math.abs(e.values[x]!));
  if (centred) {
    const c = order.filter((k) => Math.abs(e.vectors[d * dim + k]!) > 1e-6 && Math.abs(e.values[k]!) > 1e-6);
    if (c.length !== 1) throw new Error(`reference: ${c.length} constant directions`);
    order = [c[0]!, ...order.filter((k) => k !== c[0])];
  }
  const maxD = Math.max(...order.map((k) => Math.abs(e.values[k]!)));
  const kept = order.filter((k) => Math.abs(e.values[k]!) > tau * maxD);
  const k = kept.length;
  // W = Y U, W⁺ = Uᵀ Y⁻¹ with Y = I − e_d μ̃ᵀ (identity when not centring); R = W D^{-1/2}, R⁺ = D^{1/2} W⁺.
  const R = new Float64Array(dim * k);
  const Rp = new Float64Array(k * dim);
  kept.forEach((src, c) => {
    const D = Math.abs(e.values[src]!);
    const u = new Float64Array(dim);
    for (let i = 0; i < dim; i++) u[i] = e.vectors[i * dim + src]!;
    for (let i = 0; i < dim; i++) {
      // (Y u)_i = u_i − δ_id μ̃ᵀu ;  (Uᵀ Y⁻¹)_{c,i} = u_i + u_d μ̃_i
      let yu = u[i]!;
      if (centred && i === d) for (let j = 0; j < d; j++) yu -= mut[j]! * u[j]!;
      R[i * k + c] = yu / Math.sqrt(D);
      Rp[c * dim + i] = (u[i]! + (centred ? u[d]! * mut[i]! : 0)) * Math.sqrt(D);
    }
  });
  const M = matmulF64(matmulF64(Rp, Mp, { m: k, n: dim, k: dim }), Rp, { m: k, n: k, k: dim, transB: true });
  const nm = centred ? 1 : 0;
  const ks = k - nm;
  const Msub = new Float64Array(ks * ks);
  for (let a = 0; a < ks; a++) for (let b = 0; b < ks; b++) Msub[a * ks + b] = M[(a + nm) * k + b + nm]!;
  const ev = symEig(Msub, ks);
  const V = new Float64Array(k * k);
  if (nm) V[0] = 1;
  for (let a = 0; a < ks; a++) for (let b = 0; b < ks; b++) V[(a + nm) * k + b + nm] = ev.vectors[a * ks + b]!;
  const T = matmulF64(matmulF64(Rp, Lp, { m: k, n: dim, k: dim }), R, { m: k, n: k, k: dim });
  const VtTV = matmulF64(matmulF64(V, T, { m: k, n: k, k, transA: true }), V, { m: k, n: k, k });
  const lam = Array.from({ length: k }, (_, c) => Math.abs(VtTV[c * k + c]!));
  const rest = Array.from({ length: ks }, (_, c) => c + nm).sort((x, y) => lam[y]! - lam[x]!);
  const maxL = Math.max(...rest.map((c) => lam[c]!));
  const pi = [...(nm ? [0] : []), ...rest.filter((c) => lam[c]! >= tau * maxL && lam[c]! > 0)];
  const r = pi.length;
  const RV = matmulF64(R, V, { m: dim, n: k, k });
  const VtRp = matmulF64(V, Rp, { m: k, n: dim, k, transA: true });
  const C = new Float64Array(dim * r);
  const Cpinv = new Float64Array(r * dim);
  const Lambda = new Float64Array(r);
  pi.forEach((src, m) => {
    Lambda[m] = lam[src]!;
    const s = Math.sqrt(lam[src]!);
    for (let i = 0; i < dim; i++) {
      C[i * r + m] = RV[i * k + src]! * s;
      Cpinv[m * dim + i] = VtRp[src * dim + i]! / s;
    }
  });
  return { C, Cpinv, Lambda, r, dim };
}

/** Functional edges E (ro × r) of one section for a given input basis (SPEC §5.3). */
export function functionalEdgesRef(
  s: RefSection,
  basis: { C: Float64Array; Cpinv: Float64Array; r: number },
  F: Float64Array,
  n: number,
  pts: RefPoints,
): Float64Array {
  const { r } = basis;
  const d = s.dim;
  const E = new Float64Array(s.ro * r);
  const u = new Float64Array(r);
  const fp = new Float64Array(d);
  for (let row = 0; row < n; row++) {
    for (let j = 0; j < r; j++) {
      let t = 0;
      for (let i = 0; i < d; i++) t += basis.C[i * r + j]! * F[row * d + i]!;
      u[j] = t;
    }
    // F̂ as a function of u: f = C⁺ᵀ u (the projection of f onto the kept directions).
    const fOf = (v: ArrayLike<number>, alpha: number): Float64Array => {
      for (let i = 0; i < d; i++) {
        let t = 0;
        for (let j = 0; j < r; j++) t += basis.Cpinv[j * d + i]! * v[j]!;
        fp[i] = alpha * t;
      }
      return fp;
    };
    const full = sectionHat(s, fOf(u, 1));
    for (let k = 0; k < pts.alphas.length; k++) {
      const a = pts.alphas[k]!;
      const w = pts.weights[k]!;
      const fa = sectionHat(s, fOf(u, a));
      const Jf = sectionJacobian(s, fOf(u, a)); // ∂F̂/∂f at α_k C⁺ᵀu (ro × d)
      const Ju = matmulF64(Jf, basis.Cpinv, { m: s.ro, n: r, k: d, transB: true }); // · ∂f/∂u = C⁺ᵀ
      for (let i = 0; i < s.ro; i++) {
        const diff = full[i]! - fa[i]!;
        for (let j = 0; j < r; j++) E[i * r + j]! += (2 * w * diff * Ju[i * r + j]! * u[j]!) / n;
      }
    }
  }
  return E;
}
