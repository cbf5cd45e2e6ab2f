// Two builds of the same model side by side — an ibgpu result and rib's results file, or two ibgpu
// results (GPU against "device": "cpu", two adapters) — measured against the fidelity targets:
// Λ within 1e-4 relative, basis columns |cos| ≥ 0.999, edges within 1e-3 of each matrix's largest.
//
// Where the two kept different numbers of directions (different thresholds, or one cutting inside
// a cluster of tiny eigenvalues), the leading directions both kept, and the edges between them,
// are compared and the difference is reported, not held against the targets.
// Columns whose Λ is below `minLambda` of the largest (default 1e-6) are listed but not held to
// the |cos| target: their directions are set by float noise in either build (SPEC §8).

export interface SideBasis {
  /** Rows of C (the node layer's width, folded). */
  dim: number;
  /** Kept directions (columns of C). */
  r: number;
  /** dim × r, row-major. */
  C: Float64Array;
  /** Aligned with C's columns (the first r are compared); absent for svd/pca bases. */
  Lambda?: Float64Array;
}

export interface SideEdges {
  rows: number;
  cols: number;
  data: Float64Array;
}

export interface BuildSide {
  label: string;
  nodeLayers: string[];
  bases: Map<string, SideBasis>;
  edges: Map<string, SideEdges>;
}

export interface CompareTargets {
  lambdaRel: number;
  minCos: number;
  edgeRel: number;
  /** Columns with Λ below this fraction of the largest are not held to minCos. */
  minLambda: number;
}

export const FIDELITY_TARGETS: CompareTargets = { lambdaRel: 1e-4, minCos: 0.999, edgeRel: 1e-3, minLambda: 1e-6 };

export interface LayerComparison {
  layer: string;
  r: [number, number];
  dim: [number, number];
  /** Directions compared (the leading min(r) both kept). */
  compared: number;
  /** max |ΔΛ| / max Λ over the compared directions (null when either side has no Λ). */
  lambdaRel: number | null;
  /** Smallest |cos| between matching columns, over those held to the target, and over all. */
  minCosHeld: number | null;
  minCosAll: number | null;
  held: number;
  ok: boolean;
}

export interface EdgeComparison {
  key: string;
  shape: [[number, number], [number, number]];
  /** max |ΔE| / max |E| over the common block. */
  rel: number | null;
  ok: boolean;
}

export interface Comparison {
  a: string;
  b: string;
  targets: CompareTargets;
  layers: LayerComparison[];
  edges: EdgeComparison[];
  /** Node layers or edges only one side has. */
  missing: string[];
  ok: boolean;
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

function compareLayer(layer: string, a: SideBasis, b: SideBasis, t: CompareTargets): LayerComparison {
  const k = Math.min(a.r, b.r);
  let lambdaRel: number | null = null;
  if (a.Lambda && b.Lambda) {
    const ref = b.Lambda.subarray(0, k);
    const scale = maxAbs(ref) || 1;
    lambdaRel = 0;
    for (let j = 0; j < k; j++) lambdaRel = Math.max(lambdaRel, Math.abs(a.Lambda[j]! - b.Lambda[j]!) / scale);
  }
  let minCosHeld: number | null = null;
  let minCosAll: number | null = null;
  let held = 0;
  const lamMax = b.Lambda ? maxAbs(b.Lambda.subarray(0, k)) : 0;
  if (a.dim === b.dim) {
    for (let j = 0; j < k; j++) {
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let i = 0; i < a.dim; i++) {
        const x = a.C[i * a.r + j]!;
        const y = b.C[i * b.r + j]!;
        dot += x * y;
        na += x * x;
        nb += y * y;
      }
      const cos = na > 0 && nb > 0 ? Math.abs(dot) / Math.sqrt(na * nb) : 0;
      minCosAll = minCosAll === null ? cos : Math.min(minCosAll, cos);
      const isHeld = !b.Lambda || Math.abs(b.Lambda[j]!) >= t.minLambda * lamMax;
      if (isHeld) {
        held++;
        minCosHeld = minCosHeld === null ? cos : Math.min(minCosHeld, cos);
      }
    }
  }
  const ok = a.dim === b.dim && (lambdaRel === null || lambdaRel <= t.lambdaRel) && (minCosHeld === null || minCosHeld >= t.minCos);
  return { layer, r: [a.r, b.r], dim: [a.dim, b.dim], compared: k, lambdaRel, minCosHeld, minCosAll, held, ok };
}

