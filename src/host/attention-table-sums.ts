// The per-sample sums of the last-position attention closed forms (src/host/attention-sums.ts has
// the formulas and the plain per-sample version) for sections whose input rows come from a table of
// R distinct rows: node layer 0 per (token, position), rib's modular addition with 114·3 rows
// for 3830 samples of 3 tokens. Every sample is then P row ids, and whatever depends on one row
// alone is computed once per row instead of once per (sample, position):
//   - dz_k^h·v^h(row) for ds, so a sample's ds costs O(K·H·P) instead of O(K·H·P·dV);
//   - for the edges, the projections (k^h(row)/scale)·Q^hᵀĈp and (q^h(row)/scale)·K^hᵀĈp.
// Every outer product of the M′ sums has one factor that is a function of one row (κ_(h,u) = k_u^h/scale
// or q̂_h = q_{t*}^h/scale); the other factor is summed per row of that factor (row-space
// accumulators, O(dV) or O(dHead) per sample), and the outer products are taken once per row at the
// end of the chunk: Σ_n x_n ⊗ κ(ρ_n) = Σ_ρ (Σ_{n: ρ_n = ρ} x_n) ⊗ κ(ρ). Per sample the M′ work
// falls from O(K·H·P·dV + (H+1)·H·dV·dHead + H²·P·dHead²) to O(K·(H·P)² + (H+1)·H·P·dV + H²·P²·dHead).
// The same function as the per-sample sums, summed in another order: equal to ~1e-15 relative.
//
// Samples are summed in fixed chunks of TABLE_SAMPLE_CHUNK (larger than the per-sample version's
// chunks, since each chunk ends with R outer products), each into its own zeroed partial, added in
// chunk order by the caller: the same bits on any number of threads. Host code only (no GPU, no Node
// modules): it runs on the calling thread or on the host worker threads alike.

import { addSampleEdgeSquares, attentionSizes, queryProbs, sampleBeta, sampleWab } from './attention-sums.js';
import type { AttentionShape, EdgeAttentionTables, MDashAttentionSums } from './attention-sums.js';
import { wasmMulRows } from './rows-times-wasm.js';
import { wasmTableSampleKernel, type TableRowsKernel, type TableSampleKernel } from './attention-mdash-wasm.js';

/** Samples per partial sum in the table forms (the unit of work of a thread). */
export const TABLE_SAMPLE_CHUNK = 1024;

/** The rows of one attention section as a table: what depends on one row alone, computed once. */
export interface AttentionRowTables {
  /** Distinct rows. */
  R: number;
  /** [N·P] the row of each (sample, position), sample-major. */
  ids: Int32Array;
  /** [R, m] α·(f·J) per row: [v | k | q] at the integration point. */
  vkq: Float64Array;
  /** [R, K·H] dz_k^h · v^h(row) (α included), k-major. */
  dzv: Float64Array;
}

/** The per-row tables of `rows` ([R, m] rows f·J, unscaled) for cotangents DZ (K × H·dV) at α. */
export function attentionRowTables(
  sh: AttentionShape,
  DZ: Float64Array,
  alpha: number,
  rows: Float64Array,
  ids: Int32Array,
  alloc: (n: number) => Float64Array = (n) => new Float64Array(n),
): AttentionRowTables {
  const { m, K, H, dV, HdV } = attentionSizes(sh);
  const R = rows.length / m;
  const vkq = alloc(R * m);
  for (let i = 0; i < R * m; i++) vkq[i] = alpha * rows[i]!;
  const dzv = alloc(R * K * H);
  for (let row = 0; row < R; row++)
    for (let k = 0; k < K; k++)
      for (let h = 0; h < H; h++) {
        let acc = 0;
        for (let j = 0; j < dV; j++) acc += DZ[k * HdV + h * dV + j]! * vkq[row * m + h * dV + j]!;
        dzv[(row * K + k) * H + h] = acc;
      }
  return { R, ids, vkq, dzv };
}

/** The edge pass's per-row tables: u = f C per row, and the projections of k and q per row and head. */
export interface EdgeRowTables {
  /** [R, r] u per row. */
  u: Float64Array;
  /** [R, H·r] (k^h(row)/scale)·(Q^hᵀĈp): the factor a_u^h Ĉp of Γ. */
  at: Float64Array;
  /** [R, H·r] (q^h(row)/scale)·(K^hᵀĈp): the factor b^h Ĉp of Γ. */
  bt: Float64Array;
}

