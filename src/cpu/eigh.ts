// Float64 symmetric eigendecomposition: the CPU reference and CPU baseline for the eigensolver.
//
// Method: Householder reduction to tridiagonal form (A = Q T Qᵀ), then implicit QL with
// Wilkinson shifts on T, with the Givens rotations accumulated into Qᵀ. Backward stable: the
// residual ‖AV − VΛ‖ and the loss of orthogonality ‖VᵀV − I‖ are O(n·ε·‖A‖) and O(n·ε).
//
// Conventions (shared with the GPU solver in src/kernels/eigh.ts):
//   - input: row-major n×n; the solver works on (A + Aᵀ)/2, so a slightly asymmetric input
//     (e.g. a Gram accumulated in float32) is symmetrised, never half-ignored. Callers that care
//     about asymmetry must check it themselves (the GPU wrapper rejects large asymmetry);
//   - values: sorted DESCENDING by signed value (largest first, most negative last);
//   - vectors: row-major n×n, COLUMN k is the unit eigenvector of values[k] (vectors[i*n + k]).
//     The sign of each eigenvector is whatever the algorithm produced (not normalised).
//
// Layout choices for V8 (this runs on matrices up to ~800×800 in the pipeline):
//   - the working matrix keeps its UPPER triangle, so the Householder source (row k right of the
//     diagonal) and every inner loop of the symmetric mat-vec and rank-2 update run along rows;
//   - eigenvectors are accumulated TRANSPOSED (row r of `zt` is the r-th Ritz vector), so each
//     Givens rotation combines two contiguous rows; the result is transposed once at the end;
//   - all scratch is allocated up front; no allocation inside loops;
//   - the O(n²)-per-step loops are functions of their arrays (EighKernels): these JS ones are the
//     reference, and src/host/eigh-wasm.ts runs the same solver with WebAssembly SIMD kernels that
//     give the same bits. Their dot products keep two partial sums (even and odd terms from the
//     first index), which two float64 lanes reproduce exactly.

import { IbgpuError, checkShape } from '../errors.js';

const EPS = 2 ** -52;
/** QL iterations allowed per eigenvalue before giving up (typically 1–3 are needed). */
const MAX_QL_ITER = 60;

export interface SymEigResult {
  /** Eigenvalues, descending. */
  values: Float64Array;
  /** Row-major n×n; column k is the unit eigenvector of values[k]. */
  vectors: Float64Array;
}

function checkInput(fn: string, a: ArrayLike<number>, n: number): void {
  checkShape(Number.isInteger(n) && n >= 1, `${fn}: n must be a positive integer, got ${n}`);
  checkShape(
    a.length === n * n,
    `${fn}: matrix holds ${a.length} values, expected n*n = ${n}*${n} = ${n * n}`,
    'pass a square row-major matrix and its order n',
  );
}

/**
 * Copies (A + Aᵀ)/2 into the upper triangle of a fresh n×n buffer (lower triangle unused) and
 * returns it with max |a_ij| (0 for the zero matrix).
 */
function symmetrisedUpper(a: ArrayLike<number>, n: number, w: Float64Array = new Float64Array(n * n)): { w: Float64Array; amax: number } {
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = i; j < n; j++) {
      const v = j === i ? +a[ri + j]! : 0.5 * (+a[ri + j]! + +a[j * n + i]!);
      w[ri + j] = v;
      const av = Math.abs(v);
      if (av > amax) amax = av;
      else if (av !== av) amax = NaN; // NaN propagates to the caller's check below
    }
  }
  return { w, amax };
}

/**
 * Householder tridiagonalisation of the symmetric matrix held in the upper triangle of `w`.
 * On return d[0..n) is the diagonal of T, e[0..n-1) its off-diagonal (e[i] couples i and i+1;
 * e[n-1] = 0), and for k < n-2 row k of `w` right of the diagonal holds the Householder vector
 * v_k (H_k = I − beta[k] v_k v_kᵀ acting on indices k+1..n-1), with Qᵀ = H_{n-3} ⋯ H_0.
 */
