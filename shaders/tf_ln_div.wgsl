// tf_ln_div: the division half of rib's split LayerNorm (op lnDiv, src/model/program.ts):
//   y[r, c] = (x[r, c] − mean_r) / √(var[r] + ε)   for c < d,    y[r, d] = x[r, d]  (the 1-slot)
// var is an input of its own (the lnVar node), not recomputed from x.
//
// Bindings (@group(0)):
//   0 v      : array<f32> read-only, [rows] (the variance value)
//   1 x      : array<f32> read-only, [rows, d + 1]
//   2 y      : array<f32> read-write, [rows, d + 1]
//   3 params : uniform { rows, d, eps: f32 }
// Overrides: WG (default 64).
// Dispatch: ceil(rows / WG) workgroups (1-D, folded to 2-D); one row per invocation, 2·d + 1 loop
//   iterations.

struct Params { rows: u32, d: u32, eps: f32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> v: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include dispatch_index.wgsl
//!include row_mean.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let r = flat_index(id);
  if (r >= params.rows) { return; }
  let d = params.d;
  let o = r * (d + 1u);
  let mean = row_mean(o, d);
  let inv = 1.0 / sqrt(v[r] + params.eps);
  for (var c = 0u; c < d; c++) { y[o + c] = (x[o + c] - mean) * inv; }
  y[o + d] = x[o + d];
}
