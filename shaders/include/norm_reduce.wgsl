// The 256-invocation tree reduction of eigh_norm and eigh_norm_sum, spliced by
// `//!include norm_reduce.wgsl`: every invocation brings its (off-diagonal, diagonal) sums of
// squares and gets the workgroup's totals back. Must be called from uniform control flow by all
// 256 invocations of a workgroup (@workgroup_size(256)): it holds barriers. The tree adds in a
// fixed order (lane l takes l + s for s = 128, 64, ..., 1), so results are reproducible.
var<workgroup> red_off: array<f32, 256>;
var<workgroup> red_dg: array<f32, 256>;

fn reduce_norms(lid: u32, off: f32, dg: f32) -> vec2f {
  red_off[lid] = off;
  red_dg[lid] = dg;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_off[lid] += red_off[lid + s];
      red_dg[lid] += red_dg[lid + s];
    }
    workgroupBarrier();
  }
  return vec2f(red_off[0], red_dg[0]);
}