export function tridiagonalise(
  w: Float64Array,
  n: number,
  d: Float64Array,
  e: Float64Array,
  beta: Float64Array,
  p: Float64Array,
  kern: EighKernels = JS_KERNELS,
): void {
  for (let k = 0; k < n - 2; k++) {
    const rk = k * n;
    d[k] = w[rk + k]!;
    // x = A[k, k+1..n): norm, with the tail separately to detect an already-reduced row.
    const x0 = w[rk + k + 1]!;
    let tail = 0;
    for (let j = k + 2; j < n; j++) {
      const t = w[rk + j]!;
      tail += t * t;
    }
    if (tail === 0) {
      // already tridiagonal in this row: H_k = I
      e[k] = x0;
      beta[k] = 0;
      continue;
    }
    const norm = Math.sqrt(x0 * x0 + tail);
    const alpha = x0 >= 0 ? -norm : norm;
    const b = 1 / (alpha * (alpha - x0)); // 2 / vᵀv with v = x − alpha·e1, no cancellation
    w[rk + k + 1] = x0 - alpha; // row k now stores v (its tail is x's tail unchanged)
    e[k] = alpha;
    beta[k] = b;
    // p = b · A22 v over the upper triangle of A22 = A[k+1.., k+1..] (row-wise, both halves).
    const lo = k + 1;
    for (let i = lo; i < n; i++) p[i] = 0;
    kern.symvUpper(w, n, k, p);
    // q = p − (b/2)(pᵀv) v, then A22 ← A22 − v qᵀ − q vᵀ  (= H A22 H).
    let pv = 0;
    for (let i = lo; i < n; i++) {
      p[i]! *= b;
      pv += p[i]! * w[rk + i]!;
    }
    const half = 0.5 * b * pv;
    for (let i = lo; i < n; i++) p[i]! -= half * w[rk + i]!;
    kern.rank2Upper(w, n, k, p);
  }
  if (n >= 2) {
    d[n - 2] = w[(n - 2) * n + n - 2]!;
    e[n - 2] = w[(n - 2) * n + n - 1]!;
  }
  d[n - 1] = w[n * n - 1]!;
  e[n - 1] = 0;
}

/**
 * Qᵀ = H_{n-3} ⋯ H_0 into `zt` (row-major), by backward accumulation M ← M H_k, k = n-3..0.
 * M = H_{n-3} ⋯ H_{k+1} differs from I only in the block [k+2.., k+2..] and v_k lives on
 * k+1..n-1, so each step touches that trailing block only. Reflectors are applied two at a time
 * (M ← M H_k H_{k-1}): one pass over each row computes both products M v and applies both
 * rank-1 updates, halving the traffic over M. `va` and `vb` are scratch vectors of n values.
 */
export function accumulateQt(
  w: Float64Array,
  n: number,
  beta: Float64Array,
  zt: Float64Array,
  va: Float64Array,
  vb: Float64Array,
  part = 0,
  parts = 1,
  kern: EighKernels = JS_KERNELS,
): void {
  // Rows are independent (M ← M H_k updates each row on its own): with parts > 1 this call
  // owns rows i ≡ part (mod parts), interleaved so that the growing trailing block stays balanced.
  const first = (lo: number) => lo + ((part - (lo % parts) + parts) % parts);
  for (let i = part; i < n; i += parts) {
    zt.fill(0, i * n, (i + 1) * n);
    zt[i * n + i] = 1;
  }
  let k = n - 3;
  for (; k >= 1; k -= 2) {
    // Pair (k, k-1); all work on rows/cols lo..n-1 with lo = k.
    const lo = k;
    va[lo] = 0;
    for (let j = lo + 1; j < n; j++) va[j] = w[k * n + j]!; // v_k (zero at index k)
    for (let j = lo; j < n; j++) vb[j] = w[(k - 1) * n + j]!; // v_{k-1}
    let vab = 0;
    for (let j = lo + 1; j < n; j++) vab += va[j]! * vb[j]!;
    kern.accumulatePair(zt, n, lo, va, vb, vab, beta[k]!, beta[k - 1]!, first(lo), parts);
  }
  if (k === 0 && beta[0]! !== 0) {
    // one reflector left over
    for (let j = 1; j < n; j++) va[j] = w[j]!;
    kern.accumulateSingle(zt, n, va, beta[0]!, first(1), parts);
  }
}

/**
 * The O(n²)-per-step loops of the solver, as functions of their arrays: the JS ones below are the
 * reference, and src/host/eigh-wasm.ts gives the same bits in WebAssembly SIMD (where the arrays
 * are views of its memory). Dot products keep two partial sums, of the even and of the odd terms
 * counted from the first index, added at the end: two float64 lanes do exactly that.
 */
