// gram_tiled: upper triangle of the batch Gram  G[i, j] (+)= Σ_r (x[r, i] − s[i]) (x[r, j] − s[j]),
// with slabs of rows staged in workgroup memory (the variant for real GPUs).
//
// Bindings (@group(0)):
//   0 x      : array<f32>  read-only; row r of the batch starts at base + r * d (row-major rows×d)
//   1 shift  : array<f32>  read-only, length >= d when SHIFTED (any small buffer otherwise)
//   2 out    : array<f32>  read-write d×d row-major; only entries with i <= j are written
//   3 params : uniform { rows, d, base, ntiles, npairs, chunk }
// Overrides: SHIFTED (0/1), ACCUMULATE (0: out = G, 1: out += G).
// Workgroup: 16×16 invocations, each owning a 4×4 block of a 64×64 output tile; a slab of BK = 16
//   rows of the tile's 64 row-columns and 64 column-columns is loaded cooperatively (one vec4
//   each per invocation), then every invocation does BK rank-1 updates of its 4×4 registers.
// Dispatch: npairs = ntiles*(ntiles+1)/2 workgroups, ntiles = ceil(d / 64); workgroup p is the
//   tile pair (ti <= tj) with p = tj*(tj+1)/2 + ti (only upper-triangle tiles are launched).
// Invariants: `chunk` is a positive multiple of BK, so slabs never straddle a leaf. Rows past
//   `rows` load as 0 (not −shift). Columns past d are clamped for loading and masked at the write.
//   Every barrier sits in workgroup-uniform control flow (loop bounds come from the uniform).
//   Each out entry (i <= j) has exactly one writer per dispatch: ACCUMULATE needs no atomics.
// Numerics: as gram_reg: sequential f32 sums over leaves of `chunk` rows, leaves merged pairwise
//   by a binary carry stack, error ~ (chunk + log2(rows / chunk)) * 2^-24 relative to Σ|x_i x_j|.

struct Params { rows: u32, d: u32, base: u32, ntiles: u32, npairs: u32, chunk: u32 }

override SHIFTED: bool = false;
override ACCUMULATE: bool = false;
const MAX_LEVELS: u32 = 12u;
const BK: u32 = 16u;
const T: u32 = 64u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> shift: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> ta: array<vec4f, 256>; // [k * 16 + q]: row k of the slab, columns ti*T + 4q ..
var<workgroup> tb: array<vec4f, 256>; // [k * 16 + q]: row k of the slab, columns tj*T + 4q ..

//!include tile_pair.wgsl

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) lin: u32) {
  let pair = wid.x + wid.y * nwg.x;
  if (pair >= params.npairs) { return; } // uniform for the whole workgroup
  let t = decode_pair(pair);
  let d = params.d;
  let last = d - 1u;

  // What this invocation loads: row lk of each slab, 4 columns starting at 4*lq of each tile.
  let lk = lin / 16u;
  let lq = lin % 16u;
  let la = t.x * T + 4u * lq;
  let lb = t.y * T + 4u * lq;
  let ca = min(vec4u(la, la + 1u, la + 2u, la + 3u), vec4u(last));
  let cb = min(vec4u(lb, lb + 1u, lb + 2u, lb + 3u), vec4u(last));
  var sa = vec4f(0.0);
  var sb = vec4f(0.0);
  if (SHIFTED) {
    sa = vec4f(shift[ca.x], shift[ca.y], shift[ca.z], shift[ca.w]);
    sb = vec4f(shift[cb.x], shift[cb.y], shift[cb.z], shift[cb.w]);
  }

  var stack: array<array<vec4f, 4>, MAX_LEVELS>;
  var leaves = 0u;
  let rows = params.rows;
  var r = 0u;
  while (r < rows) {
    let end = min(r + params.chunk, rows);
    var c0 = vec4f(0.0);
    var c1 = vec4f(0.0);
    var c2 = vec4f(0.0);
    var c3 = vec4f(0.0);
    while (r < end) {
      let row = r + lk;
      var va = vec4f(0.0);
      var vb = vec4f(0.0);
      if (row < rows) {
        let o = params.base + row * d;
        va = vec4f(x[o + ca.x], x[o + ca.y], x[o + ca.z], x[o + ca.w]) - sa;
        vb = vec4f(x[o + cb.x], x[o + cb.y], x[o + cb.z], x[o + cb.w]) - sb;
      }
      ta[lin] = va;
      tb[lin] = vb;
      workgroupBarrier();
      for (var k = 0u; k < BK; k = k + 1u) {
        let a = ta[k * 16u + lid.y];
        let b = tb[k * 16u + lid.x];
        c0 = c0 + a.x * b;
        c1 = c1 + a.y * b;
        c2 = c2 + a.z * b;
        c3 = c3 + a.w * b;
      }
      workgroupBarrier();
      r = r + BK;
    }
    r = end;
    var level = 0u;
    var n = leaves;
    while ((n & 1u) == 1u) {
      c0 = c0 + stack[level][0];
      c1 = c1 + stack[level][1];
      c2 = c2 + stack[level][2];
      c3 = c3 + stack[level][3];
      level = level + 1u;
      n = n >> 1u;
    }
    stack[level][0] = c0;
    stack[level][1] = c1;
    stack[level][2] = c2;
    stack[level][3] = c3;
    leaves = leaves + 1u;
  }
  var g0 = vec4f(0.0);
  var g1 = vec4f(0.0);
  var g2 = vec4f(0.0);
  var g3 = vec4f(0.0);
  for (var level = 0u; level < MAX_LEVELS; level = level + 1u) {
    if (((leaves >> level) & 1u) == 1u) {
      g0 = g0 + stack[level][0];
      g1 = g1 + stack[level][1];
      g2 = g2 + stack[level][2];
      g3 = g3 + stack[level][3];
    }
  }

  let i0 = t.x * T + 4u * lid.y;
  let j0 = t.y * T + 4u * lid.x;
  let g = array<vec4f, 4>(g0, g1, g2, g3);
  for (var a = 0u; a < 4u; a = a + 1u) {
    let i = i0 + a;
    if (i >= d) { break; }
    for (var b = 0u; b < 4u; b = b + 1u) {
      let j = j0 + b;
      if (j >= d) { break; }
      if (i <= j) {
        let k = i * d + j;
        if (ACCUMULATE) { out[k] = out[k] + g[a][b]; } else { out[k] = g[a][b]; }
      }
    }
  }
}
