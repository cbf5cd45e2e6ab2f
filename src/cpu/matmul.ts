// Float64 reference for batched matmul: C[b] = alpha * op(A[b]) @ op(B[b]) (+ beta * C[b]).
// Same semantics as src/kernels/matmul.ts (row-major, optional transposes, batch strides in
// elements, stride 0 broadcasts an operand). Also the CPU baseline in bench/matmul.bench.ts and the
// host-side linear algebra of the pipeline, so it is register-blocked (4×4) over contiguous f64
// copies of op(A) and op(B).

/** The shape of a (batched) product; the GPU kernel (src/kernels/matmul.ts) takes the same one. */
export interface MatmulShape {
  /** Number of independent products (default 1). */
  batch?: number;
  /** op(A) is m x k, op(B) is k x n, C is m x n. */
  m: number;
  n: number;
  k: number;
  /** A is stored k x m (op(A) = Aᵀ). */
  transA?: boolean;
  /** B is stored n x k (op(B) = Bᵀ). */
  transB?: boolean;
  alpha?: number;
  /** When non-zero, C is read and beta * C is added; when 0 (default), C is write-only. */
  beta?: number;
  /** Elements between consecutive batch matrices; default dense (m*k, k*n, m*n). 0 broadcasts A or B. */
  strideA?: number;
  strideB?: number;
  strideC?: number;
}

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
  const ad = new Float64Array(m * k); // op(A[z]) as dense m x k
  const acc = new Float64Array(n);
  let lastB = -1;
  for (let z = 0; z < batch; z++) {
    const ob = z * strideB;
    if (ob !== lastB) {
      // broadcast B (stride 0) is unpacked once
      for (let q = 0; q < k; q++) {
        for (let j = 0; j < n; j++) bt[q * n + j] = transB ? b[ob + j * k + q]! : b[ob + q * n + j]!;
      }
      lastB = ob;
    }
    const oa = z * strideA;
    for (let i = 0; i < m; i++) for (let q = 0; q < k; q++) ad[i * k + q] = transA ? a[oa + q * m + i]! : a[oa + i * k + q]!;
    const o = z * m * n;
    // 4×4 register blocks: per q, 4 loads of op(A) and 4 of op(B) feed 16 multiply-adds held in
    // locals (V8 keeps them unboxed in registers), ~3x the i-k-j loop's throughput.
    const m4 = m - (m % 4);
    const n4 = n - (n % 4);
    for (let i = 0; i < m4; i += 4) {
      const r0 = i * k,
        r1 = r0 + k,
        r2 = r1 + k,
        r3 = r2 + k;
      for (let j = 0; j < n4; j += 4) {
        let c00 = 0,
          c01 = 0,
          c02 = 0,
          c03 = 0,
          c10 = 0,
          c11 = 0,
          c12 = 0,
          c13 = 0;
        let c20 = 0,
          c21 = 0,
          c22 = 0,
          c23 = 0,
          c30 = 0,
          c31 = 0,
          c32 = 0,
          c33 = 0;
        for (let q = 0, bq = j; q < k; q++, bq += n) {
          const b0 = bt[bq]!,
            b1 = bt[bq + 1]!,
            b2 = bt[bq + 2]!,
            b3 = bt[bq + 3]!;
          const a0 = ad[r0 + q]!,
            a1 = ad[r1 + q]!,
            a2 = ad[r2 + q]!,
            a3 = ad[r3 + q]!;
          c00 += a0 * b0;
          c01 += a0 * b1;
          c02 += a0 * b2;
          c03 += a0 * b3;
          c10 += a1 * b0;
          c11 += a1 * b1;
          c12 += a1 * b2;
          c13 += a1 * b3;
          c20 += a2 * b0;
          c21 += a2 * b1;
          c22 += a2 * b2;
          c23 += a2 * b3;
          c30 += a3 * b0;
          c31 += a3 * b1;
          c32 += a3 * b2;
          c33 += a3 * b3;
        }
        const p = o + i * n + j;
        out[p] = c00;
        out[p + 1] = c01;
        out[p + 2] = c02;
        out[p + 3] = c03;
        out[p + n] = c10;
        out[p + n + 1] = c11;
        out[p + n + 2] = c12;
        out[p + n + 3] = c13;
        out[p + 2 * n] = c20;
        out[p + 2 * n + 1] = c21;
        out[p + 2 * n + 2] = c22;
        out[p + 2 * n + 3] = c23;
        out[p + 3 * n] = c30;
        out[p + 3 * n + 1] = c31;
        out[p + 3 * n + 2] = c32;
        out[p + 3 * n + 3] = c33;
      }
    }
    // Edges: the last m % 4 rows (all columns) and the last n % 4 columns of the blocked rows,
    // by the i-k-j loop.
    for (let i = 0; i < m; i++) {
      const j0 = i < m4 ? n4 : 0;
      if (j0 >= n) continue;
      acc.fill(0, j0);
      const ri = i * k;
      for (let q = 0; q < k; q++) {
        const aiq = ad[ri + q]!;
        if (aiq === 0) continue;
        const row = q * n;
        for (let j = j0; j < n; j++) acc[j]! += aiq * bt[row + j]!;
      }
      for (let j = j0; j < n; j++) out[o + i * n + j] = acc[j]!;
    }
    if (alpha !== 1 || beta !== 0) {
      for (let i = 0; i < m; i++) {
        const oc = z * strideC + i * n;
        for (let j = 0; j < n; j++) {
          const t = o + i * n + j;
          out[t] = alpha * out[t]! + (beta !== 0 ? beta * c![oc + j]! : 0);
        }
      }
    }
  }
  return out;
}

/**
 * Per-element error scale for an f32 product: sum_q |op(A)_iq| |op(B)_qj| (times |alpha|),
 * plus |beta C_ij|. Tests bound |gpu - ref| by a multiple of k * 2^-24 times this.
 */
export function matmulAbsF64(a: ArrayLike<number>, b: ArrayLike<number>, shape: MatmulShape, c?: ArrayLike<number>): Float64Array {
  const abs = (x: ArrayLike<number>): Float64Array => Float64Array.from(x, Math.abs);
  return matmulF64(abs(a), abs(b), { ...shape, alpha: Math.abs(shape.alpha ?? 1), beta: Math.abs(shape.beta ?? 0) }, c ? abs(c) : undefined);
}
