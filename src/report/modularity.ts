// Modularity of the interaction graph (SPEC §7): one node per basis direction of every node
// layer, edges between adjacent layers weighted by a normalisation of the build's edge matrices
// Ê (out × in), the constant direction of centred layers left out (rib drops row 0 and column 0
// of every edge matrix when center=true). The graph is clustered by Leiden (src/cpu/leiden.ts)
// at resolution γ; the report gives Q_γ, Newman's Q (γ = 1, rib's reported score), the module
// sizes and how much edge weight crosses modules.
//
// Edge normalisations (SPEC §7.2; signed legacy edges enter by magnitude):
//   identity  |E|
//   sqrt      √|E|                       (rib's run_modularity default)
//   abs       |E| / Σ|E|  per layer pair
//   max       |E| / max|E| per layer pair
//   log       max(0, log10(|E| / ε_ℓ)), ε_ℓ either one value (`epsilon`) or, per layer pair, the
//             `quantile` of its non-zero edges (constant row and column excluded); edges at or
//             below ε get weight 0 and are left out.

import { leiden, type WeightedGraph } from '../cpu/leiden.js';

export const MODULES_FORMAT = 'ibgpu-modules';
export const MODULES_VERSION = 1;

export type EdgeNorm = 'identity' | 'sqrt' | 'abs' | 'max' | 'log';
export const EDGE_NORMS: readonly EdgeNorm[] = ['identity', 'sqrt', 'abs', 'max', 'log'];

export interface ModularityOptions {
  /** Resolution γ (default 1). */
  gamma?: number;
  seed?: number;
  /** Chained Leiden runs (default 10). */
  iterations?: number;
  norm?: EdgeNorm;
  /** log: one ε for every layer pair. */
  epsilon?: number;
  /** log: per-pair ε = this quantile of the pair's non-zero |E| (default 0.5 when no epsilon). */
  quantile?: number;
  /** Keep the final `output` node layer in the graph (default true; rib's script leaves it out). */
  includeOutput?: boolean;
}

export interface GraphLayer {
  name: string;
  /** Basis directions (the node count). */
  size: number;
  /** Index 0 is the constant direction (centred folded layer): left out of the graph. */
  constant: boolean;
}

export interface EdgeMatrix {
  from: string;
  to: string;
  /** out × in, row-major. */
  rows: number;
  cols: number;
  data: ArrayLike<number>;
}

export interface GraphNode {
  layer: string;
  index: number;
}

export interface InteractionGraph {
  graph: WeightedGraph;
  nodes: GraphNode[];
  /** Node id `${layer}:${index}` → graph node. */
  ids: Map<string, number>;
  /** Layer pair `${from}->${to}` → ε used (log norm only). */
  epsilons: Record<string, number>;
  /** Raw |E| of every graph edge (same order as graph.edges). */
  raw: number[];
  /** Σ|E| over the pair's entries between included nodes (zero-weight edges included). */
  rawTotal: Record<string, number>;
}

function quantileOf(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const pos = Math.min(1, Math.max(0, q)) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo]! + (pos - lo) * (s[hi]! - s[lo]!);
}

