// sign_hash_final: the 64-bit pattern hash (two 32-bit keys) of every neuron from its streamed
// states: the pending partial word (if the datapoint count n is not a multiple of 32) is mixed
// in, then each state is finalised with n. The states are only read, so the stream can go on.
//
// Bindings (@group(0)):
//   0 state  : array<u32>  read-only, 3d: [h1 (d) | h2 (d) | count (d)] (see sign_hash)
//   1 carry  : array<u32>  read-only, d: partial last words (bits past n mod 32 are 0)
//   2 out    : array<u32>  read-write, 2d: [hash_lo (d) | hash_hi (d)]
//   3 params : uniform { d, partial (0/1), n_lo, n_hi }  (n = n_hi * 2^32 + n_lo)
// Workgroup: WG (override, default 64), one neuron each. Dispatch ceil(d / WG). No loops.
// Mixes and finalisers must match sign_hash.wgsl and src/cpu/sign-patterns.ts bit for bit:
//   hash_lo = fmix32(h1 ^ n_lo ^ rotl(n_hi, 16))            (MurmurHash3 finaliser)
//   hash_hi = avalanche(h2 + n_lo * 0x165667b1 + n_hi)       (xxHash32 avalanche)

struct Params { d: u32, partial: u32, n_lo: u32, n_hi: u32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> state: array<u32>;
@group(0) @binding(1) var<storage, read> carry: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include sign_mix.wgsl

fn fmix32(x: u32) -> u32 {
  var h = x;
  h = (h ^ (h >> 16u)) * 0x85ebca6bu;
  h = (h ^ (h >> 13u)) * 0xc2b2ae35u;
  return h ^ (h >> 16u);
}

fn avalanche(x: u32) -> u32 {
  var h = x;
  h = (h ^ (h >> 15u)) * 0x85ebca77u;
  h = (h ^ (h >> 13u)) * 0xc2b2ae3du;
  return h ^ (h >> 16u);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let d = params.d;
  let a = gid.x;
  if (a >= d) { return; }
  var h1 = state[a];
  var h2 = state[d + a];
  if (params.partial != 0u) {
    let word = carry[a];
    h1 = mix1(h1, word);
    h2 = mix2(h2, word);
  }
  out[a] = fmix32(h1 ^ params.n_lo ^ rotl(params.n_hi, 16u));
  out[d + a] = avalanche(h2 + params.n_lo * 0x165667b1u + params.n_hi);
}
