// eigh_solve: one step of two-sided block Jacobi: diagonalise the 32×32 subproblem of every
// block pair of this step and write its rotation.
//
// The padded n×n matrix is split into 2p blocks of B = 16 indices. Step `step` of a sweep pairs
// the blocks as pairs[(step*p + P)*2 + {0,1}] = (top, bottom) (round-robin order, built on the
// host). Pair P owns the T = 32 local indices l: l < 16 -> top*16 + l, l >= 16 -> bottom*16 + l-16.
// Workgroup P loads S = A[pair P, pair P], runs cyclic parallel Jacobi sweeps on it in workgroup
// memory (16 disjoint rotations per round, 31 rounds per sweep, circle ordering) until a sweep
// applies no rotation (at most MAX_INNER sweeps) and writes R_P (RᵀSR ≈ diagonal) to rot.
//
// Bindings (@group(0)):
//   0 a      : array<f32>  read-only, n×n row-major, symmetric
//   1 pairs  : array<u32>  read-only, (2p-1)·p·2 block ids (all steps of a sweep)
//   2 rot    : array<f32>  read-write, p × 32×32 (R_P row-major at P*1024)
//   3 count  : array<atomic<u32>> read-write, [0] += rotations applied (the host clears it
//              once per sweep; 0 after a whole sweep means converged)
//   4 params : uniform { n, p, step, tiny: f32, rel: f32 }
// Workgroup: 256 invocations. Dispatch: p workgroups (x).
// Rotation (p, q) with G_pp = G_qq = c, G_pq = s, G_qp = −s makes (GᵀSG)_pq = 0:
//   θ = (s_qq − s_pp) / (2 s_pq), t = sign(θ) / (|θ| + √(θ² + 1)), c = 1/√(1 + t²), s = t·c
//   (the smaller angle, |t| ≤ 1: Rutishauser's stable choice).
// It is skipped (c = 1, s = 0, exactly the identity) when |s_pq| <= tiny (absolute floor, from
// the host: ~ε·‖A‖_F / n) or |s_pq| <= rel·√|s_pp s_qq| (relative: already negligible). Zero
// padding rows/columns therefore never mix with real ones.
// Barriers: 2 per round and 1 for the final Newton–Schulz step, all in uniform control flow; the early exit reads a workgroup value through
// workgroupUniformLoad.
// Numerics: f32; each rotation is orthogonal to ~ε; R accumulates up to MAX_INNER·496 of them
//   and is then re-orthogonalised by one Newton–Schulz step (see the end of main).

struct Params { n: u32, p: u32, step: u32, tiny: f32, rel: f32 }

const T: u32 = 32u;
const LD: u32 = 33u; // padded row stride of the workgroup tiles (fewer bank conflicts)
const MAX_INNER: u32 = 12u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> pairs: array<u32>;
@group(0) @binding(2) var<storage, read_write> rot: array<f32>;
@group(0) @binding(3) var<storage, read_write> count: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> S: array<f32, 1056>;   // 32 × LD
var<workgroup> R: array<f32, 1056>;
var<workgroup> cs: array<f32, 16>;
var<workgroup> sn: array<f32, 16>;
var<workgroup> slot_rot: array<u32, 16>;
var<workgroup> any_rot: u32;

// Local index at position `pos` of round r of the circle ordering on 32 indices.
fn at_pos(pos: u32, r: u32) -> u32 {
  if (pos == 0u) { return 0u; }
  return 1u + (pos - 1u + r) % 31u;
}

