// The 8×4 output block of the edge kernels (edges_squared, edges_squared_delta, edges_functional),
// spliced by `//!include edge_block.wgsl`. Uses the including shader's `WG`, bindings `fhat`
// (rows × R4/4 vec4), `at` (H × RO8/4 vec4: Aᵀ), `bt` (H × R4/4 vec4: Bᵀ), `part`
// (chunks × RO × R f32) and `params` { rows, r, ro, r4, ro8, chunk_rows, blocks_j }.
// A block of J̃ (or of edge terms) is array<vec4<f32>, 8>: entry t holds row i0 + t, columns
// j0..j0+3. The helpers below index it by constants only (written out, not looped), so that
// llvmpipe keeps the block in registers rather than in indexed local memory.
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

// add_jacobian_term: one h term of J̃ = Σ_h A_ih g_h B_jh on task w's block,
//   j[t] += A_{i0+t, h} · (g · B_{j0..j0+3, h}),
// which loads two vec4 of Aᵀ and one of Bᵀ for eight vec4 multiply-adds. Both the plain sum
// (edge_jacobian.wgsl, g = g_h(n)) and the running sum of edges_squared_delta (g = Δg_h) are
// made of these terms, so they round alike.
fn add_jacobian_term(j: ptr<function, array<vec4<f32>, 8>>, h: u32, g: f32, w: EdgeTask) {
  let a = at[h * w.ro_v + 2u * w.bi];
  let c = at[h * w.ro_v + 2u * w.bi + 1u];
  let b = bt[h * w.r_v + w.bj] * g;
  (*j)[0] += a.x * b;
  (*j)[1] += a.y * b;
  (*j)[2] += a.z * b;
  (*j)[3] += a.w * b;
  (*j)[4] += c.x * b;
  (*j)[5] += c.y * b;
  (*j)[6] += c.z * b;
  (*j)[7] += c.w * b;
}

// edge_factors: J̃_ij(n) · f̂_j(n) on the block, with f̂ read at input row `row`.
fn edge_factors(j: array<vec4<f32>, 8>, row: u32, w: EdgeTask) -> array<vec4<f32>, 8> {
  let f = fhat[row * w.r_v + w.bj];
  return array<vec4<f32>, 8>(j[0] * f, j[1] * f, j[2] * f, j[3] * f, j[4] * f, j[5] * f, j[6] * f, j[7] * f);
}

// add_squares: e += v² entrywise (the squared edges' per-row term).
fn add_squares(e: ptr<function, array<vec4<f32>, 8>>, v: array<vec4<f32>, 8>) {
  (*e)[0] += v[0] * v[0];
  (*e)[1] += v[1] * v[1];
  (*e)[2] += v[2] * v[2];
  (*e)[3] += v[3] * v[3];
  (*e)[4] += v[4] * v[4];
  (*e)[5] += v[5] * v[5];
  (*e)[6] += v[6] * v[6];
  (*e)[7] += v[7] * v[7];
}
