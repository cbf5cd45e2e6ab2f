// eigh_norm_sum: reduces eigh_norm's partial sums to the three numbers the host reads once per
// block-Jacobi sweep: out[0] = bits of Σ off², out[1] = bits of Σ diag² (f32 bit patterns, so
// the host reads one u32 buffer), out[2] = rotations applied this sweep.
//
// Bindings (@group(0)):
//   0 partial : array<f32>  read-only, 2·groups
//   1 count   : array<u32>  read-only, [0] = rotations applied by eigh_solve this sweep
//   2 out     : array<u32>  read-write, 3 (f32 bits, f32 bits, count)
//   3 params  : uniform { groups }
// Workgroup: 256 invocations. Dispatch: exactly 1 workgroup.
// Numerics: f32; strided sequential sums then a tree (error ~ (groups/256 + 8)·ε relative).

struct Params { groups: u32 }

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read> count: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include norm_reduce.wgsl

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var off = 0.0;
  var dg = 0.0;
  for (var g = lid; g < params.groups; g += 256u) {
    off += partial[2u * g];
    dg += partial[2u * g + 1u];
  }
  let sums = reduce_norms(lid, off, dg);
  if (lid == 0u) {
    out[0] = bitcast<u32>(sums.x);
    out[1] = bitcast<u32>(sums.y);
    out[2] = count[0];
  }
}
