// J̃ of one 8×4 block at one datapoint, for edges_squared and edges_functional, spliced by
// `//!include edge_jacobian.wgsl` after edge_block.wgsl (whose add_jacobian_term it sums). Uses
// the including shader's binding `gates` (rows × H f32) and `params.h`:
//   result[t] = (J̃_{i0+t, j0..j0+3}(n)),  J̃_ij(n) = Σ_h A_ih g_h(n) B_jh,  i0 = 8·bi, j0 = 4·bj,
// summed over h in increasing order. Terms with g_h(n) = 0 (inactive ReLUs) are skipped; the
// branch is uniform across the workgroup because g depends only on (n, h).
// Loop length H per call (the caller's loop budget counts it).
fn jacobian_block(n: u32, w: EdgeTask) -> array<vec4<f32>, 8> {
  // An explicit zero, not a bare `var`: this runs once per row when inlined into a row loop, and
  // SwiftShader has kept a loop-scoped bare var's old value (see gram_reg.wgsl).
  var j = array<vec4<f32>, 8>();
  let grow = n * params.h;
  for (var h = 0u; h < params.h; h++) {
    let g = gates[grow + h];
    if (g != 0.0) { add_jacobian_term(&j, h, g, w); }
  }
  return j;
}
