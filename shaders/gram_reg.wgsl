// gram_reg: upper triangle of the batch Gram  G[i, j] (+)= Σ_r (x[r, i] − s[i]) (x[r, j] − s[j]),
// register-blocked and barrier-free (the variant for CPU adapters such as llvmpipe).
//
// Bindings (@group(0)):
//   0 x      : array<f32>  read-only; row r of the batch starts at base + r * d (row-major rows×d)
//   1 shift  : array<f32>  read-only, length >= d when SHIFTED (any small buffer otherwise)
//   2 out    : array<f32>  read-write d×d row-major; only entries with i <= j are written
//   3 params : uniform { rows, d, base, ntiles, npairs, chunk }
// Overrides: WG (invocations per workgroup, a multiple of 4; tile T = 4*WG), SHIFTED (0/1),
//   ACCUMULATE (0: out = G, 1: out += G).
// Dispatch: npairs * (T / RI) workgroups (1-D, possibly folded to 2-D by the engine), where
//   npairs = ntiles*(ntiles+1)/2 and ntiles = ceil(d / T). Workgroup g handles the tile pair
//   p = g / (T/RI), p = tj*(tj+1)/2 + ti with ti <= tj (a triangular index: only upper tiles are
//   launched), and within it RI = 16 consecutive output rows i0 = ti*T + (g % (T/RI)) * RI ...
//   Invocation `lane` owns columns tj*T + lane + WG*q, q = 0..3, of those 16 rows (64 sums).
// Why this shape: on llvmpipe a storage load whose address differs across invocations is a
//   per-lane gather, while one with a workgroup-uniform address is a single load. Here the 16
//   row values x[r, i0..i0+15] are uniform (they depend only on the workgroup and the loop),
//   and each lane gathers just 4 values per row for 64 multiply-adds; no barriers at all.
// Invariants: each out entry (i <= j) is written by exactly one invocation per dispatch, so
//   ACCUMULATE needs no atomics. Indices past d are clamped to d−1 for loading (no branches in
//   the row loop) and masked at the write.
// Numerics: f32 throughout. Rows are reduced pairwise: a leaf of `chunk` rows is summed
//   sequentially in registers, and leaves are merged with a binary carry stack (leaf k is added
//   into the stored partial of the same size, like the carries of a binary counter), so the
//   rounding error grows like (chunk + log2(rows / chunk)) * 2^-24 instead of rows * 2^-24,
//   relative to Σ_r |x_ri − s_i| |x_rj − s_j|. The wrapper keeps rows / chunk < 2^MAX_LEVELS.

struct Params { rows: u32, d: u32, base: u32, ntiles: u32, npairs: u32, chunk: u32 }

override WG: u32 = 8u;
override SHIFTED: bool = false;
override ACCUMULATE: bool = false;
const RI: u32 = 16u;
const MAX_LEVELS: u32 = 12u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> shift: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include tile_pair.wgsl
//!include upper_tile.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let d = params.d;
  let tile = upper_tile(wid.x + wid.y * nwg.x, lane, d, params.npairs);
  if (!tile.ok) { return; }
  let last = d - 1u;
  let i0 = tile.i0;
  let j0 = tile.j0;
  let cj = tile.cj;

  var si: array<f32, RI>;
  var sj = vec4f(0.0);
  if (SHIFTED) {
    for (var a = 0u; a < RI; a = a + 1u) { si[a] = shift[min(i0 + a, last)]; }
    sj = vec4f(shift[cj.x], shift[cj.y], shift[cj.z], shift[cj.w]);
  }

  var stack: array<array<vec4f, RI>, MAX_LEVELS>;
  var leaves = 0u;
  let rows = params.rows;
  var r = 0u;
  while (r < rows) {
    let end = min(r + params.chunk, rows);
    // Zeroed explicitly for every leaf: WGSL zero-initialises a `var` each time its declaration
    // runs, but SwiftShader (Chromium's WebGPU and Dawn's Vulkan path without a GPU) kept the
    // previous leaf's sums here, so leaves accumulated into each other (test/browser.test.ts).
    var c: array<vec4f, RI>;
    for (var a = 0u; a < RI; a = a + 1u) { c[a] = vec4f(0.0); }
    var o = params.base + r * d;
    for (var rr = r; rr < end; rr = rr + 1u) {
      let b = vec4f(x[o + cj.x], x[o + cj.y], x[o + cj.z], x[o + cj.w]) - sj;
      for (var a = 0u; a < RI; a = a + 1u) {
        c[a] = c[a] + (x[o + min(i0 + a, last)] - si[a]) * b;
      }
      o = o + d;
    }
    // Binary carry: merge with every stored partial of equal size, then store.
    var level = 0u;
    var n = leaves;
    while ((n & 1u) == 1u) {
      for (var a = 0u; a < RI; a = a + 1u) { c[a] = c[a] + stack[level][a]; }
      level = level + 1u;
      n = n >> 1u;
    }
    stack[level] = c;
    leaves = leaves + 1u;
    r = end;
  }
  // Combine the stored partials, smallest first.
  var acc: array<vec4f, RI>;
  for (var level = 0u; level < MAX_LEVELS; level = level + 1u) {
    if (((leaves >> level) & 1u) == 1u) {
      for (var a = 0u; a < RI; a = a + 1u) { acc[a] = acc[a] + stack[level][a]; }
    }
  }

  for (var a = 0u; a < RI; a = a + 1u) {
    let i = i0 + a;
    if (i >= d) { break; }
    for (var q = 0u; q < 4u; q = q + 1u) {
      let j = j0 + q * WG;
      if (j < d && i <= j) {
        let k = i * d + j;
        if (ACCUMULATE) { out[k] = out[k] + acc[a][q]; } else { out[k] = acc[a][q]; }
      }
    }
  }
}
