// tf_act_vjp: VJP of an elementwise activation for a block of K cotangents per sample.
// Cotangent rows are laid out [sample b, k, position p] (row r = (b·K + k)·P + p); the forward
// pre-activations x are [b, p] and are broadcast over k:
//   dx[r, c] = dy[r, c] · act'(x[b·P + p, c])
// The forward at an integration point α is run on α-scaled section inputs, so x here already is
// the pre-activation at α.
//
// Bindings (@group(0)):
//   0 x      : array<f32> read-only, [B·P, width] forward pre-activations
//   1 dy     : array<f32> read-only, [B·K·P, width]
//   2 dx     : array<f32> read-write, [B·K·P, width] (must not alias dy or x)
//   3 params : uniform { rows (= B·K·P), width, K, P }
// Overrides: ACT (as tf_act), WG (default 256).
// Dispatch: ceil(rows·width / WG) workgroups (1-D, folded to 2-D); one element per invocation.

struct Params { rows: u32, width: u32, K: u32, P: u32 }

override ACT: u32 = 1u;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include activations.wgsl
//!include dispatch_index.wgsl
//!include cotangent_row.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let e = matrix_element(id, params.rows, params.width);
  if (!e.ok) { return; }
  let fwd = forward_row(e.row, params.K, params.P);
  dx[e.i] = dy[e.i] * act_grad(x[fwd * params.width + e.col]);
}
