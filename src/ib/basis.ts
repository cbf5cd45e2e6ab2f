// Host-side float64 construction of the Interaction Basis from streamed statistics (SPEC §2–4).
//
// Everything here runs on small matrices (node-layer width, not dataset size) in f64, as rib
// requires ("M and M' need to be kept at float64 at all times"). The GPU produced the sums.
//
// For an MLP section f^{ℓ+1} = σ(W̄ᵀ f^ℓ) the Jacobian Gram needs no per-sample backward pass:
//   M' = (1/N) Σ_n W̄ diag(g_n) ĈĈᵀ diag(g_n) W̄ᵀ = W̄ [(ĈĈᵀ) ∘ Ā] W̄ᵀ,   Ā = (1/N) Σ_n g_n g_nᵀ,
// where g_n = Σ_k w_k σ'(α_k p_n) is the integrated activation derivative (SPEC §10.3, extended
// from ReLU co-firing to any elementwise activation and integration rule).

import { IbgpuError } from '../errors.js';
import { matmulHost } from '../host/matmul.js';
import { symEigHost } from '../host/eigh-wasm.js';
import { symEigInBackground } from '../host/eigh-worker.js';
import { thinQr } from '../cpu/qr.js';
import type { BasisFormula, BuildConfig, ThresholdMode } from './config.js';

/** Streamed sums for one node layer (real units only; the folded constant is handled analytically). */
export interface NodeStats {
  name: string;
  n: number;
  /** Real units (folded dimension is d + 1 unless `folded` is false, as for `output`). */
  d: number;
  folded: boolean;
  sum: Float64Array;
  /** Σ (x − s)(x − s)ᵀ over datapoints, d×d. */
  gramShifted: Float64Array;
  shift: Float64Array;
}

/** Streamed sums of the integrated activation derivative of the section leaving a node layer. */
export interface GateStats {
  n: number;
  /** Real output units of the section. */
  h: number;
  sum: Float64Array;
  gram: Float64Array;
  /** Gate of the folded constant output slot (σ' at α·ρ averaged over the rule); undefined for the model's last layer. */
  constGate: number | undefined;
}

export interface Threshold {
  tau: number;
  mode: ThresholdMode;
  /**
   * rib's stage-2 count (config rib_compat): a masked Λ (the constant direction) below τ is
   * counted among the small ones, so the smallest kept unmasked direction is dropped instead.
   */
  countMasked?: boolean;
}

/** The truncation thresholds of a config (SPEC §3.2, §4.8). */
export function thresholdOf(config: BuildConfig): Threshold {
  return { tau: config.truncation_threshold, mode: config.threshold_mode, countMasked: config.rib_compat };
}

/**
 * SPEC §4.8 second truncation over unmasked candidates (`order`: indices into `lam`, Λ
 * descending): keeps Λ ≥ τ (Λ == τ kept) and Λ > 0. With th.countMasked, a masked Λ below τ
 * drops the last kept candidate too, as rib does.
 */
export function secondTruncation(th: Threshold, lam: ArrayLike<number>, order: readonly number[], maskedLambda?: number): number[] {
  const tau = cut(th, lam);
  const keep = order.filter((c) => lam[c]! >= tau && lam[c]! > 0);
  if (th.countMasked && maskedLambda !== undefined && maskedLambda < tau && keep.length > 0) keep.pop();
  return keep;
}

