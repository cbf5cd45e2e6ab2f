// tf_edge_square: the inner square-and-sum of the squared edges of a transformer section
// (SPEC-transformers §6.1). For a block of K cotangents per sample (k = one (output position t,
// output direction i) pair) and input directions j < r:
//   out[k, j] = Σ_b ( Σ_s h[b·hStride + (k·P + s)·r + j] · u[b·P + s, j] )²
// h is the VJP mapped into the input basis (g·C⁺ᵀ, rows [b, k, s]; hStride = K·P·r) or, for a
// section whose gradients do not depend on the sample, one block for all b (hStride = 0); u = f·C
// ([b, s]). The host
// adds out[k, ·] into E[i(k), ·] in float64 and divides by N·P at the end.
//
// Bindings (@group(0)):
//   0 h      : array<f32> read-only, [B·K·P, r] (or [K·P, r] with hStride 0)
//   1 u      : array<f32> read-only, [B·P, r]
//   2 out    : array<f32> read-write, [K, r]
//   3 params : uniform { B, K, P, r, hStride }
// Overrides: WG (default 64).
// Dispatch: ceil(K·r / WG) workgroups (1-D, folded to 2-D); one (k, j) per invocation, B·P loop
//   iterations (the host keeps B·P under the llvmpipe loop budget). Neighbouring invocations
//   read neighbouring j, so the row loads of h and u are contiguous across a workgroup.
// Numerics: the inner sum has P terms, the outer sum B non-negative squares (relative error
//   ≤ (B + P + 1)·2^-24 of the result's terms).

struct Params { B: u32, K: u32, P: u32, r: u32, hStride: u32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> h: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let i = flat_index(id);
  let r = params.r;
  let K = params.K;
  let P = params.P;
  if (i >= K * r) { return; }
  let k = i / r;
  let j = i % r;
  var acc = 0.0;
  for (var b = 0u; b < params.B; b++) {
    var e = 0.0;
    for (var s = 0u; s < P; s++) {
      e += h[b * params.hStride + (k * P + s) * r + j] * u[(b * P + s) * r + j];
    }
    acc += e * e;
  }
  out[i] = acc;
}
