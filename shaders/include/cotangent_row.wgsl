// The row layout of the transformer VJP kernels (tf_act_vjp, tf_ln_var_vjp, tf_ln_div_vjp),
// spliced by `//!include cotangent_row.wgsl`: cotangent rows come in blocks [b, k, p] of K
// cotangents per sample b over P positions p, the forward rows they differentiate in blocks
// [b, p], so cotangent row r reads forward row forward_row(r, K, P).
fn forward_row(r: u32, K: u32, P: u32) -> u32 {
  return (r / (K * P)) * P + r % P;
}
