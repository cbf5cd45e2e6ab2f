// Ground truth for degeneracy counts on small networks (SPEC §6.5, §9.3): the nullity of the full
// Gauss–Newton matrix of the behavioural loss at the trained parameters, in float64 on the CPU.
//
// The behavioural loss L_B(θ) = (1/N) Σ_n ‖f_out(x_n; θ) − f_out(x_n; θ*)‖² has its minimum at θ*,
// and its Hessian there is the Gauss–Newton matrix H = (2/N) Σ_n J_nᵀ J_n, with J_n = ∂f_out(x_n)/∂θ
// (n_out × P). Its nullity is P − rank(J), J the stacked N·n_out × P per-sample parameter
// Jacobian. Parameters are every weight and bias of every layer, i.e. every entry of the folded
// weights W̄^ℓ except the constant output column (dIn+1 rows × dOut columns per layer, W rows then
// the bias row; layer order), so P = Σ_ℓ (dIn_ℓ + 1)·dOut_ℓ.
//
// The rank is read from singular values: for small problems the stacked Jacobian is reduced by a
// Householder QR to its P×P triangle R and R's singular values are found by one-sided (Hestenes)
// Jacobi, which is accurate to a small multiple of ε·σ_max for every singular value (no squaring).
// For larger problems ('gram') H is accumulated in f64 and eigendecomposed; its eigenvalues are
// σ², resolved only down to ~P·ε·σ_max², so the tolerance is applied to σ² and must be chosen
// coarser (the default for 'gram' is σ_rel 1e-6). The chosen tolerance, the singular values around
// it and the largest gap are returned so that a borderline rank is visible.
//
// ReLU'(0) is taken as 0 (torch); networks for ground truth should keep pre-activations away from 0.

import { IbgpuError } from '../errors.js';
import { actGrad } from '../model/activations.js';
import type { MlpModel } from '../model/mlp.js';
import { matmulF64 } from './matmul.js';
import { forwardSampleF64 } from './mlp-forward.js';
import { symEigValues } from './eigh.js';
import { thinQr } from './qr.js';

/** Trainable parameters of the model: Σ (dIn + 1)·dOut (weights and biases). */
export function parameterCount(model: MlpModel): number {
  return model.layers.reduce((s, l) => s + (l.dIn + 1) * l.dOut, 0);
}

/** Column offset of layer ℓ's block in the parameter vector. */
export function parameterOffsets(model: MlpModel): number[] {
  const off: number[] = [];
  let o = 0;
  for (const l of model.layers) {
    off.push(o);
    o += (l.dIn + 1) * l.dOut;
  }
  return off;
}

/**
 * Per-sample output Jacobian with respect to the parameters, for rows [start, start + count) of
 * x (row-major n × dIn_0), stacked: row (sample s, output o) = s·n_out + o, P columns.
 */
export function parameterJacobian(model: MlpModel, x: ArrayLike<number>, start: number, count: number): Float64Array {
  const L = model.layers.length;
  const nOut = model.layers[L - 1]!.dOut;
  const P = parameterCount(model);
  const off = parameterOffsets(model);
  const J = new Float64Array(count * nOut * P);
  for (let s = 0; s < count; s++) {
    // Forward: inputs f^ℓ (real units) and pre-activations p^ℓ.
    const { inputs, pres } = forwardSampleF64(model, x, start + s);
    // Backward: G = ∂out/∂p^ℓ (nOut × dOut_ℓ), starting from σ'(p^{L−1}) on the diagonal.
    const last = model.layers[L - 1]!;
    let G = new Float64Array(nOut * nOut);
    for (let o = 0; o < nOut; o++) G[o * nOut + o] = actGrad(last.activation, pres[L - 1]![o]!);
    for (let li = L - 1; li >= 0; li--) {
      const l = model.layers[li]!;
      const f = inputs[li]!;
      const base = off[li]!;
      for (let o = 0; o < nOut; o++) {
        const row = (s * nOut + o) * P + base;
        for (let i = 0; i <= l.dIn; i++) {
          const fi = i < l.dIn ? f[i]! : 1;
          if (fi === 0) continue;
          for (let j = 0; j < l.dOut; j++) J[row + i * l.dOut + j] = G[o * l.dOut + j]! * fi;
        }
      }
      if (li === 0) break;
      const prev = model.layers[li - 1]!;
      const gp = new Float64Array(nOut * prev.dOut);
      for (let o = 0; o < nOut; o++) {
        for (let i = 0; i < prev.dOut; i++) {
          const der = actGrad(prev.activation, pres[li - 1]![i]!);
          if (der === 0) continue;
          let t = 0;
          for (let j = 0; j < l.dOut; j++) t += G[o * l.dOut + j]! * l.W[i * l.dOut + j]!;
          gp[o * prev.dOut + i] = t * der;
        }
      }
      G = gp;
    }
  }
  return J;
}

