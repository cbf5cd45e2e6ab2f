// The squared-edge sums of one section over a run of rows, on the host in float64: the host
// counterpart of shaders/edges_squared_delta.wgsl (and, for activations whose gates change on
// every row, of edges_squared.wgsl). Pure functions over typed arrays, so the edge threads
// (src/host/pool.ts, through tasks.ts) import this module and run it on shared memory.
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
//
// The row arithmetic is a SquaredEdgeRowKernel: the JS loops here (the reference, and the
// fallback) or the WebAssembly SIMD kernel of edges-squared-wasm.ts, which gives the same bits.

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

/**
 * What the JS kernel keeps between rows: the section, the carried Jacobian J (ro × r), the row's
 * listed units and their coefficients (h entries each), and updateRow's scratch S (2h) and BO (h).
 */
interface JsRowState {
  sec: SquaredEdgeSection;
  J: Float64Array;
  units: Int32Array;
  coef: Float64Array;
  S: Float64Array;
  BO: Int32Array;
}

/**
 * One visited row with A given: J_ij ← (fresh ? 0 : J_ij) + Σ_k c_k A[unit_k, i] B[unit_k, j] over
 * the row's listed units, then E_ij += (J_ij f_j)², in one sweep over J. A 2 × 4 block of J stays
 * in registers across all listed units, so J is loaded and stored once per row rather than once
 * per unit and each load of B serves two rows (V8 does not vectorise; this loop is the pass's
 * cost). The sum for each entry is taken in the listed order, as unit-by-unit updates would.
 */
function updateRow(st: JsRowState, E: Float64Array, fresh: boolean, nf: number, fhat: Float64Array, fo: number): void {
  const { J, units, coef, S, BO } = st;
  const { ro, r, A, B } = st.sec;
  const a = A!;
  for (let k = 0; k < nf; k++) BO[k] = units[k]! * r;
  // Two rows of J at a time share each load of B (S holds both rows' coefficients interleaved).
  let i = 0;
  for (; i + 2 <= ro; i += 2) {
    for (let k = 0; k < nf; k++) {
      const ao = units[k]! * ro + i;
      S[2 * k] = coef[k]! * a[ao]!;
      S[2 * k + 1] = coef[k]! * a[ao + 1]!;
    }
    const jo = i * r;
    const ko = jo + r;
    let j = 0;
    for (; j + 4 <= r; j += 4) {
      let a0 = 0,
        a1 = 0,
        a2 = 0,
        a3 = 0,
        b0 = 0,
        b1 = 0,
        b2 = 0,
        b3 = 0;
      if (!fresh) {
        a0 = J[jo + j]!;
        a1 = J[jo + j + 1]!;
        a2 = J[jo + j + 2]!;
        a3 = J[jo + j + 3]!;
        b0 = J[ko + j]!;
        b1 = J[ko + j + 1]!;
        b2 = J[ko + j + 2]!;
        b3 = J[ko + j + 3]!;
      }
      for (let k = 0; k < nf; k++) {
        const s0 = S[2 * k]!;
        const s1 = S[2 * k + 1]!;
        const bo = BO[k]! + j;
        const x0 = B[bo]!,
          x1 = B[bo + 1]!,
          x2 = B[bo + 2]!,
          x3 = B[bo + 3]!;
        a0 += s0 * x0;
        a1 += s0 * x1;
        a2 += s0 * x2;
        a3 += s0 * x3;
        b0 += s1 * x0;
        b1 += s1 * x1;
        b2 += s1 * x2;
        b3 += s1 * x3;
      }
      J[jo + j] = a0;
      J[jo + j + 1] = a1;
      J[jo + j + 2] = a2;
      J[jo + j + 3] = a3;
      J[ko + j] = b0;
      J[ko + j + 1] = b1;
      J[ko + j + 2] = b2;
      J[ko + j + 3] = b3;
      const f0 = fhat[fo + j]!,
        f1 = fhat[fo + j + 1]!,
        f2 = fhat[fo + j + 2]!,
        f3 = fhat[fo + j + 3]!;
      let v0 = a0 * f0,
        v1 = a1 * f1,
        v2 = a2 * f2,
        v3 = a3 * f3;
      E[jo + j]! += v0 * v0;
      E[jo + j + 1]! += v1 * v1;
      E[jo + j + 2]! += v2 * v2;
      E[jo + j + 3]! += v3 * v3;
      v0 = b0 * f0;
      v1 = b1 * f1;
      v2 = b2 * f2;
      v3 = b3 * f3;
      E[ko + j]! += v0 * v0;
      E[ko + j + 1]! += v1 * v1;
      E[ko + j + 2]! += v2 * v2;
      E[ko + j + 3]! += v3 * v3;
    }
    for (; j < r; j++) {
      let a0 = fresh ? 0 : J[jo + j]!;
      let b0 = fresh ? 0 : J[ko + j]!;
      for (let k = 0; k < nf; k++) {
        const x = B[BO[k]! + j]!;
        a0 += S[2 * k]! * x;
        b0 += S[2 * k + 1]! * x;
      }
      J[jo + j] = a0;
      J[ko + j] = b0;
      const v0 = a0 * fhat[fo + j]!;
      const v1 = b0 * fhat[fo + j]!;
      E[jo + j]! += v0 * v0;
      E[ko + j]! += v1 * v1;
    }
  }
  for (; i < ro; i++) {
    for (let k = 0; k < nf; k++) S[k] = coef[k]! * a[units[k]! * ro + i]!;
    const jo = i * r;
    for (let j = 0; j < r; j++) {
      let a0 = fresh ? 0 : J[jo + j]!;
      for (let k = 0; k < nf; k++) a0 += S[k]! * B[BO[k]! + j]!;
      J[jo + j] = a0;
      const v0 = a0 * fhat[fo + j]!;
      E[jo + j]! += v0 * v0;
    }
  }
}

