// The per-sample float64 sums of the closed-form M′ and squared edges of attention sections cut
// to the last position (the formulas are in src/transformer/gpu-attention-closed.ts's header).
// Host code only (no GPU, no Node modules), so that it runs on the calling thread or on the host
// worker threads of pool.ts alike.
//
// Samples are summed in fixed chunks of SAMPLE_CHUNK, each into its own zeroed partial, and the
// partials are added in chunk order: the result is the same, bit for bit, on any number of threads.

import type { AttentionHeads } from '../model/program.js';

/** The attention op's shape and the sizes of the sums (P positions, m = H·dV + 2·H·dHead columns, K cotangents). */
export interface AttentionShape extends AttentionHeads {
  P: number;
  m: number;
  K: number;
}

/** The shape of the sums of an attention op (only its head fields are read) over P positions. */
export function attentionShape(op: AttentionHeads, P: number, m: number, K: number): AttentionShape {
  return {
    heads: op.heads,
    dHead: op.dHead,
    dV: op.dV,
    scale: op.scale,
    causal: op.causal,
    ...(op.window !== undefined ? { window: op.window } : {}),
    P,
    m,
    K,
  };
}

/**
 * The sizes the sums index with: H heads of dH (keys, queries) and dV (values) columns, the query
 * t = P − 1, HdV = H·dV and HdH = H·dH (the v and k blocks of a row's m columns), NJ = H·P (ds's
 * columns per cotangent), A = H + 1 (W_ab's order), L2 = 2·HdH (Ψ's order).
 */
export function attentionSizes(sh: AttentionShape): {
  P: number;
  m: number;
  K: number;
  H: number;
  dH: number;
  dV: number;
  scale: number;
  t: number;
  HdV: number;
  HdH: number;
  NJ: number;
  A: number;
  L2: number;
} {
  const { P, m, K } = sh;
  const H = sh.heads;
  return { P, m, K, H, dH: sh.dHead, dV: sh.dV, scale: sh.scale, t: P - 1, HdV: H * sh.dV, HdH: H * sh.dHead, NJ: H * P, A: H + 1, L2: 2 * H * sh.dHead };
}

/** Samples per partial sum (the unit of work of a thread). */
export const SAMPLE_CHUNK = 256;

/**
 * The attention of query t* = P−1 for one sample, in float64: [v | k | q] = x J per position,
 * the softmax row p^h, the centred values w_u^h = v_u^h − v̄^h and ds_{k,(h,u)} = p_u^h dz_k^h·w_u^h.
 */
export class AttentionSample {
  readonly vkq: Float64Array;
  readonly prob: Float64Array;
  readonly wv: Float64Array;
  readonly ds: Float64Array;
  /** Position u of the sample is row u of vkq (queryProbs' row ids). */
  private readonly positions: Int32Array;
  constructor(
    private readonly op: AttentionShape,
    private readonly DZ: Float64Array,
  ) {
    const { P, m, K } = op;
    this.vkq = new Float64Array(P * m);
    this.prob = new Float64Array(op.heads * P);
    this.wv = new Float64Array(op.heads * P * op.dV);
    this.ds = new Float64Array(K * op.heads * P);
    this.positions = Int32Array.from({ length: P }, (_, u) => u);
  }

  /** xj: the sample's rows f·J [P, m] (from the GPU in f32, or float64 tables); alpha: the integration point. */
  run(xj: Float64Array, alpha: number): void {
    const { op, DZ, vkq, prob, wv, ds } = this;
    const { P, m, K } = op;
    const H = op.heads,
      dV = op.dV;
    const HdV = H * dV,
      NJ = H * P;
    for (let i = 0; i < P * m; i++) vkq[i] = alpha * xj[i]!;
    // Softmax of query t* per head (position u is row u of vkq), centred values w_u = v_u − v̄.
    queryProbs(op, vkq, this.positions, prob);
    for (let h = 0; h < H; h++) {
      for (let j = 0; j < dV; j++) {
        let vb = 0;
        for (let u = 0; u < P; u++) vb += prob[h * P + u]! * vkq[u * m + h * dV + j]!;
        for (let u = 0; u < P; u++) wv[(h * P + u) * dV + j] = vkq[u * m + h * dV + j]! - vb;
      }
    }
    // ds_{k,(h,u)} = p_u^h dz_k^h · w_u^h.
    for (let k = 0; k < K; k++)
      for (let h = 0; h < H; h++)
        for (let u = 0; u < P; u++) {
          let acc = 0;
          for (let j = 0; j < dV; j++) acc += DZ[k * HdV + h * dV + j]! * wv[(h * P + u) * dV + j]!;
          ds[k * NJ + h * P + u] = prob[h * P + u]! * acc;
        }
  }
}

