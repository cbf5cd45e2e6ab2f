// tf_ln_var_vjp: VJP of lnVar for a block of K cotangents per sample. Cotangent rows are
// [sample b, k, position p] (r = (b·K + k)·P + p); the forward input x is [b, p], broadcast over k:
//   dx[r, c] = dy[r] · 2 (x[f, c] − mean_f) / d   for c < d,   0 for c ≥ d,   f = b·P + p
//
// Bindings (@group(0)):
//   0 x      : array<f32> read-only, [B·P, width]
//   1 dy     : array<f32> read-only, [B·K·P] (the variance is one column)
//   2 dx     : array<f32> read-write, [B·K·P, width]
//   3 params : uniform { rows (= B·K·P), width, d, K, P }
// Overrides: WG (default 64).
// Dispatch: ceil(rows / WG) workgroups (1-D, folded to 2-D); one cotangent row per invocation,
//   d + width loop iterations.

struct Params { rows: u32, width: u32, d: u32, K: u32, P: u32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include dispatch_index.wgsl
//!include cotangent_row.wgsl
//!include row_mean.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let r = flat_index(id);
  if (r >= params.rows) { return; }
  let w = params.width;
  let d = params.d;
  let f = forward_row(r, params.K, params.P);
  let o = f * w;
  let mean = row_mean(o, d);
  let g = dy[r] * 2.0 / f32(d);
  let od = r * w;
  for (var c = 0u; c < w; c++) {
    dx[od + c] = select(0.0, g * (x[o + c] - mean), c < d);
  }
}
