// Float64 reference for batched matmul: C[b] = alpha * op(A[b]) @ op(B[b]) (+ beta * C[b]).
// Same semantics as src/kernels/matmul.ts (row-major, optional transposes, batch strides in
// elements, stride 0 broadcasts an operand). Also the CPU baseline in bench/matmul.bench.ts, so
// the loops are ordered i-k-j over a contiguous f64 copy of op(B): the innermost loop streams one
// row of op(B) and one row of the accumulator, which V8 keeps in cache and vectorises reasonably.

import type { MatmulShape } from '../kernels/matmul.js';

/** Returns batch * m * n values (dense, row-major). `c` is read only when shape.beta is non-zero. */
export function matmulF64(a: ArrayLike<number>, b: ArrayLike<number>, shape: MatmulShape, c?: ArrayLike<number>): Float64Array {
  const { m, n, k } = shape;
  const batch = shape.batch ?? 1;
  const transA = shape.transA ?? false;
  const transB = shape.transB ?? false;
  const alpha = shape.alpha ?? 1;
  const beta = shape.beta ?? 0;
  const strideA = shape.strideA ?? m * k;
  const strideB = shape.strideB ?? k * n;
  const strideC = shape.strideC ?? m * n;
  if (beta !== 0 && !c) throw new Error('matmulF64: beta != 0 needs the input C');
  const out = new Float64Array(batch * m * n);
  const bt = new Float64Array(k * n); // op(B[z]) as dense k x n
  const arow = new Float64Array(k); // row i of op(A[z])
  const acc = new Float64Array(n);
  let lastB = -1;
  for (let z = 0; z < batch; z++) {
    const ob = z * strideB;
    if (ob !== lastB) { // broadcast B (stride 0) is unpacked once
      for (let q = 0; q < k; q++) {
        for (let j = 0; j < n; j++) bt[q * n + j] = transB ? b[ob + j * k + q]! : b[ob + q * n + j]!;
      }
      lastB = ob;
    }
    const oa = z * strideA;
    for (let i = 0; i < m; i++) {
      for (let q = 0; q < k; q++) arow[q] = transA ? a[oa + q * m + i]! : a[oa + i * k + q]!;
      acc.fill(0);
      for (let q = 0; q < k; q++) {
        const aiq = arow[q]!;
        if (aiq === 0) continue;
        const row = q * n;
        for (let j = 0; j < n; j++) acc[j] += aiq * bt[row + j]!;
      }
      const o = (z * m + i) * n;
      const oc = z * strideC + i * n;
      for (let j = 0; j < n; j++) out[o + j] = alpha * acc[j]! + (beta !== 0 ? beta * c![oc + j]! : 0);
    }
  }
  return out;
}

/**
 * Per-element error scale for an f32 product: sum_q |op(A)_iq| |op(B)_qj| (times |alpha|),
 * plus |beta C_ij|. Tests bound |gpu - ref| by a multiple of k * 2^-24 times this.
 */
export function matmulAbsF64(a: ArrayLike<number>, b: ArrayLike<number>, shape: MatmulShape, c?: ArrayLike<number>): Float64Array {
  const abs = (x: ArrayLike<number>): Float64Array => Float64Array.from(x as ArrayLike<number>, Math.abs);
  return matmulF64(abs(a), abs(b), { ...shape, alpha: Math.abs(shape.alpha ?? 1), beta: Math.abs(shape.beta ?? 0) }, c ? abs(c) : undefined);
}