/**
 * The softmax rows of query t* = P−1, per head ([H, P], zero where masked), of one sample whose
 * positions hold the table rows rho: vkq is [rows, m] with [v | k | q] at the integration point.
 */
export function queryProbs(sh: AttentionShape, vkq: Float64Array, rho: Int32Array, prob: Float64Array): void {
  const { P, m, H, dH, scale, t, HdV, HdH } = attentionSizes(sh);
  const qo = rho[t]! * m + HdV + HdH;
  for (let h = 0; h < H; h++) {
    let mx = -Infinity;
    for (let u = 0; u < P; u++) {
      if ((sh.causal && u > t) || (sh.window !== undefined && u <= t - sh.window)) {
        prob[h * P + u] = -Infinity;
        continue;
      }
      const ko = rho[u]! * m + HdV + h * dH;
      let sc = 0;
      for (let j = 0; j < dH; j++) sc += vkq[qo + h * dH + j]! * vkq[ko + j]!;
      sc /= scale;
      prob[h * P + u] = sc;
      if (sc > mx) mx = sc;
    }
    let z = 0;
    for (let u = 0; u < P; u++) {
      const e = prob[h * P + u] === -Infinity ? 0 : Math.exp(prob[h * P + u]! - mx);
      prob[h * P + u] = e;
      z += e;
    }
    for (let u = 0; u < P; u++) prob[h * P + u] = prob[h * P + u]! / z;
  }
}

/**
 * One sample's part of the M′ sums that both forms compute alike: β = Σ_k ds dsᵀ (NJ × NJ, NJ =
 * H·P, overwritten) and W_ab += Σ_s π^s_a π^s_b with π^s = [δ_{s,t*}, p_s^1..H] (A = H + 1).
 */
export function sampleBetaAndWab(sh: AttentionShape, prob: Float64Array, ds: Float64Array, beta: Float64Array, Wab: Float64Array): void {
  sampleBeta(sh, ds, beta);
  sampleWab(sh, prob, Wab);
}

/**
 * β = Σ_k ds dsᵀ (NJ × NJ, overwritten). src/host/wasm/attention_mdash.wat (beta_sym) computes the
 * same bits.
 */
export function sampleBeta(sh: AttentionShape, ds: Float64Array, beta: Float64Array): void {
  const K = sh.K,
    NJ = sh.heads * sh.P;
  // β is symmetric to the bit (the same products in the same order of k; a zero factor's term
  // adds nothing either way): the upper triangle, then mirrored.
  beta.fill(0);
  for (let k = 0; k < K; k++) {
    const row = ds.subarray(k * NJ, (k + 1) * NJ);
    for (let j1 = 0; j1 < NJ; j1++) {
      const v = row[j1]!;
      if (v === 0) continue;
      for (let j2 = j1; j2 < NJ; j2++) beta[j1 * NJ + j2]! += v * row[j2]!;
    }
  }
  for (let j1 = 1; j1 < NJ; j1++) for (let j2 = 0; j2 < j1; j2++) beta[j1 * NJ + j2] = beta[j2 * NJ + j1]!;
}

/** W_ab += Σ_s π^s_a π^s_b with π^s = [δ_{s,t*}, p_s^1..H] (A = H + 1). */
export function sampleWab(sh: AttentionShape, prob: Float64Array, Wab: Float64Array): void {
  const P = sh.P;
  const t = P - 1,
    A = sh.heads + 1;
  for (let sp = 0; sp < P; sp++)
    for (let a1 = 0; a1 < A; a1++) {
      const p1 = a1 === 0 ? (sp === t ? 1 : 0) : prob[(a1 - 1) * P + sp]!;
      if (p1 === 0) continue;
      for (let a2 = 0; a2 < A; a2++) Wab[a1 * A + a2]! += p1 * (a2 === 0 ? (sp === t ? 1 : 0) : prob[(a2 - 1) * P + sp]!);
    }
}

