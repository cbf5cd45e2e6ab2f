// eigh_apply: applies one block-Jacobi step's rotations:  A[P, Q] ← R_Pᵀ A[P, Q] R_Q  for all
// pair tiles with P <= Q (the result is mirrored into A[Q, P]), and  V[P, Q] ← V[P, Q] R_Q.
//
// Pair P owns 32 indices (see eigh_solve.wgsl: pairs[(step*p + P)*2 + {0,1}] are its blocks).
// The pairs partition the indices, so the tiles A[P, Q] partition A and each workgroup reads
// and writes only its own tile (and the mirror tile, which no other workgroup touches); it reads
// the whole tile before its first barrier and writes after its last: in place, hazard-free.
//
// Bindings (@group(0)):
//   0 a      : array<f32>  read-write, n×n row-major, symmetric (kept exactly symmetric)
//   1 v      : array<f32>  read-write, n×n row-major (eigenvector estimates, columns)
//   2 pairs  : array<u32>  read-only, as eigh_solve
//   3 rot    : array<f32>  read-only, p × 32×32, R_P row-major at P*1024
//   4 params : uniform { n, p, step }
// Workgroup: 256 invocations; invocation t computes column t % 32, rows 4(t / 32) .. +3 of the
//   32×32 output tile.
// Dispatch: 2p² workgroups (1-D, folded to 2-D by the engine): g < p² is the A tile
//   (P, Q) = (g / p, g % p) (returns at once when P > Q); g − p² is the V tile
//   (row group P, column pair Q) (V's rows are grouped by the same pairs; any partition works).
// Barriers: 2 (A tiles) or 1 (V tiles), in workgroup-uniform control flow.
// Numerics: f32 dot products of length 32 per product; ‖ΔA‖ ~ 32·ε·‖A‖ per step.

struct Params { n: u32, p: u32, step: u32 }

const T: u32 = 32u;
const LD: u32 = 33u;

@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> v: array<f32>;
@group(0) @binding(2) var<storage, read> pairs: array<u32>;
@group(0) @binding(3) var<storage, read> rot: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> X: array<f32, 1056>;  // the input tile
var<workgroup> Y: array<f32, 1056>;  // R_Pᵀ X (A tiles only)
var<workgroup> RL: array<f32, 1056>; // R_P
var<workgroup> RR: array<f32, 1056>; // R_Q

fn global_index(pair: u32, l: u32) -> u32 {
  let base = (params.step * params.p + pair) * 2u;
  return select(pairs[base + 1u] * 16u + l - 16u, pairs[base] * 16u + l, l < 16u);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let p = params.p;
  let n = params.n;
  let pp = p * p;
  if (g >= 2u * pp) { return; }
  let is_v = g >= pp;
  let w = select(g, g - pp, is_v);
  let P = w / p;
  let Q = w % p;
  if (!is_v && P > Q) { return; }

  for (var e = lid; e < T * T; e += 256u) {
    let i = e / T;
    let j = e % T;
    let src = global_index(P, i) * n + global_index(Q, j);
    if (is_v) { X[i * LD + j] = v[src]; } else { X[i * LD + j] = a[src]; }
    RR[i * LD + j] = rot[Q * T * T + e];
    if (!is_v) { RL[i * LD + j] = rot[P * T * T + e]; }
  }
  workgroupBarrier();

  let j = lid % T;
  let i0 = (lid / T) * 4u;
  if (!is_v) {
    // Y = R_Pᵀ X
    var y = vec4f(0.0);
    for (var k = 0u; k < T; k++) {
      let x = X[k * LD + j];
      let rl = k * LD + i0;
      y += vec4f(RL[rl], RL[rl + 1u], RL[rl + 2u], RL[rl + 3u]) * x;
    }
    Y[i0 * LD + j] = y.x;
    Y[(i0 + 1u) * LD + j] = y.y;
    Y[(i0 + 2u) * LD + j] = y.z;
    Y[(i0 + 3u) * LD + j] = y.w;
    workgroupBarrier();
  }
  // out = (A: Y, V: X) · R_Q
  var o = vec4f(0.0);
  for (var k = 0u; k < T; k++) {
    let r = RR[k * LD + j];
    var m: vec4f;
    if (is_v) {
      m = vec4f(X[i0 * LD + k], X[(i0 + 1u) * LD + k], X[(i0 + 2u) * LD + k], X[(i0 + 3u) * LD + k]);
    } else {
      m = vec4f(Y[i0 * LD + k], Y[(i0 + 1u) * LD + k], Y[(i0 + 2u) * LD + k], Y[(i0 + 3u) * LD + k]);
    }
    o += m * r;
  }
  let gj = global_index(Q, j);
  for (var h = 0u; h < 4u; h++) {
    let gi = global_index(P, i0 + h);
    if (is_v) {
      v[gi * n + gj] = o[h];
    } else {
      a[gi * n + gj] = o[h];
      if (P != Q) { a[gj * n + gi] = o[h]; }
    }
  }
}
