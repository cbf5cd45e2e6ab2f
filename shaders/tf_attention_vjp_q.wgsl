// tf_attention_vjp_q: first half of the attention VJP (SPEC-transformers §5.2 steps 2–4) for a
// block of K cotangents per sample, one (b, k, h, query position t) per invocation. With the
// forward probabilities p (tf_attention) and the cotangent dz on z (rows [b, k, p]):
//   dp_u = dz_t · v_u,  ds_u = p_u (dp_u − Σ_{u'} p_{u'} dp_{u'}),  dq_t = Σ_u ds_u k_u / scale.
// ds is written for the second half (tf_attention_vjp_kv), which needs sums over t.
// Masked u have p_u = 0 and so ds_u = 0 (the −∞ scores contribute nothing).
//
// Bindings (@group(0)):
//   0 k      : array<f32> read-only, [B·P, H·dHead]
//   1 v      : array<f32> read-only, [B·P, H·dV]
//   2 probs  : array<f32> read-only, [B·H, P, P]
//   3 dz     : array<f32> read-only, [B·K·P, H·dV]
//   4 dq     : array<f32> read-write, [B·K·P, H·dHead]
//   5 ds     : array<f32> read-write, [B·K·H, P, P]
//   6 params : uniform { B, K, P, H, dHead, dV, scale: f32 }
// Overrides: WG (default 64).
// Dispatch: ceil(B·K·H·P / WG) workgroups (1-D, folded to 2-D); P·(dV + dHead + 1) + dHead loop
//   iterations per invocation.

struct Params { B: u32, K: u32, P: u32, H: u32, dHead: u32, dV: u32, scale: f32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> probs: array<f32>;
@group(0) @binding(3) var<storage, read> dz: array<f32>;
@group(0) @binding(4) var<storage, read_write> dq: array<f32>;
@group(0) @binding(5) var<storage, read_write> ds: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

//!include attention_vjp_row.wgsl
//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let r = vjp_row(flat_index(id));
  if (!r.ok) { return; }
  let t = r.pos;
  let P = params.P;
  let po = pp_row(r, r.b, t);
  let so = r.inv * P; // ds row of (b, k, h, t)
  let go = vz_at(r, r.bk, t);
  let dv = params.dV;
  var dot = 0.0;
  for (var u = 0u; u < P; u++) {
    let p = probs[po + u];
    var dp = 0.0;
    if (p != 0.0) {
      let vo = vz_at(r, r.b, u);
      for (var c = 0u; c < dv; c++) { dp += dz[go + c] * v[vo + c]; }
    }
    ds[so + u] = dp;
    dot += p * dp;
  }
  let dh = params.dHead;
  let qo = qk_at(r, r.bk, t);
  for (var c = 0u; c < dh; c++) { dq[qo + c] = 0.0; }
  for (var u = 0u; u < P; u++) {
    let g = probs[po + u] * (ds[so + u] - dot);
    ds[so + u] = g;
    if (g == 0.0) { continue; }
    let f = g / params.scale;
    let ko = qk_at(r, r.b, u);
    for (var c = 0u; c < dh; c++) { dq[qo + c] += f * k[ko + c]; }
  }
}
