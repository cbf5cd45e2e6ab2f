// How concentrated the interaction edges of a layer pair are, per basis: how many edges hold
// 50 / 90 / 99 % of the edge mass, the Gini coefficient and the entropy of the normalised edges.
//
// Equalised node counts: bases keep different numbers of directions (the IB's r ≤ the PCA's k ≤
// the folded width), and a shorter edge list looks denser. Every basis's list is therefore padded
// with zero edges up to the same count, (dim_in − 1)·dim_out: the folded widths with the edges from
// the constant direction left out (they are free in rib's edge ablation, and every basis has
// exactly one constant direction when centred). A direction a basis dropped carries no interaction,
// so padding with zeros is what the basis says about it. Edge counts for a mass fraction are
// unaffected by the padding; the Gini coefficient is computed over the padded list; the entropy
// H = −Σ p log2 p is unaffected, and is also given as 2^H, the "effective number of edges".

export interface EdgeSparsity {
  /** Edges compared (after padding). */
  edges: number;
  /** Non-zero edges of the basis before padding. */
  nonzero: number;
  mass: number;
  n50: number;
  n90: number;
  n99: number;
  gini: number;
  entropy_bits: number;
  effective_edges: number;
}

/**
 * Sparsity of the edges `values` (magnitudes; signed edges by |E|) padded with zeros to `padTo`.
 * `skipColumn` (with `cols`) leaves out one input column, e.g. the constant direction's.
 */
export function edgeSparsity(E: ArrayLike<number>, rows: number, cols: number, skipColumn: number, padTo: number): EdgeSparsity {
  const vals: number[] = [];
  for (let o = 0; o < rows; o++) for (let i = 0; i < cols; i++) if (i !== skipColumn) vals.push(Math.abs(E[o * cols + i]!));
  const n = Math.max(padTo, vals.length);
  vals.sort((a, b) => b - a);
  let mass = 0;
  for (const v of vals) mass += v;
  const countFor = (q: number) => {
    if (mass === 0) return 0;
    let s = 0;
    for (let t = 0; t < vals.length; t++) {
      s += vals[t]!;
      if (s >= q * mass * (1 - 1e-12)) return t + 1;
    }
    return vals.length;
  };
  // Gini over n values sorted ascending x_(1..n): G = Σ (2i − n − 1) x_(i) / (n Σ x).
  // The n − len padding zeros come first, so the list sorted descending sits at i = n, n−1, ….
  let g = 0;
  for (let t = 0; t < vals.length; t++) g += (2 * (n - t) - n - 1) * vals[t]!;
  const gini = mass > 0 ? g / (n * mass) : 0;
  let h = 0;
  for (const v of vals) if (v > 0) h -= (v / mass) * Math.log2(v / mass);
  return {
    edges: n,
    nonzero: vals.filter((v) => v > 0).length,
    mass,
    n50: countFor(0.5),
    n90: countFor(0.9),
    n99: countFor(0.99),
    gini,
    entropy_bits: h,
    effective_edges: 2 ** h,
  };
}

export interface SparsityRow extends EdgeSparsity {
  pair: string;
  basis: string;
}

/** A fixed-width table of sparsity rows for `ibgpu report`. */
export function formatSparsity(rows: SparsityRow[]): string {
  const lines = ['Edge sparsity (edges from the constant direction excluded; lists zero-padded to (dim_in − 1)·dim_out)'];
  lines.push(
    `  ${'layer pair'.padEnd(22)} ${'basis'.padEnd(7)} ${'edges'.padStart(7)} ${'non-0'.padStart(7)} ${'50%'.padStart(6)} ${'90%'.padStart(6)} ${'99%'.padStart(6)} ${'Gini'.padStart(6)} ${'H bits'.padStart(7)} ${'2^H'.padStart(8)}`,
  );
  for (const r of rows) {
    lines.push(
      `  ${r.pair.padEnd(22)} ${r.basis.padEnd(7)} ${String(r.edges).padStart(7)} ${String(r.nonzero).padStart(7)} ${String(r.n50).padStart(6)} ${String(r.n90).padStart(6)} ${String(r.n99).padStart(6)} ${r.gini.toFixed(3).padStart(6)} ${r.entropy_bits.toFixed(2).padStart(7)} ${r.effective_edges.toFixed(1).padStart(8)}`,
    );
  }
  return lines.join('\n');
}
