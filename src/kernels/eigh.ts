// Symmetric eigendecomposition on the GPU in f32: parallel two-sided block Jacobi.
//
// Status: a kernel offered to library users (`eigenKernels.eighGpu`, and `eigh` in
// src/host/eig-refine.ts with float64 refinement); no build uses it. Builds solve every
// eigenproblem on the host in float64 (src/cpu/eigh.ts, on solver threads beside the GPU pass).
// Measured (bench/eigh.bench.ts, bench/RESULTS.md) only on llvmpipe, where it loses at every
// size: n = 128: 556 ms vs 7 ms for the host solver, n = 256: 7.1 s vs 74 ms, n = 512: 46 s vs
// 0.59 s. No hardware adapter has been measured yet; a build would take it only where
// `npm run bench` on that adapter shows a crossover (where it would serve: the n ≥ 1024 Grams
// of wide layers, 3.1 s at n = 1024 and 27 s at n = 2048 on the host here).
//
// The (padded) matrix is split into 2p blocks of B = 16 indices; a sweep is 2p−1 steps of the
// round-robin (circle) ordering of the blocks, so every pair of blocks meets once per sweep. One
// step is TWO dispatches:
//   eigh_solve  (p workgroups):   diagonalise each pair's 32×32 diagonal tile in workgroup
//                                 memory (inner cyclic Jacobi) and write its rotation R_P;
//   eigh_apply  (2p² workgroups): A[P,Q] ← R_Pᵀ A[P,Q] R_Q on the upper tiles (mirrored), and
//                                 V[·,Q] ← V[·,Q] R_Q.
// One kernel set for every adapter: barrier-free variants (a serial per-pair Jacobi, row-owning
// tile products) were tried on llvmpipe and were slower (5x) or not worth a variant (1.3x).
// After each sweep eigh_norm + eigh_norm_sum reduce ‖offdiag(A)‖², ‖diag(A)‖² and the number of
// rotations the sweep applied to three u32s, the only per-sweep readback. A sweep costs ~8n³
// flops in 32×32 tile products (ample parallelism: 2p² workgroups per step) and 2(2p−1)
// dispatches; 6–10 sweeps are typical. Dispatch count, not flops, is what a naive scalar Jacobi
// (n−1 steps × n/2 rotations per sweep) would drown in; blocking divides it by 16.
//
// Convergence (checked on the host from the three numbers): a sweep that applied no rotation
// (every |a_pq| under the skip thresholds), or off(A) ≤ tol·‖A‖_F, or stagnation at the f32
// roundoff floor (off(A) no longer halving while already below 1e-4·‖A‖_F). A hard sweep limit
// (maxSweeps) returns the current estimate with converged = false and a warning.
//
// Conventions as src/cpu/eigh.ts: values descending (signed), vectors row-major n×n with column
// k the unit eigenvector of values[k]. Input: row-major n×n, symmetric up to a relative
// asymmetry of `asymmetryTol` (default 1e-5 of max|a|; larger asymmetry is rejected), then
// symmetrised as (A + Aᵀ)/2 and scaled by a power of two to max|a| ≈ 1 (exact; undone on the
// eigenvalues), so f32 neither overflows nor underflows for float64 inputs of any magnitude.
// Padding indices are zero rows/columns: their rotations are exactly the identity, so they never
// mix with real indices and are dropped at the end.

import { checkFinite, checkShape, IbgpuError } from '../errors.js';
import { symEig } from '../cpu/eigh.js';
import type { Engine } from '../runtime/engine.js';
import { defineKernel, type KernelSpec } from '../runtime/kernel-spec.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { SHADERS } from '../shaders/index.generated.js';
import type { SelfCheckResult } from './self-check.js';
import { packParams } from '../runtime/params.js';
import { mulberry32 } from '../util/mulberry32.js';

/** Block size (indices per block); a pair tile is 2B = 32 (fixed in the shaders). */
export const EIGH_BLOCK = 16;
const TILE = 2 * EIGH_BLOCK;
const F32_EPS = 2 ** -24;

