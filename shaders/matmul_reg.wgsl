// matmul_reg: C[b] = alpha * op(A[b]) @ op(B[b]) (+ beta * C[b]), f32, row-major, barrier-free.
//
// Bindings (@group(0)):
//   0 a      : array<vec4f> read-only. op(A) is m x k; A is stored m x k (lda = k), or k x m with
//              TRANS_A (lda = m). Element (r, q) of op(A) in batch z is at
//              off_a + z * stride_a + (TRANS_A ? q * lda + r : r * lda + q)   (in f32 elements).
//   1 b      : array<vec4f> read-only. op(B) is k x n; B is stored k x n (ldb = n), or n x k with
//              TRANS_B (ldb = k). Same addressing with off_b, stride_b.
//   2 c      : array<f32> read-write, m x n, ldc = n, element (r, j) at off_c + z * stride_c + r * ldc + j.
//   3 params : uniform Params (shaders/include/matmul_operands.wgsl). use_beta != 0 reads C;
//              otherwise C is never read (it may hold garbage or NaN from a recycled buffer).
// Workgroup: WG_X x WG_Y invocations (overrides; the wrapper uses 32 x 2); each owns a 4 x 4 block of C.
// Dispatch: (ceil(n / (4 WG_X)), ceil(m / (4 WG_Y)), batches). workgroup_id.z is the batch.
// Invariants: a and b are bound as vec4 arrays, so their bindings must cover whole vec4s (the
//   wrapper rounds binding sizes up to 16 bytes). VEC_A / VEC_B may be set only when every
//   4-aligned run along the stored rows of the operand is a full vec4 inside one row: lda % 4 == 0,
//   stride % 4 == 0, off % 4 == 0 (then lda, the contiguous extent, is a multiple of 4 too).
// Why this shape: CPU adapters (llvmpipe, SwiftShader) run a workgroup's invocations as
//   coroutines/SIMD lanes, so workgroup barriers are expensive there. Every invocation instead
//   streams its operands straight from memory and keeps a 4 x 4 block of C in registers: per
//   4-deep k step it loads 4 + 4 vec4s for 64 multiply-adds. No workgroup memory, no barriers.
//   Rows/columns past the edge are clamped to the last valid one for loading (keeps the inner
//   loop branch-free) and masked at the store.
// Numerics: plain f32 multiply-adds in increasing k order per output (the compiler may fuse).
//   Error bound as for any f32 dot product: |err| <= ~k * 2^-24 * sum_q |a_rq| |b_qj| (plus one
//   rounding for alpha/beta).

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

@group(0) @binding(0) var<storage, read> a: array<vec4f>;
@group(0) @binding(1) var<storage, read> b: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include matmul_operands.wgsl

// Four consecutive stored elements of A starting at element i (i % 4 == 0 when VEC_A).
fn run_a(i: u32) -> vec4f {
  if (VEC_A) { return a[i >> 2u]; }
  return vec4f(ld_a(i), ld_a(i + 1u), ld_a(i + 2u), ld_a(i + 3u));
}
fn run_b(i: u32) -> vec4f {
  if (VEC_B) { return b[i >> 2u]; }
  return vec4f(ld_b(i), ld_b(i + 1u), ld_b(i + 2u), ld_b(i + 3u));
}

