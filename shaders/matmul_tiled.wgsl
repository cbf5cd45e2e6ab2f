// matmul_tiled: C[b] = alpha * op(A[b]) @ op(B[b]) (+ beta * C[b]), f32, row-major,
// workgroup-memory tiled and 2-D register blocked (for real GPUs).
//
// Bindings (@group(0)): identical to matmul_reg.wgsl.
//   0 a      : array<vec4f> read-only, op(A) m x k; stored m x k (lda = k) or, with TRANS_A, k x m (lda = m)
//   1 b      : array<vec4f> read-only, op(B) k x n; stored k x n (ldb = n) or, with TRANS_B, n x k (ldb = k)
//   2 c      : array<f32> read-write, m x n (ldc = n)
//   3 params : uniform Params; element offsets off_*, batch strides stride_* (0 = broadcast)
// Workgroup: 256 invocations (16 x 16). The workgroup computes a 128 x 128 tile of C; each
//   invocation an 8 x 8 block of it, as two 4-row groups x two 4-column groups 64 apart
//   (rows ty*4 + {0..3} and 64 + ty*4 + {0..3}, likewise columns with tx), so the vec4 reads of the
//   shared tiles by neighbouring invocations hit consecutive addresses.
// Dispatch: (ceil(n / 128), ceil(m / 128), batches); workgroup_id.z is the batch.
// K loop: BK = 8 deep slabs. Each invocation loads exactly one vec4 of the A slab (128 x 8) and
//   one of the B slab (8 x 128) from global memory per step, along the operand's contiguous
//   direction (coalesced: neighbouring invocations read neighbouring 16-byte words). The slabs
//   are stored k-major in workgroup memory (As[k][m], Bs[k][n]) so the inner loop reads them as
//   vec4s. Two slab buffers (double buffering): the loads of slab t+1 are issued before the
//   math on slab t and stored after it, so there is ONE barrier per K step and the global
//   latency hides behind 512 FMAs per invocation. Rows of As/Bs are padded by one vec4 so the
//   transposing scalar stores of the row-major operand layouts do not collide on one bank.
// Edges: any m, n, k. Out-of-range elements of a slab are loaded as 0 and masked at the store.
// Invariants: as matmul_reg.wgsl (bindings cover whole vec4s; VEC_A / VEC_B only for 4-aligned
//   layouts: lda % 4 == 0, stride % 4 == 0, off % 4 == 0). Without VEC_* each vec4 is gathered
//   from four guarded scalar loads (still coalesced across invocations).
// Registers: 64 f32 accumulators + 16 operand floats + 8 prefetch floats per invocation; at
//   <= 128 registers two workgroups (16 warps) fit on one NVIDIA SM. The inner loops have
//   constant trip counts and all accumulator indices are constants, so nothing spills.
// Numerics: plain f32 multiply-adds in increasing k order per output; same bound as matmul_reg.

const BM = 128u;
const BN = 128u;
const BK = 8u;
const ROW4 = 33u;          // vec4s per k-row of a shared slab: 128 / 4 + 1 padding
const SLAB = 264u;         // BK * ROW4 vec4s per slab buffer

@group(0) @binding(0) var<storage, read> a: array<vec4f>;
@group(0) @binding(1) var<storage, read> b: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> As: array<vec4f, 528>; // 2 * SLAB: [buffer][k][m / 4]
var<workgroup> Bs: array<vec4f, 528>; // 2 * SLAB: [buffer][k][n / 4]

//!include matmul_operands.wgsl