export interface LayerBasis {
  name: string;
  /** Dimension of the node layer's activation vector (folded: real units + 1). */
  dim: number;
  centred: boolean;
  /** Mean of the activation vector (folded: last entry 1). */
  mean: Float64Array;
  /** All eigenvalues of the (centred or raw) Gram, |·| sorted descending (rib's `eigendecompose`). */
  gramEigenvalues: Float64Array;
  /** Stage-1 kept eigenvectors, dim×k, and their eigenvalues. */
  U: Float64Array;
  D: Float64Array;
  k: number;
  /** Stage-2 rotation restricted to kept directions, k×r (jacobian and legacy formulas). */
  V?: Float64Array;
  /** Λ aligned with C's columns (jacobian and legacy formulas). */
  Lambda?: Float64Array;
  /** M' in folded coordinates (jacobian and legacy formulas), dim×dim. */
  Mprime?: Float64Array;
  /** Λ' = E[g fᵀ] in folded coordinates (legacy formulas only, SPEC §4.4), dim×dim. */
  LambdaPrime?: Float64Array;
  C: Float64Array;
  Cpinv: Float64Array;
  r: number;
  dropped: { stage1: number; stage2: number };
}

// ------------------------------------------------------------------ moments

export function mean(s: NodeStats): Float64Array {
  const m = new Float64Array(s.folded ? s.d + 1 : s.d);
  for (let i = 0; i < s.d; i++) m[i] = s.sum[i]! / s.n;
  if (s.folded) m[s.d] = 1;
  return m;
}

/** Covariance of the real units: (Σ(x−s)(x−s)ᵀ − N(μ−s)(μ−s)ᵀ)/N (exact shifted-data formula). */
export function covariance(s: NodeStats): Float64Array {
  const d = s.d;
  const delta = new Float64Array(d);
  for (let i = 0; i < d; i++) delta[i] = s.sum[i]! / s.n - s.shift[i]!;
  const c = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = s.gramShifted[i * d + j]! / s.n - delta[i]! * delta[j]!;
      c[i * d + j] = v;
      c[j * d + i] = v;
    }
  }
  return c;
}

/** The node layer's Gram in its own (folded) coordinates: centred blockdiag(Cov, 1) or raw E[f fᵀ]. */
export function nodeGram(s: NodeStats, centred: boolean): Float64Array {
  const cov = covariance(s);
  const mu = mean(s);
  const dim = s.folded ? s.d + 1 : s.d;
  const g = new Float64Array(dim * dim);
  for (let i = 0; i < s.d; i++) {
    for (let j = 0; j < s.d; j++) g[i * dim + j] = cov[i * s.d + j]! + (centred ? 0 : mu[i]! * mu[j]!);
  }
  if (s.folded) {
    const d = s.d;
    g[d * dim + d] = 1;
    if (!centred) for (let i = 0; i < d; i++) g[i * dim + d] = g[d * dim + i] = mu[i]!;
  }
  return g;
}

/** Ā = E[g gᵀ] over the section's folded outputs. */
export function gateMoment(g: GateStats): { data: Float64Array; dim: number } {
  const dim = g.constGate === undefined ? g.h : g.h + 1;
  const a = new Float64Array(dim * dim);
  for (let i = 0; i < g.h; i++) for (let j = 0; j < g.h; j++) a[i * dim + j] = g.gram[i * g.h + j]! / g.n;
  if (g.constGate !== undefined) {
    const c = g.constGate;
    for (let i = 0; i < g.h; i++) a[i * dim + g.h] = a[g.h * dim + i] = (c * g.sum[i]!) / g.n;
    a[g.h * dim + g.h] = c * c;
  }
  return { data: a, dim };
}

// ------------------------------------------------------------------ eigen helpers

/**
 * rib's eigendecompose: |λ| sorted descending with matching vectors.
 * Rows (and columns) that are exactly zero — inputs that never vary, such as MNIST's blank border
 * pixels or dead ReLUs after centring — split off exactly: each is an eigenvector e_i with
 * eigenvalue 0, so only the remaining block is handed to the O(n³) solver (111 of 784 MNIST pixel
 * columns, a third less work). Their eigenvalue 0 sorts last and is never kept by a threshold.
 */
export function eigAbsSorted(a: Float64Array, n: number): EigPairs {
  const p = splitZeroRows(a, n);
  return assembleEig(p, p.m > 0 ? symEigHost(p.sub, p.m) : EMPTY);
}

