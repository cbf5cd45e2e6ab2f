// rib's legacy basis formulas `(1-0)*alpha` and `(1-alpha)^2` for MLP sections (SPEC §4.4, §4.7).
//
// Each replaces the Jacobian by one integrated gradient g(x) per datapoint; then
//   M' = E[g gᵀ],  Λ' = E[g fᵀ],  M = R⁺M'R⁺ᵀ,  V = (masked) eigenvectors of M,
//   Λ_k = |(Vᵀ R⁺ Λ' R V)_kk|,  order and second truncation by Λ (SPEC §4.8), C = R V Λ^{1/2}.
//
// For a section f^{ℓ+1} = F(f) = σ(W̄ᵀ f) with folded bias, seen through the next basis Ĉ
// (f̂^{ℓ+1} = Ĉᵀ F), write p̄ = W̄ᵀ f for the folded pre-activation. On the path u = α f the bias
// slot scales too, so the pre-activation is α p̄ — also for the folded constant output unit, whose
// pre-activation is ρ·f_d = ρ at α = 1 and αρ on the path (σ(ρ) = 1). With J(u) = Ĉᵀ diag(σ'(W̄ᵀu)) W̄ᵀ
// and P = ĈĈᵀ (the identity when the next layer is unrotated) every gradient is g = W̄ h with a
// per-sample vector h over the section's folded outputs:
//   (1-0)*alpha:  g = Σ_k w_k J(α_k f)ᵀ f̂^{ℓ+1}(f)
//                 h = [Σ_k w_k σ'(α_k p̄)] ∘ (P σ(p̄))
//   (1-alpha)^2:  g = 2 Σ_k w_k J(α_k f)ᵀ [f̂^{ℓ+1}(f) − f̂^{ℓ+1}(α_k f)]
//                 h = 2 Σ_k [w_k σ'(α_k p̄)] ∘ (P [σ(p̄) − σ(α_k p̄)])
// (the constant unit takes σ(ρ) = 1, σ(α_k ρ) and σ'(α_k ρ) in these formulas). Hence
//   M' = W̄ E[h hᵀ] W̄ᵀ,   Λ' = W̄ E[h f̄ᵀ],   f̄ = [f; 1],
// and one streamed Gram of the concatenation [h | f] per section gives both. h depends on Ĉ, so
// (as in rib) each section needs its own pass over the data, from the output backwards.
//
// Per batch the GPU computes the pre-activation (forward pass), the elementwise terms
// (shaders/legacy_terms.wgsl), the products with P (matmul) and the Gram partials; the host adds
// the partials in f64 and does all the small-matrix algebra in f64.

import { matmulF64 } from '../cpu/matmul.js';
import { thinQr } from '../cpu/qr.js';
import { IbgpuError } from '../errors.js';
import { ColumnSumAccumulator, GramAccumulator } from '../kernels/gram.js';
import { copyColumns, legacyDifference, legacyGated, type PreactArgs } from '../kernels/legacy.js';
import { matmul } from '../kernels/matmul.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import { rootOfOne } from '../model/activations.js';
import { secondTruncation, eigAbsSorted, stage1, stage1Fields, symmetrize, uTYinv, yTimesU, type LayerBasis, type NodeStats, type Threshold } from './basis.js';
import type { DataSource } from './data.js';
import type { GpuMlp } from './gpu-model.js';
import type { IntegrationPoints } from './integration.js';
import type { Progress } from './stats.js';

export type LegacyFormula = '(1-0)*alpha' | '(1-alpha)^2';

export function isLegacyFormula(f: string): f is LegacyFormula {
  return f === '(1-0)*alpha' || f === '(1-alpha)^2';
}

/** Moments of the per-sample vector h of one section (see the file comment). */
export interface LegacyStats {
  n: number;
  /** The section's folded outputs (h's length). */
  h: number;
  /** Real input units (f̄ has d + 1 entries). */
  d: number;
  /** E[h hᵀ], h × h. */
  hh: Float64Array;
  /** E[h f̄ᵀ], h × (d + 1); the last column is E[h]. */
  hf: Float64Array;
}

