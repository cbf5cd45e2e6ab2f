// matmul_panel: one k-chunk of C = alpha * op(A) @ op(B) (+ beta * C) for one 8*RG x 8*CG block of
// C, with both operand panels bound as UNIFORM buffers (64 KiB each), for CPU adapters.
//
// Why: on llvmpipe (Mesa 22.3) every element a lane loads from a storage buffer or from workgroup
// memory is a scalar load inserted into the SIMD vector through the stack, and the wide reload
// that follows cannot take the narrow store by forwarding: ~9 ns per element and lane on a
// Zen 3 host (bench/load-cost.bench.ts, bench/RESULTS.notes.md). Uniform-buffer loads are
// compiled as plain gathers and cost about as much as arithmetic. So the operands are first
// packed into 64 KiB panels (shaders/matmul_pack.wgsl) and read here only through uniforms;
// storage is touched once per output per k-chunk.
//
// Bindings (@group(0)):
//   0 ap     : uniform array<vec4<f32>, 4096>: the A panel of the block's rows and this k-chunk,
//              layout [kk][row] (KB x MB, MB = 16384 / KB), zero-padded
//   1 bp     : uniform array<vec4<f32>, 4096>: the B panel of this k-chunk and the block's
//              columns, layout [kk][col] (KB x NB, NB = MB), zero-padded
//   2 c      : array<f32> read-write, C row-major (ldc, offset offC)
//   3 params : uniform { m, n, ldc, offC, row0, col0, first, useBeta, alpha, beta }
// Overrides: WG (invocations per workgroup; MB * NB / 64 must be a multiple), KB (k per panel:
//   64 or 128; MB = NB = 16384 / KB).
// Dispatch: (MB / 8) * (NB / 8) / WG workgroups along x, one dispatch per (row block, column
//   block, k-chunk), k-chunks in order. Invocation t owns rows row0 + 8*(t / (NB/8)) .. +7 and
//   columns col0 + 8*(t % (NB/8)) .. +7: 64 sums in 16 vec4 registers; per k step it reads 2
//   vec4 of A and 2 vec4 of B (16 uniform elements) for 64 FMAs.
// Invariants: first = 1 on the first k-chunk (C = alpha*acc (+ beta*C when useBeta)), else
//   C += alpha*acc; each C element is written by one invocation per dispatch; rows >= m and
//   columns >= n are not written. Loop length KB <= 128 (llvmpipe's loop cap is 65535).
// Numerics: f32 FMAs in k order within a chunk; chunks are added to C in order (error bound of a
//   length-k f32 dot product).

struct Params { m: u32, n: u32, ldc: u32, offC: u32, row0: u32, col0: u32, first: u32, useBeta: u32, alpha: f32, beta: f32 }

override WG: u32 = 32u;
override KB: u32 = 128u;

@group(0) @binding(0) var<uniform> ap: array<vec4<f32>, 4096>;
@group(0) @binding(1) var<uniform> bp: array<vec4<f32>, 4096>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

fn put(i: u32, j: u32, v: vec4<f32>) {
  if (i >= params.m) { return; }
  let base = params.offC + i * params.ldc;
  for (var q = 0u; q < 4u; q++) {
    let jj = j + q;
    if (jj < params.n) {
      var x = params.alpha * v[q];
      if (params.first == 0u) {
        x += c[base + jj];
      } else if (params.useBeta != 0u) {
        x += params.beta * c[base + jj];
      }
      c[base + jj] = x;
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let mb4 = (16384u / KB) / 4u; // vec4 per kk row of a panel (MB / 4 = NB / 4)
  let across = (16384u / KB) / 8u; // 8-column groups across the block
  let t = wid.x * WG + lid;
  let rg = t / across;
  let cg = t - rg * across;
  var c00 = vec4<f32>(0.0);
  var c01 = vec4<f32>(0.0);
  var c10 = vec4<f32>(0.0);
  var c11 = vec4<f32>(0.0);
  var c20 = vec4<f32>(0.0);
  var c21 = vec4<f32>(0.0);
  var c30 = vec4<f32>(0.0);
  var c31 = vec4<f32>(0.0);
  var c40 = vec4<f32>(0.0);
  var c41 = vec4<f32>(0.0);
  var c50 = vec4<f32>(0.0);
  var c51 = vec4<f32>(0.0);
  var c60 = vec4<f32>(0.0);
  var c61 = vec4<f32>(0.0);
  var c70 = vec4<f32>(0.0);
  var c71 = vec4<f32>(0.0);
  for (var kk = 0u; kk < KB; kk++) {
    let a0 = ap[kk * mb4 + rg * 2u];
    let a1 = ap[kk * mb4 + rg * 2u + 1u];
    let b0 = bp[kk * mb4 + cg * 2u];
    let b1 = bp[kk * mb4 + cg * 2u + 1u];
    c00 = fma(vec4<f32>(a0.x), b0, c00);
    c01 = fma(vec4<f32>(a0.x), b1, c01);
    c10 = fma(vec4<f32>(a0.y), b0, c10);
    c11 = fma(vec4<f32>(a0.y), b1, c11);
    c20 = fma(vec4<f32>(a0.z), b0, c20);
    c21 = fma(vec4<f32>(a0.z), b1, c21);
    c30 = fma(vec4<f32>(a0.w), b0, c30);
    c31 = fma(vec4<f32>(a0.w), b1, c31);
    c40 = fma(vec4<f32>(a1.x), b0, c40);
    c41 = fma(vec4<f32>(a1.x), b1, c41);
    c50 = fma(vec4<f32>(a1.y), b0, c50);
    c51 = fma(vec4<f32>(a1.y), b1, c51);
    c60 = fma(vec4<f32>(a1.z), b0, c60);
    c61 = fma(vec4<f32>(a1.z), b1, c61);
    c70 = fma(vec4<f32>(a1.w), b0, c70);
    c71 = fma(vec4<f32>(a1.w), b1, c71);
  }
  let i0 = params.row0 + rg * 8u;
  let j0 = params.col0 + cg * 8u;
  put(i0 + 0u, j0, c00);
  put(i0 + 0u, j0 + 4u, c01);
  put(i0 + 1u, j0, c10);
  put(i0 + 1u, j0 + 4u, c11);
  put(i0 + 2u, j0, c20);
  put(i0 + 2u, j0 + 4u, c21);
  put(i0 + 3u, j0, c30);
  put(i0 + 3u, j0 + 4u, c31);
  put(i0 + 4u, j0, c40);
  put(i0 + 4u, j0 + 4u, c41);
  put(i0 + 5u, j0, c50);
  put(i0 + 5u, j0 + 4u, c51);
  put(i0 + 6u, j0, c60);
  put(i0 + 6u, j0 + 4u, c61);
  put(i0 + 7u, j0, c70);
  put(i0 + 7u, j0 + 4u, c71);
}