// One vec4 of A's storage: outer index o (< outer_len), contiguous index i..i+3 (< inner_len),
// zero outside. inner is the k index without TRANS_A and the m index with it.
fn fetch_a(base: u32, o: u32, outer_len: u32, i: u32, inner_len: u32) -> vec4f {
  if (o >= outer_len) { return vec4f(0.0); }
  let s = base + o * params.lda + i;
  if (VEC_A) {
    // 4-aligned layout: inner_len % 4 == 0, so a run is wholly inside or wholly outside.
    if (i >= inner_len) { return vec4f(0.0); }
    return a[s >> 2u];
  }
  var v = vec4f(0.0);
  if (i < inner_len) { v.x = ld_a(s); }
  if (i + 1u < inner_len) { v.y = ld_a(s + 1u); }
  if (i + 2u < inner_len) { v.z = ld_a(s + 2u); }
  if (i + 3u < inner_len) { v.w = ld_a(s + 3u); }
  return v;
}

fn fetch_b(base: u32, o: u32, outer_len: u32, i: u32, inner_len: u32) -> vec4f {
  if (o >= outer_len) { return vec4f(0.0); }
  let s = base + o * params.ldb + i;
  if (VEC_B) {
    if (i >= inner_len) { return vec4f(0.0); }
    return b[s >> 2u];
  }
  var v = vec4f(0.0);
  if (i < inner_len) { v.x = ld_b(s); }
  if (i + 1u < inner_len) { v.y = ld_b(s + 1u); }
  if (i + 2u < inner_len) { v.z = ld_b(s + 2u); }
  if (i + 3u < inner_len) { v.w = ld_b(s + 3u); }
  return v;
}

// Global -> registers for the slab starting at k0. Invocation t loads one vec4 of each operand.
fn load_a(base: u32, t: u32, m0: u32, k0: u32) -> vec4f {
  if (TRANS_A) { // stored k x m: 8 k-rows x 32 vec4 along m
    return fetch_a(base, k0 + (t >> 5u), params.k, m0 + (t & 31u) * 4u, params.m);
  }
  // stored m x k: 128 rows x 2 vec4 along k
  return fetch_a(base, m0 + (t >> 1u), params.m, k0 + (t & 1u) * 4u, params.k);
}

fn load_b(base: u32, t: u32, n0: u32, k0: u32) -> vec4f {
  if (TRANS_B) { // stored n x k: 128 columns x 2 vec4 along k
    return fetch_b(base, n0 + (t >> 1u), params.n, k0 + (t & 1u) * 4u, params.k);
  }
  // stored k x n: 8 k-rows x 32 vec4 along n
  return fetch_b(base, k0 + (t >> 5u), params.k, n0 + (t & 31u) * 4u, params.n);
}

// Registers -> shared slab `buf`, k-major.
fn store_a(buf: u32, t: u32, v: vec4f) {
  if (TRANS_A) {
    As[buf * SLAB + (t >> 5u) * ROW4 + (t & 31u)] = v;
  } else {
    let row = t >> 1u;
    let kq = (t & 1u) * 4u;
    let s = buf * SLAB + kq * ROW4 + (row >> 2u);
    let lane = row & 3u;
    As[s][lane] = v.x;
    As[s + ROW4][lane] = v.y;
    As[s + 2u * ROW4][lane] = v.z;
    As[s + 3u * ROW4][lane] = v.w;
  }
}

fn store_b(buf: u32, t: u32, v: vec4f) {
  if (TRANS_B) {
    let col = t >> 1u;
    let kq = (t & 1u) * 4u;
    let s = buf * SLAB + kq * ROW4 + (col >> 2u);
    let lane = col & 3u;
    Bs[s][lane] = v.x;
    Bs[s + ROW4][lane] = v.y;
    Bs[s + 2u * ROW4][lane] = v.z;
    Bs[s + 3u * ROW4][lane] = v.w;
  } else {
    Bs[buf * SLAB + (t >> 5u) * ROW4 + (t & 31u)] = v;
  }
}

