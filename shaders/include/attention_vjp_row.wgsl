// The invocation layout of the attention VJP kernels (tf_attention_vjp_q, tf_attention_vjp_kv),
// spliced by `//!include attention_vjp_row.wgsl`. Uses the including shader's
// `params` { B, K, P, H, dHead, dV }. Invocation inv = ((b·K + k)·H + h)·P + pos handles sample b,
// cotangent k (bk = b·K + k, the cotangent row block), head h and position pos (the query t in
// _q, the key u in _kv); wq = H·dHead and wv = H·dV are the row widths of q/k and v/z.
struct VjpRow { pos: u32, h: u32, bk: u32, b: u32, wq: u32, wv: u32 }

// Invocations that have work: B·K·H·P.
fn vjp_rows() -> u32 { return params.B * params.K * params.H * params.P; }

fn vjp_row(inv: u32) -> VjpRow {
  let P = params.P;
  let H = params.H;
  let bk = inv / (P * H);
  return VjpRow(inv % P, (inv / P) % H, bk, bk / params.K, H * params.dHead, H * params.dV);
}