/** at, bt from the row tables (α already in vkq) and the edge tables' Q^hᵀĈp, K^hᵀĈp. */
export function edgeRowTables(
  sh: AttentionShape,
  rt: AttentionRowTables,
  tables: EdgeAttentionTables,
  u: Float64Array,
  alloc: (n: number) => Float64Array = (n) => new Float64Array(n),
): EdgeRowTables {
  const { m, H, dH, scale, HdV, HdH } = attentionSizes(sh);
  const r = tables.r;
  const at = alloc(rt.R * H * r);
  const bt = alloc(rt.R * H * r);
  if (edgeRowTablesWasm(sh, rt, tables, at, bt)) return { u, at, bt };
  for (let row = 0; row < rt.R; row++)
    for (let h = 0; h < H; h++) {
      const Qt = tables.Qt.subarray(h * dH * r, (h + 1) * dH * r);
      const Kt = tables.Kt.subarray(h * dH * r, (h + 1) * dH * r);
      const ao = (row * H + h) * r;
      for (let c = 0; c < dH; c++) {
        const kc = rt.vkq[row * m + HdV + h * dH + c]! / scale;
        const qc = rt.vkq[row * m + HdV + HdH + h * dH + c]! / scale;
        for (let j = 0; j < r; j++) {
          at[ao + j]! += kc * Qt[c * r + j]!;
          bt[ao + j]! += qc * Kt[c * r + j]!;
        }
      }
    }
  return { u, at, bt };
}

/**
 * at and bt of edgeRowTables as row products per head (WebAssembly SIMD, rows-times-wasm.ts): each
 * entry summed over the head's columns c in order, a zero term skipped (it adds nothing to a sum
 * that starts at +0): the same bits as the JS loop. False (nothing written) where WebAssembly
 * cannot run: every product here has the same shape, so the first one settles it.
 */
function edgeRowTablesWasm(sh: AttentionShape, rt: AttentionRowTables, tables: EdgeAttentionTables, at: Float64Array, bt: Float64Array): boolean {
  const { m, H, dH, scale, HdV, HdH } = attentionSizes(sh);
  const r = tables.r;
  const R = rt.R;
  const kq = new Float64Array(R * dH);
  const out = new Float64Array(R * r);
  for (let h = 0; h < H; h++) {
    for (const [col0, T, dst] of [
      [HdV + h * dH, tables.Qt, at],
      [HdV + HdH + h * dH, tables.Kt, bt],
    ] as const) {
      for (let row = 0; row < R; row++) for (let c = 0; c < dH; c++) kq[row * dH + c] = rt.vkq[row * m + col0 + c]! / scale;
      if (!wasmMulRows(kq, dH, T.subarray(h * dH * r, (h + 1) * dH * r), r, 0, R, out)) return false;
      for (let row = 0; row < R; row++) dst.set(out.subarray(row * r, (row + 1) * r), (row * H + h) * r);
    }
  }
  return true;
}

/**
 * One sample's softmax row of query t* and ds_{k,(h,u)} = p_u^h dz_k^h·(v_u^h − v̄^h), from the row
 * tables, and on demand β = Σ_k ds dsᵀ. ds and β in WebAssembly (attention-mdash-wasm.ts, the same
 * bits) where it runs; the JS loops here otherwise.
 */
class TableSample {
  readonly rho: Int32Array;
  readonly prob: Float64Array;
  readonly ds: Float64Array;
  /** [H·P, H·P] β of the last sample, after beta(). */
  readonly beta: Float64Array;
  private readonly dzb: Float64Array;
  private readonly kernel: TableSampleKernel | undefined;
  /** The row-space accumulators in WebAssembly (with `withRows`, where it runs). */
  readonly rowsKernel: TableRowsKernel | undefined;
  constructor(
    private readonly sh: AttentionShape,
    private readonly rt: AttentionRowTables,
    withRows = false,
  ) {
    const NJ = sh.heads * sh.P;
    this.kernel = wasmTableSampleKernel(sh.K, sh.heads, sh.P, rt.dzv, withRows ? { dHead: sh.dHead, dV: sh.dV, m: sh.m, vkq: rt.vkq } : undefined);
    this.rowsKernel = this.kernel?.rows;
    this.rho = this.kernel?.rho ?? new Int32Array(sh.P);
    this.prob = this.kernel?.prob ?? new Float64Array(NJ);
    this.ds = this.kernel?.ds ?? new Float64Array(sh.K * NJ);
    this.beta = this.kernel?.beta ?? new Float64Array(NJ * NJ);
    this.dzb = new Float64Array(sh.K * sh.heads);
  }

