// cofire_reg: upper triangle of the co-firing counts  A[i, j] += Σ_w popcount(B_i[w] & B_j[w] & m_w)
// over a word range of one packed window, register-blocked and barrier-free (modelled on
// gram_reg, the variant for CPU adapters such as llvmpipe).
//
// Bindings (@group(0)):
//   0 words  : array<u32>  read-only, word-major nw×d (from sign_pack): words[w * d + a]
//   1 out    : array<u32>  read-write d×d row-major; only entries with i <= j are updated (+=)
//   2 params : uniform { w0, w1, d, ntiles, npairs, first_mask }
// Overrides: WG (invocations per workgroup, a multiple of 4; tile T = 4*WG).
// Dispatch: npairs * (T / RI) workgroups (1-D, possibly folded to 2-D by the engine), with
//   npairs = ntiles*(ntiles+1)/2, ntiles = ceil(d / T). Workgroup g handles the tile pair
//   p = g / (T/RI) = tj*(tj+1)/2 + ti (ti <= tj: only upper tiles are launched) and inside it
//   the RI = 16 consecutive rows i0 = ti*T + (g % (T/RI)) * RI ...; invocation `lane` owns the
//   columns tj*T + lane + WG*q, q = 0..3, of those rows (64 counts in registers).
// Why this shape: on llvmpipe a load with a workgroup-uniform address is one scalar load, a
//   per-lane address is a gather; the 16 row words are uniform, each lane gathers 4 words per w.
// Word range: words w0 .. w1−1; word w0 is masked with first_mask (the host passes the mask that
//   clears bits counted by an earlier window when w0 = 0, all ones otherwise), so every datapoint
//   is counted once. The diagonal A[i, i] is the firing count of neuron i.
// Invariants: each out entry (i <= j) is updated by exactly one invocation per dispatch (no
//   atomics). Indices past d are clamped to d−1 for loading and masked at the write.
//   Counts are exact u32; the host drains `out` before 2^32 datapoints accumulate.
// Loop: (w1 − w0) iterations of the word loop per invocation (the inner loops have constant trip
//   counts); the wrapper keeps (w1 − w0) * (RI + 2) below llvmpipe's 65535-iteration cap.

struct Params { w0: u32, w1: u32, d: u32, ntiles: u32, npairs: u32, first_mask: u32 }

override WG: u32 = 8u;
const RI: u32 = 16u;

@group(0) @binding(0) var<storage, read> words: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

//!include tile_pair.wgsl
//!include upper_tile.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lane: u32) {
  let d = params.d;
  let tile = upper_tile(wid.x + wid.y * nwg.x, lane, d, params.npairs);
  if (!tile.ok) { return; }
  let last = d - 1u;
  let i0 = tile.i0;
  let j0 = tile.j0;
  let cj = tile.cj;

  var c: array<vec4u, RI>;
  var m = params.first_mask;
  var o = params.w0 * d;
  for (var w = params.w0; w < params.w1; w = w + 1u) {
    let b = vec4u(words[o + cj.x], words[o + cj.y], words[o + cj.z], words[o + cj.w]) & vec4u(m);
    for (var a = 0u; a < RI; a = a + 1u) {
      c[a] = c[a] + countOneBits(vec4u(words[o + min(i0 + a, last)]) & b);
    }
    m = 0xffffffffu;
    o = o + d;
  }

  for (var a = 0u; a < RI; a = a + 1u) {
    let i = i0 + a;
    if (i >= d) { break; }
    for (var q = 0u; q < 4u; q = q + 1u) {
      let j = j0 + q * WG;
      if (j < d && i <= j) {
        let k = i * d + j;
        out[k] = out[k] + c[a][q];
      }
    }
  }
}
