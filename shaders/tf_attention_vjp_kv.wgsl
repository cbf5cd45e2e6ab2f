// tf_attention_vjp_kv: second half of the attention VJP (SPEC-transformers §5.2 steps 2 and 4),
// one (b, k, h, key position u) per invocation, summing over query positions t:
//   dk_u = Σ_t ds_{t,u} q_t / scale,   dv_u = Σ_t p_{t,u} dz_t
// with ds from tf_attention_vjp_q and p from tf_attention (zero where masked).
//
// Bindings (@group(0)):
//   0 q      : array<f32> read-only, [B·P, H·dHead]
//   1 probs  : array<f32> read-only, [B·H, P, P]
//   2 dz     : array<f32> read-only, [B·K·P, H·dV]
//   3 ds     : array<f32> read-only, [B·K·H, P, P]
//   4 dk     : array<f32> read-write, [B·K·P, H·dHead]
//   5 dv     : array<f32> read-write, [B·K·P, H·dV]
//   6 params : uniform { B, K, P, H, dHead, dV, scale: f32 }
// Overrides: WG (default 64).
// Dispatch: ceil(B·K·H·P / WG) workgroups (1-D, folded to 2-D); (P + 1)·(dHead + dV) loop
//   iterations per invocation.

struct Params { B: u32, K: u32, P: u32, H: u32, dHead: u32, dV: u32, scale: f32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> probs: array<f32>;
@group(0) @binding(2) var<storage, read> dz: array<f32>;
@group(0) @binding(3) var<storage, read> ds: array<f32>;
@group(0) @binding(4) var<storage, read_write> dk: array<f32>;
@group(0) @binding(5) var<storage, read_write> dv: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

//!include attention_vjp_row.wgsl
//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let r = vjp_row(flat_index(id));
  if (!r.ok) { return; }
  let u = r.pos;
  let dh = params.dHead;
  let dvw = params.dV;
  let ko = qk_at(r, r.bk, u);
  let vo = vz_at(r, r.bk, u);
  for (var c = 0u; c < dh; c++) { dk[ko + c] = 0.0; }
  for (var c = 0u; c < dvw; c++) { dv[vo + c] = 0.0; }
  for (var t = 0u; t < params.P; t++) {
    let p = probs[pp_row(r, r.b, t) + u];
    if (p == 0.0) { continue; }
    let g = ds[pp_row(r, r.bk, t) + u] / params.scale;
    let qo = qk_at(r, r.b, t);
    for (var c = 0u; c < dh; c++) { dk[ko + c] += g * q[qo + c]; }
    let go = vz_at(r, r.bk, t);
    for (var c = 0u; c < dvw; c++) { dv[vo + c] += p * dz[go + c]; }
  }
}
