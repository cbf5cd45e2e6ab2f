// How good an eigendecomposition is, whatever computed it: the tests of the GPU solver with its
// float64 refinement (test/eigh.test.ts) and of the host WebAssembly solver (test/eigh-wasm.test.ts)
// hold these two numbers to their own bounds.

/**
 * For a symmetric n × n `a` (row-major) and eigenpairs (values, vectors with eigenvector k in
 * column k): the residual ‖AV − VΛ‖_F / ‖A‖_F (‖AV − VΛ‖_F itself when A = 0) and the loss of
 * orthogonality max |VᵀV − I|.
 */
export function eigQuality(a: Float64Array, n: number, values: Float64Array, vectors: Float64Array): { res: number; orth: number } {
  let r2 = 0;
  let a2 = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += a[i * n + j]! * vectors[j * n + k]!;
      r2 += (s - values[k]! * vectors[i * n + k]!) ** 2;
      a2 += a[i * n + k]! ** 2;
    }
  }
  let orth = 0;
  for (let k = 0; k < n; k++)
    for (let l = k; l < n; l++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += vectors[i * n + k]! * vectors[i * n + l]!;
      orth = Math.max(orth, Math.abs(s - (k === l ? 1 : 0)));
    }
  return { res: Math.sqrt(r2) / (a2 > 0 ? Math.sqrt(a2) : 1), orth };
}
