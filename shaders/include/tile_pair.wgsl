// The triangular tile-pair index of the upper-triangle Gram-type kernels (gram_tiled, gram_reg,
// cofire_reg), spliced by `//!include tile_pair.wgsl`: only tile pairs ti <= tj are launched,
// pair p = tj*(tj+1)/2 + ti. decode_pair(p) = (ti, tj); the f32 sqrt guess is within one step
// for p < 2^24, and the two loops correct it.
fn decode_pair(p: u32) -> vec2u {
  var tj = u32((sqrt(8.0 * f32(p) + 1.0) - 1.0) * 0.5);
  while (tj * (tj + 1u) / 2u > p) { tj = tj - 1u; }
  while ((tj + 1u) * (tj + 2u) / 2u <= p) { tj = tj + 1u; }
  return vec2u(p - tj * (tj + 1u) / 2u, tj);
}