fn global_index(top: u32, bottom: u32, l: u32) -> u32 {
  return select(bottom * 16u + l - 16u, top * 16u + l, l < 16u);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let P = wid.x;
  let n = params.n;
  let base = (params.step * params.p + P) * 2u;
  let top = pairs[base];
  let bottom = pairs[base + 1u];
  for (var e = lid; e < T * T; e += 256u) {
    let i = e / T;
    let j = e % T;
    S[i * LD + j] = a[global_index(top, bottom, i) * n + global_index(top, bottom, j)];
    R[i * LD + j] = select(0.0, 1.0, i == j);
  }
  if (lid < 16u) { slot_rot[lid] = 0u; }
  var total = 0u;
  workgroupBarrier();

  let k1 = lid / 16u; // this invocation's row pair in the update phase
  let k2 = lid % 16u; // and column pair
  for (var sweep = 0u; sweep < MAX_INNER; sweep++) {
    for (var r = 0u; r < 31u; r++) {
      if (lid < 16u) {
        let p = at_pos(lid, r);
        let q = at_pos(31u - lid, r);
        let apq = S[p * LD + q];
        let app = S[p * LD + p];
        let aqq = S[q * LD + q];
        var c = 1.0;
        var s = 0.0;
        if (abs(apq) > params.tiny && abs(apq) > params.rel * sqrt(abs(app * aqq))) {
          let theta = (aqq - app) / (2.0 * apq);
          var t: f32;
          if (abs(theta) > 1e18) {
            t = 0.5 / theta; // θ² would overflow; t ≈ 1/(2θ)
          } else {
            t = sign(theta) / (abs(theta) + sqrt(theta * theta + 1.0));
            if (theta == 0.0) { t = 1.0; }
          }
          c = inverseSqrt(t * t + 1.0);
          s = t * c;
          slot_rot[lid] += 1u;
        }
        cs[lid] = c;
        sn[lid] = s;
      }
      workgroupBarrier();
      // S ← GᵀSG on the 2×2 block (rows {p1, q1}) × (cols {p2, q2}); R ← RG on columns {p2, q2}.
      let p1 = at_pos(k1, r);
      let q1 = at_pos(31u - k1, r);
      let p2 = at_pos(k2, r);
      let q2 = at_pos(31u - k2, r);
      let c1 = cs[k1];
      let s1 = sn[k1];
      let c2 = cs[k2];
      let s2 = sn[k2];
      let xpp = S[p1 * LD + p2];
      let xpq = S[p1 * LD + q2];
      let xqp = S[q1 * LD + p2];
      let xqq = S[q1 * LD + q2];
      let ypp = c1 * xpp - s1 * xqp;
      let ypq = c1 * xpq - s1 * xqq;
      let yqp = s1 * xpp + c1 * xqp;
      let yqq = s1 * xpq + c1 * xqq;
      S[p1 * LD + p2] = c2 * ypp - s2 * ypq;
      S[p1 * LD + q2] = s2 * ypp + c2 * ypq;
      S[q1 * LD + p2] = c2 * yqp - s2 * yqq;
      S[q1 * LD + q2] = s2 * yqp + c2 * yqq;
      for (var h = 0u; h < 2u; h++) {
        let i = k1 + 16u * h;
        let rp = R[i * LD + p2];
        let rq = R[i * LD + q2];
        R[i * LD + p2] = c2 * rp - s2 * rq;
        R[i * LD + q2] = s2 * rp + c2 * rq;
      }
      workgroupBarrier();
    }
    if (lid == 0u) {
      var sum = 0u;
      for (var k = 0u; k < 16u; k++) { sum += slot_rot[k]; }
      any_rot = sum;
    }
    let applied = workgroupUniformLoad(&any_rot);
    if (lid < 16u) {
      total += slot_rot[lid];
      slot_rot[lid] = 0u;
    }
    if (applied == 0u) { break; }
  }

  // R holds the product of up to MAX_INNER·496 f32 rotations; its loss of orthogonality
  // (~√#rotations·ε) would be inherited by every step's A and V updates. One Newton–Schulz step
  // R ← R − ½ R (RᵀR − I) brings it back to the f32 rounding level of the products themselves.
  // S is free now and holds E = RᵀR − I.
  let j = lid % T;
  let i0 = (lid / T) * 4u;
  var g = vec4f(0.0);
  for (var k = 0u; k < T; k++) {
    let rk = k * LD;
    g += vec4f(R[rk + i0], R[rk + i0 + 1u], R[rk + i0 + 2u], R[rk + i0 + 3u]) * R[rk + j];
  }
  for (var h = 0u; h < 4u; h++) {
    S[(i0 + h) * LD + j] = g[h] - select(0.0, 1.0, i0 + h == j);
  }
  workgroupBarrier();
  var corr = vec4f(0.0);
  for (var k = 0u; k < T; k++) {
    let e = S[k * LD + j];
    corr += vec4f(R[i0 * LD + k], R[(i0 + 1u) * LD + k], R[(i0 + 2u) * LD + k], R[(i0 + 3u) * LD + k]) * e;
  }
  let out = P * T * T;
  for (var h = 0u; h < 4u; h++) {
    let i = i0 + h;
    rot[out + i * T + j] = R[i * LD + j] - 0.5 * corr[h];
  }
  if (lid < 16u && total > 0u) { atomicAdd(&count[0], total); }
}