/**
 * One sample's squared edges, added to E (K × r): e_k = Σ_a Ỹ^a_k ⊙ U_a + Σ_J ds_{k,J} Γ_J, with
 * Ỹ packed as A blocks of K × r, U as A × r and Γ as NJ × r; `e` is r scratch.
 */
export function addSampleEdgeSquares(
  sh: Pick<AttentionShape, 'K' | 'heads' | 'P'>,
  r: number,
  Yt: Float64Array,
  U: Float64Array,
  ds: Float64Array,
  Gam: Float64Array,
  e: Float64Array,
  E: Float64Array,
): void {
  const K = sh.K,
    NJ = sh.heads * sh.P,
    A = sh.heads + 1;
  for (let k = 0; k < K; k++) {
    e.fill(0);
    for (let a = 0; a < A; a++) {
      const yo = (a * K + k) * r;
      const Uo = a * r;
      for (let j = 0; j < r; j++) e[j]! += Yt[yo + j]! * U[Uo + j]!;
    }
    for (let J2 = 0; J2 < NJ; J2++) {
      const c = ds[k * NJ + J2]!;
      if (c === 0) continue;
      const go = J2 * r;
      for (let j = 0; j < r; j++) e[j]! += c * Gam[go + j]!;
    }
    for (let j = 0; j < r; j++) E[k * r + j]! += e[j]! * e[j]!;
  }
}

/** The M′ sums: W_ab (A × A), Ψ (2H·dHead square), ΩQ and ΩK (A·H blocks of dV × dHead), A = H + 1. */
export interface MDashAttentionSums {
  Wab: Float64Array;
  Psi: Float64Array;
  OmQ: Float64Array;
  OmK: Float64Array;
}

/** Lengths of the four sums, in the order of mDashSumsView. */
export function mDashSumLengths(sh: AttentionShape): [number, number, number, number] {
  const A = sh.heads + 1;
  const L2 = 2 * sh.heads * sh.dHead;
  return [A * A, L2 * L2, A * sh.heads * sh.dV * sh.dHead, A * sh.heads * sh.dV * sh.dHead];
}

/** Views of the four sums over one array (length Σ mDashSumLengths) starting at `offset`. */
export function mDashSumsView(sh: AttentionShape, buf: Float64Array, offset = 0): MDashAttentionSums {
  const [a, b, c, d] = mDashSumLengths(sh);
  let o = offset;
  const take = (n: number): Float64Array => {
    const v = buf.subarray(o, o + n);
    o += n;
    return v;
  };
  return { Wab: take(a), Psi: take(b), OmQ: take(c), OmK: take(d) };
}

/**
 * Adds samples [n0, n1) to `out` (zeroed by the caller for a fresh partial): xj holds the rows
 * f·J [P, m] per sample (from the GPU in f32, or float64 tables), DZ the cotangents on z (K × H·dV), alpha the point.
 */