/**
 * eigAbsSorted with the O(n³) solve on background threads (`threads` of them, default: the
 * machine's cores, at most 4) when they can be had (Node; see
 * src/host/eigh-worker.ts), so the caller's thread can drive the GPU meanwhile. Same result.
 */
export async function eigAbsSortedInBackground(a: Float64Array, n: number, threads?: number): Promise<EigPairs> {
  const p = splitZeroRows(a, n);
  return assembleEig(p, p.m > 0 ? await symEigInBackground(p.sub, p.m, threads !== undefined ? { threads } : {}) : EMPTY);
}

export interface EigPairs {
  values: Float64Array;
  vectors: Float64Array;
}

const EMPTY: EigPairs = { values: new Float64Array(0), vectors: new Float64Array(0) };

interface ZeroSplit {
  n: number;
  live: number[];
  dead: number[];
  m: number;
  sub: Float64Array;
}

function splitZeroRows(a: Float64Array, n: number): ZeroSplit {
  const live: number[] = [];
  const dead: number[] = [];
  for (let i = 0; i < n; i++) {
    let zero = true;
    for (let j = 0; j < n && zero; j++) zero = a[i * n + j] === 0 && a[j * n + i] === 0;
    (zero ? dead : live).push(i);
  }
  const m = live.length;
  let sub = a;
  if (dead.length > 0) {
    sub = new Float64Array(m * m);
    for (let p = 0; p < m; p++) for (let q = 0; q < m; q++) sub[p * m + q] = a[live[p]! * n + live[q]!]!;
  }
  return { n, live, dead, m, sub };
}

function assembleEig(p: ZeroSplit, e: EigPairs): EigPairs {
  const { n, live, dead, m } = p;
  if (n === 0) return EMPTY;
  const { values, vectors } = e;
  const order = Array.from({ length: m }, (_, i) => i).sort((x, y) => Math.abs(values[y]!) - Math.abs(values[x]!));
  const vals = new Float64Array(n);
  const vecs = new Float64Array(n * n);
  order.forEach((src, dst) => {
    vals[dst] = Math.abs(values[src]!);
    for (let q = 0; q < m; q++) vecs[live[q]! * n + dst] = vectors[q * m + src]!;
  });
  dead.forEach((i, t) => {
    vecs[i * n + m + t] = 1;
  });
  return { values: vals, vectors: vecs };
}

export function cut(th: Threshold, values: ArrayLike<number>): number {
  if (th.mode === 'absolute') return th.tau;
  let mx = 0;
  for (let i = 0; i < values.length; i++) mx = Math.max(mx, Math.abs(values[i]!));
  return th.tau * mx;
}

// ------------------------------------------------------------------ stage 1

export interface Stage1 {
  dim: number;
  mean: Float64Array;
  centred: boolean;
  gramEigenvalues: Float64Array;
  U: Float64Array;
  D: Float64Array;
  k: number;
  dropped: number;
}

/**
 * Stage 1 (SPEC §3): eigendecompose the Gram, truncate D ≤ τ (strict, as rib). When centring a
 * folded layer, the constant direction e_d with D = 1 is deflated analytically (SPEC §3.3) and
 * only the covariance block is eigendecomposed.
 */
/**
 * The matrix stage 1 eigendecomposes (with eigAbsSorted): the covariance when centring a folded
 * layer (the constant direction is deflated analytically), otherwise the (centred) Gram.
 */
export function stage1Matrix(s: NodeStats, centred: boolean): { a: Float64Array; n: number } {
  if (centred && s.folded) return { a: covariance(s), n: s.d };
  return { a: nodeGram(s, centred), n: s.folded ? s.d + 1 : s.d };
}

