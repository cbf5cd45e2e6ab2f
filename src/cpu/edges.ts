// Float64 reference of the squared-edge partials (shaders/edges_squared.wgsl and
// edges_squared_delta.wgsl): the test oracle and the doctor's check.

/**
 * Over the rows listed in `rows` (in that order): sum[i, j] = Σ_n (Σ_h A_ih g_nh B_jh · f_nj)²,
 * and abs[i, j] = Σ_n (Σ_h |A_ih g_nh B_jh| · |f_nj|)², the scale rounding errors are measured
 * against. A is ro × h, B is r × h, f is N × r and g is N × h, all row-major.
 */
export function squaredEdgesF64(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  f: ArrayLike<number>,
  g: ArrayLike<number>,
  h: number,
  ro: number,
  r: number,
  rows: ArrayLike<number>,
): { sum: Float64Array; abs: Float64Array } {
  const sum = new Float64Array(ro * r);
  const abs = new Float64Array(ro * r);
  for (let t = 0; t < rows.length; t++) {
    const n = rows[t]!;
    for (let i = 0; i < ro; i++) {
      for (let j = 0; j < r; j++) {
        let J = 0;
        let Jabs = 0;
        for (let k = 0; k < h; k++) {
          const v = A[i * h + k]! * g[n * h + k]! * B[j * h + k]!;
          J += v;
          Jabs += Math.abs(v);
        }
        sum[i * r + j]! += (J * f[n * r + j]!) ** 2;
        abs[i * r + j]! += (Jabs * f[n * r + j]!) ** 2;
      }
    }
  }
  return { sum, abs };
}
