// Thin Householder QR in float64: A (m×n, m >= n, row-major) = Q (m×n, orthonormal columns) · R
// (n×n upper triangular). Used to shrink a tall low-rank eigenproblem B·X·Bᵀ to n×n without
// forming BᵀB (which would square its condition number).

export function thinQr(a: ArrayLike<number>, m: number, n: number): { q: Float64Array; r: Float64Array } {
  if (m < n) throw new Error(`thinQr needs m >= n (got ${m}x${n})`);
  const w = Float64Array.from(a); // overwritten by R above the diagonal and v below
  const vs: Float64Array[] = [];
  const betas = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let norm = 0;
    for (let i = j; i < m; i++) norm += w[i * n + j]! * w[i * n + j]!;
    norm = Math.sqrt(norm);
    const v = new Float64Array(m - j);
    if (norm === 0) {
      vs.push(v);
      betas[j] = 0;
      continue;
    }
    const x0 = w[j * n + j]!;
    const alpha = x0 >= 0 ? -norm : norm;
    for (let i = j; i < m; i++) v[i - j] = w[i * n + j]!;
    v[0] = x0 - alpha;
    let vnorm2 = 0;
    for (let i = 0; i < v.length; i++) vnorm2 += v[i]! * v[i]!;
    const beta = vnorm2 === 0 ? 0 : 2 / vnorm2;
    betas[j] = beta;
    vs.push(v);
    // Apply H = I − β v vᵀ to the trailing columns.
    for (let c = j; c < n; c++) {
      let s = 0;
      for (let i = j; i < m; i++) s += v[i - j]! * w[i * n + c]!;
      s *= beta;
      if (s !== 0) for (let i = j; i < m; i++) w[i * n + c]! -= s * v[i - j]!;
    }
  }
  const r = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) r[i * n + j] = w[i * n + j]!;
  // Q = H_0 H_1 … H_{n−1} applied to the first n columns of the identity, from the right end.
  const q = new Float64Array(m * n);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  for (let j = n - 1; j >= 0; j--) {
    const v = vs[j]!;
    const beta = betas[j]!;
    if (beta === 0) continue;
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let i = j; i < m; i++) s += v[i - j]! * q[i * n + c]!;
      s *= beta;
      if (s !== 0) for (let i = j; i < m; i++) q[i * n + c]! -= s * v[i - j]!;
    }
  }
  return { q, r };
}
