// The squared-edge sums of one section over a run of rows, on the host in float64: the host
// counterpart of shaders/edges_squared_delta.wgsl (and, for activations whose gates change on
// every row, of edges_squared.wgsl). Pure functions over typed arrays, so the edge threads
// (src/host/edge-threads.ts) import this module and run it on shared memory.
//
// Per row n (visited in `order`):
//   J(n)_ij = Σ_h A_hi g_nh B_hj          (the section's Jacobian in the bases, ro × r)
//   E_ij   += (J(n)_ij f̂_nj)²
// J is carried from one visited row to the next: only the units h whose gate changed cost a
// rank-1 update J += (g_nh − g_{n−1,h}) a_h b_hᵀ. In a ReLU section visited in sign-pattern order
// (src/cpu/gate-order.ts) that is ~15 of 100 units per row on rib's MNIST MLP instead of ~50
// active ones. A row whose changes outnumber its non-zero gates (smooth activations: every gate
// moves) is rebuilt from zero instead, which is then the plain per-row product. Rows at the
// start of a run and every `reset`-th row of it are rebuilt too, which bounds the float64 drift
// of the carried sums (each update rounds at ~1e-16 of |a_h||b_h|; a few thousand in a row stay
// far below the 1e-12 the tests ask for).

/** A section's constant operands, float64, unit-major. */
export interface SquaredEdgeSection {
  /** Hidden units (the section's folded output width). */
  h: number;
  /** Output directions (rows of E). */
  ro: number;
  /** Input directions (columns of E). */
  r: number;
  /** h × ro: a_h, the next layer's basis row h (C^{ℓ+1}[h, :]); undefined for the identity (ro = h). */
  A: Float64Array | undefined;
  /** h × r: b_h = (C⁺W̄)[:, h]. */
  B: Float64Array;
}

/** Rows visited between two rebuilds of the carried Jacobian from zero. */
export const HOST_CARRY_RESET_ROWS = 256;

/** J += s · a_h b_hᵀ (or, for the identity A, row h of J += s · b_h). */
function rankOne(sec: SquaredEdgeSection, J: Float64Array, hh: number, s: number): void {
  const { ro, r, A, B } = sec;
  const bo = hh * r;
  if (!A) {
    const jo = hh * r;
    for (let j = 0; j < r; j++) J[jo + j] += s * B[bo + j]!;
    return;
  }
  const ao = hh * ro;
  for (let i = 0; i < ro; i++) {
    const ai = s * A[ao + i]!;
    if (ai === 0) continue;
    const jo = i * r;
    let j = 0;
    // Unrolled by four: V8 does not vectorise, and this loop is the pass's cost.
    for (; j + 4 <= r; j += 4) {
      J[jo + j] += ai * B[bo + j]!;
      J[jo + j + 1] += ai * B[bo + j + 1]!;
      J[jo + j + 2] += ai * B[bo + j + 2]!;
      J[jo + j + 3] += ai * B[bo + j + 3]!;
    }
    for (; j < r; j++) J[jo + j] += ai * B[bo + j]!;
  }
}

/**
 * Adds Σ over visited rows order[from..to) of (J(n) ∘ f̂_n)² into E (ro × r, row-major).
 * `fhat` is rows × r and `gates` rows × h (row-major, indexed by the row numbers in `order`).
 * `J` is scratch of ro × r (overwritten). Returns the number of rank-1 updates made (for
 * measurements). Whatever splits a block into runs, each run starts from zero, so the result of
 * a run depends only on its rows.
 */
export function accumulateSquaredEdges(
  sec: SquaredEdgeSection, E: Float64Array, J: Float64Array,
  fhat: Float64Array, gates: Float64Array, order: Uint32Array, from: number, to: number,
  reset = HOST_CARRY_RESET_ROWS,
): number {
  const { h, ro, r } = sec;
  let updates = 0;
  let prev = -1;
  for (let t = from; t < to; t++) {
    const row = order[t]!;
    const go = row * h;
    let fresh = prev < 0 || (t - from) % reset === 0;
    if (!fresh) {
      // Rebuild when that is no more work than the changes (smooth activations).
      const po = prev * h;
      let changes = 0;
      let nonzero = 0;
      for (let k = 0; k < h; k++) {
        const g = gates[go + k]!;
        if (g !== gates[po + k]) changes++;
        if (g !== 0) nonzero++;
      }
      fresh = changes >= nonzero && changes > 0;
      if (!fresh) {
        for (let k = 0; k < h; k++) {
          const dg = gates[go + k]! - gates[po + k]!;
          if (dg !== 0) { rankOne(sec, J, k, dg); updates++; }
        }
      }
    }
    if (fresh) {
      J.fill(0, 0, ro * r);
      for (let k = 0; k < h; k++) {
        const g = gates[go + k]!;
        if (g !== 0) { rankOne(sec, J, k, g); updates++; }
      }
    }
    const fo = row * r;
    for (let i = 0; i < ro; i++) {
      const o = i * r;
      for (let j = 0; j < r; j++) {
        const v = J[o + j]! * fhat[fo + j]!;
        E[o + j] += v * v;
      }
    }
    prev = row;
  }
  return updates;
}
