// The shared interface of the two general matmul kernels (matmul_reg for CPU adapters,
// matmul_tiled for GPUs), spliced by `//!include matmul_operands.wgsl`: one uniform layout and
// one set of layout overrides, so that src/kernels/matmul.ts packs the same params and sets the
// same constants whichever kernel it picks. Uses the including shader's bindings `a` and `b`
// (array<vec4f>); ld_a / ld_b read f32 element i of them.
// Params: m, n, k (op(A) is m x k, op(B) k x n), use_beta (C is read only when != 0), leading
// dimensions lda/ldb/ldc, batch strides stride_* and element offsets off_* (in f32 elements),
// alpha and beta; pad* keep the vec4-aligned rows of the uniform.
// Overrides: TRANS_A / TRANS_B (operand stored transposed), VEC_A / VEC_B (operand 4-aligned:
// lda % 4 == 0, stride % 4 == 0, off % 4 == 0, so it may be read as whole vec4s).

struct Params {
  m: u32, n: u32, k: u32, use_beta: u32,
  lda: u32, ldb: u32, ldc: u32, pad0: u32,
  stride_a: u32, stride_b: u32, stride_c: u32, pad1: u32,
  off_a: u32, off_b: u32, off_c: u32, pad2: u32,
  alpha: f32, beta: f32, pad3: u32, pad4: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC_A: bool = false;
override VEC_B: bool = false;

fn ld_a(i: u32) -> f32 { return a[i >> 2u][i & 3u]; }
fn ld_b(i: u32) -> f32 { return b[i >> 2u][i & 3u]; }
