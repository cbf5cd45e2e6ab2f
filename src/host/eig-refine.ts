// Float64 refinement of an approximate symmetric eigendecomposition (e.g. the f32 GPU result),
// and `eigh`: GPU block Jacobi in f32 followed by this refinement, for float64-grade results.
//
// Method: Ogita–Aishima iterative refinement. For approximate eigenvectors X (columns):
//   R = I − XᵀX,  S = XᵀAX,  λ̃_i = s_ii / (1 − r_ii),
//   δ = 2(‖S − diag(λ̃)‖ + ‖A‖‖R‖)            (Frobenius norms as upper bounds; ‖A‖ ≈ max|λ̃|)
//   Ẽ_ij = (s_ij + λ̃_j r_ij) / (λ̃_j − λ̃_i)    when |λ̃_i − λ̃_j| > δ,
//   Ẽ_ij = r_ij / 2                             otherwise (same cluster, and i = j),
//   X ← X + XẼ.
// Each step squares the error of the well-separated part and re-orthonormalises X to first
// order (the r/2 terms). Within a cluster (gaps ≤ δ) the step only improves the invariant
// SUBSPACE, so after it every cluster of size ≥ 2 gets a Rayleigh–Ritz step: X_c ← X_c W with
// W the eigenvectors (symEig) of X_cᵀ A X_c. Exactly repeated eigenvalues therefore end with an
// orthonormal basis of their eigenspace, and tight-but-distinct clusters are separated once δ
// falls below their gaps. Converged when ‖AX − XΛ‖_F/‖A‖_F and max|XᵀX − I| are at the
// float64 roundoff level (or after `iterations` steps).
//
// The matrix products (~6n³ flops per step) run on the CPU in float64 with cache-blocked,
// 2×2-unrolled loops. Conventions as src/cpu/eigh.ts (values descending, column k of the
// row-major `vectors` belongs to values[k]).

import { checkShape, IbgpuError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { checkSymmetricInput, eighGpu, type EighGpuOptions } from '../kernels/eigh.js';
import { symEig } from '../cpu/eigh.js';

const EPS = 2 ** -52;
/** Rows of the right operand per cache block in the products (32 rows of ≤ 1000 doubles ≈ 256 KB). */
const K_BLOCK = 32;

export interface RefineResult {
  values: Float64Array;
  vectors: Float64Array;
  /** Refinement steps applied (0 when the input was already at float64 accuracy). */
  iterations: number;
  /** Final ‖AV − VΛ‖_F / ‖A‖_F (absolute when A = 0). */
  residual: number;
}

/** C = A·B for row-major n×n float64 matrices (k-blocked, 2 rows × 2 k unrolled). */
function matmul(a: Float64Array, b: Float64Array, n: number, c: Float64Array): void {
  c.fill(0);
  for (let k0 = 0; k0 < n; k0 += K_BLOCK) {
    const k1 = Math.min(n, k0 + K_BLOCK);
    let i = 0;
    for (; i + 1 < n; i += 2) {
      const r0 = i * n;
      const r1 = r0 + n;
      let k = k0;
      for (; k + 1 < k1; k += 2) {
        const a00 = a[r0 + k]!,
          a01 = a[r0 + k + 1]!,
          a10 = a[r1 + k]!,
          a11 = a[r1 + k + 1]!;
        const b0 = k * n;
        const b1 = b0 + n;
        for (let j = 0; j < n; j++) {
          const x = b[b0 + j]!;
          const y = b[b1 + j]!;
          c[r0 + j]! += a00 * x + a01 * y;
          c[r1 + j]! += a10 * x + a11 * y;
        }
      }
      if (k < k1) {
        const a0 = a[r0 + k]!,
          a1 = a[r1 + k]!;
        const b0 = k * n;
        for (let j = 0; j < n; j++) {
          const x = b[b0 + j]!;
          c[r0 + j]! += a0 * x;
          c[r1 + j]! += a1 * x;
        }
      }
    }
    if (i < n) {
      const r0 = i * n;
      for (let k = k0; k < k1; k++) {
        const a0 = a[r0 + k]!;
        const b0 = k * n;
        for (let j = 0; j < n; j++) c[r0 + j]! += a0 * b[b0 + j]!;
      }
    }
  }
}

function transpose(a: Float64Array, n: number, out: Float64Array): void {
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j * n + i] = a[i * n + j]!;
}

/**
 * Refines an approximate eigendecomposition of the symmetric n×n row-major `a` (uses
 * (A + Aᵀ)/2) in float64. `approx.vectors` is row-major with column k for approx.values[k]
 * (the ordering need not be sorted; the result is sorted descending). `iterations` is the
 * maximum number of refinement steps (default 6). The approximation must be reasonable
 * (‖XᵀX − I‖ well below 1, as from an f32 solver); otherwise the error is reported in
 * `residual` and callers should fall back to symEig.
 */
