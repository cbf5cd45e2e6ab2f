// sign_hash: streams one window's packed words into each neuron's two 32-bit hash states and
// counts its firing bits.
//
// Bindings (@group(0)):
//   0 packed : array<u32>  read-only, word-major nw×d (from sign_pack): packed[w * d + a]
//   1 state  : array<u32>  read-write, 3d: [h1 (d) | h2 (d) | count (d)]
//   2 carry  : array<u32>  read-write, d: receives each neuron's partial last word
//   3 params : uniform { d, nw, complete, first_mask }
// Workgroup: WG (override, default 64) invocations, one neuron each. Dispatch ceil(d / WG).
// Stream semantics: words 0 .. complete−1 of the window are complete (all 32 datapoints seen)
//   and are mixed into h1, h2 in order; word `complete` (if complete < nw) is partial and goes
//   to `carry`, to be completed by the next window's sign_pack (it is mixed when it completes,
//   or by sign_hash_final at the end). The hash therefore depends only on the packed words of
//   the whole stream, not on how it was cut into batches or windows.
// Counts: count += Σ_w popcount(word_w & m_w) with m_0 = first_mask (clears the bits of word 0
//   that earlier windows already counted) and m_w = all ones otherwise: every datapoint is
//   counted exactly once. u32: the host drains counts before 2^32 rows accumulate.
// Mixes (must match src/cpu/sign-patterns.ts and sign_hash_final.wgsl bit for bit):
//   mix1 = the MurmurHash3 x86_32 block step, mix2 = an xxHash32 round (different constants,
//   rotations and seeds: two independent 32-bit keys make one 64-bit key).
// Loop: nw iterations per invocation (the wrapper keeps nw far below llvmpipe's 65535 cap).

struct Params { d: u32, nw: u32, complete: u32, first_mask: u32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> packed: array<u32>;
@group(0) @binding(1) var<storage, read_write> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> carry: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include sign_mix.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let d = params.d;
  let a = gid.x;
  if (a >= d) { return; }
  var h1 = state[a];
  var h2 = state[d + a];
  var cnt = state[2u * d + a];
  var m = params.first_mask;
  for (var w = 0u; w < params.nw; w = w + 1u) {
    let word = packed[w * d + a];
    cnt = cnt + countOneBits(word & m);
    m = 0xffffffffu;
    if (w < params.complete) {
      h1 = mix1(h1, word);
      h2 = mix2(h2, word);
    }
  }
  state[a] = h1;
  state[d + a] = h2;
  state[2u * d + a] = cnt;
  if (params.complete < params.nw) {
    carry[a] = packed[params.complete * d + a];
  }
}
