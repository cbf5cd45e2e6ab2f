// jacobian_gate: one backward step of per-sample output Jacobians stacked output-major.
// The rows of `inp` are (output o, datapoint r) pairs, row index o·batch + r, so the gate of a
// row is the activation derivative at datapoint r's pre-activation:
//   out[i, c] = inp[i, c] · σ'(pre[(row_offset + i % batch), c] + bias[c])
// σ' is act_grad of act_backward.wgsl (relu'(0) = 0 as in torch), matching actGrad in
// src/model/activations.ts.
//
// Bindings (@group(0)):
//   0 inp    : array<f32>  read-only, rows*cols (rows = n_out·batch)
//   1 pre    : array<f32>  read-only, at least (row_offset + batch)*cols (matmul output, no bias)
//   2 bias   : array<f32>  read-only, cols
//   3 out    : array<f32>  read-write, rows*cols (must not alias inp)
//   4 params : uniform { rows, cols, batch, row_offset }
// Overrides: ACT (0 identity, 1 relu, 2 gelu (erf), 3 gelu_tanh), WG (default 256).
// Dispatch: ceil(rows*cols / WG) workgroups (1-D, folded to 2-D above 65535 by the scheduler);
//   one element per invocation, no loops, no barriers (bit-reproducible).
// Numerics: one f32 add, one derivative evaluation (gelu: erf by Abramowitz–Stegun 7.1.26,
//   |err| < 1.5e-7), one multiply.

struct Params { rows: u32, cols: u32, batch: u32, row_offset: u32 }

override ACT: u32 = 1u;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> inp: array<f32>;
@group(0) @binding(1) var<storage, read> pre: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

//!include activations.wgsl
//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let e = matrix_element(id, params.rows, params.cols);
  if (!e.ok) { return; }
  let r = params.row_offset + e.row % params.batch;
  out[e.i] = inp[e.i] * act_grad(pre[r * params.cols + e.col] + bias[e.col]);
}
