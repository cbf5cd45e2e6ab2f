// The invocation layout and the index arithmetic of the attention VJP kernels
// (tf_attention_vjp_q, tf_attention_vjp_kv), spliced by `//!include attention_vjp_row.wgsl`.
// Uses the including shader's `params` { B, K, P, H, dHead, dV }. Invocation inv (flat_index,
// dispatch_index.wgsl) = ((b·K + k)·H + h)·P + pos handles sample b, cotangent k
// (bk = b·K + k, the cotangent row block), head h and position pos (the query t in _q, the key
// u in _kv); wq = H·dHead and wv = H·dV are the row widths of q/k and v/z. `ok` is false for
// the padding invocations.
struct VjpRow { ok: bool, inv: u32, pos: u32, h: u32, bk: u32, b: u32, wq: u32, wv: u32 }

fn vjp_row(inv: u32) -> VjpRow {
  let P = params.P;
  let H = params.H;
  let bk = inv / (P * H);
  let ok = inv < params.B * params.K * H * P;
  return VjpRow(ok, inv, inv % P, (inv / P) % H, bk, bk / params.K, H * params.dHead, H * params.dV);
}

// Start of head r.h in row `pos` of row block `blk` (b for the forward q, k, v; bk for the
// cotangents dz, dq, dk, dv) of a [·, H·dHead] matrix (qk_at) or a [·, H·dV] matrix (vz_at).
fn qk_at(r: VjpRow, blk: u32, pos: u32) -> u32 { return (blk * params.P + pos) * r.wq + r.h * params.dHead; }
fn vz_at(r: VjpRow, blk: u32, pos: u32) -> u32 { return (blk * params.P + pos) * r.wv + r.h * params.dV; }

// Start of row t of the P×P attention matrix of head r.h in block `blk` (b for the forward
// probabilities, bk for ds).
fn pp_row(r: VjpRow, blk: u32, t: u32) -> u32 { return ((blk * params.H + r.h) * params.P + t) * params.P; }
