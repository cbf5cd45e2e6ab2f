// Firing bits of a packing window, shared by sign_pack, sign_pack_atomic and sign_pack_ballot
// (spliced by `//!include sign_bits.wgsl`). Uses the including shader's bindings `pre`, `carry`
// and `params` { rows, d, base, offset, nw }.
// "Fires" is tested on the bit pattern, not with a float compare, so that subnormal positives
// fire even where the adapter flushes subnormals to zero, and NaN never fires: bits in
// 1 ..= 0x7f800000 (positive, non-zero, up to +Inf). This matches `v > 0` on the CPU.

fn fires(bits: u32) -> u32 {
  return select(0u, 1u, bits - 1u < 0x7f800000u);
}

// Bit b of word w of neuron a (< d): datapoint 32 w + b − offset of this window; bits below
// `offset` of word 0 come from the previous window's partial word in `carry`; bits past the
// window's last row are 0.
fn window_bit(a: u32, w: u32, b: u32) -> bool {
  if (w == 0u && b < params.offset) {
    return ((carry[a] >> b) & 1u) == 1u;
  }
  let r = 32u * w + b - params.offset;
  if (r >= params.rows) { return false; }
  return fires(pre[params.base + r * params.d + a]) == 1u;
}