/** One visited row with the identity A (ro = h): only row h of J moves when unit h does. */
function updateRowIdentity(st: JsRowState, E: Float64Array, fresh: boolean, nf: number, fhat: Float64Array, fo: number): void {
  const { J, units, coef } = st;
  const { ro, r, B } = st.sec;
  if (fresh) J.fill(0, 0, ro * r);
  for (let k = 0; k < nf; k++) {
    const jo = units[k]! * r;
    const c = coef[k]!;
    for (let j = 0; j < r; j++) J[jo + j]! += c * B[jo + j]!;
  }
  for (let i = 0; i < ro; i++) {
    const jo = i * r;
    for (let j = 0; j < r; j++) {
      const v = J[jo + j]! * fhat[fo + j]!;
      E[jo + j]! += v * v;
    }
  }
}

/**
 * The per-row arithmetic of accumulateSquaredEdges, given a row's listed units and coefficients:
 * jsRowKernel below (the reference) or the WebAssembly SIMD kernel of edges-squared-wasm.ts, which
 * gives the same bits. The caller writes a row's units and coefficients into `units` and `coef`
 * (h entries each), so a kernel can hand out views of its own memory and nothing is copied.
 */
export interface SquaredEdgeRowKernel {
  readonly units: Int32Array;
  readonly coef: Float64Array;
  /** Starts a run that adds into E (ro × r, row-major); `end` follows before E is read. */
  begin(E: Float64Array): void;
  /** One visited row: the first `nf` listed units, its f̂ at fhat[fo .. fo + r). */
  row(fresh: boolean, nf: number, fhat: Float64Array, fo: number): void;
  end(): void;
}

/** The JS kernel (updateRow / updateRowIdentity) over the caller's scratch J (ro × r). */
export function jsRowKernel(sec: SquaredEdgeSection, J: Float64Array = new Float64Array(sec.ro * sec.r)): SquaredEdgeRowKernel {
  const { h } = sec;
  const st: JsRowState = { sec, J, units: new Int32Array(h), coef: new Float64Array(h), S: new Float64Array(2 * h), BO: new Int32Array(h) };
  let E: Float64Array | undefined;
  return {
    units: st.units,
    coef: st.coef,
    begin: (e) => {
      E = e;
    },
    row: (fresh, nf, fhat, fo) => {
      if (sec.A) updateRow(st, E!, fresh, nf, fhat, fo);
      else updateRowIdentity(st, E!, fresh, nf, fhat, fo);
    },
    end: () => {
      E = undefined;
    },
  };
}

/**
 * Adds Σ over visited rows order[from..to) of (J(n) ∘ f̂_n)² into E (ro × r, row-major).
 * `fhat` is rows × r and `gates` rows × h (row-major, indexed by the row numbers in `order`).
 * `kernel` does each row's arithmetic (a scratch J of ro × r, overwritten, stands for the JS
 * kernel over it). Returns the number of rank-1 updates made (for measurements). Whatever splits
 * a block into runs, each run starts from zero, so the result of a run depends only on its rows.
 */
export function accumulateSquaredEdges(
  sec: SquaredEdgeSection,
  E: Float64Array,
  kernel: SquaredEdgeRowKernel | Float64Array,
  fhat: Float64Array,
  gates: Float64Array,
  order: Uint32Array,
  from: number,
  to: number,
  reset = HOST_CARRY_RESET_ROWS,
): number {
  const { h, r } = sec;
  const k = kernel instanceof Float64Array ? jsRowKernel(sec, kernel) : kernel;
  const { units, coef } = k;
  let updates = 0;
  let prev = -1;
  k.begin(E);
  for (let t = from; t < to; t++) {
    const row = order[t]!;
    const go = row * h;
    let fresh = prev < 0 || (t - from) % reset === 0;
    let nf = 0;
    if (!fresh) {
      // The changed units; rebuild instead when that is no more work (smooth activations).
      const po = prev * h;
      let nonzero = 0;
      for (let u = 0; u < h; u++) {
        const g = gates[go + u]!;
        const dg = g - gates[po + u]!;
        if (dg !== 0) {
          units[nf] = u;
          coef[nf] = dg;
          nf++;
        }
        if (g !== 0) nonzero++;
      }
      fresh = nf >= nonzero && nf > 0;
    }
    if (fresh) {
      nf = 0;
      for (let u = 0; u < h; u++) {
        const g = gates[go + u]!;
        if (g !== 0) {
          units[nf] = u;
          coef[nf] = g;
          nf++;
        }
      }
    }
    updates += nf;
    k.row(fresh, nf, fhat, row * r);
    prev = row;
  }
  k.end();
  return updates;
}