/** Builds the weighted interaction graph from per-layer sizes and the edge matrices. */
export function interactionGraph(layers: GraphLayer[], edges: EdgeMatrix[], opts: ModularityOptions = {}): InteractionGraph {
  const norm = opts.norm ?? 'sqrt';
  const includeOutput = opts.includeOutput ?? true;
  const nodes: GraphNode[] = [];
  const ids = new Map<string, number>();
  const byName = new Map(layers.map((l) => [l.name, l]));
  const kept = (name: string) => byName.has(name) && (includeOutput || name !== 'output');
  for (const l of layers) {
    if (!kept(l.name)) continue;
    for (let i = l.constant ? 1 : 0; i < l.size; i++) {
      ids.set(`${l.name}:${i}`, nodes.length);
      nodes.push({ layer: l.name, index: i });
    }
  }
  const out: WeightedGraph = { n: nodes.length, edges: [] };
  const raw: number[] = [];
  const rawTotal: Record<string, number> = {};
  const epsilons: Record<string, number> = {};
  for (const e of edges) {
    if (!kept(e.from) || !kept(e.to)) continue;
    const key = `${e.from}->${e.to}`;
    const cells: { u: number; v: number; a: number }[] = [];
    let total = 0;
    for (let i = 0; i < e.rows; i++) {
      const v = ids.get(`${e.to}:${i}`);
      if (v === undefined) continue;
      for (let j = 0; j < e.cols; j++) {
        const u = ids.get(`${e.from}:${j}`);
        if (u === undefined) continue;
        const a = Math.abs(e.data[i * e.cols + j]!);
        total += a;
        if (a > 0) cells.push({ u, v, a });
      }
    }
    rawTotal[key] = total;
    let w: (a: number) => number;
    switch (norm) {
      case 'identity':
        w = (a) => a;
        break;
      case 'sqrt':
        w = Math.sqrt;
        break;
      case 'abs':
        w = (a) => a / (total || 1);
        break;
      case 'max': {
        const mx = cells.reduce((m, c) => Math.max(m, c.a), 0);
        w = (a) => a / (mx || 1);
        break;
      }
      case 'log': {
        const eps =
          opts.epsilon ??
          quantileOf(
            cells.map((c) => c.a),
            opts.quantile ?? 0.5,
          );
        epsilons[key] = eps;
        w = (a) => (a > eps && eps > 0 ? Math.log10(a / eps) : eps === 0 && a > 0 ? Infinity : 0);
        break;
      }
    }
    for (const c of cells) {
      const x = w(c.a);
      if (!(x > 0) || !Number.isFinite(x)) continue;
      out.edges.push({ u: c.u, v: c.v, w: x });
      raw.push(c.a);
    }
  }
  return { graph: out, nodes, ids, epsilons, raw, rawTotal };
}

export interface ModuleInfo {
  id: number;
  size: number;
  /** Layer → basis indices in this module. */
  nodes: Record<string, number[]>;
}

export interface ModulesReport {
  format: typeof MODULES_FORMAT;
  version: typeof MODULES_VERSION;
  gamma: number;
  seed: number;
  iterations: number;
  norm: EdgeNorm;
  epsilons?: Record<string, number>;
  include_output: boolean;
  nodes: number;
  edges: number;
  /** Q_γ at the γ used for clustering. */
  quality_gamma: number;
  /** Newman's modularity (γ = 1) of the same partition. */
  modularity: number;
  count: number;
  /** Modules with at least two nodes. */
  count_nontrivial: number;
  /** Module sizes, largest first. */
  sizes: number[];
  /** Fraction of the normalised and of the raw |E| weight on edges between different modules. */
  cross_module: {
    weight_fraction: number;
    raw_fraction: number;
    per_pair: Record<string, { weight_fraction: number; raw_fraction: number }>;
  };
  /** Layer → module of each basis index (null: the constant direction, not in the graph). */
  membership: Record<string, (number | null)[]>;
  modules: ModuleInfo[];
  /** Nodes left out of the graph, as `${layer}:${index}`. */
  excluded: string[];
}