  run(n: number): void {
    const { sh, rt, rho, prob } = this;
    const P = sh.P;
    for (let u = 0; u < P; u++) rho[u] = rt.ids[n * P + u]!;
    queryProbs(sh, rt.vkq, rho, prob);
    if (this.kernel) this.kernel.sampleDs();
    else this.jsDs();
  }

  /** β = Σ_k ds dsᵀ of the last sample run. */
  sampleBeta(): void {
    if (this.kernel) this.kernel.sampleBeta();
    else sampleBeta(this.sh, this.ds, this.beta);
  }

  private jsDs(): void {
    tableSampleDs(this.sh, this.rt.dzv, this.rho, this.prob, this.ds, this.dzb);
  }
}

/**
 * One sample's ds_{k,(h,u)} = p_u^h (dz_k^h·v_u^h − dz_k^h·v̄^h) from the row table dzv ([R, K, H])
 * and the sample's rows rho and softmax rows prob ([H, P]); dzb is K·H scratch. The reference of
 * attention_mdash.wat's sample_ds.
 */
export function tableSampleDs(sh: AttentionShape, dzv: Float64Array, rho: Int32Array, prob: Float64Array, ds: Float64Array, dzb: Float64Array): void {
  const { P, K, H, NJ } = attentionSizes(sh);
  // dz_k^h·v̄^h = Σ_u p_u^h dz_k^h·v_u^h.
  dzb.fill(0);
  for (let u = 0; u < P; u++) {
    const o = rho[u]! * K * H;
    for (let k = 0; k < K; k++)
      for (let h = 0; h < H; h++) {
        const p = prob[h * P + u]!;
        if (p !== 0) dzb[k * H + h]! += p * dzv[o + k * H + h]!;
      }
  }
  for (let k = 0; k < K; k++)
    for (let h = 0; h < H; h++)
      for (let u = 0; u < P; u++) {
        const p = prob[h * P + u]!;
        ds[k * NJ + h * P + u] = p === 0 ? 0 : p * (dzv[(rho[u]! * K + k) * H + h]! - dzb[k * H + h]!);
      }
}

/**
 * The row-space accumulators of addMDashAttentionTableSums (see the header): Zq[ρ][a,h] (dV) pairs
 * with κ_h(ρ), Zk[ρ][a,h] (dV) with q̂_h(ρ), Zqq[ρ][h1,h2] (dHead) with κ_h1(ρ), Zqk[ρ][h1,h2]
 * (dHead) with q̂_h2(ρ), Zkk[ρ][h1,h2] with q̂_h1(ρ) q̂_h2(ρ)ᵀ; a = 0..H, h, h1, h2 < H.
 */
export interface RowAccumulators {
  Zq: Float64Array;
  Zk: Float64Array;
  Zqq: Float64Array;
  Zqk: Float64Array;
  Zkk: Float64Array;
}

/** Zeroed accumulators for R rows. */
export function rowAccumulators(sh: AttentionShape, R: number): RowAccumulators {
  const H = sh.heads,
    AH = (H + 1) * H,
    HH = H * H;
  return {
    Zq: new Float64Array(R * AH * sh.dV),
    Zk: new Float64Array(R * AH * sh.dV),
    Zqq: new Float64Array(R * HH * sh.dHead),
    Zqk: new Float64Array(R * HH * sh.dHead),
    Zkk: new Float64Array(R * HH),
  };
}

/** Scratch of tableSampleRows. */
export interface RowScratch {
  wv: Float64Array;
  vb: Float64Array;
  pi: Float64Array;
  tmp: Float64Array;
}

export function rowScratch(sh: AttentionShape): RowScratch {
  const H = sh.heads;
  return { wv: new Float64Array(H * sh.P * sh.dV), vb: new Float64Array(sh.dV), pi: new Float64Array(H + 1), tmp: new Float64Array(sh.dHead) };
}

/**
 * One sample's additions to the row-space accumulators, from its rows rho, softmax rows prob and
 * β (vkq: the row table's [v | k | q] rows). The reference of attention_mdash.wat's sample_rows.
 */
