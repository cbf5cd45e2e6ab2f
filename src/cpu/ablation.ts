// Float64 references for ablations (rib/ablations.py, rib/linalg.py:calc_rotation_matrix,
// rib/hook_fns.py:edge_ablation_forward_hook_fn): the rotation that keeps the n leading basis
// directions of a node layer, the top-k edge mask, and a folded MLP evaluated with either
// intervention. Test oracles for src/ablate/; they import no pipeline code.

/** A folded layer: y = act(x̄·W̄) with W̄ row-major [rows, cols] (bias as the last row). */
export interface FoldedLayerF64 {
  W: ArrayLike<number>;
  rows: number;
  cols: number;
  act: (v: number) => number;
}

/** A basis of a node layer: columns of C (dim × r) and C⁺ (r × dim), leading direction first. */
export interface BasisF64 {
  dim: number;
  r: number;
  C: ArrayLike<number>;
  Cpinv: ArrayLike<number>;
}

/**
 * R = C[:, :keep] · C⁺[:keep, :] (dim × dim): rotate into the basis, zero all but the `keep`
 * leading directions, rotate back (f ↦ f·R in rib's row orientation).
 */
export function rotationMatrixF64(b: BasisF64, keep: number): Float64Array {
  const { dim, r } = b;
  if (!(keep >= 0 && keep <= r)) throw new Error(`rotation: keep = ${keep} outside [0, ${r}]`);
  const R = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) {
    for (let k = 0; k < keep; k++) {
      const c = b.C[i * r + k]!;
      if (c === 0) continue;
      for (let j = 0; j < dim; j++) R[i * dim + j]! += c * b.Cpinv[k * dim + j]!;
    }
  }
  return R;
}

/**
 * rib's `_get_edge_mask`: keep the `kept` largest edges of E (rows = out, cols = in); with
 * `keepConst` the first input column (edges from the constant direction) is kept for free and
 * not counted. Ties at the threshold are all kept (rib compares with ≥). Row-major Uint8Array.
 */
export function edgeMaskF64(E: ArrayLike<number>, rows: number, cols: number, kept: number, keepConst: boolean): Uint8Array {
  const c0 = keepConst ? 1 : 0;
  const sub = rows * (cols - c0);
  const mask = new Uint8Array(rows * cols);
  if (kept > sub) return mask.fill(1);
  if (keepConst) for (let o = 0; o < rows; o++) mask[o * cols] = 1;
  if (kept === 0) return mask;
  const vals = new Float64Array(sub);
  let t = 0;
  for (let o = 0; o < rows; o++) for (let i = c0; i < cols; i++) vals[t++] = E[o * cols + i]!;
  vals.sort();
  const threshold = vals[sub - kept]!;
  for (let o = 0; o < rows; o++) for (let i = c0; i < cols; i++) if (E[o * cols + i]! >= threshold) mask[o * cols + i] = 1;
  return mask;
}

function layerF64(l: FoldedLayerF64, x: Float64Array, n: number): Float64Array {
  const y = new Float64Array(n * l.cols);
  for (let s = 0; s < n; s++) {
    for (let c = 0; c < l.cols; c++) {
      let v = 0;
      for (let k = 0; k < l.rows; k++) v += x[s * l.rows + k]! * l.W[k * l.cols + c]!;
      y[s * l.cols + c] = l.act(v);
    }
  }
  return y;
}

function matF64(x: Float64Array, n: number, k: number, B: ArrayLike<number>, m: number): Float64Array {
  const y = new Float64Array(n * m);
  for (let s = 0; s < n; s++) {
    for (let j = 0; j < m; j++) {
      let v = 0;
      for (let t = 0; t < k; t++) v += x[s * k + t]! * B[t * m + j]!;
      y[s * m + j] = v;
    }
  }
  return y;
}

export type InterventionF64 =
  | { kind: 'none' }
  /** f ↦ f·R at node layer `layer` (the input of layers[layer]). */
  | { kind: 'rotate'; layer: number; R: ArrayLike<number> }
  /**
   * Edge ablation of section `layer` (node layer `layer` → `layer`+1), as rib's hook: every output
   * direction o of the next basis is computed from the input directions its mask row keeps, then
   * the output directions are rotated back with C⁺ of the next layer.
   */
  | { kind: 'edges'; layer: number; inBasis: BasisF64; outBasis: BasisF64; mask: Uint8Array };

/** Logits of a folded MLP on x̄ (n × layers[0].rows, last column 1) under one intervention. */
export function ablatedLogitsF64(layers: FoldedLayerF64[], xbar: Float64Array, n: number, iv: InterventionF64): Float64Array {
  let cur = xbar;
  for (let li = 0; li < layers.length; li++) {
    const l = layers[li]!;
    if (iv.kind === 'rotate' && iv.layer === li) cur = matF64(cur, n, l.rows, iv.R, l.rows);
    if (iv.kind === 'edges' && iv.layer === li) {
      const bi = iv.inBasis;
      const bo = iv.outBasis;
      const inRib = matF64(cur, n, bi.dim, bi.C, bi.r);
      const outRib = new Float64Array(n * bo.r);
      const masked = new Float64Array(n * bi.r);
      for (let o = 0; o < bo.r; o++) {
        for (let s = 0; s < n; s++) for (let i = 0; i < bi.r; i++) masked[s * bi.r + i] = iv.mask[o * bi.r + i] ? inRib[s * bi.r + i]! : 0;
        const y = layerF64(l, matF64(masked, n, bi.r, bi.Cpinv, bi.dim), n);
        for (let s = 0; s < n; s++) {
          let v = 0;
          for (let h = 0; h < bo.dim; h++) v += y[s * bo.dim + h]! * bo.C[h * bo.r + o]!;
          outRib[s * bo.r + o] = v;
        }
      }
      cur = matF64(outRib, n, bo.r, bo.Cpinv, bo.dim);
      continue;
    }
    cur = layerF64(l, cur, n);
  }
  return cur;
}

/** Mean cross-entropy and accuracy (first maximum wins) of logits n × classes against labels. */
export function scoresF64(logits: Float64Array, n: number, classes: number, labels: ArrayLike<number>): { ce_loss: number; accuracy: number; correct: number } {
  let loss = 0;
  let correct = 0;
  for (let s = 0; s < n; s++) {
    let m = -Infinity;
    let arg = 0;
    for (let c = 0; c < classes; c++) {
      const v = logits[s * classes + c]!;
      if (v > m) {
        m = v;
        arg = c;
      }
    }
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(logits[s * classes + c]! - m);
    loss += m + Math.log(z) - logits[s * classes + labels[s]!]!;
    if (arg === labels[s]) correct++;
  }
  return { ce_loss: loss / n, accuracy: correct / n, correct };
}
