// tf_attention: rib's attention core without W_O (op attention, src/model/program.ts), one
// (sample b, head h, query position t) per invocation:
//   s_u = q_t · k_u / scale for allowed u (u ≤ t when causal; t − u < window when window > 0),
//   p_u = exp(s_u − max s) / Σ exp(s − max s)  (masked u: p_u = 0, i.e. s = −∞),
//   z_t = Σ_u p_u v_u.
// The probabilities are also written out: the VJP kernels reuse them (tf_attention_vjp_*).
// Subtracting the row maximum keeps every exp ≤ 1 (no overflow); an allowed u always exists
// (u = t), so the denominator is ≥ 1.
//
// Bindings (@group(0)):
//   0 q      : array<f32> read-only, [B·P, H·dHead] head-major
//   1 k      : array<f32> read-only, [B·P, H·dHead]
//   2 v      : array<f32> read-only, [B·P, H·dV]
//   3 z      : array<f32> read-write, [B·P, H·dV]
//   4 probs  : array<f32> read-write, [B·H, P, P] (row t holds p_{t,·}; scratch for scores first)
//   5 params : uniform { B, P, H, dHead, dV, causal, window, scale: f32 }
// Overrides: WG (default 64).
// Dispatch: ceil(B·H·P / WG) workgroups (1-D, folded to 2-D); P·(dHead + dV + 2) + dV loop
//   iterations per invocation (the host keeps this under the llvmpipe loop budget).

struct Params { B: u32, P: u32, H: u32, dHead: u32, dV: u32, causal: u32, window: u32, scale: f32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> z: array<f32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

fn allowed(t: u32, u: u32) -> bool {
  if (params.causal == 1u && u > t) { return false; }
  if (params.window > 0u && t >= u && t - u >= params.window) { return false; }
  if (params.window > 0u && u > t && u - t >= params.window) { return false; }
  return true;
}

//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let inv = flat_index(id);
  let P = params.P;
  let H = params.H;
  if (inv >= params.B * H * P) { return; }
  let t = inv % P;
  let h = (inv / P) % H;
  let b = inv / (P * H);
  let dh = params.dHead;
  let dv = params.dV;
  let wq = H * dh;
  let wv = H * dv;
  let qo = (b * P + t) * wq + h * dh;
  let po = inv * P; // probs row of (b, h, t)
  var m = -3.0e38;
  for (var u = 0u; u < P; u++) {
    if (!allowed(t, u)) { continue; }
    let ko = (b * P + u) * wq + h * dh;
    var s = 0.0;
    for (var c = 0u; c < dh; c++) { s += q[qo + c] * k[ko + c]; }
    s = s / params.scale;
    probs[po + u] = s;
    m = max(m, s);
  }
  var l = 0.0;
  for (var u = 0u; u < P; u++) {
    if (!allowed(t, u)) { continue; }
    let e = exp(probs[po + u] - m);
    probs[po + u] = e;
    l += e;
  }
  let zo = (b * P + t) * wv + h * dv;
  for (var c = 0u; c < dv; c++) { z[zo + c] = 0.0; }
  for (var u = 0u; u < P; u++) {
    if (!allowed(t, u)) {
      probs[po + u] = 0.0;
      continue;
    }
    let p = probs[po + u] / l;
    probs[po + u] = p;
    let vo = (b * P + u) * wv + h * dv;
    for (var c = 0u; c < dv; c++) { z[zo + c] += p * v[vo + c]; }
  }
}
