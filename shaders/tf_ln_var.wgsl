// tf_ln_var: the variance half of rib's split LayerNorm (op lnVar, src/model/program.ts):
//   y[r] = (1/d) Σ_{c<d} (x[r, c] − mean_r)²,  mean_r = (1/d) Σ_{c<d} x[r, c]
// (population variance of the first d coordinates, no ε; trailing coordinates such as the 1-slot
// are excluded). Two passes over the row in f32 (mean first), so no cancellation of E[x²]−E[x]².
//
// Bindings (@group(0)):
//   0 x      : array<f32> read-only, [rows, width] (width ≥ d)
//   1 y      : array<f32> read-write, [rows]
//   2 params : uniform { rows, width, d }
// Overrides: WG (default 64).
// Dispatch: ceil(rows / WG) workgroups (1-D, folded to 2-D); one row per invocation, 2·d loop
//   iterations (the host keeps 2·d under the llvmpipe loop budget).

struct Params { rows: u32, width: u32, d: u32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

//!include dispatch_index.wgsl
//!include row_mean.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let r = flat_index(id);
  if (r >= params.rows) { return; }
  let o = r * params.width;
  let d = params.d;
  let mean = row_mean(o, d);
  var q = 0.0;
  for (var c = 0u; c < d; c++) {
    let e = x[o + c] - mean;
    q += e * e;
  }
  y[r] = q / f32(d);
}