export function tableSampleRows(
  sh: AttentionShape,
  vkq: Float64Array,
  rho: Int32Array,
  prob: Float64Array,
  beta: Float64Array,
  Z: RowAccumulators,
  scratch: RowScratch,
): void {
  const { P, m, H, dH, dV, t, HdV, NJ, A } = attentionSizes(sh);
  const AH = A * H,
    HH = H * H;
  const { Zq, Zk, Zqq, Zqk, Zkk } = Z;
  const { wv, vb, pi, tmp } = scratch;
  const rt_ = rho[t]!;
  // Centred values w_u^h = v_u^h − v̄^h.
  for (let h = 0; h < H; h++) {
    vb.fill(0);
    for (let u = 0; u < P; u++) {
      const p = prob[h * P + u]!;
      if (p === 0) continue;
      const o = rho[u]! * m + h * dV;
      for (let j = 0; j < dV; j++) vb[j]! += p * vkq[o + j]!;
    }
    for (let u = 0; u < P; u++) {
      const o = rho[u]! * m + h * dV;
      for (let j = 0; j < dV; j++) wv[(h * P + u) * dV + j] = vkq[o + j]! - vb[j]!;
    }
  }
  pi[0] = 1;
  for (let h = 0; h < H; h++) pi[h + 1] = prob[h * P + t]!;
  for (let h = 0; h < H; h++) {
    // ΩQ^{a,h} += π^{t*}_a Σ_u p_u w_u ⊗ κ_(h,u): Zq[ρ_u][a,h] += π^{t*}_a p_u w_u.
    for (let u = 0; u < P; u++) {
      const pu = prob[h * P + u]!;
      if (pu === 0) continue;
      const w = wv.subarray((h * P + u) * dV, (h * P + u + 1) * dV);
      for (let a = 0; a < A; a++) {
        const f = pi[a]! * pu;
        if (f === 0) continue;
        const o = (rho[u]! * AH + a * H + h) * dV;
        for (let j = 0; j < dV; j++) Zq[o + j]! += f * w[j]!;
      }
    }
    // ΩK^{a,h} += ω^{a,h} ⊗ q̂_h, ω^{a,h} = Σ_s π^s_a p_s^h w_s^h: Zk[ρ_t*][a,h] += ω^{a,h}.
    for (let a = 0; a < A; a++) {
      const o = (rt_ * AH + a * H + h) * dV;
      for (let sp = 0; sp < P; sp++) {
        const f = (a === 0 ? (sp === t ? 1 : 0) : prob[(a - 1) * P + sp]!) * prob[h * P + sp]!;
        if (f === 0) continue;
        const w = wv.subarray((h * P + sp) * dV, (h * P + sp + 1) * dV);
        for (let j = 0; j < dV; j++) Zk[o + j]! += f * w[j]!;
      }
    }
  }
  for (let h1 = 0; h1 < H; h1++)
    for (let h2 = 0; h2 < H; h2++) {
      // QQ (upper head blocks): Σ_u1 κ_(h1,u1) ⊗ Σ_u2 β_(h1,u1),(h2,u2) κ_(h2,u2): Zqq[ρ_u1][h1,h2].
      if (h2 >= h1) {
        for (let u1 = 0; u1 < P; u1++) {
          tmp.fill(0);
          let any = false;
          for (let u2 = 0; u2 < P; u2++) {
            const bb = beta[(h1 * P + u1) * NJ + h2 * P + u2]!;
            if (bb === 0) continue;
            any = true;
            const ko = rho[u2]! * m + HdV + h2 * dH;
            for (let c = 0; c < dH; c++) tmp[c]! += bb * vkq[ko + c]!;
          }
          if (!any) continue;
          const o = (rho[u1]! * HH + h1 * H + h2) * dH;
          for (let c = 0; c < dH; c++) Zqq[o + c]! += tmp[c]!;
        }
      }
      // QK: Σ_u β_(h1,u),(h2,t*) κ_(h1,u) ⊗ q̂_h2: Zqk[ρ_t*][h1,h2].
      const o = (rt_ * HH + h1 * H + h2) * dH;
      for (let u1 = 0; u1 < P; u1++) {
        const bb = beta[(h1 * P + u1) * NJ + h2 * P + t]!;
        if (bb === 0) continue;
        const ko = rho[u1]! * m + HdV + h1 * dH;
        for (let c = 0; c < dH; c++) Zqk[o + c]! += bb * vkq[ko + c]!;
      }
      // KK: γ_h1h2 q̂_h1 q̂_h2ᵀ, γ = Σ_s β_(h1,s),(h2,s): Zkk[ρ_t*][h1,h2].
      if (h2 >= h1) {
        let gam = 0;
        for (let sp = 0; sp < P; sp++) gam += beta[(h1 * P + sp) * NJ + h2 * P + sp]!;
        Zkk[rt_ * HH + h1 * H + h2]! += gam;
      }
    }
}