export function stage1(s: NodeStats, centred: boolean, th: Threshold, eig?: EigPairs): Stage1 {
  const mu = mean(s);
  const dim = s.folded ? s.d + 1 : s.d;
  const want = centred && s.folded ? s.d : dim;
  if (eig && eig.values.length !== want)
    throw new Error(`stage 1 of ${s.name}: a precomputed eigendecomposition of order ${eig.values.length}, expected ${want}`);
  const solve = (): EigPairs => eig ?? (({ a, n }) => eigAbsSorted(a, n))(stage1Matrix(s, centred));
  if (centred && s.folded) {
    const { values, vectors } = solve();
    const tau = cut(th, values);
    const keep: number[] = [];
    for (let i = 0; i < s.d; i++) if (values[i]! > tau) keep.push(i);
    const k = keep.length + 1;
    const U = new Float64Array(dim * k);
    const D = new Float64Array(k);
    U[s.d * k + 0] = 1;
    D[0] = 1;
    keep.forEach((src, m) => {
      D[m + 1] = values[src]!;
      for (let i = 0; i < s.d; i++) U[i * k + m + 1] = vectors[i * s.d + src]!;
    });
    const all = Float64Array.from([1, ...values])
      .sort()
      .reverse();
    return { dim, mean: mu, centred, gramEigenvalues: all, U, D, k, dropped: s.d - keep.length };
  }
  const { values, vectors } = solve();
  const tau = cut(th, values);
  const keep: number[] = [];
  for (let i = 0; i < dim; i++) if (values[i]! > tau) keep.push(i);
  const k = keep.length;
  const U = new Float64Array(dim * k);
  const D = new Float64Array(k);
  keep.forEach((src, m) => {
    D[m] = values[src]!;
    for (let i = 0; i < dim; i++) U[i * k + m] = vectors[i * dim + src]!;
  });
  return { dim, mean: mu, centred, gramEigenvalues: values, U, D, k, dropped: dim - k };
}

/** The fields of a layer's basis that stage 1 decides (the Gram's spectrum, U, D, k) and its name. */
export function stage1Fields(name: string, st: Stage1): Pick<LayerBasis, 'name' | 'dim' | 'centred' | 'mean' | 'gramEigenvalues' | 'U' | 'D' | 'k'> {
  return { name, dim: st.dim, centred: st.centred, mean: st.mean, gramEigenvalues: st.gramEigenvalues, U: st.U, D: st.D, k: st.k };
}

/** μ̃: the mean with the bias slot zeroed (only folded, centred layers shift). */
function muTilde(st: Stage1): Float64Array | undefined {
  if (!st.centred) return undefined;
  const m = Float64Array.from(st.mean);
  m[st.dim - 1] = 0;
  return m;
}

/**
 * C = Y U D^{-1/2} V Λ^{1/2} and C⁺ = Λ^{-1/2} Vᵀ D^{1/2} Uᵀ Y⁻¹ from stage 1 (W = Y U, Wp = Uᵀ Y⁻¹,
 * D), the kept eigenvectors V (k × r) and their Λ. Shared by the MLP and transformer bases.
 */
export function rotationFromEigenbasis(
  st: Pick<Stage1, 'D' | 'k'>,
  W: Float64Array,
  Wp: Float64Array,
  V: Float64Array,
  Lambda: Float64Array,
  r: number,
): { C: Float64Array; Cpinv: Float64Array } {
  const k = st.k;
  const dim = W.length / k;
  const DV = new Float64Array(k * r);
  const DVp = new Float64Array(r * k);
  for (let c = 0; c < k; c++) {
    const sd = Math.sqrt(st.D[c]!);
    for (let j = 0; j < r; j++) {
      const sl = Math.sqrt(Lambda[j]!);
      DV[c * r + j] = (V[c * r + j]! / sd) * sl;
      DVp[j * k + c] = (V[c * r + j]! * sd) / sl;
    }
  }
  return { C: matmulHost(W, DV, { m: dim, n: r, k }), Cpinv: matmulHost(DVp, Wp, { m: r, n: dim, k }) };
}