export interface EighKernels {
  /**
   * Householder step k: p[j] += w[i,j]·v_i for k < i < j < n and p[i] += w[i,i]·v_i + Σ_{j>i}
   * w[i,j]·v_j, rows i = k+1.. in order, over w's upper triangle; v = row k of w.
   */
  symvUpper(w: Float64Array, n: number, k: number, p: Float64Array): void;
  /** w[i,j] −= v_i·p[j] + p[i]·v_j for k < i <= j < n; v = row k of w. */
  rank2Upper(w: Float64Array, n: number, k: number, p: Float64Array): void;
  /**
   * Rows i = i0, i0+step, … < n of zt, over columns lo..n-1: u = b1·(row·va),
   * y = b2·(row·vb − u·vab), then row −= u·va + y·vb.
   */
  accumulatePair(
    zt: Float64Array,
    n: number,
    lo: number,
    va: Float64Array,
    vb: Float64Array,
    vab: number,
    b1: number,
    b2: number,
    i0: number,
    step: number,
  ): void;
  /** Rows i = i0, i0+step, … < n of zt, over columns 1..n-1: row −= b·(row·va)·va (dot in sequence). */
  accumulateSingle(zt: Float64Array, n: number, va: Float64Array, b: number, i0: number, step: number): void;
  /**
   * Rotations i = hi down to lo, each on rows i and i+1 of zt over columns k0..k1-1 with
   * (c, s) = (cs[i + off], sn[i + off]): (row i, row i+1) ← (c·row i − s·row i+1, s·row i + c·row i+1).
   */
  rotationChain(zt: Float64Array, n: number, cs: Float64Array, sn: Float64Array, lo: number, hi: number, k0: number, k1: number, off: number): void;
}

// The JS kernels are typed by EighKernels, so each signature is written once, in the interface.
const symvUpperJs: EighKernels['symvUpper'] = (w, n, k, p) => {
  const rk = k * n;
  for (let i = k + 1; i < n; i++) {
    const ri = i * n;
    const vi = w[rk + i]!;
    let a0 = 0,
      a1 = 0;
    let j = i + 1;
    for (; j + 1 < n; j += 2) {
      const x0 = w[ri + j]!;
      const x1 = w[ri + j + 1]!;
      a0 += x0 * w[rk + j]!;
      a1 += x1 * w[rk + j + 1]!;
      p[j]! += x0 * vi;
      p[j + 1]! += x1 * vi;
    }
    if (j < n) {
      const x0 = w[ri + j]!;
      a0 += x0 * w[rk + j]!;
      p[j]! += x0 * vi;
    }
    p[i]! += w[ri + i]! * vi + (a0 + a1);
  }
};

const rank2UpperJs: EighKernels['rank2Upper'] = (w, n, k, p) => {
  const rk = k * n;
  for (let i = k + 1; i < n; i++) {
    const ri = i * n;
    const vi = w[rk + i]!;
    const qi = p[i]!;
    for (let j = i; j < n; j++) w[ri + j]! -= vi * p[j]! + qi * w[rk + j]!;
  }
};

const accumulatePairJs: EighKernels['accumulatePair'] = (zt, n, lo, va, vb, vab, b1, b2, i0, step) => {
  for (let i = i0; i < n; i += step) {
    const ri = i * n;
    let a0 = 0,
      a1 = 0,
      c0 = 0,
      c1 = 0;
    let j = lo;
    for (; j + 1 < n; j += 2) {
      const m0 = zt[ri + j]!;
      const m1 = zt[ri + j + 1]!;
      a0 += m0 * va[j]!;
      a1 += m1 * va[j + 1]!;
      c0 += m0 * vb[j]!;
      c1 += m1 * vb[j + 1]!;
    }
    if (j < n) {
      const m0 = zt[ri + j]!;
      a0 += m0 * va[j]!;
      c0 += m0 * vb[j]!;
    }
    const u = b1 * (a0 + a1);
    // (M − b1 u v_kᵀ) v_{k-1} = M v_{k-1} − b1 u (v_k·v_{k-1})
    const y = b2 * (c0 + c1 - u * vab);
    for (let jj = lo; jj < n; jj++) zt[ri + jj]! -= u * va[jj]! + y * vb[jj]!;
  }
};