export function refineEig(
  a: ArrayLike<number>,
  n: number,
  approx: { values: ArrayLike<number>; vectors: ArrayLike<number> },
  opts: { iterations?: number } = {},
): RefineResult {
  const maxIter = opts.iterations ?? 6;
  checkShape(Number.isInteger(maxIter) && maxIter >= 0, `refineEig: iterations must be a non-negative integer, got ${maxIter}`);
  const { sym: A } = checkSymmetricInput('refineEig', a, n, Infinity);
  checkShape(approx.vectors.length === n * n, `refineEig: approx.vectors holds ${approx.vectors.length} values, expected n*n = ${n * n}`);
  checkShape(approx.values.length === n, `refineEig: approx.values holds ${approx.values.length} values, expected n = ${n}`);
  let aFro = 0;
  for (let i = 0; i < n * n; i++) aFro += A[i]! * A[i]!;
  aFro = Math.sqrt(aFro);
  const X = Float64Array.from(approx.vectors);
  for (let i = 0; i < n * n; i++) {
    if (!Number.isFinite(X[i]!)) throw new IbgpuError('NON_FINITE', `refineEig: approx.vectors contains ${X[i]} at flat index ${i}`);
  }
  if (aFro === 0) {
    // every orthonormal basis is exact; orthonormalise via the zero matrix's identity
    const vectors = new Float64Array(n * n);
    for (let i = 0; i < n; i++) vectors[i * n + i] = 1;
    return { values: new Float64Array(n), vectors, iterations: 0, residual: 0 };
  }
  const AX = new Float64Array(n * n);
  const Xt = new Float64Array(n * n);
  const S = new Float64Array(n * n);
  const G = new Float64Array(n * n); // XᵀX, then Ẽ
  const XE = new Float64Array(n * n);
  const lam = new Float64Array(n);
  // Tolerances at float64 roundoff, scaled like the roundoff of the products that measure them.
  const resTol = 64 * EPS * Math.sqrt(n);
  const orthTol = 64 * EPS * Math.sqrt(n);
  let iterations = 0;
  let residual = Infinity;
  for (;;) {
    matmul(A, X, n, AX);
    transpose(X, n, Xt);
    matmul(Xt, AX, n, S);
    matmul(Xt, X, n, G);
    let orth = 0;
    for (let i = 0; i < n; i++) {
      lam[i] = S[i * n + i]! / G[i * n + i]!;
      for (let j = 0; j < n; j++) orth = Math.max(orth, Math.abs(G[i * n + j]! - (i === j ? 1 : 0)));
    }
    let r2 = 0;
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < n; k++) {
        const d = AX[i * n + k]! - lam[k]! * X[i * n + k]!;
        r2 += d * d;
      }
    }
    residual = Math.sqrt(r2) / aFro;
    if ((residual <= resTol && orth <= orthTol) || iterations >= maxIter) break;
    oaStep(A, X, S, G, lam, n, XE);
    iterations++;
  }
  // Normalise columns (second-order effect only) and sort descending.
  const order = Array.from({ length: n }, (_, k) => k).sort((x, y) => lam[y]! - lam[x]! || x - y);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const c = order[k]!;
    values[k] = lam[c]!;
    let nrm = 0;
    for (let i = 0; i < n; i++) nrm += X[i * n + c]! * X[i * n + c]!;
    const inv = 1 / Math.sqrt(nrm);
    for (let i = 0; i < n; i++) vectors[i * n + k] = X[i * n + c]! * inv;
  }
  return { values, vectors, iterations, residual };
}

/**
 * One Ogita–Aishima step in place on X, given S = XᵀAX and G = XᵀX (overwritten with Ẽ), then
 * Rayleigh–Ritz on each cluster of size ≥ 2.
 */
function oaStep(A: Float64Array, X: Float64Array, S: Float64Array, G: Float64Array, lam: Float64Array, n: number, XE: Float64Array): void {
  let offS = 0;
  let rNorm = 0;
  let aNorm = 0;
  for (let i = 0; i < n; i++) {
    const rii = 1 - G[i * n + i]!;
    lam[i] = S[i * n + i]! / (1 - rii);
    aNorm = Math.max(aNorm, Math.abs(lam[i]!));
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const r = (i === j ? 1 : 0) - G[i * n + j]!;
      rNorm += r * r;
      if (i !== j) offS += S[i * n + j]! ** 2;
    }
  }
  const delta = 2 * (Math.sqrt(offS) + aNorm * Math.sqrt(rNorm));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const r = (i === j ? 1 : 0) - G[i * n + j]!;
      const gap = lam[j]! - lam[i]!;
      G[i * n + j] = i !== j && Math.abs(gap) > delta ? (S[i * n + j]! + lam[j]! * r) / gap : 0.5 * r;
    }
  }
  matmul(X, G, n, XE);
  for (let i = 0; i < n * n; i++) X[i]! += XE[i]!;
  // Clusters: connected runs of the sorted λ̃ with neighbouring gaps ≤ δ.
  const order = Array.from({ length: n }, (_, k) => k).sort((x, y) => lam[y]! - lam[x]!);
  let start = 0;
  for (let k = 1; k <= n; k++) {
    if (k === n || lam[order[k - 1]!]! - lam[order[k]!]! > delta) {
      if (k - start >= 2) rayleighRitz(A, X, n, order.slice(start, k));
      start = k;
    }
  }
}