export function addMDashAttentionSums(
  sh: AttentionShape,
  DZ: Float64Array,
  alpha: number,
  xj: Float64Array,
  n0: number,
  n1: number,
  out: MDashAttentionSums,
): void {
  const { P, m, H, dH, dV, scale, t, HdV, HdH, NJ, A, L2 } = attentionSizes(sh);
  const { Wab, Psi, OmQ, OmK } = out;
  const sample = new AttentionSample(sh, DZ);
  const { vkq, prob, wv, ds } = sample;
  const beta = new Float64Array(NJ * NJ);
  const kap = new Float64Array(NJ * dH);
  const qh = new Float64Array(H * dH);
  const WQ = new Float64Array(dV * dH);
  const om = new Float64Array(dV);
  const tmp = new Float64Array(P * dH);
  const vec = new Float64Array(dH);
  const piT = new Float64Array(A);
  for (let n = n0; n < n1; n++) {
    sample.run(xj.subarray(n * P * m, (n + 1) * P * m), alpha);
    // κ_(h,u) = k_u^h / scale, q̂_h = q_{t*}^h / scale, β = Σ_k ds dsᵀ (NJ × NJ).
    for (let h = 0; h < H; h++) {
      for (let c = 0; c < dH; c++) qh[h * dH + c] = vkq[t * m + HdV + HdH + h * dH + c]! / scale;
      for (let u = 0; u < P; u++) for (let c = 0; c < dH; c++) kap[(h * P + u) * dH + c] = vkq[u * m + HdV + h * dH + c]! / scale;
    }
    sampleBetaAndWab(sh, prob, ds, beta, Wab);
    piT[0] = 1;
    for (let h = 0; h < H; h++) piT[h + 1] = prob[h * P + t]!;
    for (let h = 0; h < H; h++) {
      // ΩQ^{a,h} += π^{t*}_a Σ_u p_u w_u ⊗ κ_(h,u).
      WQ.fill(0);
      for (let u = 0; u < P; u++) {
        const pu = prob[h * P + u]!;
        if (pu === 0) continue;
        for (let j = 0; j < dV; j++) {
          const f = pu * wv[(h * P + u) * dV + j]!;
          for (let c = 0; c < dH; c++) WQ[j * dH + c]! += f * kap[(h * P + u) * dH + c]!;
        }
      }
      for (let a1 = 0; a1 < A; a1++) {
        const f = piT[a1]!;
        if (f === 0) continue;
        const o = (a1 * H + h) * dV * dH;
        for (let e = 0; e < dV * dH; e++) OmQ[o + e]! += f * WQ[e]!;
      }
      // ΩK^{a,h} += ω^{a,h} ⊗ q̂_h, ω^{a,h} = Σ_s π^s_a p_s^h w_s^h.
      for (let a1 = 0; a1 < A; a1++) {
        om.fill(0);
        let any = false;
        for (let sp = 0; sp < P; sp++) {
          const f = (a1 === 0 ? (sp === t ? 1 : 0) : prob[(a1 - 1) * P + sp]!) * prob[h * P + sp]!;
          if (f === 0) continue;
          any = true;
          for (let j = 0; j < dV; j++) om[j]! += f * wv[(h * P + sp) * dV + j]!;
        }
        if (!any) continue;
        const o = (a1 * H + h) * dV * dH;
        for (let j = 0; j < dV; j++) for (let c = 0; c < dH; c++) OmK[o + j * dH + c]! += om[j]! * qh[h * dH + c]!;
      }
    }
    // Ψ: φ_(h,u) = κ_(h,u) in head h's q slot (+ q̂_h in its k slot at u = t*) at t*;
    // φ_(h,s) = q̂_h in the k slot at s ≠ t*. k slot of head h: h·dH, q slot: H·dH + h·dH.
    for (let h1 = 0; h1 < H; h1++)
      for (let h2 = 0; h2 < H; h2++) {
        // QQ: Σ_{u,u'} β_(h1,u),(h2,u') κ_(h1,u) κ_(h2,u')ᵀ (upper head blocks only, see below).
        if (h2 >= h1) {
          tmp.fill(0);
          for (let u1 = 0; u1 < P; u1++)
            for (let u2 = 0; u2 < P; u2++) {
              const bb = beta[(h1 * P + u1) * NJ + h2 * P + u2]!;
              if (bb === 0) continue;
              for (let c = 0; c < dH; c++) tmp[u1 * dH + c]! += bb * kap[(h2 * P + u2) * dH + c]!;
            }
          for (let u1 = 0; u1 < P; u1++)
            for (let c1 = 0; c1 < dH; c1++) {
              const kv = kap[(h1 * P + u1) * dH + c1]!;
              if (kv === 0) continue;
              const o = (HdH + h1 * dH + c1) * L2 + HdH + h2 * dH;
              for (let c2 = 0; c2 < dH; c2++) Psi[o + c2]! += kv * tmp[u1 * dH + c2]!;
            }
        }
        // QK (KQ by the symmetrisation): Σ_u β_(h1,u),(h2,t*) κ_(h1,u) q̂_h2ᵀ.
        vec.fill(0);
        for (let u1 = 0; u1 < P; u1++) {
          const bb = beta[(h1 * P + u1) * NJ + h2 * P + t]!;
          if (bb === 0) continue;
          for (let c = 0; c < dH; c++) vec[c]! += bb * kap[(h1 * P + u1) * dH + c]!;
        }
        for (let c1 = 0; c1 < dH; c1++) {
          const v = vec[c1]!;
          if (v === 0) continue;
          for (let c2 = 0; c2 < dH; c2++) {
            Psi[(HdH + h1 * dH + c1) * L2 + h2 * dH + c2]! += v * qh[h2 * dH + c2]!;
          }
        }
        // KK: γ_h1h2 q̂_h1 q̂_h2ᵀ, γ = Σ_s β_(h1,s),(h2,s) (t* and every other key).
        let gam = 0;
        for (let sp = 0; sp < P; sp++) gam += beta[(h1 * P + sp) * NJ + h2 * P + sp]!;
        if (gam !== 0 && h2 >= h1) {
          for (let c1 = 0; c1 < dH; c1++) {
            const v = gam * qh[h1 * dH + c1]!;
            for (let c2 = 0; c2 < dH; c2++) Psi[(h1 * dH + c1) * L2 + h2 * dH + c2]! += v * qh[h2 * dH + c2]!;
          }
        }
      }
  }
}

