// tf_rotary: rotary position embedding (NeoX halves, SPEC-transformers §2.5) and its VJP.
// Per row r at position t = r % P (forward rows [b, p] and cotangent rows [b, k, p] alike), per
// head h and head coordinate j, with half = rotaryDim / 2, i = j mod half and the host-built
// float64-accurate table cs[t, i] = (cos θ, sin θ), θ = t · base^(−2i / rotaryDim):
//   j < half:              y[j] = x[j] cos θ_j − s · x[j + half] sin θ_j
//   half ≤ j < rotaryDim:  y[j] = x[j] cos θ_i + s · x[j − half] sin θ_i
//   j ≥ rotaryDim:         y[j] = x[j]
// with s = +1 for the forward rotation and s = −1 (TRANSPOSE = 1) for its VJP (the transposed
// rotation of the cotangent). The angles come from the table because f32 t·θ loses ~1e-4 rad at
// t in the thousands.
//
// Bindings (@group(0)):
//   0 x      : array<f32> read-only, [rows, heads·dHead]
//   1 cs     : array<f32> read-only, [P, half, 2] (cos, sin)
//   2 y      : array<f32> read-write, [rows, heads·dHead] (must not alias x)
//   3 params : uniform { rows, width (= heads·dHead), dHead, rotaryDim, P }
// Overrides: TRANSPOSE (0 forward, 1 VJP), WG (default 256).
// Dispatch: ceil(rows·width / WG) workgroups (1-D, folded to 2-D); one element per invocation.

struct Params { rows: u32, width: u32, dHead: u32, rotaryDim: u32, P: u32 }

override TRANSPOSE: u32 = 0u;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> cs: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let m = matrix_element(id, params.rows, params.width);
  if (!m.ok) { return; }
  let e = m.i;
  let r = m.row;
  let j = m.col % params.dHead;
  let rd = params.rotaryDim;
  if (j >= rd) {
    y[e] = x[e];
    return;
  }
  let half = rd / 2u;
  let t = r % params.P;
  let sgn = select(1.0, -1.0, TRANSPOSE == 1u);
  if (j < half) {
    let o = (t * half + j) * 2u;
    y[e] = x[e] * cs[o] - sgn * x[e + half] * cs[o + 1u];
  } else {
    let o = (t * half + j - half) * 2u;
    y[e] = x[e] * cs[o] + sgn * x[e - half] * cs[o + 1u];
  }
}