const accumulateSingleJs: EighKernels['accumulateSingle'] = (zt, n, va, b, i0, step) => {
  for (let i = i0; i < n; i += step) {
    const ri = i * n;
    let acc = 0;
    for (let j = 1; j < n; j++) acc += zt[ri + j]! * va[j]!;
    const x = b * acc;
    for (let j = 1; j < n; j++) zt[ri + j]! -= x * va[j]!;
  }
};

/** √(a² + b²) without Math.hypot's vararg overhead; rescales only outside [1e-150, 1e150]. */
function hyp(a: number, b: number): number {
  const x = Math.abs(a);
  const y = Math.abs(b);
  const big = x > y ? x : y;
  if (big > 1e-150 && big < 1e150) return Math.sqrt(a * a + b * b);
  if (big === 0 || big === Infinity) return big;
  const u = x / big;
  const v = y / big;
  return big * Math.sqrt(u * u + v * v);
}

/**
 * Implicit QL with Wilkinson shifts on the tridiagonal (d, e). Eigenvalues overwrite d. When
 * `zt` is given, every rotation acting on indices (i, i+1) is applied to rows i and i+1 of zt.
 * (Perfect shifts, i.e. a values-only pass first and its eigenvalues as shifts, were measured
 * to apply 1.8n² rotations instead of 1.0n² here: forward instability keeps them from
 * deflating in one step, so plain Wilkinson shifts it is.)
 */
