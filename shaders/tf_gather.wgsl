// tf_gather: the embedding stage of a transformer (src/model/program.ts EmbedSpec). Gathers rows
// of a folded table into a batch of per-sample [P, width] values:
//   MODE 0 (token embedding):    out[r, c] = table[idx[r], c]     (idx = token ids, rows = B·P)
//   MODE 1 (position embedding): out[r, c] = table[r % P, c]      (idx unused)
// Token ids are validated on the host (< vocab) before upload, so the kernel does no bounds
// check on the table.
//
// Bindings (@group(0)):
//   0 idx    : array<u32> read-only, rows (MODE 0; any buffer in MODE 1)
//   1 table  : array<f32> read-only, [vocab or nCtx, width] row-major
//   2 out    : array<f32> read-write, [rows, width]
//   3 params : uniform { rows, width, P }
// Overrides: MODE, WG (default 256).
// Dispatch: ceil(rows·width / WG) workgroups (1-D, folded to 2-D by the scheduler); one element
//   per invocation, no loops, no barriers (exact copies).

struct Params { rows: u32, width: u32, P: u32 }

override MODE: u32 = 0u;
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> idx: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

//!include dispatch_index.wgsl

@compute @workgroup_size(WG)
fn main(id: FlatInvocation) {
  let e = matrix_element(id, params.rows, params.width);
  if (!e.ok) { return; }
  var src: u32;
  if (MODE == 0u) { src = idx[e.row]; } else { src = e.row % params.P; }
  out[e.i] = table[src * params.width + e.col];
}