/**
 * A kernel of the block Jacobi set: named as its shader, no overrides, the bindings and params the
 * shader's declarations (defineKernel reads them).
 */
function eighKernel<K extends 'eigh_solve' | 'eigh_apply' | 'eigh_norm' | 'eigh_norm_sum'>(name: K): KernelSpec<(typeof SHADERS)[K]> {
  return defineKernel({ name, shader: SHADERS[name] });
}

export const eighSolveKernel = eighKernel('eigh_solve');
export const eighApplyKernel = eighKernel('eigh_apply');
export const eighNormKernel = eighKernel('eigh_norm');
export const eighNormSumKernel = eighKernel('eigh_norm_sum');

export interface EighGpuOptions {
  /** Hard limit on block-Jacobi sweeps (default 30). */
  maxSweeps?: number;
  /** Stop when ‖offdiag(A)‖_F ≤ tol·‖A‖_F (default 2^-22; f32 roundoff sets a floor near 2^-24·√n). */
  tol?: number;
  /** Reject inputs with max|a_ij − a_ji| > asymmetryTol·max|a| (default 1e-5). */
  asymmetryTol?: number;
}

export interface EighGpuResult {
  /** Eigenvalues, descending (f32-accurate, returned as float64). */
  values: Float64Array;
  /** Row-major n×n; column k is the unit eigenvector of values[k]. */
  vectors: Float64Array;
  /** Sweeps run. */
  sweeps: number;
  /** False when maxSweeps was reached before the convergence test passed. */
  converged: boolean;
  /** Final ‖offdiag(A)‖_F / ‖A‖_F. */
  offNorm: number;
}

/**
 * Validates a square symmetric finite input and returns (A + Aᵀ)/2 in float64 with max|a|.
 * Shared with the float64 driver in src/host/eig-refine.ts.
 */
export function checkSymmetricInput(fn: string, a: ArrayLike<number>, n: number, asymmetryTol = 1e-5): { sym: Float64Array; amax: number } {
  checkShape(Number.isInteger(n) && n >= 1, `${fn}: n must be a positive integer, got ${n}`);
  checkShape(
    a.length === n * n,
    `${fn}: matrix holds ${a.length} values, expected n*n = ${n}*${n} = ${n * n}`,
    'pass a square row-major matrix and its order n',
  );
  checkFinite(`${fn}: matrix`, a, [n, n]);
  const sym = new Float64Array(n * n);
  let amax = 0;
  let asym = 0;
  let where = [0, 0];
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const x = +a[i * n + j]!;
      const y = +a[j * n + i]!;
      const m = 0.5 * (x + y);
      sym[i * n + j] = m;
      sym[j * n + i] = m;
      amax = Math.max(amax, Math.abs(x), Math.abs(y));
      const d = Math.abs(x - y);
      if (d > asym) {
        asym = d;
        where = [i, j];
      }
    }
  }
  if (asym > asymmetryTol * amax) {
    throw new IbgpuError(
      'SHAPE',
      `${fn}: matrix is not symmetric: |a[${where[0]},${where[1]}] − a[${where[1]},${where[0]}]| = ${asym.toExponential(3)} ` +
        `is ${(asym / amax).toExponential(2)} of max|a| (tolerance ${asymmetryTol})`,
      'pass a symmetric matrix (e.g. (A + Aᵀ)/2), or raise asymmetryTol if the asymmetry is rounding noise',
    );
  }
  return { sym, amax };
}

/** Round-robin (circle) block pairs for all 2p−1 steps: [(s*p + P)*2 + {0,1}] = (top, bottom). */
export function blockPairs(p: number): Uint32Array {
  const m = 2 * p - 1;
  const out = new Uint32Array(m * p * 2);
  const at = (pos: number, s: number): number => (pos === 0 ? 0 : 1 + ((pos - 1 + s) % m));
  for (let s = 0; s < m; s++) {
    for (let k = 0; k < p; k++) {
      out[(s * p + k) * 2] = at(k, s);
      out[(s * p + k) * 2 + 1] = at(2 * p - 1 - k, s);
    }
  }
  return out;
}