export function tridiagonalQL(
  d: Float64Array,
  e: Float64Array,
  n: number,
  zt: Float64Array | undefined,
  log?: RotationRecorder,
  kern: EighKernels = JS_KERNELS,
  cs: Float64Array = new Float64Array(n),
  sn: Float64Array = new Float64Array(n),
): void {
  let tnorm = 0;
  for (let i = 0; i < n; i++) tnorm = Math.max(tnorm, Math.abs(d[i]!) + Math.abs(e[i]!) + (i > 0 ? Math.abs(e[i - 1]!) : 0));
  // Off-diagonals below ε‖T‖ are negligible: dropping one perturbs T by no more than the
  // Householder reduction already did (backward stability, as EISPACK tql2). A tighter floor
  // (say ε²‖T‖) never deflates a cluster of numerically-zero eigenvalues — the rounding noise
  // of a rank-deficient Gram — and QL then stalls there.
  const floor = tnorm * EPS;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    for (;;) {
      // Find the first negligible off-diagonal at or after l: T splits there.
      let m = l;
      for (; m < n - 1; m++) {
        const em = Math.abs(e[m]!);
        if (em <= EPS * (Math.abs(d[m]!) + Math.abs(d[m + 1]!)) || em <= floor) break;
      }
      if (m === l) break; // d[l] has converged
      if (++iter > MAX_QL_ITER) {
        throw new Error(`symEig: QL did not converge for eigenvalue ${l} after ${MAX_QL_ITER} iterations`);
      }
      // Wilkinson shift from the leading 2×2 block of the unreduced block [l, m].
      const g0 = (d[l + 1]! - d[l]!) / (2 * e[l]!);
      const r0 = hyp(g0, 1);
      let g = d[m]! - d[l]! + e[l]! / (g0 + (g0 >= 0 ? r0 : -r0));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      let underflow = false;
      for (; i >= l; i--) {
        const f = s * e[i]!;
        const bb = c * e[i]!;
        const r = hyp(f, g);
        e[i + 1] = r;
        if (r === 0) {
          // the chase underflowed: finish this sweep early and retry
          d[i + 1]! -= p;
          e[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        const gg = d[i + 1]! - p;
        const rr = (d[i]! - gg) * s + 2 * c * bb;
        p = s * rr;
        d[i + 1] = gg + p;
        g = c * rr - bb;
        cs[i] = c;
        sn[i] = s;
      }
      if (zt) kern.rotationChain(zt, n, cs, sn, underflow ? i + 1 : l, m - 1, 0, n, 0);
      if (log) log.push(cs, sn, underflow ? i + 1 : l, m - 1);
      if (underflow) continue;
      d[l]! -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
}

/**
 * Applies the rotations of one QL sweep, i = hi, hi-1, …, lo in that order, each to rows i and
 * i+1 of zt: (row i, row i+1) ← (c·row i − s·row i+1, s·row i + c·row i+1).
 * Four consecutive rotations are fused into one pass over the columns: the row shared by
 * neighbouring rotations stays in a register, so each group loads and stores 5 rows instead of
 * 8 (about 2x faster in V8 than one rotation per pass).
 */
const rotationChainJs: EighKernels['rotationChain'] = (zt, n, cs, sn, lo, hi, k0, k1, off) => {
  let i = hi;
  for (; i - 3 >= lo; i -= 4) {
    const o = i + off; // the (c, s) of rotation (i, i+1)
    const c0 = cs[o]!,
      s0 = sn[o]!,
      c1 = cs[o - 1]!,
      s1 = sn[o - 1]!;
    const c2 = cs[o - 2]!,
      s2 = sn[o - 2]!,
      c3 = cs[o - 3]!,
      s3 = sn[o - 3]!;
    const r4 = (i + 1) * n,
      r3 = r4 - n,
      r2 = r3 - n,
      r1 = r2 - n,
      r0 = r1 - n;
    for (let k = k0; k < k1; k++) {
      let t = zt[r4 + k]!; // carried row: the lower row of the current rotation
      let z = zt[r3 + k]!;
      zt[r4 + k] = s0 * z + c0 * t;
      t = c0 * z - s0 * t;
      z = zt[r2 + k]!;
      zt[r3 + k] = s1 * z + c1 * t;
      t = c1 * z - s1 * t;
      z = zt[r1 + k]!;
      zt[r2 + k] = s2 * z + c2 * t;
      t = c2 * z - s2 * t;
      z = zt[r0 + k]!;
      zt[r1 + k] = s3 * z + c3 * t;
      zt[r0 + k] = c3 * z - s3 * t;
    }
  }
  for (; i >= lo; i--) {
    const c = cs[i + off]!;
    const s = sn[i + off]!;
    const ri = i * n;
    const rj = ri + n;
    for (let k = k0; k < k1; k++) {
      const zi = zt[ri + k]!;
      const zj = zt[rj + k]!;
      zt[rj + k] = s * zi + c * zj;
      zt[ri + k] = c * zi - s * zj;
    }
  }
};

/** The reference kernels (plain JS). */
export const JS_KERNELS: EighKernels = {
  symvUpper: symvUpperJs,
  rank2Upper: rank2UpperJs,
  accumulatePair: accumulatePairJs,
  accumulateSingle: accumulateSingleJs,
  rotationChain: rotationChainJs,
};

/**
 * The Givens rotations of a QL run in the order they were made: sweep t rotates (i, i+1) for
 * i = hi[t] down to lo[t], with cosines/sines c/s[at[t] + (i − lo[t])]. Recorded by a values-only
 * run, they are replayed on column blocks of the vectors by several threads at once.
 */
export interface RotationLog {
  sweeps: number;
  lo: Int32Array;
  hi: Int32Array;
  at: Float64Array;
  c: Float64Array;
  s: Float64Array;
}

export class RotationRecorder {
  sweeps = 0;
  used = 0;
  lo = new Int32Array(64);
  hi = new Int32Array(64);
  at = new Float64Array(64);
  c = new Float64Array(1024);
  s = new Float64Array(1024);

  push(cs: Float64Array, sn: Float64Array, lo: number, hi: number): void {
    if (hi < lo) return;
    const len = hi - lo + 1;
    if (this.sweeps === this.lo.length) {
      this.lo = grow(this.lo, 2 * this.sweeps);
      this.hi = grow(this.hi, 2 * this.sweeps);
      this.at = grow(this.at, 2 * this.sweeps);
    }
    if (this.used + len > this.c.length) {
      const cap = Math.max(2 * this.c.length, this.used + len);
      this.c = grow(this.c, cap);
      this.s = grow(this.s, cap);
    }
    this.lo[this.sweeps] = lo;
    this.hi[this.sweeps] = hi;
    this.at[this.sweeps] = this.used;
    this.c.set(cs.subarray(lo, hi + 1), this.used);
    this.s.set(sn.subarray(lo, hi + 1), this.used);
    this.sweeps++;
    this.used += len;
  }

  log(): RotationLog {
    const t = this.sweeps;
    return {
      sweeps: t,
      lo: this.lo.slice(0, t),
      hi: this.hi.slice(0, t),
      at: this.at.slice(0, t),
      c: this.c.slice(0, this.used),
      s: this.s.slice(0, this.used),
    };
  }
}

function grow<T extends Int32Array | Float64Array>(a: T, cap: number): T {
  const b = new (a.constructor as new (n: number) => T)(cap);
  b.set(a);
  return b;
}

/** Indices of `d` sorted by value, descending (stable for ties). */
function descendingOrder(d: Float64Array): Int32Array {
  const idx = Array.from({ length: d.length }, (_, i) => i);
  idx.sort((x, y) => d[y]! - d[x]! || x - y);
  return Int32Array.from(idx);
}

function assertFinite(fn: string, amax: number): void {
  if (!Number.isFinite(amax)) {
    throw new IbgpuError('NON_FINITE', `${fn}: matrix contains NaN or ±Infinity`, 'remove or impute non-finite values before the eigensolve');
  }
}

/**
 * Eigenvalues (descending) and eigenvectors (column k of row-major `vectors` belongs to
 * values[k]) of the symmetric n×n row-major matrix `a`, in float64. Uses (A + Aᵀ)/2.
 */
export function symEig(a: ArrayLike<number>, n: number): SymEigResult {
  checkInput('symEig', a, n);
  return symEigWith(a, n, eighWorkspace(n), JS_KERNELS);
}

/**
 * The arrays symEig works in: w and zt n×n, the others n long (their contents on entry do not
 * matter). The WebAssembly kernels need them in their own memory (src/host/eigh-wasm.ts).
 */
export interface EighWorkspace {
  w: Float64Array;
  zt: Float64Array;
  p: Float64Array;
  vb: Float64Array;
  cs: Float64Array;
  sn: Float64Array;
}

export function eighWorkspace(n: number): EighWorkspace {
  const v = () => new Float64Array(n);
  return { w: new Float64Array(n * n), zt: new Float64Array(n * n), p: v(), vb: v(), cs: v(), sn: v() };
}

/** symEig in the workspace `ws` with the kernels `kern` (the same bits whichever kernels give them). */
export function symEigWith(a: ArrayLike<number>, n: number, ws: EighWorkspace, kern: EighKernels): SymEigResult {
  checkInput('symEig', a, n);
  const { w, amax } = symmetrisedUpper(a, n, ws.w);
  assertFinite('symEig', amax);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  if (amax === 0) {
    // zero matrix: any orthonormal basis; the identity is the natural one
    for (let i = 0; i < n; i++) vectors[i * n + i] = 1;
    return { values, vectors };
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const beta = new Float64Array(n);
  tridiagonalise(w, n, d, e, beta, ws.p, kern);
  accumulateQt(w, n, beta, ws.zt, ws.p, ws.vb, 0, 1, kern);
  tridiagonalQL(d, e, n, ws.zt, undefined, kern, ws.cs, ws.sn);
  return assembleEigenpairs(d, ws.zt, n, values, vectors);
}

/** Sorts the QL eigenvalues `d` descending and transposes the matching rows of `zt` into columns. */
function assembleEigenpairs(
  d: Float64Array,
  zt: Float64Array,
  n: number,
  values: Float64Array = new Float64Array(n),
  vectors: Float64Array = new Float64Array(n * n),
): SymEigResult {
  const order = descendingOrder(d);
  for (let k = 0; k < n; k++) {
    const src = order[k]!;
    values[k] = d[src]!;
    const rs = src * n;
    for (let i = 0; i < n; i++) vectors[i * n + k] = zt[rs + i]!;
  }
  return { values, vectors };
}

// ------------------------------------------------------------------ symEig in phases
//
// symEig's O(n³) vector work splits across threads with no communication inside a phase:
//   reduce      (one thread)  Householder tridiagonalisation, then QL on values only with
//                             every rotation logged — O(n³) for the reduction, O(n²) for QL;
//   accumulate  (each part)   Qᵀ's rows i ≡ part (mod parts) — rows are independent;
//   rotate      (each part)   the logged rotations replayed on a block of Qᵀ's columns —
//                             columns are independent;
//   assemble    (one thread)  sort and transpose.
// Every element sees the same operations in the same order as in symEig, so the result is
// bit-identical to symEig's whatever the number of parts (tested).

export interface ReducedEig {
  n: number;
  /** Eigenvalues in QL order (unsorted). */
  d: Float64Array;
  /** Householder vectors (rows of the reduced working matrix) and their scales. */
  w: Float64Array;
  beta: Float64Array;
  rotations: RotationLog;
}

/** Phase 1: the reduction; `done` instead when the matrix is zero (nothing more to do). */
export function symEigReduce(a: ArrayLike<number>, n: number): { reduced: ReducedEig } | { done: SymEigResult } {
  checkInput('symEig', a, n);
  return symEigReduceWith(a, n, { w: new Float64Array(n * n), p: new Float64Array(n) }, JS_KERNELS);
}

/** symEigReduce in the workspace `ws` (only w and p are used) with the kernels `kern`. */
export function symEigReduceWith(
  a: ArrayLike<number>,
  n: number,
  ws: Pick<EighWorkspace, 'w' | 'p'>,
  kern: EighKernels,
): { reduced: ReducedEig } | { done: SymEigResult } {
  checkInput('symEig', a, n);
  const { w, amax } = symmetrisedUpper(a, n, ws.w);
  assertFinite('symEig', amax);
  if (amax === 0) {
    const vectors = new Float64Array(n * n);
    for (let i = 0; i < n; i++) vectors[i * n + i] = 1;
    return { done: { values: new Float64Array(n), vectors } };
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const beta = new Float64Array(n);
  tridiagonalise(w, n, d, e, beta, ws.p, kern);
  const log = new RotationRecorder();
  tridiagonalQL(d, e, n, undefined, log);
  // Other kernels' workspaces are theirs (a WebAssembly memory): the result takes a copy.
  return { reduced: { n, d, w: kern === JS_KERNELS ? w : w.slice(), beta, rotations: log.log() } };
}

/** Phase 2, part `part` of `parts`: rows i ≡ part (mod parts) of Qᵀ into `zt` (n×n, shared). */
export function symEigAccumulate(r: ReducedEig, zt: Float64Array, part: number, parts: number): void {
  const n = r.n;
  accumulateQt(r.w, n, r.beta, zt, new Float64Array(n), new Float64Array(n), part, parts);
}

/** Column block `part` of `parts` (multiples of 8 wide, so threads never share a cache line). */
export function columnBlock(n: number, part: number, parts: number): [number, number] {
  const edge = (p: number) => Math.min(n, Math.ceil((n * p) / parts / 8) * 8);
  return [edge(part), edge(part + 1)];
}

/** Phase 3, part `part` of `parts`: the logged rotations on column block `part` of `zt`. */
export function symEigRotate(r: ReducedEig, zt: Float64Array, part: number, parts: number): void {
  const [k0, k1] = columnBlock(r.n, part, parts);
  if (k1 <= k0) return;
  const { sweeps, lo, hi, at, c, s } = r.rotations;
  const n = r.n;
  // Sweep t's rotation (i, i+1) has its (c, s) at at[t] + i − lo[t].
  for (let t = 0; t < sweeps; t++) rotationChainJs(zt, n, c, s, lo[t]!, hi[t]!, k0, k1, at[t]! - lo[t]!);
}

/** Phase 4: sorted eigenpairs from the reduction and the finished `zt`. */
export function symEigAssemble(r: ReducedEig, zt: Float64Array): SymEigResult {
  return assembleEigenpairs(r.d, zt, r.n);
}

/** Eigenvalues only (descending) of the symmetric n×n row-major `a`; much cheaper than symEig. */
export function symEigValues(a: ArrayLike<number>, n: number): Float64Array {
  checkInput('symEigValues', a, n);
  return symEigValuesWith(a, n, { w: new Float64Array(n * n), p: new Float64Array(n) }, JS_KERNELS);
}

/** symEigValues in the workspace `ws` (only w and p are used) with the kernels `kern` (the same bits whichever kernels give them). */
export function symEigValuesWith(a: ArrayLike<number>, n: number, ws: Pick<EighWorkspace, 'w' | 'p'>, kern: EighKernels): Float64Array {
  checkInput('symEigValues', a, n);
  const { w, amax } = symmetrisedUpper(a, n, ws.w);
  assertFinite('symEigValues', amax);
  if (amax === 0) return new Float64Array(n);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const beta = new Float64Array(n);
  tridiagonalise(w, n, d, e, beta, ws.p, kern);
  tridiagonalQL(d, e, n, undefined);
  const order = descendingOrder(d);
  const values = new Float64Array(n);
  for (let k = 0; k < n; k++) values[k] = d[order[k]!]!;
  return values;
}