/** W = Y U (dim×k): subtracts (μ̃ᵀU) from the bias row. */
export function yTimesU(st: Stage1): Float64Array {
  const W = Float64Array.from(st.U);
  const mt = muTilde(st);
  if (!mt) return W;
  const d = st.dim - 1;
  for (let c = 0; c < st.k; c++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += mt[i]! * st.U[i * st.k + c]!;
    W[d * st.k + c] = W[d * st.k + c]! - s;
  }
  return W;
}

/** W⁺ = Uᵀ Y⁻¹ (k×dim): adds U[d,c]·μ̃_j to every column j < d. */
export function uTYinv(st: Stage1): Float64Array {
  const { k, dim } = st;
  const out = new Float64Array(k * dim);
  const mt = muTilde(st);
  for (let c = 0; c < k; c++) {
    const ud = st.U[(dim - 1) * k + c]!;
    for (let j = 0; j < dim; j++) out[c * dim + j] = st.U[j * k + c]! + (mt ? ud * mt[j]! : 0);
  }
  return out;
}

// ------------------------------------------------------------------ stage 2 and C

/** Next layer's basis as seen by this section: C^{ℓ+1} (dimOut×r) or the identity. */
export interface NextBasis {
  C: Float64Array | undefined;
  dim: number;
  r: number;
}

export interface SectionInput {
  /** Folded weight of the section, dim × dimOut. */
  Wbar: Float64Array;
  dimOut: number;
  gates: GateStats;
}

