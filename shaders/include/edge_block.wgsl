// The 8×4 output block of the edge kernels (edges_squared, edges_squared_delta, edges_functional),
// spliced by `//!include edge_block.wgsl`. Uses the including shader's `WG`, binding `part`
// (chunks × RO × R f32) and `params` { rows, r, ro, r4, ro8, chunk_rows, blocks_j }.
//
// edge_task: invocation lid of workgroup (wid.x, chunk = wid.y) owns block
// (bi, bj) = divmod(wid.x·WG + lid, blocks_j) of the (RO8/8) × blocks_j blocks and the rows
// n0 .. n1−1 of its chunk; ro_v = RO8/4 and r_v = R4/4 are the vec4 row strides of Aᵀ / Bᵀ / Ŝ
// and f̂. `ok` is false for the padding invocations of the last workgroup.
struct EdgeTask { ok: bool, bi: u32, bj: u32, chunk: u32, n0: u32, n1: u32, ro_v: u32, r_v: u32 }

fn edge_task(wid: vec3u, lid: u32) -> EdgeTask {
  let block = wid.x * WG + lid;
  let blocks_i = params.ro8 / 8u;
  if (block >= blocks_i * params.blocks_j) { return EdgeTask(false, 0u, 0u, 0u, 0u, 0u, 0u, 0u); }
  let n0 = wid.y * params.chunk_rows;
  return EdgeTask(true, block / params.blocks_j, block % params.blocks_j, wid.y, n0,
                  min(n0 + params.chunk_rows, params.rows), params.ro8 / 4u, params.r4 / 4u);
}

// store_block: Invocation (bi, bj) of chunk `chunk` owns rows
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
