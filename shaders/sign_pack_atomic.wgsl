// sign_pack_atomic: packs firing bits s_a(n) = [pre[n, a] > 0] of one row window into u32
// words with workgroup atomics: one invocation per (neuron, datapoint), atomicOr into a word in
// workgroup memory, one barrier, one store per word. The variant for adapters without subgroups
// that are real GPUs (many short invocations); sign_pack is the barrier-free one for CPU
// adapters; sign_pack_ballot is the variant for GPUs with subgroups.
//
// Bindings (@group(0)): identical to sign_pack
//   0 pre    : array<u32>  read-only; f32 pre-activations as raw bits, row r at base + r * d
//   1 carry  : array<u32>  read-only, length >= d: partial last words of the previous window
//   2 packed : array<u32>  read-write, word-major nw×d: packed[w * d + a] is word w of neuron a
//   3 params : uniform { rows, d, base, offset, nw }
// Workgroup: (NX, 32) = 8 neurons × 32 bits = 256 invocations; local x = neuron, y = bit.
// Dispatch: (ceil(d / NX), nw) workgroups, nw = ceil((offset + rows) / 32).
// Bit layout: bit b of word w holds datapoint r = 32 w + b − offset of this window; bits
//   b < offset of word 0 come from `carry`, bits past the last row are 0.
// Invariants: workgroup memory starts zeroed (WGSL); the barrier is reached by every invocation
//   (no early return); each packed entry is written once, by the invocation with bit 0.
// Numerics: "fires" is tested on the bit pattern (1 ..= 0x7f800000), see include/sign_bits.wgsl.

struct Params { rows: u32, d: u32, base: u32, offset: u32, nw: u32 }

const NX: u32 = 8u;

@group(0) @binding(0) var<storage, read> pre: array<u32>;
@group(0) @binding(1) var<storage, read> carry: array<u32>;
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include sign_bits.wgsl

var<workgroup> acc: array<atomic<u32>, NX>;

@compute @workgroup_size(NX, 32)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let d = params.d;
  let a = wid.x * NX + lid.x;
  let w = wid.y;
  let b = lid.y;
  let live = a < d && w < params.nw;
  let ac = min(a, d - 1u);
  var bit = false;
  if (live) { bit = window_bit(ac, w, b); }
  if (bit) { atomicOr(&acc[lid.x], 1u << b); }
  workgroupBarrier();
  if (live && b == 0u) {
    packed[w * d + a] = atomicLoad(&acc[lid.x]);
  }
}
