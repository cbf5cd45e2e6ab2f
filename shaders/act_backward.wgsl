// act_backward: backward pass of an MLP section's activation. For the row-major batch of
// pre-activations p = x[r, c] + bias[c] (the same split as bias_act.wgsl: x is the matmul output
// without the bias):
//   grad_in[r, c] = grad_out[r, c] · σ'(p)
// σ' is the same function (same approximations) as act_grad in bias_act.wgsl, and matches
// actGrad in src/model/activations.ts (relu'(0) = 0 as in torch).
//
// Bindings (@group(0)):
//   0 x        : array<f32>  read-only, rows*cols (pre-activations without bias)
//   1 bias     : array<f32>  read-only, cols
//   2 grad_out : array<f32>  read-only, rows*cols (upstream gradient ∂L/∂σ(p))
//   3 grad_in  : array<f32>  read-write, rows*cols (∂L/∂p; must not alias grad_out or x)
//   4 params   : uniform { rows: u32, cols: u32 }
// Overrides: ACT (0 identity, 1 relu, 2 gelu (erf), 3 gelu_tanh), WG (default 256).
// Dispatch: ceil(rows*cols / WG) workgroups (1-D, folded to 2-D above 65535 by the scheduler);
//   one element per invocation, no loops, no barriers, no atomics (bit-reproducible).
// Numerics: one f32 add, one derivative evaluation (gelu: erf by Abramowitz–Stegun 7.1.26,
//   |err| < 1.5e-7), one multiply.

struct Params { rows: u32, cols: u32 }

override ACT: u32 = 1u;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read> grad_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_in: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

//!include activations.wgsl
//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let i = flat_index(id);
  if (i >= params.rows * params.cols) { return; }
  let p = x[i] + bias[i % params.cols];
  grad_in[i] = grad_out[i] * act_grad(p);
}
