// Where a workgroup of the register-blocked upper-triangle kernels (gram_reg, cofire_reg) works,
// spliced by `//!include upper_tile.wgsl`. Uses the including shader's `WG` (invocations, a
// multiple of 4; tile T = 4·WG) and `RI` (rows per workgroup). Workgroup g handles the tile pair
// p = g / (T/RI) = tj·(tj+1)/2 + ti (ti ≤ tj: only upper tiles are launched) and inside it the
// RI rows i0 = ti·T + (g % (T/RI))·RI ...; invocation `lane` owns columns j0 + WG·q, q = 0..3,
// j0 = tj·T + lane. `cj` holds those columns clamped to d − 1 for branch-free loads; the caller
// masks j < d at the write. `ok` is false for workgroups past the last pair or past row d.
// Needs decode_pair: include tile_pair.wgsl as well. Callers copy i0, j0 and cj into locals:
// reading the struct's fields inside the row loops instead made a kernel test run for minutes
// on llvmpipe rather than seconds.

struct UpperTile { ok: bool, i0: u32, j0: u32, cj: vec4u }

fn upper_tile(g: u32, lane: u32, d: u32, npairs: u32) -> UpperTile {
  let T = 4u * WG;
  let nsub = T / RI;
  let pair = g / nsub;
  if (pair >= npairs) { return UpperTile(false, 0u, 0u, vec4u(0u)); }
  let t = decode_pair(pair);
  let i0 = t.x * T + (g % nsub) * RI;
  if (i0 >= d) { return UpperTile(false, 0u, 0u, vec4u(0u)); }
  let j0 = t.y * T + lane;
  let cj = min(vec4u(j0, j0 + WG, j0 + 2u * WG, j0 + 3u * WG), vec4u(d - 1u));
  return UpperTile(true, i0, j0, cj);
}
