// edges_functional: per-batch partial sums of rib's legacy `functional` edges for one section and
// one integration point α_k (SPEC §5.3):
//   J̃_ij(n) = Σ_h A_ih g_h(n) B_jh           (w_k · ∂F̂_i/∂u_j at α_k u, u = f̂(x_n))
//   part[c, i, j] (+)= Σ_{n in chunk c} s_i(n) · J̃_ij(n) · f̂_j(n)
// where A = C^{ℓ+1,T} (out-basis rows over the section's folded outputs h), g_h = w_k σ'(α_k p'_h)
// at the projected pre-activation p', B = C^{ℓ+} W̄, and s(n) = F̂(u) − F̂(α_k u) (the output
// difference in the out basis). The host multiplies the sum over points and chunks by 2/N.
//
// Bindings (@group(0)):
//   0 fhat   : array<vec4<f32>> read-only, rows × R4/4   (f̂, columns zero-padded to R4)
//   1 gates  : array<f32>       read-only, rows × H      (g for this point, weight included)
//   2 s      : array<vec4<f32>> read-only, rows × RO8/4  (F̂(u) − F̂(α_k u), zero-padded to RO8)
//   3 at     : array<vec4<f32>> read-only, H × RO8/4     (Aᵀ, columns zero-padded to RO8)
//   4 bt     : array<vec4<f32>> read-only, H × R4/4      (Bᵀ, zero-padded columns)
//   5 part   : array<f32>       read-write, chunks × RO × R
//   6 params : uniform { rows, r, ro, h, r4, ro8, chunk_rows, blocks_j, accumulate }
// Each invocation owns an 8×4 block (i0..i0+7, j0..j0+3) and one chunk of rows, with no
// workgroup memory and no barriers (CPU adapters run invocations as coroutines). accumulate = 1
// adds to part (one dispatch per integration point into the same partials).
// Dispatch: x = ceil(blocks / WG) with blocks = (RO8/8)·(R4/4), y = number of row chunks.
// Loop budget: chunk_rows · (H + 1) iterations per invocation; the wrapper keeps it below
// engine.loopBudget (llvmpipe stops loops silently after 65535).
// Numerics: f32 inside a chunk; chunks are summed on the host in f64. The terms are signed, so
// unlike squared edges the partial sums can cancel; chunks stay short to bound that error.
// Rows with g_h = 0 (inactive ReLUs) skip the h term: g depends only on (n, h), so the branch is
// uniform across the workgroup.

struct Params { rows: u32, r: u32, ro: u32, h: u32, r4: u32, ro8: u32, chunk_rows: u32, blocks_j: u32, accumulate: u32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> fhat: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> at: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bt: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

//!include edge_block.wgsl
//!include edge_jacobian.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = edge_task(wid, lid);
  if (!w.ok) { return; }
  var e = array<vec4<f32>, 8>();
  for (var n = w.n0; n < w.n1; n++) {
    let v = edge_factors(jacobian_block(n, w), n, w);
    let sa = s[n * w.ro_v + 2u * w.bi];
    let sb = s[n * w.ro_v + 2u * w.bi + 1u];
    e[0] += v[0] * sa.x;
    e[1] += v[1] * sa.y;
    e[2] += v[2] * sa.z;
    e[3] += v[3] * sa.w;
    e[4] += v[4] * sb.x;
    e[5] += v[5] * sb.y;
    e[6] += v[6] * sb.z;
    e[7] += v[7] * sb.w;
  }
  store_block(e, w.chunk, w.bi, w.bj, params.accumulate == 1u);
}