/**
 * Eigendecomposition of a symmetric n×n matrix on the GPU in f32 (see the file comment).
 * Accuracy: residual ‖AV − VΛ‖ and ‖VᵀV − I‖ of order n·2^-24·‖A‖; use `eigh` in
 * src/host/eig-refine.ts for float64-grade results.
 */
export async function eighGpu(engine: Engine, a: Float32Array | Float64Array, n: number, opts: EighGpuOptions = {}): Promise<EighGpuResult> {
  const maxSweeps = opts.maxSweeps ?? 30;
  const tol = opts.tol ?? 2 ** -22;
  checkShape(Number.isInteger(maxSweeps) && maxSweeps >= 1, `eighGpu: maxSweeps must be a positive integer, got ${maxSweeps}`);
  checkShape(tol >= 0, `eighGpu: tol must be >= 0, got ${tol}`);
  const { sym, amax } = checkSymmetricInput('eighGpu', a, n, opts.asymmetryTol);
  if (amax === 0) {
    const vectors = new Float64Array(n * n);
    for (let i = 0; i < n; i++) vectors[i * n + i] = 1;
    return { values: new Float64Array(n), vectors, sweeps: 0, converged: true, offNorm: 0 };
  }
  let nb = Math.max(2, Math.ceil(n / EIGH_BLOCK));
  if (nb % 2) nb++;
  const N = nb * EIGH_BLOCK;
  const p = nb / 2;
  const bytes = N * N * 4;
  if (bytes > engine.maxBindingBytes) {
    throw new IbgpuError(
      'LIMIT_EXCEEDED',
      `eighGpu: n = ${n} needs a ${N}×${N} f32 matrix (${bytes} bytes), over this adapter's binding limit ${engine.maxBindingBytes}`,
      'use an adapter with a larger maxStorageBufferBindingSize, or the CPU solver symEig',
    );
  }
  // Power-of-two scaling to max|a| in [0.5, 1): exact in f32 and f64.
  const scale = 2 ** -Math.ceil(Math.log2(amax) + 1e-12);
  const host = new Float32Array(N * N);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) host[i * N + j] = sym[i * n + j]! * scale;
  const eye = new Float32Array(N * N);
  for (let i = 0; i < N; i++) eye[i * N + i] = 1;
  let fro2 = 0;
  for (let i = 0; i < N * N; i++) fro2 += host[i]! * host[i]!;
  const fro = Math.sqrt(fro2);
  // Skip thresholds (see eigh_solve.wgsl): absolute floor ~ ε‖A‖_F/N, relative 2ε.
  const tiny = (F32_EPS * fro) / N;
  const rel = 2 * F32_EPS;

  const steps = 2 * p - 1;
  const normGroups = ceilDiv(N, 8);
  const scope = engine.scope();
  try {
    const bA = scope.upload(host, 'eigh.a');
    const bV = scope.upload(eye, 'eigh.v');
    const bPairs = scope.upload(blockPairs(p), 'eigh.pairs');
    const bRot = scope.alloc(p * TILE * TILE * 4, 'eigh.rot');
    const bCount = scope.alloc(16, 'eigh.count');
    const bPartial = scope.alloc(normGroups * 2 * 4, 'eigh.partial');
    const bDiag = scope.alloc(N * 4, 'eigh.diag');
    const bOut = scope.alloc(16, 'eigh.out');
    let sweeps = 0;
    let converged = false;
    let off = Infinity;
    let prevOff = Infinity;
    while (sweeps < maxSweeps) {
      engine.clear(bCount, 0, 16);
      for (let s = 0; s < steps; s++) {
        engine.dispatch(eighSolveKernel, {
          bindings: { a: bA, pairs: bPairs, rot: bRot, count: bCount, params: packParams(eighSolveKernel, { n: N, p, step: s, tiny, rel }) },
          workgroups: p,
        });
        engine.dispatch(eighApplyKernel, {
          bindings: { a: bA, v: bV, pairs: bPairs, rot: bRot, params: packParams(eighApplyKernel, { n: N, p, step: s }) },
          workgroups: 2 * p * p,
        });
      }
      sweeps++;
      engine.dispatch(eighNormKernel, {
        bindings: { a: bA, partial: bPartial, diag: bDiag, params: packParams(eighNormKernel, { n: N }) },
        workgroups: normGroups,
      });
      engine.dispatch(eighNormSumKernel, {
        bindings: { partial: bPartial, count: bCount, out: bOut, params: packParams(eighNormSumKernel, { groups: normGroups }) },
        workgroups: 1,
      });
      const out = await engine.readU32(bOut, 3);
      const f = new Float32Array(out.buffer, 0, 2);
      const offNow = Math.sqrt(f[0]!);
      const froNow = Math.sqrt(f[0]! + f[1]!);
      prevOff = off;
      off = froNow > 0 ? offNow / froNow : 0;
      const rotations = out[2]!;
      if (rotations === 0 || off <= tol || (off > 0.5 * prevOff && off < 1e-4)) {
        converged = true;
        break;
      }
    }
    if (!converged) {
      console.warn(
        `eighGpu: block Jacobi did not converge in ${maxSweeps} sweeps (n = ${n}, ‖offdiag‖/‖A‖ = ${off.toExponential(2)}); ` +
          'returning the current estimate (raise maxSweeps, or check the input for NaN-like garbage)',
      );
    }
    const diag = await engine.readF32(bDiag, N);
    const vfull = await engine.readF32(bV, N * N);
    // Real eigenpairs sit at columns 0..n-1 (padding columns stay e_k with eigenvalue 0).
    const order = Array.from({ length: n }, (_, k) => k).sort((x, y) => diag[y]! - diag[x]! || x - y);
    const values = new Float64Array(n);
    const vectors = new Float64Array(n * n);
    for (let k = 0; k < n; k++) {
      const c = order[k]!;
      values[k] = diag[c]! / scale;
      for (let i = 0; i < n; i++) vectors[i * n + k] = vfull[i * N + c]!;
    }
    return { values, vectors, sweeps, converged, offNorm: off };
  } finally {
    scope.close();
  }
}