/**
 * Singular values (descending) of the m×n row-major matrix a, by a Householder QR to an n×n
 * triangle (when m > n) and one-sided Jacobi on it.
 */
export function singularValues(a: ArrayLike<number>, m: number, n: number, onSweep?: (sweep: number) => void): Float64Array {
  if (m < n) {
    const t = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
    return singularValues(t, n, m, onSweep);
  }
  let B: Float64Array;
  let rows: number;
  if (m > n) {
    B = thinQr(a, m, n).r;
    rows = n;
  } else {
    B = Float64Array.from(a);
    rows = m;
  }
  // One-sided Jacobi on the columns of B (rows × n): rotate column pairs until orthogonal.
  // Column-major copy for contiguous column access.
  const cols: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const c = new Float64Array(rows);
    for (let i = 0; i < rows; i++) c[i] = B[i * n + j]!;
    cols.push(c);
  }
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) norms[j] = dot(cols[j]!, cols[j]!);
  const eps = 2 ** -52;
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const alpha = norms[p]!;
        const beta = norms[q]!;
        if (alpha === 0 || beta === 0) continue;
        const cp = cols[p]!;
        const cq = cols[q]!;
        const gamma = dot(cp, cq);
        if (Math.abs(gamma) <= eps * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < rows; i++) {
          const u = cp[i]!;
          const v = cq[i]!;
          cp[i] = c * u - s * v;
          cq[i] = s * u + c * v;
        }
        norms[p] = dot(cp, cp);
        norms[q] = dot(cq, cq);
      }
    }
    onSweep?.(sweep + 1);
    if (!rotated) break;
  }
  return Float64Array.from(norms, Math.sqrt).sort().reverse();
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export interface GaussNewtonOptions {
  /** Relative tolerance on singular values of the stacked Jacobian (default 1e-9 'svd', 1e-6 'gram'). */
  rtol?: number;
  /** 'svd' (QR + Jacobi; accurate), 'gram' (eigenvalues of JᵀJ; for larger P), or 'auto'. */
  method?: 'svd' | 'gram' | 'auto';
  /** Rows of the stacked Jacobian formed at a time in 'gram' mode. */
  blockRows?: number;
  /** Called as the work advances: ('jacobian', datapoints done, n), then ('eigen', 0 | 1, 1). */
  progress?: (stage: string, done: number, total: number) => void;
}

/** A ratio of neighbouring singular values below this at the cut leaves the rank ill-defined. */
export const CLEAR_GAP = 10;

/** The method gaussNewtonNullity picks for `method: 'auto'`. */
export function gaussNewtonMethod(P: number, rows: number): 'svd' | 'gram' {
  return rows * P * P <= 2e9 && P <= 600 ? 'svd' : 'gram';
}

/**
 * Floating-point operations of gaussNewtonNullity (the dominant terms): per-sample Jacobians by
 * backpropagation, then for 'svd' a Householder QR of the rows × P stack and ~10 one-sided Jacobi
 * sweeps of 3P flops per column pair, for 'gram' the P×P product (2·rows·P² flops) and a
 * symmetric eigenvalue solve (~(10/3)·P³ with the tridiagonal QL).
 */
export function gaussNewtonFlops(model: MlpModel, n: number, method: 'svd' | 'gram'): number {
  const P = parameterCount(model);
  const nOut = model.layers[model.layers.length - 1]!.dOut;
  const rows = n * nOut;
  const jacobian = 2 * rows * P;
  if (method === 'svd') return jacobian + 2 * rows * P * P + 10 * 3 * P * P * P;
  return jacobian + 2 * rows * P * P + (10 / 3) * P * P * P;
}

