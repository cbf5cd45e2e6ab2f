// The per-word mixes of the neuron pattern hash, spliced by `//!include sign_mix.wgsl` into
// sign_hash (which streams words into the states) and sign_hash_final (which mixes the pending
// partial word). One definition, so the two kernels cannot drift apart; they must match
// src/cpu/sign-patterns.ts bit for bit.
//   mix1: MurmurHash3's 32-bit block mix,  mix2: an xxHash32-style round.

fn rotl(x: u32, r: u32) -> u32 { return (x << r) | (x >> (32u - r)); }

fn mix1(h: u32, w: u32) -> u32 {
  var k = w * 0xcc9e2d51u;
  k = rotl(k, 15u) * 0x1b873593u;
  return rotl(h ^ k, 13u) * 5u + 0xe6546b64u;
}

fn mix2(h: u32, w: u32) -> u32 {
  return rotl(h + w * 0x85ebca77u, 13u) * 0x9e3779b1u;
}
