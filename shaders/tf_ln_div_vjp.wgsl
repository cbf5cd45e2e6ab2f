// tf_ln_div_vjp: VJP of lnDiv for a block of K cotangents per sample. Cotangent rows are
// [sample b, k, position p] (r = (b·K + k)·P + p); forward inputs (var, x) are [b, p], broadcast
// over k (f = b·P + p). With σ = √(var[f] + ε), m = mean of x[f, :d], m_dy = mean of dy[r, :d]:
//   dx[r, c]  = (dy[r, c] − m_dy) / σ            for c < d,   dx[r, d] = dy[r, d]   (1-slot)
//   dvar[r]   = −Σ_{c<d} dy[r, c] (x[f, c] − m) / (2 σ³)
// (∂y/∂var does not flow into x: rib's split LayerNorm keeps var an input of its own.)
//
// Bindings (@group(0)):
//   0 v      : array<f32> read-only, [B·P]
//   1 x      : array<f32> read-only, [B·P, d + 1]
//   2 dy     : array<f32> read-only, [B·K·P, d + 1]
//   3 dx     : array<f32> read-write, [B·K·P, d + 1]
//   4 dvar   : array<f32> read-write, [B·K·P]
//   5 params : uniform { rows (= B·K·P), d, K, P, eps: f32 }
// Overrides: WG (default 64).
// Dispatch: ceil(rows / WG) workgroups (1-D, folded to 2-D); one cotangent row per invocation,
//   3·d + 1 loop iterations.

struct Params { rows: u32, d: u32, K: u32, P: u32, eps: f32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> v: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> dvar: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

//!include dispatch_index.wgsl
//!include cotangent_row.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let r = flat_index(id);
  if (r >= params.rows) { return; }
  let d = params.d;
  let f = forward_row(r, params.K, params.P);
  let ox = f * (d + 1u);
  let od = r * (d + 1u);
  var sx = 0.0;
  var sg = 0.0;
  for (var c = 0u; c < d; c++) {
    sx += x[ox + c];
    sg += dy[od + c];
  }
  let mean = sx / f32(d);
  let mg = sg / f32(d);
  let inv = 1.0 / sqrt(v[f] + params.eps);
  var t = 0.0;
  for (var c = 0u; c < d; c++) {
    let g = dy[od + c];
    t += g * (x[ox + c] - mean);
    dx[od + c] = (g - mg) * inv;
  }
  dx[od + d] = dy[od + d];
  dvar[r] = -0.5 * t * inv * inv * inv;
}