/** Quick check for `ibgpu doctor`: a random symmetric 40×40 against the float64 CPU solver. */
export async function selfCheck(engine: Engine): Promise<SelfCheckResult> {
  const t0 = performance.now();
  const name = 'eigh (block Jacobi, f32)';
  try {
    const n = 40;
    const uniform = mulberry32(12345);
    const rand = (): number => uniform() - 0.5;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = i; j < n; j++) {
        const v = rand();
        a[i * n + j] = v;
        a[j * n + i] = v;
      }
    const gpu = await eighGpu(engine, a, n);
    const ref = symEig(a, n);
    let err = 0;
    let scale = 0;
    for (let k = 0; k < n; k++) {
      err = Math.max(err, Math.abs(gpu.values[k]! - ref.values[k]!));
      scale = Math.max(scale, Math.abs(ref.values[k]!));
    }
    // Eigenvector agreement up to sign, via |v_gpu · v_ref| for each (well separated) pair.
    let worstDot = 1;
    for (let k = 0; k < n; k++) {
      let d = 0;
      for (let i = 0; i < n; i++) d += gpu.vectors[i * n + k]! * ref.vectors[i * n + k]!;
      worstDot = Math.min(worstDot, Math.abs(d));
    }
    const tolVal = 64 * n * F32_EPS * scale;
    const ok = gpu.converged && err <= tolVal && worstDot > 1 - 1e-3;
    return {
      name,
      ok,
      detail: `n=${n}, ${gpu.sweeps} sweeps, max |Δλ| = ${err.toExponential(2)} (tol ${tolVal.toExponential(2)}), min |v·v_ref| = ${worstDot.toFixed(6)}`,
      ms: performance.now() - t0,
    };
  } catch (e) {
    return { name, ok: false, detail: (e as Error).message, ms: performance.now() - t0 };
  }
}
