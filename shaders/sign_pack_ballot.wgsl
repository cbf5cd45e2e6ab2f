// sign_pack_ballot: packs firing bits s_a(n) = [pre[n, a] > 0] of one row window into u32 words
// with subgroup ballots: one invocation per (datapoint bit, neuron); a subgroup votes on its
// lanes' bits at once, and one lane per ballot segment folds the segment into the neuron's word.
// Needs the `subgroups` feature; the variant for adapters that have it (sign_pack_atomic and
// sign_pack are the others).
//
// Bindings (@group(0)): identical to sign_pack
//   0 pre    : array<u32>  read-only; f32 pre-activations as raw bits, row r at base + r * d
//   1 carry  : array<u32>  read-only, length >= d: partial last words of the previous window
//   2 packed : array<u32>  read-write, word-major nw×d: packed[w * d + a] is word w of neuron a
//   3 params : uniform { rows, d, base, offset, nw }
// Workgroup: (32, NY) = 32 bits × 8 neurons = 256 invocations; local x = bit, y = neuron, so
//   local_invocation_index = bit + 32 * y runs over the bits of one word before the next neuron.
// Dispatch: (ceil(d / NY), nw) workgroups, nw = ceil((offset + rows) / 32).
// Bit layout: as sign_pack_atomic (bit b of word w is datapoint 32 w + b − offset; bits below
//   offset of word 0 come from `carry`; bits past the last row are 0).
// Subgroup layout: WGSL does not promise which invocations share a subgroup. The fast path
//   needs the usual one: lane l of a subgroup of size S is invocation base + l with base a
//   multiple of min(S, 32), so each 32-bit ballot component covers whole aligned runs of one
//   neuron's bits. Every subgroup checks that with subgroupAll (same base on every lane, aligned)
//   and otherwise falls back to one atomicOr per invocation: correct on any layout, fast on the
//   usual one. Segments have L = min(S, 32) lanes; the first lane of each ORs L bits at once.
// Uniformity: subgroupBallot/subgroupAll/subgroupBroadcastFirst are called by every invocation
//   (no early return before them), and the barrier is reached by every invocation.
// Invariants: workgroup memory starts zeroed; each packed entry is written once, by bit 0.
// Numerics: "fires" is tested on the bit pattern (1 ..= 0x7f800000), see include/sign_bits.wgsl.

enable subgroups;

struct Params { rows: u32, d: u32, base: u32, offset: u32, nw: u32 }

const NY: u32 = 8u;

@group(0) @binding(0) var<storage, read> pre: array<u32>;
@group(0) @binding(1) var<storage, read> carry: array<u32>;
@group(0) @binding(2) var<storage, read_write> packed: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include sign_bits.wgsl

var<workgroup> acc: array<atomic<u32>, NY>;

@compute @workgroup_size(32, NY)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg: u32) {
  let d = params.d;
  let b = lid.x;
  let a = wid.x * NY + lid.y;
  let w = wid.y;
  let live = a < d && w < params.nw;
  let ac = min(a, d - 1u);
  var bit = false;
  if (live) { bit = window_bit(ac, w, b); }

  let votes = subgroupBallot(bit);
  let seg = min(sg, 32u);
  let base = li - lane;
  let contiguous = subgroupAll(base == subgroupBroadcastFirst(base) && base % seg == 0u);
  if (contiguous) {
    if (lane % seg == 0u) {
      // Lanes lane .. lane+seg−1 are bits b .. b+seg−1 of this invocation's neuron.
      let comp = votes[lane / 32u];
      let run = select((comp >> (lane % 32u)) & ((1u << seg) - 1u), comp, seg == 32u);
      if (run != 0u) { atomicOr(&acc[lid.y], run << b); }
    }
  } else if (bit) {
    atomicOr(&acc[lid.y], 1u << b);
  }
  workgroupBarrier();
  if (live && b == 0u) {
    packed[w * d + a] = atomicLoad(&acc[lid.y]);
  }
}