/**
 * Adds samples [n0, n1) to `out` (zeroed by the caller for a fresh partial): the same four sums as
 * addMDashAttentionSums, from the row tables.
 */
export function addMDashAttentionTableSums(sh: AttentionShape, rt: AttentionRowTables, n0: number, n1: number, out: MDashAttentionSums): void {
  const { P, m, H, dH, t, HdH, HdV, L2 } = attentionSizes(sh);
  const R = rt.R;
  const HH = H * H;
  const { Wab, Psi } = out;
  const { vkq } = rt;
  const sample = new TableSample(sh, rt, true);
  const { rho, prob, beta } = sample;
  const rowsKernel = sample.rowsKernel;
  // The row-space accumulators: in the kernel's memory where it runs.
  const Z = rowsKernel ?? rowAccumulators(sh, R);
  const { Zqq, Zqk, Zkk } = Z;
  const scratch = rowsKernel ? undefined : rowScratch(sh);
  const usedQ = new Uint8Array(R);
  const usedT = new Uint8Array(R);
  for (let n = n0; n < n1; n++) {
    sample.run(n);
    const rt_ = rho[t]!;
    usedT[rt_] = 1;
    for (let u = 0; u < P; u++) usedQ[rho[u]!] = 1;
    sample.sampleBeta();
    sampleWab(sh, prob, Wab);
    if (rowsKernel) rowsKernel.sampleRows();
    else tableSampleRows(sh, vkq, rho, prob, beta, Z, scratch!);
  }
  // The outer products, once per row: κ and q̂ of the row are its k and q columns over scale
  // (the κ of Zqq and Zqk was summed unscaled: one more 1/scale there). The rows that held a key
  // (usedQ: ΩQ and the QQ blocks of Ψ) and the rows that held the query (usedT: ΩK, the QK and KK
  // blocks) write disjoint entries, so each block is its own loop over the rows; each entry is
  // summed over rows in increasing order either way. As row products in WebAssembly where it runs;
  // the KK blocks (whose zero factors the JS does not skip) always here.
  const s2 = 1 / (sh.scale * sh.scale);
  if (!outerProductsWasm(sh, rt, usedQ, usedT, Z, out)) {
    addOmegaProducts(sh, rt, usedQ, Z.Zq, HdV, out.OmQ);
    addOmegaProducts(sh, rt, usedT, Z.Zk, HdV + HdH, out.OmK);
    // QQ: Ψ += (k_h1(ρ)/scale²) ⊗ Zqq[ρ][h1,h2] over the key rows, upper head blocks.
    for (let row = 0; row < R; row++) {
      if (!usedQ[row]) continue;
      const ko = row * m + HdV;
      for (let h1 = 0; h1 < H; h1++)
        for (let h2 = h1; h2 < H; h2++) {
          const z = Zqq.subarray((row * HH + h1 * H + h2) * dH, (row * HH + h1 * H + h2 + 1) * dH);
          for (let c1 = 0; c1 < dH; c1++) {
            const kv = vkq[ko + h1 * dH + c1]! * s2;
            if (kv === 0) continue;
            const o = (HdH + h1 * dH + c1) * L2 + HdH + h2 * dH;
            for (let c2 = 0; c2 < dH; c2++) Psi[o + c2]! += kv * z[c2]!;
          }
        }
    }
    // QK: Ψ += (Zqk[ρ][h1,h2]/scale²) ⊗ q_h2(ρ) over the query rows.
    for (let row = 0; row < R; row++) {
      if (!usedT[row]) continue;
      const qo = row * m + HdV + HdH;
      for (let h1 = 0; h1 < H; h1++)
        for (let h2 = 0; h2 < H; h2++) {
          const z = Zqk.subarray((row * HH + h1 * H + h2) * dH, (row * HH + h1 * H + h2 + 1) * dH);
          for (let c1 = 0; c1 < dH; c1++) {
            const v = z[c1]! * s2;
            if (v === 0) continue;
            const o = (HdH + h1 * dH + c1) * L2 + h2 * dH;
            for (let c2 = 0; c2 < dH; c2++) Psi[o + c2]! += v * vkq[qo + h2 * dH + c2]!;
          }
        }
    }
  }
  // KK: Ψ += γ_h1h2 q̂_h1 q̂_h2ᵀ over the query rows, upper head blocks.
  for (let row = 0; row < R; row++) {
    if (!usedT[row]) continue;
    const qo = row * m + HdV + HdH;
    for (let h1 = 0; h1 < H; h1++)
      for (let h2 = h1; h2 < H; h2++) {
        const gam = Zkk[row * HH + h1 * H + h2]!;
        if (gam === 0) continue;
        for (let c1 = 0; c1 < dH; c1++) {
          const v = gam * vkq[qo + h1 * dH + c1]! * s2;
          for (let c2 = 0; c2 < dH; c2++) Psi[(h1 * dH + c1) * L2 + h2 * dH + c2]! += v * vkq[qo + h2 * dH + c2]!;
        }
      }
  }
}

