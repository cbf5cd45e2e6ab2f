// matmul_pack: copies a logical matrix L (rows x cols; L = X or Xᵀ of a row-major buffer) into
// zero-padded panels of PR x PC elements, each panel contiguous (PR * PC * 4 = 64 KiB for the
// panel matmul), so that a later kernel can bind one panel as a uniform buffer
// (shaders/matmul_panel.wgsl). Panel (pi, pj) covers rows pi*PR.., columns pj*PC.. and starts at
// element (pi * npc + pj) * PR * PC. Inside a panel the layout is [col][row] when COL_MAJOR
// (the A panels: one k step reads consecutive rows) and [row][col] otherwise (the B panels).
//
// Bindings (@group(0)):
//   0 src    : array<f32> read-only, the source matrix X (row-major, leading dimension ld)
//   1 dst    : array<f32> read-write, npr * npc panels
//   2 params : uniform { rows, cols, ld, off, trans, pr, pc, npc, total }
// Overrides: WG (invocations per workgroup), COL_MAJOR (0/1).
// Dispatch: ceil(total / WG) workgroups, 1-D (folded to 2-D by the engine); invocation e writes
//   dst[e] for e < total = npr * npc * PR * PC. L[r, c] = src[off + (trans ? c * ld + r : r * ld + c)].
// Invariants: every dst element is written exactly once, padding (r >= rows or c >= cols) with 0.

struct Params { rows: u32, cols: u32, ld: u32, off: u32, trans: u32, pr: u32, pc: u32, npc: u32, total: u32 }

override WG: u32 = 64u;
override COL_MAJOR: bool = false;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let e = (wid.x + wid.y * nwg.x) * WG + lid;
  if (e >= params.total) { return; }
  let size = params.pr * params.pc;
  let p = e / size;
  let q = e - p * size;
  var rr: u32;
  var cc: u32;
  if (COL_MAJOR) {
    cc = q / params.pr;
    rr = q - cc * params.pr;
  } else {
    rr = q / params.pc;
    cc = q - rr * params.pc;
  }
  let pi = p / params.npc;
  let r = pi * params.pr + rr;
  let c = (p - pi * params.npc) * params.pc + cc;
  var v = 0.0;
  if (r < params.rows && c < params.cols) {
    if (params.trans != 0u) {
      v = src[params.off + c * params.ld + r];
    } else {
      v = src[params.off + r * params.ld + c];
    }
  }
  dst[e] = v;
}
