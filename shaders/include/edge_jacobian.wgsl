// J̃ of one 8×4 block at one datapoint, for edges_squared and edges_functional, spliced by
// `//!include edge_jacobian.wgsl`. Uses the including shader's bindings `gates` (rows × H f32),
// `at` (H × RO8/4 vec4: Aᵀ), `bt` (H × R4/4 vec4: Bᵀ) and `params.h`:
//   result[t] = (J̃_{i0+t, j0..j0+3}(n)),  J̃_ij(n) = Σ_h A_ih g_h(n) B_jh,  i0 = 8·bi, j0 = 4·bj,
// summed over h in increasing order. Terms with g_h(n) = 0 (inactive ReLUs) are skipped; the
// branch is uniform across the workgroup because g depends only on (n, h).
// Loop length H per call (the caller's loop budget counts it).
fn jacobian_block(n: u32, bi: u32, bj: u32, ro_v: u32, r_v: u32) -> array<vec4<f32>, 8> {
  var j0 = vec4<f32>(0.0);
  var j1 = vec4<f32>(0.0);
  var j2 = vec4<f32>(0.0);
  var j3 = vec4<f32>(0.0);
  var j4 = vec4<f32>(0.0);
  var j5 = vec4<f32>(0.0);
  var j6 = vec4<f32>(0.0);
  var j7 = vec4<f32>(0.0);
  let grow = n * params.h;
  for (var h = 0u; h < params.h; h++) {
    let g = gates[grow + h];
    if (g != 0.0) {
      let a = at[h * ro_v + 2u * bi];
      let c = at[h * ro_v + 2u * bi + 1u];
      let b = bt[h * r_v + bj] * g;
      j0 += a.x * b;
      j1 += a.y * b;
      j2 += a.z * b;
      j3 += a.w * b;
      j4 += c.x * b;
      j5 += c.y * b;
      j6 += c.z * b;
      j7 += c.w * b;
    }
  }
  return array<vec4<f32>, 8>(j0, j1, j2, j3, j4, j5, j6, j7);
}