/**
 * Ω^{a,h} += Σ_ρ (Z[ρ][a,h] / scale) ⊗ (row ρ's dHead columns of head h from col0) over the rows
 * `used` in increasing order, a zero factor skipped: the Ω part of both outer-product passes
 * (ΩQ from Zq and κ, ΩK from Zk and q̂). The JS loops; omegaProductsWasm has the same bits.
 */
function addOmegaProducts(sh: AttentionShape, rt: AttentionRowTables, used: Uint8Array, Z: Float64Array, col0: number, Om: Float64Array): void {
  const { m, H, dH, dV, scale, A } = attentionSizes(sh);
  const AH = A * H;
  const { vkq } = rt;
  for (let row = 0; row < rt.R; row++) {
    if (!used[row]) continue;
    const ko = row * m + col0;
    for (let a = 0; a < A; a++)
      for (let h = 0; h < H; h++) {
        const z = Z.subarray((row * AH + a * H + h) * dV, (row * AH + a * H + h + 1) * dV);
        const o = (a * H + h) * dV * dH;
        for (let j = 0; j < dV; j++) {
          const f = z[j]! / scale;
          if (f === 0) continue;
          for (let c = 0; c < dH; c++) Om[o + j * dH + c]! += f * vkq[ko + h * dH + c]!;
        }
      }
  }
}

/**
 * addOmegaProducts as row products (an unused row's factor is zero, so it is skipped like a zero
 * factor). False (nothing written) where WebAssembly cannot run.
 */
function omegaProductsWasm(sh: AttentionShape, rt: AttentionRowTables, used: Uint8Array, Z: Float64Array, col0: number, Om: Float64Array): boolean {
  const { m, H, dH, dV, scale, A } = attentionSizes(sh);
  const AH = A * H,
    R = rt.R;
  const { vkq } = rt;
  const xh = new Float64Array(R * dH);
  const zt = new Float64Array(dV * R);
  for (let h = 0; h < H; h++) {
    for (let row = 0; row < R; row++) for (let c = 0; c < dH; c++) xh[row * dH + c] = vkq[row * m + col0 + h * dH + c]!;
    for (let a = 0; a < A; a++) {
      for (let row = 0; row < R; row++) {
        const zo = (row * AH + a * H + h) * dV;
        for (let j = 0; j < dV; j++) zt[j * R + row] = used[row] ? Z[zo + j]! / scale : 0;
      }
      const o = (a * H + h) * dV * dH;
      if (!wasmMulRows(zt, R, xh, dH, 0, dV, Om.subarray(o, o + dV * dH), true)) return false;
    }
  }
  return true;
}

/**
 * The dH × dH block of Ψ at offset o (row stride L2) += X·Y as a row product (X [dH, R] columns of
 * row factors, Y [R, dH]), through the scratch `block`: the step both outer-product passes repeat.
 * False (nothing written) where WebAssembly cannot run.
 */
function addPsiBlock(Psi: Float64Array, o: number, L2: number, X: Float64Array, R: number, Y: Float64Array, dH: number, block: Float64Array): boolean {
  for (let c1 = 0; c1 < dH; c1++) block.set(Psi.subarray(o + c1 * L2, o + c1 * L2 + dH), c1 * dH);
  if (!wasmMulRows(X, R, Y, dH, 0, dH, block, true)) return false;
  for (let c1 = 0; c1 < dH; c1++) Psi.set(block.subarray(c1 * dH, (c1 + 1) * dH), o + c1 * L2);
  return true;
}

