// vec_axpy: y[i] += alpha * x[i] for i < n.
//
// Bindings (@group(0)):
//   0 x      : array<f32>  read-only, length >= n
//   1 y      : array<f32>  read-write, length >= n
//   2 params : uniform { n: u32, alpha: f32 }
// Workgroup: WG (override, default 256) invocations, one element each.
// Dispatch: ceil(n / WG) workgroups, possibly folded into 2-D by the scheduler; the linear
// workgroup id is rebuilt from num_workgroups and out-of-range invocations return.
// Numerics: one fused or unfused multiply-add per element (WGSL lets the compiler choose).

struct Params { n: u32, alpha: f32 }

override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let i = flat_index(id);
  if (i >= params.n) { return; }
  y[i] = y[i] + params.alpha * x[i];
}
