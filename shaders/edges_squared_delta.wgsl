// edges_squared_delta: rib's squared-edge partials (SPEC §5.2, §5.8) for sections with
// two-valued gates (ReLU), with the Jacobian carried from one visited row to the next:
//   J̃_ij(n) = Σ_h A_ih g_h(n) B_jh = J̃_ij(prev) + Σ_{h changed} A_ih (g_h(n) − g_h(prev)) B_jh
//   part[c, i, j] = Σ_{visited n in chunk c} (J̃_ij(n) · f̂_j(n))²
// Same quantities as edges_squared.wgsl; only the gates that changed cost work. The host visits
// each batch in sign-pattern order (ib/gate-order.ts) and lists, per visited row, the changed
// gates as (h, Δg) pairs; a row marked `fresh` lists every nonzero gate and restarts J̃ from zero.
// The host marks the first row of every chunk fresh (chunks are independent invocations) and
// every `reset`-th row, which bounds the running sum's f32 drift.
//
// Bindings (@group(0)):
//   0 fhat    : array<vec4<f32>> read-only, rows × R4/4   (f̂, columns zero-padded to R4)
//   1 at      : array<vec4<f32>> read-only, H × RO8/4     (Aᵀ, columns zero-padded to RO8)
//   2 bt      : array<vec4<f32>> read-only, H × R4/4      (Bᵀ, zero-padded columns)
//   3 part    : array<f32>       read-write, chunks × RO × R
//   4 params  : uniform { rows, r, ro, r4, ro8, chunk_rows, blocks_j }
//   5 visits  : array<Visit>     read-only, rows          (visiting order: row, its change list, fresh)
//   6 changes : array<Change>    read-only, Σ list lengths (h, Δg)
// Each invocation owns an 8×4 block (i0..i0+7, j0..j0+3) and one chunk of visited rows; no
// workgroup memory and no barriers (fast on CPU adapters; on GPUs the chunks give the
// parallelism). Per listed change it loads two vec4 of Aᵀ and one of Bᵀ for eight vec4
// multiply-adds. Loop trip counts are uniform across the workgroup (they depend only on n).
// Dispatch: x = ceil(blocks / WG) with blocks = (RO8/8)·(R4/4), y = number of row chunks.
// Numerics: f32 throughout. After s changes since its last fresh row a running J̃ carries at most
// ~s·u·Σ|terms| of rounding (u = 2⁻²⁴); per-chunk sums are summed on the host in f64.

struct Params { rows: u32, r: u32, ro: u32, r4: u32, ro8: u32, chunk_rows: u32, blocks_j: u32 }
struct Visit { row: u32, first: u32, count: u32, fresh: u32 }
struct Change { h: u32, dg: f32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> fhat: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> at: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> visits: array<Visit>;
@group(0) @binding(6) var<storage, read> changes: array<Change>;

//!include edge_block.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let w = edge_task(wid, lid);
  if (!w.ok) { return; }
  var e = array<vec4<f32>, 8>();
  var j = array<vec4<f32>, 8>(); // the running J̃ of the block
  for (var n = w.n0; n < w.n1; n++) {
    let v = visits[n];
    if (v.fresh != 0u) { j = array<vec4<f32>, 8>(); }
    for (var t = v.first; t < v.first + v.count; t++) {
      let ch = changes[t];
      add_jacobian_term(&j, ch.h, ch.dg, w);
    }
    add_squares(&e, edge_factors(j, v.row, w));
  }
  store_block(e, w.chunk, w.bi, w.bj, false);
}
