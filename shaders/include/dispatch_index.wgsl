// The invocation index of kernels that run one invocation per element (or row) on a 1-D grid of
// WG-wide workgroups, spliced by `//!include dispatch_index.wgsl`. Uses the including shader's
// `WG`. The engine folds a grid of more than maxComputeWorkgroupsPerDimension workgroups to 2-D
// (x · y ≥ count, nwg.x wide), so workgroup g sits at (g % nwg.x, g / nwg.x); the entry point
// takes these builtins as one FlatInvocation and flat_index undoes the fold.
struct FlatInvocation {
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
}

// g·WG + lid: every invocation of the grid once, in order; the padding of the last workgroup
// (and of the fold) lies past the count, so callers bound-check it.
fn flat_index(inv: FlatInvocation) -> u32 {
  return (inv.wid.x + inv.wid.y * inv.nwg.x) * WG + inv.lid;
}


// The kernels with one invocation per element of a rows × width row-major matrix: invocation
// flat_index(id) = i handles element i at (row, col) = (i / width, i % width); `ok` is false for
// the padding invocations past the matrix.
struct MatrixElement { ok: bool, i: u32, row: u32, col: u32 }

fn matrix_element(id: FlatInvocation, rows: u32, width: u32) -> MatrixElement {
  let i = flat_index(id);
  return MatrixElement(i < rows * width, i, i / width, i % width);
}
