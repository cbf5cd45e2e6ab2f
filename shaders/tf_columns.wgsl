// tf_columns: the column-copy family of the transformer programs (add, copy, concat, slice,
// lastPos and their VJPs, and the α-scaling of a section's inputs). For every item
// i = g·per + j (g < groups, j < per) and column c < width:
//   dst[(g·dstStride + j + dstRow0)·dstLd + dstCol0 + c] = (ACCUM ? dst[..] : 0) + alpha · src[(g·srcStride + j + srcRow0)·srcLd + srcCol0 + c]
// Examples: concat = one call per part with dstCol0 = the part's offset; slice = srcCol0 = from;
// lastPos = per 1, srcStride P, srcRow0 P−1; its VJP (scatter into a cleared buffer) = per 1,
// dstStride P, dstRow0 P−1; add = a copy then an ACCUM copy; fan-out VJPs = ACCUM copies.
//
// Bindings (@group(0)):
//   0 src    : array<f32> read-only
//   1 dst    : array<f32> read-write (must not alias src)
//   2 params : uniform { groups, per, width, srcStride, srcRow0, srcLd, srcCol0, dstStride,
//                        dstRow0, dstLd, dstCol0, alpha: f32 }
// Overrides: ACCUM (0 write, 1 add), WG (default 256).
// Dispatch: ceil(groups·per·width / WG) workgroups (1-D, folded to 2-D by the scheduler); one
//   element per invocation, no loops, no barriers (bit-reproducible; alpha = 1 copies exactly).

struct Params {
  groups: u32, per: u32, width: u32, srcStride: u32,
  srcRow0: u32, srcLd: u32, srcCol0: u32, dstStride: u32,
  dstRow0: u32, dstLd: u32, dstCol0: u32, alpha: f32,
}

override ACCUM: u32 = 0u;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= params.groups * params.per * params.width) { return; }
  let c = i % params.width;
  let item = i / params.width;
  let g = item / params.per;
  let j = item % params.per;
  let s = (g * params.srcStride + j + params.srcRow0) * params.srcLd + params.srcCol0 + c;
  let d = (g * params.dstStride + j + params.dstRow0) * params.dstLd + params.dstCol0 + c;
  var v = params.alpha * src[s];
  if (ACCUM == 1u) { v = dst[d] + v; }
  dst[d] = v;
}