/**
 * The outer products of addMDashAttentionTableSums but the KK blocks, as row products over all
 * rows at once (WebAssembly SIMD, rows-times-wasm.ts): the key rows' (usedQ) ΩQ^{a,h} += Σ_ρ
 * (Zq[ρ][a,h]/scale) ⊗ κ_h(ρ) and QQ blocks Ψ += Σ_ρ (k_h1(ρ)/scale²) ⊗ Zqq[ρ][h1,h2], then the
 * query rows' (usedT) ΩK^{a,h} += Σ_ρ (Zk[ρ][a,h]/scale) ⊗ q_h(ρ) and QK blocks Ψ += Σ_ρ
 * (Zqk[ρ][h1,h2]/scale²) ⊗ q_h2(ρ). Each entry is summed over ρ in increasing order with the zero
 * factors skipped, as the JS loops do (an unused row's factor is set to zero, so it is skipped
 * too): the same bits. False (nothing written) where WebAssembly cannot run: every product here
 * has the same shape (R rows in, dHead columns out), so whether the module runs is settled by the
 * first one, before anything is written.
 */
function outerProductsWasm(
  sh: AttentionShape,
  rt: AttentionRowTables,
  usedQ: Uint8Array,
  usedT: Uint8Array,
  Z: RowAccumulators,
  out: MDashAttentionSums,
): boolean {
  const { m, H, dH, HdV, HdH, L2 } = attentionSizes(sh);
  const HH = H * H,
    R = rt.R;
  const { vkq } = rt;
  const { Psi } = out;
  const s2 = 1 / (sh.scale * sh.scale);
  const block = new Float64Array(dH * dH);
  if (!omegaProductsWasm(sh, rt, usedQ, Z.Zq, HdV, out.OmQ)) return false;
  // QQ: the κ columns of head h1 over scale² as row factors [dH, R], times Zqq[·][h1,h2] [R, dH].
  const kvT = new Float64Array(dH * R);
  const zqq = new Float64Array(R * dH);
  for (let h1 = 0; h1 < H; h1++) {
    for (let row = 0; row < R; row++) for (let c1 = 0; c1 < dH; c1++) kvT[c1 * R + row] = usedQ[row] ? vkq[row * m + HdV + h1 * dH + c1]! * s2 : 0;
    for (let h2 = h1; h2 < H; h2++) {
      for (let row = 0; row < R; row++) zqq.set(Z.Zqq.subarray((row * HH + h1 * H + h2) * dH, (row * HH + h1 * H + h2 + 1) * dH), row * dH);
      if (!addPsiBlock(Psi, (HdH + h1 * dH) * L2 + HdH + h2 * dH, L2, kvT, R, zqq, dH, block)) return false;
    }
  }
  if (!omegaProductsWasm(sh, rt, usedT, Z.Zk, HdV + HdH, out.OmK)) return false;
  // QK: Zqk[·][h1,h2] over scale² as row factors [dH, R], times the q rows of head h2 [R, dH] (unscaled).
  const qh = new Float64Array(R * dH);
  const zqk = new Float64Array(dH * R);
  for (let h2 = 0; h2 < H; h2++) {
    for (let row = 0; row < R; row++) for (let c = 0; c < dH; c++) qh[row * dH + c] = vkq[row * m + HdV + HdH + h2 * dH + c]!;
    for (let h1 = 0; h1 < H; h1++) {
      for (let row = 0; row < R; row++) {
        const zo = (row * HH + h1 * H + h2) * dH;
        for (let c1 = 0; c1 < dH; c1++) zqk[c1 * R + row] = usedT[row] ? Z.Zqk[zo + c1]! * s2 : 0;
      }
      if (!addPsiBlock(Psi, (HdH + h1 * dH) * L2 + h2 * dH, L2, zqk, R, qh, dH, block)) return false;
    }
  }
  return true;
}

