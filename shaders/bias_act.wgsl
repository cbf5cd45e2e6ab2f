// bias_act: the epilogue of an MLP section. For a row-major batch of pre-activations
// p = x[r, c] + bias[c]:
//   out[r, c]  = σ(p)                                   (always)
//   gate[r, c] = Σ_k w_k σ'(α_k p)                      (when WRITE_GATE = 1)
// The gate is the integrated derivative along the path u = α·f used by the Interaction Basis
// (SPEC §4.2–4.3): with folded biases the pre-activation at α·f is α·p. For relu and identity it
// equals σ'(p) for every rule with α > 0.
//
// Bindings (@group(0)):
//   0 x      : array<f32>  read-only, rows*cols (pre-activations without bias)
//   1 bias   : array<f32>  read-only, cols
//   2 out    : array<f32>  read-write, rows*cols (must not alias x)
//   3 gate   : array<f32>  read-write, rows*cols when WRITE_GATE = 1 (any buffer otherwise)
//   4 points : array<f32>  read-only, 2*npts: α_0..α_{npts-1}, then w_0..w_{npts-1}
//   5 params : uniform { rows: u32, cols: u32, npts: u32 }
// Overrides: ACT (0 identity, 1 relu, 2 gelu (erf), 3 gelu_tanh), WRITE_GATE (0/1), WG.
// Dispatch: ceil(rows*cols / WG) workgroups (1-D, folded to 2-D above 65535 by the scheduler).
// Numerics: relu'(0) = 0 as in torch. erf uses Abramowitz–Stegun 7.1.26 (|err| < 1.5e-7, below
// f32 resolution of the result).

struct Params { rows: u32, cols: u32, npts: u32 }

override ACT: u32 = 1u;
override WRITE_GATE: u32 = 0u;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> gate: array<f32>;
@group(0) @binding(4) var<storage, read> points: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

//!include activations.wgsl
//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let i = flat_index(id);
  if (i >= params.rows * params.cols) { return; }
  let p = x[i] + bias[i % params.cols];
  out[i] = act(p);
  if (WRITE_GATE == 1u) {
    var g = 0.0;
    for (var k = 0u; k < params.npts; k++) {
      g += points[params.npts + k] * act_grad(points[k] * p);
    }
    gate[i] = g;
  }
}
