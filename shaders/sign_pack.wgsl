// sign_pack: packs firing bits s_a(n) = [pre[n, a] > 0] of one row window into u32 words,
// one invocation per (neuron, word) looping over the word's 32 datapoints (barrier- and
// atomic-free: the variant for CPU adapters such as llvmpipe, see sign_pack_atomic for the
// workgroup-atomics one; there is no subgroup-ballot variant, it could not be tested here).
//
// Bindings (@group(0)):
//   0 pre    : array<u32>  read-only; the f32 pre-activations read as raw bits. Row r of the
//              window starts at base + r * d (row-major rows×d, datapoint-major).
//   1 carry  : array<u32>  read-only, length >= d: the partial last word of every neuron from the
//              previous window (its low `offset` bits are valid, the rest is ignored)
//   2 packed : array<u32>  read-write, word-major nw×d: packed[w * d + a] is word w of neuron a
//   3 params : uniform { rows, d, base, offset, nw }
// Workgroup: WG (override, default 64) invocations, one neuron each (neighbouring invocations
//   read neighbouring floats of a row).
// Dispatch: (ceil(d / WG), nw) workgroups, nw = ceil((offset + rows) / 32).
// Bit layout: the window continues a stream whose first `offset` bits of word 0 were set by
//   earlier windows (offset = datapoints seen so far mod 32); bit b of word w holds datapoint
//   r = 32 w + b − offset of this window. Bits past the window's last row are 0.
// Invariants: every packed entry of the window is written exactly once; the loop runs at most
//   32 iterations (far below llvmpipe's 65535-iteration cap).
// Numerics: "fires" is tested on the bit pattern, not with a float compare, so that subnormal
//   positives fire even where the adapter flushes subnormals to zero, and NaN never fires:
//   bits in 1 ..= 0x7f800000 (positive, non-zero, up to +Inf). This matches `v > 0` on the CPU.

struct Params { rows: u32, d: u32, base: u32, offset: u32, nw: u32 }

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> pre: array<u32>;
@group(0) @binding(1) var<storage, read> carry: array<u32>;
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include sign_bits.wgsl

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let d = params.d;
  let a = wid.x * WG + lid;
  let w = wid.y;
  if (a >= d || w >= params.nw) { return; }
  let o = params.offset;
  var word = 0u;
  var b0 = 0u;
  if (w == 0u) {
    word = carry[a] & ((1u << o) - 1u);
    b0 = o;
  }
  let b1 = min(32u, params.rows + o - 32u * w);
  var idx = params.base + (32u * w + b0 - o) * d + a;
  for (var b = b0; b < b1; b = b + 1u) {
    word = word | (fires(pre[idx]) << b);
    idx = idx + d;
  }
  packed[w * d + a] = word;
}