export interface LegacyPassOptions {
  /** Model layer index of the section (its input node layer is layers[layer]). */
  layer: number;
  formula: LegacyFormula;
  /** ĈĈᵀ over the section's folded outputs (row-major h × h), or undefined for the identity. */
  P?: Float64Array;
  /** Shift for the input block of the Gram (the node layer's first-batch mean, real units). */
  shift?: ArrayLike<number>;
}

function f32(a: ArrayLike<number>): Float32Array {
  return Float32Array.from(a);
}

/** Uploads (α_0..α_{m-1}, w_0..w_{m-1}) as f32. */
/** The integration points (alphas, then weights) in a buffer of `scope` (or of the caller, given the engine). */
export function uploadPoints(scope: Pick<BufferScope, 'upload'>, pts: IntegrationPoints): GPUBuffer {
  const m = pts.alphas.length;
  const p = new Float32Array(2 * m);
  p.set(pts.alphas, 0);
  p.set(pts.weights, m);
  return scope.upload(p, 'legacy.points');
}

/**
 * One streamed pass for one section: per batch, h (rows × h) is written into the first columns
 * of Z = [h | f] and Σ ZᵀZ (f block shifted) and Σ Z are accumulated, in f64 across batches.
 */
export async function collectLegacyStats(
  engine: Engine,
  mlp: GpuMlp,
  data: DataSource,
  o: LegacyPassOptions,
  batchSize: number,
  pts: IntegrationPoints,
  progress: Progress = () => {},
): Promise<LegacyStats> {
  const model = mlp.model;
  const i = o.layer;
  const l = model.layers[i]!;
  const last = i === model.layers.length - 1;
  const H = l.dOut;
  const Hb = last ? H : H + 1;
  const d = l.dIn;
  const Wd = Hb + d;
  if (o.P && o.P.length !== Hb * Hb) throw new Error(`legacy pass: P has ${o.P.length} entries, expected ${Hb}x${Hb}`);
  const npts = pts.alphas.length;
  const shift = new Float64Array(Wd);
  if (o.shift) for (let j = 0; j < d; j++) shift[Hb + j] = o.shift[j]!;
  const gram = new GramAccumulator(engine, Wd, { shift });
  const colsum = new ColumnSumAccumulator(engine, Wd);
  const rho = last ? 0 : rootOfOne(l.activation);
  const pass = engine.scope();
  try {
    const bias = pass.upload(l.b, `${l.name}.legacy-bias`);
    const points = uploadPoints(pass, pts);
    const Pbuf = o.P ? pass.upload(f32(o.P), 'legacy.P') : undefined;
    const inflight: Promise<unknown>[] = [];
    for (let start = 0; start < data.n; start += batchSize) {
      const rows = Math.min(batchSize, data.n - start);
      const xh = await data.readRows(start, rows);
      const batch = pass.scope();
      const x = batch.upload(xh, 'batch');
      const fw = mlp.forward(batch, x, rows, () => false, i + 1);
      const a: PreactArgs = {
        x: fw.scratch[i]!,
        bias,
        rows,
        cols: Hb,
        xcols: H,
        rho,
        activation: l.activation,
        points,
        npts,
      };
      const Z = batch.alloc(rows * Wd * 4, 'legacy.Z');
      const D = batch.alloc(rows * Hb * 4, 'legacy.D');
      const Q = Pbuf ? batch.alloc(rows * Hb * 4, 'legacy.Q') : undefined;
      const project = (): GPUBuffer => {
        if (!Q) return D;
        matmul(engine, D, Pbuf!, Q, { m: rows, n: Hb, k: Hb });
        return Q;
      };
      if (o.formula === '(1-0)*alpha') {
        legacyDifference(engine, a, D, 0, 0); // σ(p̄), constant unit 1
        legacyGated(engine, a, Z, { k0: 0, k1: npts, scale: 1, q: project(), stride: Wd, off: 0 });
      } else {
        for (let k = 0; k < npts; k++) {
          legacyDifference(engine, a, D, k, 1); // σ(p̄) − σ(α_k p̄)
          legacyGated(engine, a, Z, { k0: k, k1: k + 1, scale: 2, q: project(), stride: Wd, off: 0, accumulate: k > 0 });
        }
      }
      copyColumns(engine, fw.acts[i]!, Z, rows, d, Wd, Hb);
      const waits: Promise<unknown>[] = [colsum.addBatch(Z, rows), Promise.resolve(gram.addBatch(Z, rows))];
      batch.close();
      if (inflight.length) await Promise.all(inflight.splice(0));
      inflight.push(Promise.all(waits));
      progress(`basis ${l.name}`, start + rows, data.n);
    }
    await Promise.all(inflight);
    const G = await gram.result();
    const S = await colsum.result();
    const sh = gram.shift!; // the f32 shift actually applied
    const n = data.n;
    const hh = new Float64Array(Hb * Hb);
    for (let p = 0; p < Hb; p++) for (let q = 0; q < Hb; q++) hh[p * Hb + q] = G[p * Wd + q]! / n;
    // Σ h fᵀ = Σ h (f − s)ᵀ + (Σ h) sᵀ; the last column of f̄ is the bias slot 1.
    const hf = new Float64Array(Hb * (d + 1));
    for (let p = 0; p < Hb; p++) {
      for (let j = 0; j < d; j++) hf[p * (d + 1) + j] = (G[p * Wd + Hb + j]! + S[p]! * sh[Hb + j]!) / n;
      hf[p * (d + 1) + d] = S[p]! / n;
    }
    return { n, h: Hb, d, hh, hf };
  } finally {
    gram.dispose();
    colsum.dispose();
    pass.close();
  }
}

