// colsum_partial: per-segment column sums  out[s * d + j] = Σ_{r in segment s} x[r, j].
//
// Bindings (@group(0)):
//   0 x      : array<f32>  read-only; row r of the batch starts at base + r * d (row-major rows×d)
//   1 out    : array<f32>  read-write, length >= nseg * d (nseg = ceil(rows / seg))
//   2 params : uniform { rows, d, base, seg, chunk }
// Workgroup: WG (override, default 64) invocations, one column each, so that neighbouring
//   invocations read neighbouring floats of a row.
// Dispatch: (ceil(d / WG), nseg) workgroups; workgroup (gx, s) sums rows [s*seg, (s+1)*seg) of
//   columns gx*WG ... Out-of-range columns return.
// Invariants: seg <= chunk * (2^MAX_LEVELS − 1), so the carry stack cannot overflow.
// Numerics: f32. Leaves of `chunk` rows are summed sequentially and merged pairwise by a binary
//   carry stack (error ~ (chunk + log2(seg / chunk)) * 2^-24 · Σ|x|); the host adds the segment
//   partials in float64, so the error does not grow with the number of segments or batches.

struct Params { rows: u32, d: u32, base: u32, seg: u32, chunk: u32 }

override WG: u32 = 64u;
const MAX_LEVELS: u32 = 16u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let d = params.d;
  let j = wid.x * WG + lid;
  if (j >= d) { return; }
  let r0 = wid.y * params.seg;
  let r1 = min(r0 + params.seg, params.rows);

  var stack: array<f32, MAX_LEVELS>;
  var leaves = 0u;
  var r = r0;
  while (r < r1) {
    let end = min(r + params.chunk, r1);
    var c = 0.0;
    var o = params.base + r * d + j;
    for (var rr = r; rr < end; rr = rr + 1u) {
      c = c + x[o];
      o = o + d;
    }
    var level = 0u;
    var n = leaves;
    while ((n & 1u) == 1u) {
      c = c + stack[level];
      level = level + 1u;
      n = n >> 1u;
    }
    stack[level] = c;
    leaves = leaves + 1u;
    r = end;
  }
  var s = 0.0;
  for (var level = 0u; level < MAX_LEVELS; level = level + 1u) {
    if (((leaves >> level) & 1u) == 1u) { s = s + stack[level]; }
  }
  out[wid.y * d + j] = s;
}