/** X[:, cols] ← X[:, cols] W, with W the eigenvectors of X[:, cols]ᵀ A X[:, cols] (float64). */
function rayleighRitz(A: Float64Array, X: Float64Array, n: number, cols: number[]): void {
  const m = cols.length;
  const Xc = new Float64Array(n * m); // row-major n×m
  for (let i = 0; i < n; i++) for (let c = 0; c < m; c++) Xc[i * m + c] = X[i * n + cols[c]!]!;
  const AXc = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    const out = i * m;
    for (let k = 0; k < n; k++) {
      const aik = A[ri + k]!;
      if (aik === 0) continue;
      const xk = k * m;
      for (let c = 0; c < m; c++) AXc[out + c]! += aik * Xc[xk + c]!;
    }
  }
  const H = new Float64Array(m * m);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < m; c++) {
      const x = Xc[i * m + c]!;
      for (let d = 0; d < m; d++) H[c * m + d]! += x * AXc[i * m + d]!;
    }
  }
  const W = symEig(H, m).vectors;
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < m; d++) {
      let s = 0;
      for (let c = 0; c < m; c++) s += Xc[i * m + c]! * W[c * m + d]!;
      X[i * n + cols[d]!] = s;
    }
  }
}

export interface EighOptions extends EighGpuOptions {
  /**
   * 'gpu': block Jacobi on the GPU, refined in float64; 'cpu': the float64 CPU solver symEig;
   * 'auto' (default): 'cpu' on software adapters, where the barrier-heavy Jacobi kernels run
   * ~100x slower than symEig (bench/RESULTS.md), 'gpu' on real GPUs.
   */
  solver?: 'auto' | 'gpu' | 'cpu';
  /** Refine the f32 GPU result in float64 (default true). */
  refine?: boolean;
  /** Maximum refinement steps (default 6). */
  iterations?: number;
}

export interface EighResult extends RefineResult {
  /** Block-Jacobi sweeps of the GPU stage. */
  sweeps: number;
  /** Whether the result came from the CPU fallback (symEig) because refinement stalled. */
  fallback: boolean;
  /** The solver that ran (see EighOptions.solver). */
  solver: 'gpu' | 'cpu';
}

/**
 * The solver `eigh` uses on this engine for solver: 'auto'. Software adapters take the host
 * solver (measured: the GPU kernel is 80-100x slower on llvmpipe, bench/RESULTS.md); hardware
 * adapters take the GPU kernel, a default not yet measured against the host solver on any GPU.
 * Builds never call `eigh`: they use the host solver directly (see src/kernels/eigh.ts).
 */
export function chooseEighSolver(engine: Engine): 'gpu' | 'cpu' {
  return engine.info.isSoftware ? 'cpu' : 'gpu';
}

/**
 * Symmetric eigendecomposition with float64-grade accuracy: f32 block Jacobi on the GPU
 * (eighGpu), then Ogita–Aishima refinement in float64 on the CPU. With refine: false the f32
 * GPU result is returned as is (its residual is then computed in float64 for the report). If the
 * refinement does not reach float64 accuracy (e.g. a non-converged GPU stage) the float64 CPU
 * solver symEig is used instead and `fallback` is set.
 */
export async function eigh(engine: Engine, a: Float64Array, n: number, opts: EighOptions = {}): Promise<EighResult> {
  const solver = !opts.solver || opts.solver === 'auto' ? chooseEighSolver(engine) : opts.solver;
  checkShape(solver === 'gpu' || solver === 'cpu', `eigh: unknown solver '${String(opts.solver)}'`, "use 'auto', 'gpu' or 'cpu'");
  if (solver === 'cpu') {
    checkSymmetricInput('eigh', a, n, opts.asymmetryTol);
    const cpu = symEig(a, n);
    const check = refineEig(a, n, cpu, { iterations: 0 });
    return { values: cpu.values, vectors: cpu.vectors, iterations: 0, residual: check.residual, sweeps: 0, fallback: false, solver };
  }
  const gpu = await eighGpu(engine, a, n, opts);
  if (opts.refine === false) {
    const r = refineEig(a, n, gpu, { iterations: 0 });
    return { values: gpu.values, vectors: gpu.vectors, iterations: 0, residual: r.residual, sweeps: gpu.sweeps, fallback: false, solver };
  }
  const refined = refineEig(a, n, gpu, { iterations: opts.iterations });
  if (refined.residual <= 1e-12) return { ...refined, sweeps: gpu.sweeps, fallback: false, solver };
  console.warn(`eigh: refinement stalled at residual ${refined.residual.toExponential(2)} (n = ${n}); using the float64 CPU solver`);
  const cpu = symEig(a, n);
  const check = refineEig(a, n, cpu, { iterations: 0 });
  return { values: cpu.values, vectors: cpu.vectors, iterations: refined.iterations, residual: check.residual, sweeps: gpu.sweeps, fallback: true, solver };
}
