// legacy_terms: the elementwise pieces of rib's legacy integrated-gradient formulas for one MLP
// section f^{ℓ+1} = σ(W̄ᵀ f) with folded bias (SPEC §4.4 `(1-0)*alpha`, `(1-alpha)^2`; §5.3
// `functional` edges). On the path u = α·f the folded pre-activation is α·p̄, where
//   p̄[r, c] = x[r * xcols + c] + bias[c]   for c < xcols,
//   p̄[r, c] = rho                          for xcols <= c < cols (the folded constant output
//                                            unit: bias slot 1 times W̄'s ρ entry).
// With the integration points (α_k, w_k) in `points` the modes compute, for r < rows, c < cols:
//   MODE 0 (difference): out[r * cols + c] = σ(p̄) − beta · σ(α_k0 · p̄)
//   MODE 1 (gated):      out[r * stride + off + c] (+)= scale · a · q
//                        with a = Σ_{k0 <= k < k1} w_k σ'(α_k p̄), q = q[r * cols + c] (has_q = 1)
//                        or 1 (has_q = 0); adds to the old value when accumulate = 1
//   MODE 2 (copy):       out[r * stride + off + c] = x[r * xcols + c]   (requires cols == xcols)
// MODE 2 writes a block of columns into a wider row-major matrix, so a batch [h | f] can be packed
// for one Gram.
//
// Bindings (@group(0)):
//   0 x      : array<f32>  read-only, rows*xcols
//   1 bias   : array<f32>  read-only, xcols (MODE 0/1; any buffer in MODE 2)
//   2 q      : array<f32>  read-only, rows*cols when has_q = 1 (any buffer otherwise)
//   3 points : array<f32>  read-only, 2*npts: α_0..α_{npts-1}, then w_0..w_{npts-1}
//   4 out    : array<f32>  read-write; must not alias x, bias, q or points
//   5 params : uniform { rows, cols, xcols, stride, off, k0, k1, npts, accumulate, has_q: u32,
//                        rho, beta, scale: f32 } (64 bytes)
// Overrides: MODE (0, 1, 2), ACT (0 identity, 1 relu, 2 gelu (erf), 3 gelu_tanh; as bias_act), WG.
// Dispatch: ceil(rows*cols / WG) workgroups (1-D, folded to 2-D above 65535 by the scheduler).
// Numerics: f32. σ and σ' are bias_act's (relu'(0) = 0 as in torch; erf by Abramowitz–Stegun
// 7.1.26, |err| < 1.5e-7), so these terms agree with the forward pass bit for bit where they
// overlap. The loop over points runs k1 − k0 <= npts iterations per invocation.

struct Params {
  rows: u32, cols: u32, xcols: u32, stride: u32,
  off: u32, k0: u32, k1: u32, npts: u32,
  accumulate: u32, has_q: u32, rho: f32, beta: f32,
  scale: f32, pad0: u32, pad1: u32, pad2: u32,
}

override MODE: u32 = 0u;
override ACT: u32 = 1u;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> points: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

//!include activations.wgsl
//!include dispatch_index.wgsl

fn preact(r: u32, c: u32) -> f32 {
  if (c < params.xcols) { return x[r * params.xcols + c] + bias[c]; }
  return params.rho;
}

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let e = matrix_element(id, params.rows, params.cols);
  if (!e.ok) { return; }
  let i = e.i;
  let r = e.row;
  let c = e.col;
  if (MODE == 2u) {
    out[r * params.stride + params.off + c] = x[r * params.xcols + c];
    return;
  }
  let p = preact(r, c);
  if (MODE == 0u) {
    out[i] = act(p) - params.beta * act(points[params.k0] * p);
    return;
  }
  var a = 0.0;
  for (var k = params.k0; k < params.k1; k++) {
    a += points[params.npts + k] * act_grad(points[k] * p);
  }
  var v = params.scale * a;
  if (params.has_q == 1u) { v *= q[i]; }
  let o = r * params.stride + params.off + c;
  if (params.accumulate == 1u) { v += out[o]; }
  out[o] = v;
}