export function buildLayerBasis(
  s: NodeStats,
  formula: BasisFormula,
  centred: boolean,
  th: Threshold,
  section?: SectionInput,
  next?: NextBasis,
  /** Stage 1's eigendecomposition of stage1Matrix(s, centred), when already computed. */
  stage1Eig?: EigPairs,
): LayerBasis {
  const dim = s.folded ? s.d + 1 : s.d;
  if (formula === 'neuron') {
    const I = identity(dim);
    const st = stage1(s, false, th);
    return {
      ...stage1Fields(s.name, st),
      C: I,
      Cpinv: Float64Array.from(I),
      r: dim,
      dropped: { stage1: 0, stage2: 0 },
    };
  }
  const st = stage1(s, centred, th, stage1Eig);
  const W = yTimesU(st);
  const Wp = uTYinv(st);
  if (formula === 'svd' || formula === 'pca') {
    return {
      ...stage1Fields(s.name, st),
      C: W,
      Cpinv: Wp,
      r: st.k,
      dropped: { stage1: st.dropped, stage2: 0 },
    };
  }
  if (!section || !next) throw new Error(`jacobian basis for ${s.name} needs its section and the next basis`);
  const { k } = st;
  const dimOut = section.dimOut;
  if (next.dim !== dimOut) throw new Error(`section out dim ${dimOut} != next basis dim ${next.dim}`);
  // X = (ĈĈᵀ) ∘ Ā over the section's folded outputs.
  const A = gateMoment(section.gates);
  if (A.dim !== dimOut) throw new Error(`gate moment dim ${A.dim} != section out dim ${dimOut}`);
  const X = new Float64Array(dimOut * dimOut);
  if (next.C) {
    const CCt = matmulHost(next.C, next.C, { m: dimOut, n: dimOut, k: next.r, transB: true });
    for (let i = 0; i < X.length; i++) X[i] = CCt[i]! * A.data[i]!;
  } else {
    for (let i = 0; i < dimOut; i++) X[i * dimOut + i] = A.data[i * dimOut + i]!;
  }
  const Mprime = matmulHost(matmulHost(section.Wbar, X, { m: dim, n: dimOut, k: dimOut }), section.Wbar, { m: dim, n: dim, k: dimOut, transB: true });
  // B = R⁺ W̄ = D^{1/2} Uᵀ Y⁻¹ W̄ (k × dimOut);  M = B X Bᵀ.
  const B = matmulHost(Wp, section.Wbar, { m: k, n: dimOut, k: dim });
  for (let c = 0; c < k; c++) {
    const sd = Math.sqrt(st.D[c]!);
    for (let j = 0; j < dimOut; j++) B[c * dimOut + j] = B[c * dimOut + j]! * sd;
  }
  const nm = centred && s.folded ? 1 : 0; // masked (unrotated) leading directions
  const ks = k - nm;
  const Bs = B.subarray(nm * dimOut);
  // Eigenpairs of M_sub = Bs X Bsᵀ (ks×ks). When ks > dimOut its rank is at most dimOut: reduce
  // with a thin QR of Bs so the eigenproblem is dimOut×dimOut (exact; no BᵀB squaring).
  let lam: Float64Array;
  let Vsub: Float64Array; // ks × cols
  let cols: number;
  if (ks > dimOut) {
    const { q, r } = thinQr(Bs, ks, dimOut);
    const S = matmulHost(matmulHost(r, X, { m: dimOut, n: dimOut, k: dimOut }), r, { m: dimOut, n: dimOut, k: dimOut, transB: true });
    symmetrize(S, dimOut);
    const e = eigAbsSorted(S, dimOut);
    lam = e.values;
    Vsub = matmulHost(q, e.vectors, { m: ks, n: dimOut, k: dimOut });
    cols = dimOut;
  } else {
    const Ms = matmulHost(matmulHost(Bs, X, { m: ks, n: dimOut, k: dimOut }), Bs, { m: ks, n: ks, k: dimOut, transB: true });
    symmetrize(Ms, ks);
    const e = eigAbsSorted(Ms, ks);
    lam = e.values;
    Vsub = e.vectors;
    cols = ks;
  }
  // Λ of the masked direction is M's diagonal entry (SPEC §4.6–4.7).
  let lam0 = 0;
  if (nm === 1) {
    const b0 = B.subarray(0, dimOut);
    for (let i = 0; i < dimOut; i++) {
      let t = 0;
      for (let j = 0; j < dimOut; j++) t += X[i * dimOut + j]! * b0[j]!;
      lam0 += b0[i]! * t;
    }
  }
  // Second truncation: drop unmasked Λ < τ (Λ == τ kept). Only unmasked entries are counted
  // unless rib_compat (rib counts the masked one too; see docs/DEVIATIONS.md).
  const keep = secondTruncation(
    th,
    lam,
    Array.from({ length: cols }, (_, i) => i),
    nm === 1 ? lam0 : undefined,
  );
  const r = nm + keep.length;
  const V = new Float64Array(k * r);
  const Lambda = new Float64Array(r);
  if (nm === 1) {
    V[0] = 1;
    Lambda[0] = lam0;
  }
  keep.forEach((src, m) => {
    Lambda[nm + m] = lam[src]!;
    for (let i = 0; i < ks; i++) V[(nm + i) * r + nm + m] = Vsub[i * cols + src]!;
  });
  const { C, Cpinv } = rotationFromEigenbasis(st, W, Wp, V, Lambda, r);
  return {
    ...stage1Fields(s.name, st),
    V,
    Lambda,
    Mprime,
    C,
    Cpinv,
    r,
    dropped: { stage1: st.dropped, stage2: ks - keep.length },
  };
}

function identity(n: number): Float64Array {
  const I = new Float64Array(n * n);
  for (let i = 0; i < n; i++) I[i * n + i] = 1;
  return I;
}

export function symmetrize(a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = 0.5 * (a[i * n + j]! + a[j * n + i]!);
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  }
}

export function checkBasisFormula(formula: BasisFormula, centred: boolean): void {
  if (formula === 'neuron' && centred) {
    throw new IbgpuError('BAD_CONFIG', "basis_formula 'neuron' cannot be centred", 'set "center": false');
  }
}