/**
 * Float64 multiply-adds per second of this machine right now, timed on a 192×192 product (about
 * 20 ms): what turns gaussNewtonFlops into an estimate in seconds.
 */
export function measureFlopRate(): number {
  const k = 192;
  const a = new Float64Array(k * k).map((_, i) => ((i * 7919) % 1000) / 1000);
  matmulF64(a, a, { m: k, n: k, k }); // warm-up (JIT)
  const t0 = performance.now();
  let reps = 0;
  do {
    matmulF64(a, a, { m: k, n: k, k });
    reps++;
  } while (performance.now() - t0 < 20);
  return (2 * k * k * k * reps) / ((performance.now() - t0) / 1000);
}

/** The largest ratio of neighbouring non-zero singular values, and the rank it would imply. */
export function largestGap(sv: Float64Array): { rank: number; ratio: number } {
  let best = { rank: sv.length, ratio: 1 };
  for (let i = 0; i + 1 < sv.length; i++) {
    if (sv[i + 1]! <= 0) return sv[i]! > 0 ? { rank: i + 1, ratio: Infinity } : best;
    const r = sv[i]! / sv[i + 1]!;
    if (r > best.ratio) best = { rank: i + 1, ratio: r };
  }
  return best;
}

export interface GaussNewtonNullity {
  params: number;
  rank: number;
  nullity: number;
  method: 'svd' | 'gram';
  rtol: number;
  /** Singular values of the stacked Jacobian, descending (sqrt of H's eigenvalues in 'gram'). */
  singularValues: Float64Array;
  /** σ_rank−1 / σ_rank: the ratio across the cut (Infinity when the next one is exactly 0). */
  gapAtCut: number;
}

/**
 * Nullity of the Gauss–Newton matrix of the behavioural loss over the n datapoints of x (row-major
 * n × dIn_0), in float64.
 */
export function gaussNewtonNullity(model: MlpModel, x: ArrayLike<number>, n: number, opts: GaussNewtonOptions = {}): GaussNewtonNullity {
  const P = parameterCount(model);
  const nOut = model.layers[model.layers.length - 1]!.dOut;
  const d0 = model.layers[0]!.dIn;
  if (x.length < n * d0) throw new IbgpuError('SHAPE', `gaussNewtonNullity: x holds ${x.length} values, expected n*dIn = ${n}*${d0}`);
  const rows = n * nOut;
  let method = opts.method ?? 'auto';
  if (method === 'auto') method = gaussNewtonMethod(P, rows);
  const progress = opts.progress ?? (() => {});
  let sv: Float64Array;
  if (method === 'svd') {
    progress('jacobian', 0, n);
    const J = parameterJacobian(model, x, 0, n);
    progress('jacobian', n, n);
    progress('eigen', 0, 1);
    // Jacobi usually converges in 6–12 sweeps; the bar's end moves out if it needs more.
    sv = singularValues(J, rows, P, (k) => progress('sweeps', k, Math.max(12, k + 1)));
  } else {
    const H = new Float64Array(P * P);
    const block = Math.max(1, Math.floor((opts.blockRows ?? 4096) / nOut));
    for (let s = 0; s < n; s += block) {
      const c = Math.min(block, n - s);
      const J = parameterJacobian(model, x, s, c);
      const part = matmulF64(J, J, { m: P, n: P, k: c * nOut, transA: true });
      for (let i = 0; i < H.length; i++) H[i]! += part[i]!;
      progress('jacobian', s + c, n);
    }
    progress('eigen', 0, 1);
    const ev = symEigValues(H, P);
    sv = Float64Array.from(ev, (v) => Math.sqrt(Math.max(0, v)));
  }
  const rtol = opts.rtol ?? (method === 'svd' ? 1e-9 : 1e-6);
  const cut = rtol * (sv[0] ?? 0);
  let rank = 0;
  while (rank < sv.length && sv[rank]! > cut) rank++;
  const gapAtCut = rank === 0 || rank >= sv.length ? Infinity : sv[rank - 1]! / sv[rank]!;
  progress('eigen', 1, 1);
  return { params: P, rank, nullity: P - rank, method, rtol, singularValues: sv, gapAtCut };
}