export interface LegacySection {
  /** Folded weight of the section, dim × dimOut. */
  Wbar: Float64Array;
  dimOut: number;
  stats: LegacyStats;
}

/** ĈĈᵀ for the next basis (dimOut × r), row-major dimOut × dimOut. */
export function projector(C: Float64Array, dimOut: number, r: number): Float64Array {
  return matmulF64(C, C, { m: dimOut, n: dimOut, k: r, transB: true });
}

/**
 * The legacy basis of one node layer from its node statistics and the section's h moments
 * (host f64). Stage 1 is shared with the other formulas; stage 2 diagonalises M = B E[hhᵀ] Bᵀ with
 * B = R⁺W̄ and takes Λ_k = |vₖᵀ T vₖ| with T = R⁺Λ'R = B E[h zᵀ], z = Rᵀf̄.
 */
export function buildLegacyBasis(s: NodeStats, formula: LegacyFormula, centred: boolean, th: Threshold, sec: LegacySection): LayerBasis {
  if (!s.folded) throw new IbgpuError('BAD_CONFIG', `basis_formula '${formula}' needs a folded node layer (${s.name} is not)`);
  const dim = s.d + 1;
  const Hb = sec.dimOut;
  const ls = sec.stats;
  if (ls.h !== Hb || ls.d !== s.d) throw new Error(`legacy stats ${ls.h}x${ls.d} do not match section ${Hb}x${s.d}`);
  const st = stage1(s, centred, th);
  const { k } = st;
  const W = yTimesU(st);
  const Wp = uTYinv(st);
  // B = R⁺W̄ = D^{1/2} Uᵀ Y⁻¹ W̄ (k × Hb);  R = Y U D^{-1/2} (dim × k).
  const B = matmulF64(Wp, sec.Wbar, { m: k, n: Hb, k: dim });
  const R = new Float64Array(dim * k);
  for (let c = 0; c < k; c++) {
    const sd = Math.sqrt(st.D[c]!);
    for (let j = 0; j < Hb; j++) B[c * Hb + j] = B[c * Hb + j]! * sd;
    for (let i = 0; i < dim; i++) R[i * k + c] = W[i * k + c]! / sd;
  }
  const Kz = matmulF64(ls.hf, R, { m: Hb, n: k, k: dim }); // E[h zᵀ]
  const T = matmulF64(B, Kz, { m: k, n: k, k: Hb }); // R⁺ Λ' R
  const X = ls.hh;
  const nm = centred ? 1 : 0; // the constant direction is masked (never rotated)
  const ks = k - nm;
  const Bs = B.subarray(nm * Hb);
  // Eigenvectors of M_sub = Bs X Bsᵀ. When ks > Hb, M_sub has rank ≤ Hb: a thin QR of Bs reduces
  // the problem to Hb×Hb. The directions left out are in the null space of Bsᵀ, where the
  // gradient component vanishes for every datapoint, so their Λ is exactly 0 (always dropped).
  let Vsub: Float64Array;
  let cols: number;
  if (ks > Hb) {
    const { q, r } = thinQr(Bs, ks, Hb);
    const S = matmulF64(matmulF64(r, X, { m: Hb, n: Hb, k: Hb }), r, { m: Hb, n: Hb, k: Hb, transB: true });
    symmetrize(S, Hb);
    Vsub = matmulF64(q, eigAbsSorted(S, Hb).vectors, { m: ks, n: Hb, k: Hb });
    cols = Hb;
  } else {
    const Ms = matmulF64(matmulF64(Bs, X, { m: ks, n: Hb, k: Hb }), Bs, { m: ks, n: ks, k: Hb, transB: true });
    symmetrize(Ms, ks);
    Vsub = eigAbsSorted(Ms, ks).vectors;
    cols = ks;
  }
  // Λ of each eigenvector: |vᵀ T_sub v|; of the masked direction: |T_00| (V = blockdiag(1, V_sub)).
  const lam = new Float64Array(cols);
  for (let c = 0; c < cols; c++) {
    let acc = 0;
    for (let a = 0; a < ks; a++) {
      const va = Vsub[a * cols + c]!;
      if (va === 0) continue;
      let t = 0;
      for (let b = 0; b < ks; b++) t += T[(nm + a) * k + nm + b]! * Vsub[b * cols + c]!;
      acc += va * t;
    }
    lam[c] = Math.abs(acc);
  }
  // Order by Λ (not by M's eigenvalues) and drop Λ < τ among the unmasked directions (SPEC §4.8;
  // only unmasked entries are counted, see docs/DEVIATIONS.md).
  const order = Array.from({ length: cols }, (_, c) => c).sort((x, y) => lam[y]! - lam[x]!);
  const keep = secondTruncation(th, lam, order, nm === 1 ? Math.abs(T[0]!) : undefined);
  const r = nm + keep.length;
  const V = new Float64Array(k * r);
  const Lambda = new Float64Array(r);
  if (nm === 1) {
    V[0] = 1;
    Lambda[0] = Math.abs(T[0]!);
    if (!(Lambda[0] > 0)) {
      throw new IbgpuError(
        'NON_FINITE',
        `${s.name}: the constant direction has Λ = 0 under '${formula}', so C⁺ would divide by zero`,
        'the section output does not depend on this layer along its mean; use center: false or another basis_formula',
      );
    }
  }
  keep.forEach((src, m) => {
    Lambda[nm + m] = lam[src]!;
    for (let a = 0; a < ks; a++) V[(nm + a) * r + nm + m] = Vsub[a * cols + src]!;
  });
  // C = R V Λ^{1/2};  C⁺ = Λ^{-1/2} Vᵀ R⁺ = Λ^{-1/2} Vᵀ D^{1/2} W⁺.
  const RV = matmulF64(R, V, { m: dim, n: r, k });
  const C = new Float64Array(dim * r);
  for (let i = 0; i < dim; i++) for (let j = 0; j < r; j++) C[i * r + j] = RV[i * r + j]! * Math.sqrt(Lambda[j]!);
  const DVp = new Float64Array(r * k);
  for (let c = 0; c < k; c++) {
    const sd = Math.sqrt(st.D[c]!);
    for (let j = 0; j < r; j++) DVp[j * k + c] = (V[c * r + j]! * sd) / Math.sqrt(Lambda[j]!);
  }
  const Cpinv = matmulF64(DVp, Wp, { m: r, n: dim, k });
  const Mprime = matmulF64(matmulF64(sec.Wbar, X, { m: dim, n: Hb, k: Hb }), sec.Wbar, { m: dim, n: dim, k: Hb, transB: true });
  const LambdaPrime = matmulF64(sec.Wbar, ls.hf, { m: dim, n: dim, k: Hb });
  return {
    ...stage1Fields(s.name, st),
    V,
    Lambda,
    Mprime,
    LambdaPrime,
    C,
    Cpinv,
    r,
    dropped: { stage1: st.dropped, stage2: ks - keep.length },
  };
}