/**
 * The per-sample arithmetic of addEdgeAttentionTableSums once a sample's U, Γ and ds are in place:
 *   e_k = Σ_a Ỹ^a_k ⊙ U_a + Σ_(h,u) ds_k,(h,u) Γ_(h,u),   E_k += e_k ⊙ e_k   (k < K),
 * the zero ds terms skipped. jsEdgeSampleKernel below is the reference; attention-edges-wasm.ts
 * has the WebAssembly SIMD kernel with the same bits. The caller writes each sample's U, Γ (rows of
 * stride rp, the columns past r left alone) and ds into the kernel's arrays, so a kernel can hand
 * out views of its own memory.
 */
export interface EdgeSampleKernel {
  /** Row stride of U and Γ (≥ r). */
  readonly rp: number;
  /** [A, rp]: U_0 = u_t*, U_{h+1} = Σ_u p_u^h u_u. */
  readonly U: Float64Array;
  /** [H·P, rp]: Γ_(h,u). */
  readonly Gam: Float64Array;
  /** [K, H·P]. */
  readonly ds: Float64Array;
  /**
   * Where present: writes this sample's U and Γ itself from its row ids and softmax rows, with the
   * bits of addEdgeAttentionTableSums's loops (which run where it is absent).
   */
  readonly prepare?: (rho: Int32Array, prob: Float64Array) => void;
  /** Starts a run that adds into E (K × r, row-major); `end` follows before E is read. */
  begin(E: Float64Array): void;
  sample(): void;
  end(): void;
}

/** The JS kernel: Yt [A·K, r] (Ỹ^a_k at row a·K + k). */
export function jsEdgeSampleKernel(K: number, A: number, NJ: number, r: number, Yt: Float64Array): EdgeSampleKernel {
  const U = new Float64Array(A * r);
  const Gam = new Float64Array(NJ * r);
  const ds = new Float64Array(K * NJ);
  const e = new Float64Array(r);
  const shape = { K, heads: A - 1, P: NJ / (A - 1) };
  let E: Float64Array | undefined;
  return {
    rp: r,
    U,
    Gam,
    ds,
    begin: (target) => {
      E = target;
    },
    sample: () => {
      addSampleEdgeSquares(shape, r, Yt, U, ds, Gam, e, E!);
    },
    end: () => {
      E = undefined;
    },
  };
}

/**
 * Adds samples [n0, n1) to E (K × r, zeroed by the caller for a fresh partial): the same sums as
 * addEdgeAttentionSums, from the row tables of the projected point (vkq = α·f'·J per row) and u per
 * row. `kernel` does each sample's sums (default: the JS kernel).
 */
export function addEdgeAttentionTableSums(
  sh: AttentionShape,
  rt: AttentionRowTables,
  tables: EdgeAttentionTables,
  et: EdgeRowTables,
  n0: number,
  n1: number,
  E: Float64Array,
  kernel?: EdgeSampleKernel,
): void {
  const { P, K } = sh;
  const H = sh.heads;
  const t = P - 1;
  const NJ = H * P,
    A = H + 1;
  const r = tables.r;
  const { u, at, bt } = et;
  const sample = new TableSample(sh, rt);
  const { rho, prob, ds } = sample;
  const kn = kernel ?? jsEdgeSampleKernel(K, A, NJ, r, tables.Yt);
  const { U, Gam, rp } = kn;
  kn.begin(E);
  for (let n = n0; n < n1; n++) {
    sample.run(n);
    if (kn.prepare) kn.prepare(rho, prob);
    else {
      const ut = rho[t]! * r;
      for (let j = 0; j < r; j++) U[j] = u[ut + j]!;
      for (let h = 0; h < H; h++) {
        const Uo = (h + 1) * rp;
        for (let j = 0; j < r; j++) U[Uo + j] = 0;
        for (let q = 0; q < P; q++) {
          const pq = prob[h * P + q]!;
          if (pq === 0) continue;
          const uq = rho[q]! * r;
          for (let j = 0; j < r; j++) U[Uo + j]! += pq * u[uq + j]!;
        }
        // Γ_(h,q) = (a_q^h Ĉp) ⊙ u_{t*} + (b^h Ĉp) ⊙ u_q.
        const bo = (rho[t]! * H + h) * r;
        for (let q = 0; q < P; q++) {
          const ao = (rho[q]! * H + h) * r;
          const uq = rho[q]! * r;
          const go = (h * P + q) * rp;
          for (let j = 0; j < r; j++) Gam[go + j] = at[ao + j]! * u[ut + j]! + bt[bo + j]! * u[uq + j]!;
        }
      }
    }
    kn.ds.set(ds);
    kn.sample();
  }
  kn.end();
}