function compareEdges(key: string, a: SideEdges, b: SideEdges, t: CompareTargets): EdgeComparison {
  const rows = Math.min(a.rows, b.rows);
  const cols = Math.min(a.cols, b.cols);
  let scale = 0;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) scale = Math.max(scale, Math.abs(b.data[i * b.cols + j]!));
  let d = 0;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) d = Math.max(d, Math.abs(a.data[i * a.cols + j]! - b.data[i * b.cols + j]!));
  const rel = rows * cols === 0 ? null : d / (scale || 1);
  return {
    key,
    shape: [
      [a.rows, a.cols],
      [b.rows, b.cols],
    ],
    rel,
    // Shapes follow the kept dimensions, which thresholds set and the layer lines report.
    ok: rel !== null && rel <= t.edgeRel,
  };
}

/** Compares `a` with the reference `b` (errors are relative to b's values). */
export function compareBuilds(a: BuildSide, b: BuildSide, targets: CompareTargets = FIDELITY_TARGETS): Comparison {
  const layers: LayerComparison[] = [];
  const edges: EdgeComparison[] = [];
  const missing: string[] = [];
  for (const name of b.nodeLayers) {
    const x = a.bases.get(name);
    const y = b.bases.get(name);
    if (x && y) layers.push(compareLayer(name, x, y, targets));
    else if (x || y) missing.push(`${name}: a basis only in ${x ? a.label : b.label}`);
  }
  for (const name of a.nodeLayers) if (!b.nodeLayers.includes(name)) missing.push(`${name}: a node layer only in ${a.label}`);
  for (const [key, y] of b.edges) {
    const x = a.edges.get(key);
    if (x) edges.push(compareEdges(key, x, y, targets));
    else missing.push(`${key}: edges only in ${b.label}`);
  }
  for (const key of a.edges.keys()) if (!b.edges.has(key)) missing.push(`${key}: edges only in ${a.label}`);
  const ok = missing.length === 0 && layers.every((l) => l.ok) && edges.every((e) => e.ok);
  return { a: a.label, b: b.label, targets, layers, edges, missing, ok };
}

/** The comparison as text lines. */
export function formatComparison(c: Comparison): string[] {
  const f = (x: number | null, digits = 2) => (x === null ? '—' : x.toExponential(digits));
  const lines = [
    `${c.a}  against  ${c.b}`,
    `targets: Λ ≤ ${c.targets.lambdaRel} of the largest, |cos| ≥ ${c.targets.minCos} (columns with Λ ≥ ${c.targets.minLambda}·max), edges ≤ ${c.targets.edgeRel} of the largest`,
  ];
  for (const l of c.layers) {
    const dims = l.r[0] === l.r[1] ? `r ${l.r[0]}` : `r ${l.r[0]} vs ${l.r[1]} (first ${l.compared} compared)`;
    const cos =
      l.minCosHeld === null
        ? '—'
        : `${l.minCosHeld.toFixed(6)} over ${l.held}${l.minCosAll !== null && l.held < l.compared ? `, ${l.minCosAll.toFixed(4)} over all ${l.compared}` : ''}`;
    lines.push(
      `  ${l.ok ? 'ok  ' : 'DIFF'} ${l.layer.padEnd(12)} ${dims}; Λ err ${f(l.lambdaRel)}; min |cos| ${cos}${l.dim[0] !== l.dim[1] ? `; widths differ (${l.dim[0]} vs ${l.dim[1]})` : ''}`,
    );
  }
  for (const e of c.edges) {
    const [sa, sb] = e.shape;
    const shape = sa[0] === sb[0] && sa[1] === sb[1] ? `${sa[0]}×${sa[1]}` : `${sa[0]}×${sa[1]} vs ${sb[0]}×${sb[1]} (common block compared)`;
    lines.push(`  ${e.ok ? 'ok  ' : 'DIFF'} edges ${e.key} ${shape}: err ${f(e.rel)}`);
  }
  for (const m of c.missing) lines.push(`  DIFF ${m}`);
  const kept = c.layers.filter((l) => l.r[0] !== l.r[1]);
  if (kept.length > 0) {
    lines.push(
      `kept dimensions differ (thresholds) at ${kept.map((l) => `${l.layer} (${l.r[0]} vs ${l.r[1]})`).join(', ')}: compared on the directions both kept`,
    );
  }
  lines.push(c.ok ? 'within the targets' : 'outside the targets');
  return lines;
}
