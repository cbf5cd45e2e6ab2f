// tf_act: elementwise activation of a transformer program value, y[i] = act(x[i]) (the folded ρ
// slot maps to act(ρ) = 1 by construction of ρ, so the whole value is mapped).
//
// Bindings (@group(0)):
//   0 x      : array<f32> read-only, n
//   1 y      : array<f32> read-write, n (must not alias x)
//   2 params : uniform { n }
// Overrides: ACT (0 identity, 1 relu, 2 gelu (erf), 3 gelu_tanh; shaders/include/activations.wgsl),
//   WG (default 256).
// Dispatch: ceil(n / WG) workgroups (1-D, folded to 2-D); one element per invocation, no loops.
// Numerics: gelu uses Abramowitz–Stegun 7.1.26 for erf (|err| < 1.5e-7 absolute).

struct Params { n: u32 }

override ACT: u32 = 1u;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

//!include activations.wgsl
//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let i = flat_index(id);
  if (i >= params.n) { return; }
  y[i] = act(x[i]);
}
