// edges_squared: per-batch partial sums of rib's squared edges for one section (SPEC §5.2, §5.8):
//   J̃_ij(n) = Σ_h A_ih g_h(n) B_jh          (∂f̂^{ℓ+1}_i / ∂f̂^ℓ_j at datapoint n)
//   part[c, i, j] = Σ_{n in chunk c} (J̃_ij(n) · f̂_j(n))²
// where A = C^{ℓ+1,T} (out-basis rows over the section's folded outputs h), g the integrated
// activation derivative at the projected point, B = C^{ℓ+} W̄ (input-basis rows over h).
//
// Bindings (@group(0)):
//   0 fhat   : array<vec4<f32>> read-only, rows × R4/4   (f̂, columns zero-padded to R4)
//   1 gates  : array<f32>       read-only, rows × H
//   2 at     : array<vec4<f32>> read-only, H × RO4/4     (Aᵀ, zero-padded columns)
//   3 bt     : array<vec4<f32>> read-only, H × R4/4      (Bᵀ, zero-padded columns)
//   4 part   : array<f32>       read-write, chunks × RO × R
//   5 params : uniform { rows, r, ro, h, r4, ro4, chunk_rows, blocks_j }
// Each invocation owns a 4×4 block (i0..i0+3, j0..j0+3) and one chunk of rows; no workgroup
// memory and no barriers (fast on CPU adapters; on GPUs the chunks give the parallelism).
// Dispatch: x = ceil(blocks / WG) with blocks = (RO4/4)·(R4/4), y = number of row chunks.
// Numerics: f32 throughout; per-chunk sums are short (chunk_rows) and chunks are summed on the
// host in f64. Rows with g_h = 0 (inactive ReLUs) skip the h term: the branch is uniform across
// the workgroup because g depends only on (n, h).

struct Params { rows: u32, r: u32, ro: u32, h: u32, r4: u32, ro4: u32, chunk_rows: u32, blocks_j: u32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> fhat: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read> at: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bt: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let block = wid.x * WG + lid;
  let blocks_i = params.ro4 / 4u;
  if (block >= blocks_i * params.blocks_j) { return; }
  let bi = block / params.blocks_j;
  let bj = block % params.blocks_j;
  let chunk = wid.y;
  let n0 = chunk * params.chunk_rows;
  let n1 = min(n0 + params.chunk_rows, params.rows);
  let ro_v = params.ro4 / 4u;
  let r_v = params.r4 / 4u;

  var e0 = vec4<f32>(0.0);
  var e1 = vec4<f32>(0.0);
  var e2 = vec4<f32>(0.0);
  var e3 = vec4<f32>(0.0);
  for (var n = n0; n < n1; n++) {
    var j0 = vec4<f32>(0.0);
    var j1 = vec4<f32>(0.0);
    var j2 = vec4<f32>(0.0);
    var j3 = vec4<f32>(0.0);
    let grow = n * params.h;
    for (var h = 0u; h < params.h; h++) {
      let g = gates[grow + h];
      if (g != 0.0) {
        let a = at[h * ro_v + bi];
        let b = bt[h * r_v + bj] * g;
        j0 += a.x * b;
        j1 += a.y * b;
        j2 += a.z * b;
        j3 += a.w * b;
      }
    }
    let f = fhat[n * r_v + bj];
    let t0 = j0 * f;
    let t1 = j1 * f;
    let t2 = j2 * f;
    let t3 = j3 * f;
    e0 += t0 * t0;
    e1 += t1 * t1;
    e2 += t2 * t2;
    e3 += t3 * t3;
  }
  let base = chunk * params.ro * params.r;
  let i0 = bi * 4u;
  let jb = bj * 4u;
  let rows = array<vec4<f32>, 4>(e0, e1, e2, e3);
  for (var di = 0u; di < 4u; di++) {
    let i = i0 + di;
    if (i >= params.ro) { break; }
    let v = rows[di];
    for (var dj = 0u; dj < 4u; dj++) {
      let j = jb + dj;
      if (j < params.r) { part[base + i * params.r + j] = v[dj]; }
    }
  }
}