// Gathers four elements that are not contiguous in storage.
fn gather_a(i0: u32, i1: u32, i2: u32, i3: u32) -> vec4f {
  return vec4f(ld_a(i0), ld_a(i1), ld_a(i2), ld_a(i3));
}
fn gather_b(i0: u32, i1: u32, i2: u32, i3: u32) -> vec4f {
  return vec4f(ld_b(i0), ld_b(i1), ld_b(i2), ld_b(i3));
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m = params.m;
  let n = params.n;
  let K = params.k;
  let row0 = (wid.y * WG_Y + lid.y) * 4u;
  let col0 = (wid.x * WG_X + lid.x) * 4u;
  if (row0 >= m || col0 >= n) { return; } // no barriers below, so early exit is safe
  let base_a = params.off_a + wid.z * params.stride_a;
  let base_b = params.off_b + wid.z * params.stride_b;

  // Clamped row and column indices used for loading only.
  let r0 = row0;
  let r1 = min(row0 + 1u, m - 1u);
  let r2 = min(row0 + 2u, m - 1u);
  let r3 = min(row0 + 3u, m - 1u);
  let j0 = col0;
  let j1 = min(col0 + 1u, n - 1u);
  let j2 = min(col0 + 2u, n - 1u);
  let j3 = min(col0 + 3u, n - 1u);

  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);

  // Main loop: 4-deep k steps. Each step forms the 4 x 4 block of op(A) as rows ar0..ar3
  // (ar_i[q] = op(A)(row0 + i, kk + q)) and of op(B) as rows bq0..bq3 (bq_q[j] = op(B)(kk + q, col0 + j)).
  let k4 = K & ~3u;
  for (var kk = 0u; kk < k4; kk += 4u) {
    var ar0: vec4f; var ar1: vec4f; var ar2: vec4f; var ar3: vec4f;
    if (TRANS_A) {
      // Stored k x m: a run along m at fixed k is contiguous; load 4 columns then transpose.
      var cols: mat4x4f;
      if (VEC_A && row0 + 3u < m) {
        let s = base_a + kk * params.lda + row0;
        cols = mat4x4f(run_a(s), run_a(s + params.lda), run_a(s + 2u * params.lda), run_a(s + 3u * params.lda));
      } else {
        let s0 = base_a + kk * params.lda;
        let s1 = s0 + params.lda;
        let s2 = s1 + params.lda;
        let s3 = s2 + params.lda;
        cols = mat4x4f(gather_a(s0 + r0, s0 + r1, s0 + r2, s0 + r3),
                       gather_a(s1 + r0, s1 + r1, s1 + r2, s1 + r3),
                       gather_a(s2 + r0, s2 + r1, s2 + r2, s2 + r3),
                       gather_a(s3 + r0, s3 + r1, s3 + r2, s3 + r3));
      }
      let rows = transpose(cols);
      ar0 = rows[0]; ar1 = rows[1]; ar2 = rows[2]; ar3 = rows[3];
    } else {
      ar0 = run_a(base_a + r0 * params.lda + kk);
      ar1 = run_a(base_a + r1 * params.lda + kk);
      ar2 = run_a(base_a + r2 * params.lda + kk);
      ar3 = run_a(base_a + r3 * params.lda + kk);
    }
    var bq0: vec4f; var bq1: vec4f; var bq2: vec4f; var bq3: vec4f;
    if (TRANS_B) {
      // Stored n x k: a run along k at fixed column is contiguous; load 4 of them and transpose.
      let cols = transpose(mat4x4f(run_b(base_b + j0 * params.ldb + kk), run_b(base_b + j1 * params.ldb + kk),
                                   run_b(base_b + j2 * params.ldb + kk), run_b(base_b + j3 * params.ldb + kk)));
      bq0 = cols[0]; bq1 = cols[1]; bq2 = cols[2]; bq3 = cols[3];
    } else {
      let s0 = base_b + kk * params.ldb;
      let s1 = s0 + params.ldb;
      let s2 = s1 + params.ldb;
      let s3 = s2 + params.ldb;
      if (VEC_B && col0 + 3u < n) {
        bq0 = run_b(s0 + col0); bq1 = run_b(s1 + col0); bq2 = run_b(s2 + col0); bq3 = run_b(s3 + col0);
      } else {
        bq0 = gather_b(s0 + j0, s0 + j1, s0 + j2, s0 + j3);
        bq1 = gather_b(s1 + j0, s1 + j1, s1 + j2, s1 + j3);
        bq2 = gather_b(s2 + j0, s2 + j1, s2 + j2, s2 + j3);
        bq3 = gather_b(s3 + j0, s3 + j1, s3 + j2, s3 + j3);
      }
    }
    acc0 += ar0.x * bq0 + ar0.y * bq1 + ar0.z * bq2 + ar0.w * bq3;
    acc1 += ar1.x * bq0 + ar1.y * bq1 + ar1.z * bq2 + ar1.w * bq3;
    acc2 += ar2.x * bq0 + ar2.y * bq1 + ar2.z * bq2 + ar2.w * bq3;
    acc3 += ar3.x * bq0 + ar3.y * bq1 + ar3.z * bq2 + ar3.w * bq3;
  }

  // Tail: the last k % 4 steps, one at a time with scalar loads.
  for (var kk = k4; kk < K; kk++) {
    var av: vec4f;
    var bv: vec4f;
    if (TRANS_A) {
      let s = base_a + kk * params.lda;
      av = gather_a(s + r0, s + r1, s + r2, s + r3);
    } else {
      let s = base_a + kk;
      av = gather_a(s + r0 * params.lda, s + r1 * params.lda, s + r2 * params.lda, s + r3 * params.lda);
    }
    if (TRANS_B) {
      let s = base_b + kk;
      bv = gather_b(s + j0 * params.ldb, s + j1 * params.ldb, s + j2 * params.ldb, s + j3 * params.ldb);
    } else {
      let s = base_b + kk * params.ldb;
      bv = gather_b(s + j0, s + j1, s + j2, s + j3);
    }
    acc0 += av.x * bv;
    acc1 += av.y * bv;
    acc2 += av.z * bv;
    acc3 += av.w * bv;
  }

  // Epilogue: masked scalar stores (m and n are arbitrary, so C rows need not be vec4-aligned).
  let base_c = params.off_c + wid.z * params.stride_c;
  let accs = array<vec4f, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + i;
    if (r >= m) { break; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + j;
      if (col >= n) { break; }
      let ci = base_c + r * params.ldc + col;
      var v = params.alpha * accs[i][j];
      if (params.use_beta != 0u) { v += params.beta * c[ci]; }
      c[ci] = v;
    }
  }
}
