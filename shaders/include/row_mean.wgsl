// The mean of a LayerNorm row, for the LayerNorm kernels (tf_ln_var, tf_ln_var_vjp, tf_ln_div),
// spliced by `//!include row_mean.wgsl`. Uses the including shader's binding `x`:
//   row_mean(o, d) = (Σ_{c<d} x[o + c]) / d,  summed in increasing c (f32),
// so every kernel centres a row with the same rounded mean. Loop length d.
fn row_mean(o: u32, d: u32) -> f32 {
  var s = 0.0;
  for (var c = 0u; c < d; c++) { s += x[o + c]; }
  return s / f32(d);
}
