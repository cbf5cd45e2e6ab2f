// The 8×4 output block of the edge kernels (edges_squared, edges_squared_delta, edges_functional),
// spliced by `//!include edge_block.wgsl`. Uses the including shader's binding `part`
// (chunks × RO × R f32) and `params` { ro, r }. Invocation (bi, bj) of chunk `chunk` owns rows
// i0 = 8·bi .. i0+7 and columns 4·bj .. 4·bj+3 of that chunk's partial; padding rows and
// columns (i ≥ ro, j ≥ r) are not stored. With `accumulate` the block is added to what is there.
fn store_block(e: array<vec4<f32>, 8>, chunk: u32, bi: u32, bj: u32, accumulate: bool) {
  let base = chunk * params.ro * params.r;
  let i0 = bi * 8u;
  let jb = bj * 4u;
  for (var di = 0u; di < 8u; di++) {
    let i = i0 + di;
    if (i >= params.ro) { break; }
    let v = e[di];
    for (var dj = 0u; dj < 4u; dj++) {
      let j = jb + dj;
      if (j < params.r) {
        let o = base + i * params.r + j;
        if (accumulate) { part[o] = part[o] + v[dj]; } else { part[o] = v[dj]; }
      }
    }
  }
}
