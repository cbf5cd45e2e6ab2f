// edges_squared: per-batch partial sums of rib's squared edges for one section (SPEC §5.2, §5.8):
//   J̃_ij(n) = Σ_h A_ih g_h(n) B_jh          (∂f̂^{ℓ+1}_i / ∂f̂^ℓ_j at datapoint n; shaders/include/edge_jacobian.wgsl)
//   part[c, i, j] = Σ_{n in chunk c} (J̃_ij(n) · f̂_j(n))²
// where A = C^{ℓ+1,T} (out-basis rows over the section's folded outputs h), g the integrated
// activation derivative at the projected point, B = C^{ℓ+} W̄ (input-basis rows over h).
// The plain per-row sum, for smooth and identity activations; ReLU sections take
// edges_squared_delta.wgsl, which carries J̃ between rows and pays only for switched gates.
//
// Bindings (@group(0)):
//   0 fhat   : array<vec4<f32>> read-only, rows × R4/4   (f̂, columns zero-padded to R4)
//   1 gates  : array<f32>       read-only, rows × H
//   2 at     : array<vec4<f32>> read-only, H × RO8/4     (Aᵀ, columns zero-padded to RO8)
//   3 bt     : array<vec4<f32>> read-only, H × R4/4      (Bᵀ, zero-padded columns)
//   4 part   : array<f32>       read-write, chunks × RO × R
//   5 params : uniform { rows, r, ro, h, r4, ro8, chunk_rows, blocks_j }
// Each invocation owns an 8×4 block (i0..i0+7, j0..j0+3) and one chunk of rows; no workgroup
// memory and no barriers (fast on CPU adapters; on GPUs the chunks give the parallelism). Per
// (n, h) it loads two vec4 of Aᵀ and one of Bᵀ for eight vec4 multiply-adds.
// Dispatch: x = ceil(blocks / WG) with blocks = (RO8/8)·(R4/4), y = number of row chunks.
// Numerics: f32 throughout; per-chunk sums are short (chunk_rows) and chunks are summed on the
// host in f64. Rows with g_h = 0 (inactive ReLUs) skip the h term: the branch is uniform across
// the workgroup because g depends only on (n, h).

struct Params { rows: u32, r: u32, ro: u32, h: u32, r4: u32, ro8: u32, chunk_rows: u32, blocks_j: u32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> fhat: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read> at: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bt: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

//!include edge_block.wgsl
//!include edge_jacobian.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = edge_task(wid, lid);
  if (!w.ok) { return; }
  var e = array<vec4<f32>, 8>();
  for (var n = w.n0; n < w.n1; n++) { add_squares(&e, edge_factors(jacobian_block(n, w), n, w)); }
  store_block(e, w.chunk, w.bi, w.bj, false);
}