/** Clusters the interaction graph and summarises the partition. */
export function modules(layers: GraphLayer[], edges: EdgeMatrix[], opts: ModularityOptions = {}): ModulesReport {
  const gamma = opts.gamma ?? 1;
  const seed = opts.seed ?? 0;
  const iterations = opts.iterations ?? 10;
  const norm = opts.norm ?? 'sqrt';
  const includeOutput = opts.includeOutput ?? true;
  const g = interactionGraph(layers, edges, opts);
  const res = leiden(g.graph, { gamma, seed, iterations });
  const memb = res.membership;
  // Cross-module weight, overall and per pair.
  const layerOf = (u: number) => g.nodes[u]!.layer;
  let wAll = 0;
  let wCross = 0;
  let rAll = 0;
  let rCross = 0;
  const pair: Record<string, { w: number; wc: number; r: number; rc: number }> = {};
  g.graph.edges.forEach((e, k) => {
    const a = layerOf(e.u);
    const b = layerOf(e.v);
    const key = `${a}->${b}`;
    const p = (pair[key] ??= { w: 0, wc: 0, r: 0, rc: 0 });
    const cross = memb[e.u] !== memb[e.v];
    p.w += e.w;
    wAll += e.w;
    if (cross) {
      p.wc += e.w;
      wCross += e.w;
      p.rc += g.raw[k]!;
      rCross += g.raw[k]!;
    }
  });
  // Raw totals include the edges whose normalised weight is 0 (e.g. below ε): never crossing
  // in the graph, but part of the mass.
  for (const [key, t] of Object.entries(g.rawTotal)) {
    (pair[key] ??= { w: 0, wc: 0, r: 0, rc: 0 }).r = t;
    rAll += t;
  }
  const membership: Record<string, (number | null)[]> = {};
  const excluded: string[] = [];
  for (const l of layers) {
    const m: (number | null)[] = [];
    for (let i = 0; i < l.size; i++) {
      const u = g.ids.get(`${l.name}:${i}`);
      if (u === undefined) {
        excluded.push(`${l.name}:${i}`);
        m.push(null);
      } else {
        m.push(memb[u]!);
      }
    }
    membership[l.name] = m;
  }
  const mods: ModuleInfo[] = Array.from({ length: res.count }, (_, id) => ({ id, size: 0, nodes: {} }));
  g.nodes.forEach((nd, u) => {
    const m = mods[memb[u]!]!;
    m.size++;
    (m.nodes[nd.layer] ??= []).push(nd.index);
  });
  const frac = (a: number, b: number) => (b > 0 ? a / b : 0);
  return {
    format: MODULES_FORMAT,
    version: MODULES_VERSION,
    gamma,
    seed,
    iterations,
    norm,
    ...(norm === 'log' ? { epsilons: g.epsilons } : {}),
    include_output: includeOutput,
    nodes: g.graph.n,
    edges: g.graph.edges.length,
    quality_gamma: res.quality,
    modularity: res.modularity,
    count: res.count,
    count_nontrivial: mods.filter((m) => m.size >= 2).length,
    sizes: mods.map((m) => m.size),
    cross_module: {
      weight_fraction: frac(wCross, wAll),
      raw_fraction: frac(rCross, rAll),
      per_pair: Object.fromEntries(Object.entries(pair).map(([k, p]) => [k, { weight_fraction: frac(p.wc, p.w), raw_fraction: frac(p.rc, p.r) }])),
    },
    membership,
    modules: mods,
    excluded,
  };
}

/**
 * Writes the modules into a graph.json object (as made by graphJson in src/ib/results.ts): each
 * node `{ id: '<layer>:<index>' }` gets `module` (null when left out), and the top level a
 * `modules` summary. Returns the same object.
 */
export function annotateGraph(graph: Record<string, unknown>, rep: ModulesReport): Record<string, unknown> {
  const nodes = graph['nodes'];
  if (Array.isArray(nodes)) {
    for (const nd of nodes as { id?: string; layer?: string; index?: number; module?: number | null }[]) {
      const layer = nd.layer ?? nd.id?.split(':')[0];
      const index = nd.index ?? Number(nd.id?.split(':')[1]);
      nd.module = layer !== undefined ? (rep.membership[layer]?.[index] ?? null) : null;
    }
  }
  graph['modules'] = {
    gamma: rep.gamma,
    seed: rep.seed,
    norm: rep.norm,
    count: rep.count,
    quality_gamma: rep.quality_gamma,
    modularity: rep.modularity,
    sizes: rep.sizes,
    cross_module_weight_fraction: rep.cross_module.weight_fraction,
  };
  return graph;
}

/** Graph layers of a build: every node layer's basis size, or the edge rows of an unrotated final layer. */
export function graphLayers(nodeLayers: string[], basis: (name: string) => { r: number; centred: boolean } | undefined, edges: EdgeMatrix[]): GraphLayer[] {
  return nodeLayers.map((name) => {
    const b = basis(name);
    if (b) return { name, size: b.r, constant: b.centred };
    const e = edges.find((m) => m.to === name);
    return { name, size: e ? e.rows : 0, constant: false };
  });
}
