// eigh_norm: per-workgroup partial sums of the squared off-diagonal and diagonal entries of the
// n×n matrix a (the block-Jacobi convergence measure), and a copy of its diagonal.
//
// Bindings (@group(0)):
//   0 a       : array<f32>  read-only, n×n row-major
//   1 partial : array<f32>  read-write, 2 per workgroup: [2g] = Σ off², [2g+1] = Σ diag²
//   2 diag    : array<f32>  read-write, n (diag[i] = a[i, i])
//   3 params  : uniform { n }
// Workgroup: 256 invocations = 8 rows × 32 lanes; lane l sums columns l, l+32, ... of its row.
// Dispatch: ceil(n / 8) workgroups (1-D, folded to 2-D by the engine).
// Numerics: f32 sums of squares: a tree over 256 invocations after strided sequential sums of
//   length n/32; relative error ~ (n/32 + 8)·ε, ample for a convergence test.

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> diag: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include norm_reduce.wgsl

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let g = wid.x + wid.y * nwg.x;
  let n = params.n;
  let row = g * 8u + lid / 32u;
  var off = 0.0;
  var dg = 0.0;
  if (row < n) {
    for (var j = lid % 32u; j < n; j += 32u) {
      let x = a[row * n + j];
      if (j == row) {
        dg += x * x;
        diag[row] = x;
      } else {
        off += x * x;
      }
    }
  }
  let sums = reduce_norms(lid, off, dg);
  if (lid == 0u) {
    partial[2u * g] = sums.x;
    partial[2u * g + 1u] = sums.y;
  }
}