/**
 * The edge tables of a basis with r kept directions: Ỹ^a = Y^a C⁺ᵀ (A blocks of K × r) and
 * Q^hᵀC⁺ᵀ, K^hᵀC⁺ᵀ (H blocks of dHead × r), packed block after block.
 */
export interface EdgeAttentionTables {
  r: number;
  Yt: Float64Array;
  Kt: Float64Array;
  Qt: Float64Array;
}

/**
 * Adds samples [n0, n1) to E (K × r, zeroed by the caller for a fresh partial), Σ_n e_kj² before
 * the weight and the divisor: xj the projected rows f'·J [P, m], u = f C [P, r] per sample (f32).
 */
export function addEdgeAttentionSums(
  sh: AttentionShape,
  DZ: Float64Array,
  alpha: number,
  tables: EdgeAttentionTables,
  xj: Float64Array,
  uAll: Float64Array,
  n0: number,
  n1: number,
  E: Float64Array,
): void {
  const { P, m, H, dH, scale, t, HdV, HdH, NJ, A } = attentionSizes(sh);
  const r = tables.r;
  const Kt = Array.from({ length: H }, (_, h) => tables.Kt.subarray(h * dH * r, (h + 1) * dH * r));
  const Qt = Array.from({ length: H }, (_, h) => tables.Qt.subarray(h * dH * r, (h + 1) * dH * r));
  const sample = new AttentionSample(sh, DZ);
  const { vkq, prob, ds } = sample;
  const U = new Float64Array(A * r);
  const at = new Float64Array(NJ * r);
  const bt = new Float64Array(H * r);
  const Gam = new Float64Array(NJ * r);
  const e = new Float64Array(r);
  for (let n = n0; n < n1; n++) {
    const u = uAll.subarray(n * P * r, (n + 1) * P * r);
    sample.run(xj.subarray(n * P * m, (n + 1) * P * m), alpha);
    U.fill(0);
    for (let j = 0; j < r; j++) U[j] = u[t * r + j]!;
    for (let h = 0; h < H; h++)
      for (let q = 0; q < P; q++) {
        const pq = prob[h * P + q]!;
        if (pq === 0) continue;
        for (let j = 0; j < r; j++) U[(h + 1) * r + j]! += pq * u[q * r + j]!;
      }
    at.fill(0);
    bt.fill(0);
    for (let h = 0; h < H; h++) {
      for (let c = 0; c < dH; c++) {
        const qc = vkq[t * m + HdV + HdH + h * dH + c]! / scale;
        for (let j = 0; j < r; j++) bt[h * r + j]! += qc * Kt[h]![c * r + j]!;
      }
      for (let q = 0; q < P; q++)
        for (let c = 0; c < dH; c++) {
          const kc = vkq[q * m + HdV + h * dH + c]! / scale;
          for (let j = 0; j < r; j++) at[(h * P + q) * r + j]! += kc * Qt[h]![c * r + j]!;
        }
      for (let q = 0; q < P; q++)
        for (let j = 0; j < r; j++) {
          Gam[(h * P + q) * r + j] = at[(h * P + q) * r + j]! * u[t * r + j]! + bt[h * r + j]! * u[q * r + j]!;
        }
    }
    addSampleEdgeSquares(sh, r, tables.Yt, U, ds, Gam, e, E);
  }
}