fn store_row(base_c: u32, r: u32, col0: u32, v: vec4f) {
  if (r >= params.m) { return; }
  let ci = base_c + r * params.ldc + col0;
  for (var j = 0u; j < 4u; j++) {
    if (col0 + j < params.n) {
      var x = params.alpha * v[j];
      if (params.use_beta != 0u) { x += params.beta * c[ci + j]; }
      c[ci + j] = x;
    }
  }
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) t: u32) {
  let tx = lid.x;
  let ty = lid.y;
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let base_a = params.off_a + wid.z * params.stride_a;
  let base_b = params.off_b + wid.z * params.stride_b;
  let steps = (params.k + BK - 1u) / BK; // uniform: every invocation runs every barrier

  // 8 x 8 accumulators as 16 vec4s: acc{row group}{row}{col group}.
  var c00 = vec4f(0.0); var c01 = vec4f(0.0); var c10 = vec4f(0.0); var c11 = vec4f(0.0);
  var c20 = vec4f(0.0); var c21 = vec4f(0.0); var c30 = vec4f(0.0); var c31 = vec4f(0.0);
  var c40 = vec4f(0.0); var c41 = vec4f(0.0); var c50 = vec4f(0.0); var c51 = vec4f(0.0);
  var c60 = vec4f(0.0); var c61 = vec4f(0.0); var c70 = vec4f(0.0); var c71 = vec4f(0.0);

  store_a(0u, t, load_a(base_a, t, m0, 0u));
  store_b(0u, t, load_b(base_b, t, n0, 0u));
  workgroupBarrier();

  for (var s = 0u; s < steps; s++) {
    let cur = s & 1u;
    let more = s + 1u < steps;
    var pa = vec4f(0.0);
    var pb = vec4f(0.0);
    if (more) { // issue the next slab's global loads before the math on this one
      pa = load_a(base_a, t, m0, (s + 1u) * BK);
      pb = load_b(base_b, t, n0, (s + 1u) * BK);
    }
    let sa = cur * SLAB + ty;
    let sb = cur * SLAB + tx;
    for (var kk = 0u; kk < BK; kk++) {
      let a0 = As[sa + kk * ROW4];
      let a1 = As[sa + kk * ROW4 + 16u];
      let b0 = Bs[sb + kk * ROW4];
      let b1 = Bs[sb + kk * ROW4 + 16u];
      c00 += a0.x * b0; c01 += a0.x * b1;
      c10 += a0.y * b0; c11 += a0.y * b1;
      c20 += a0.z * b0; c21 += a0.z * b1;
      c30 += a0.w * b0; c31 += a0.w * b1;
      c40 += a1.x * b0; c41 += a1.x * b1;
      c50 += a1.y * b0; c51 += a1.y * b1;
      c60 += a1.z * b0; c61 += a1.z * b1;
      c70 += a1.w * b0; c71 += a1.w * b1;
    }
    if (more) {
      store_a(cur ^ 1u, t, pa);
      store_b(cur ^ 1u, t, pb);
    }
    workgroupBarrier();
  }

  let base_c = params.off_c + wid.z * params.stride_c;
  let r0 = m0 + ty * 4u;
  let r1 = r0 + 64u;
  let q0 = n0 + tx * 4u;
  let q1 = q0 + 64u;
  store_row(base_c, r0, q0, c00); store_row(base_c, r0, q1, c01);
  store_row(base_c, r0 + 1u, q0, c10); store_row(base_c, r0 + 1u, q1, c11);
  store_row(base_c, r0 + 2u, q0, c20); store_row(base_c, r0 + 2u, q1, c21);
  store_row(base_c, r0 + 3u, q0, c30); store_row(base_c, r0 + 3u, q1, c31);
  store_row(base_c, r1, q0, c40); store_row(base_c, r1, q1, c41);
  store_row(base_c, r1 + 1u, q0, c50); store_row(base_c, r1 + 1u, q1, c51);
  store_row(base_c, r1 + 2u, q0, c60); store_row(base_c, r1 + 2u, q1, c61);
  store_row(base_c, r1 + 3u, q0, c70); store_row(base_c, r1 + 3u, q1, c71);
}
