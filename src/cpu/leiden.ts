// Leiden community detection (Traag, Waltman & van Eck 2019) on weighted undirected graphs,
// maximising the resolution-γ modularity (SPEC §7.2)
//
//   Q_γ = Σ_c [ W_c / m − γ (vol_c / 2m)² ],
//
// m the total edge weight, W_c the weight inside community c (self-loops once), vol_c its summed
// weighted degree (a self-loop counts twice). Single-threaded and deterministic: every random
// choice comes from a seeded PRNG, and ties keep the current community or take the first
// candidate in adjacency order.
//
// One Leiden run repeats (1) fast local moving of nodes (a queue of nodes to revisit), (2)
// refinement: inside each community, singletons are merged into well-connected sub-communities,
// choosing among the non-negative moves at random with probability ∝ exp(ΔQ/θ), so that every
// refined community is connected, and (3) aggregation of the refined partition, with the
// aggregate nodes starting in the communities of the unrefined partition; it stops when local
// moving leaves every community a single aggregate node. `iterations` runs are chained, each
// starting from the previous partition (as networkit's ParallelLeiden `iterations`), stopping
// early once a run changes nothing.

import { mulberry32 } from '../util/mulberry32.js';

export interface WeightedGraph {
  n: number;
  /** Undirected edges; a pair listed twice is summed. Self-loops (u === v) are allowed. */
  edges: { u: number; v: number; w: number }[];
}

export interface LeidenOptions {
  /** Resolution γ (default 1). */
  gamma?: number;
  /** PRNG seed (default 0). */
  seed?: number;
  /** Chained Leiden runs (default 10, as rib's ParallelLeiden call). */
  iterations?: number;
  /** Randomness of the refinement step (default 0.01, leidenalg's default). */
  theta?: number;
}

export interface LeidenResult {
  /** Community of every node, numbered 0.. by decreasing size (ties: smallest member first). */
  membership: Int32Array;
  count: number;
  /** Q_γ at the γ used. */
  quality: number;
  /** Newman's modularity (γ = 1) of the same partition. */
  modularity: number;
  /** Chained runs actually performed. */
  iterations: number;
}

/** Compressed adjacency of an undirected weighted graph (self-loop weight kept separately). */
interface Csr {
  n: number;
  start: Int32Array;
  nbr: Int32Array;
  wt: Float64Array;
  self: Float64Array;
  /** Weighted degree (self-loop twice). */
  deg: Float64Array;
  /** Total edge weight m. */
  m: number;
}

function toCsr(n: number, edges: { u: number; v: number; w: number }[]): Csr {
  const self = new Float64Array(n);
  const maps: Map<number, number>[] = Array.from({ length: n }, () => new Map<number, number>());
  let m = 0;
  for (const { u, v, w } of edges) {
    if (!(u >= 0 && u < n && v >= 0 && v < n && Number.isInteger(u) && Number.isInteger(v))) {
      throw new RangeError(`leiden: edge (${u}, ${v}) has a node outside 0..${n - 1}`);
    }
    if (!(w >= 0) || !Number.isFinite(w)) throw new RangeError(`leiden: edge (${u}, ${v}) has weight ${w}; weights must be finite and >= 0`);
    if (w === 0) continue;
    m += w;
    if (u === v) {
      self[u]! += w;
      continue;
    }
    maps[u]!.set(v, (maps[u]!.get(v) ?? 0) + w);
    maps[v]!.set(u, (maps[v]!.get(u) ?? 0) + w);
  }
  const start = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) start[i + 1] = start[i]! + maps[i]!.size;
  const nbr = new Int32Array(start[n]!);
  const wt = new Float64Array(start[n]!);
  const deg = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let k = start[i]!;
    // Sorted neighbour order: deterministic whatever order the edges came in.
    for (const [j, w] of [...maps[i]!].sort((a, b) => a[0] - b[0])) {
      nbr[k] = j;
      wt[k] = w;
      deg[i]! += w;
      k++;
    }
    deg[i]! += 2 * self[i]!;
  }
  return { n, start, nbr, wt, self, deg, m };
}

/** Small, fast, good enough for tie-breaking and shuffles. */
const prng = mulberry32;

function shuffled(n: number, rand: () => number): Int32Array {
  const a = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/** Q_γ of a partition of g (membership by node). */
function qualityOf(g: Csr, memb: Int32Array, gamma: number): number {
  if (g.m === 0) return 0;
  const inside = new Map<number, number>();
  const vol = new Map<number, number>();
  for (let i = 0; i < g.n; i++) {
    const c = memb[i]!;
    vol.set(c, (vol.get(c) ?? 0) + g.deg[i]!);
    let w = g.self[i]!;
    for (let k = g.start[i]!; k < g.start[i + 1]!; k++) if (memb[g.nbr[k]!] === c && g.nbr[k]! > i) w += g.wt[k]!;
    inside.set(c, (inside.get(c) ?? 0) + w);
  }
  let q = 0;
  for (const [c, v] of vol) q += (inside.get(c) ?? 0) / g.m - gamma * (v / (2 * g.m)) ** 2;
  return q;
}

/**
 * Fast local moving. `memb` is updated in place; returns whether any node moved. Gains are in
 * units of 1/m: moving v into C gains w(v, C) − γ k_v vol_C / 2m (v already removed).
 */
function localMove(g: Csr, memb: Int32Array, gamma: number, rand: () => number): boolean {
  const n = g.n;
  const vol = new Float64Array(n);
  for (let i = 0; i < n; i++) vol[memb[i]!]! += g.deg[i]!;
  const csize = new Int32Array(n);
  for (let i = 0; i < n; i++) csize[memb[i]!]!++;
  const queue: number[] = Array.from(shuffled(n, rand));
  const inQueue = new Uint8Array(n).fill(1);
  const wTo = new Float64Array(n);
  const mark = new Int32Array(n);
  let stamp = 0;
  const touched: number[] = [];
  const empty: number[] = [];
  for (let c = 0; c < n; c++) if (csize[c] === 0) empty.push(c);
  let moved = false;
  const twoM = 2 * g.m;
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head]!;
    inQueue[v] = 0;
    const cv = memb[v]!;
    touched.length = 0;
    stamp++;
    for (let k = g.start[v]!; k < g.start[v + 1]!; k++) {
      const c = memb[g.nbr[k]!]!;
      if (mark[c] !== stamp) {
        mark[c] = stamp;
        touched.push(c);
      }
      wTo[c]! += g.wt[k]!;
    }
    const kv = g.deg[v]!;
    // Remove v from its community.
    vol[cv]! -= kv;
    csize[cv]!--;
    const stayGain = wTo[cv]! - (gamma * kv * vol[cv]!) / twoM;
    let best = cv;
    let bestGain = stayGain;
    for (const c of touched) {
      if (c === cv) continue;
      const gain = wTo[c]! - (gamma * kv * vol[c]!) / twoM;
      if (gain > bestGain) {
        bestGain = gain;
        best = c;
      }
    }
    // An empty community (gain 0) when everything else loses.
    if (bestGain < 0 && csize[cv]! > 0) {
      const e = empty.length ? empty[empty.length - 1]! : -1;
      if (e >= 0) {
        best = e;
        bestGain = 0;
      }
    }
    if (best !== cv && best === empty[empty.length - 1]) empty.pop();
    memb[v] = best;
    vol[best]! += kv;
    csize[best]!++;
    if (csize[cv] === 0 && best !== cv) empty.push(cv);
    for (const c of touched) wTo[c] = 0;
    wTo[cv] = 0;
    if (best !== cv) {
      moved = true;
      for (let k = g.start[v]!; k < g.start[v + 1]!; k++) {
        const u = g.nbr[k]!;
        if (!inQueue[u] && memb[u] !== best) {
          inQueue[u] = 1;
          queue.push(u);
        }
      }
    }
  }
  return moved;
}

/** Refinement of `memb` (communities of g): returns the refined membership. */
function refine(g: Csr, memb: Int32Array, gamma: number, theta: number, rand: () => number): Int32Array {
  const n = g.n;
  const twoM = 2 * g.m;
  const ref = Int32Array.from({ length: n }, (_, i) => i);
  const rvol = Float64Array.from(g.deg);
  const singleton = new Uint8Array(n).fill(1);
  // Members and volume of every community of memb; weight from each node to its own community.
  const members = new Map<number, number[]>();
  const cvol = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const c = memb[i]!;
    if (!members.has(c)) members.set(c, []);
    members.get(c)!.push(i);
    cvol.set(c, (cvol.get(c) ?? 0) + g.deg[i]!);
  }
  // ext[s]: weight from refined community s to the rest of its community (for "well connected").
  const ext = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let k = g.start[i]!; k < g.start[i + 1]!; k++) if (memb[g.nbr[k]!] === memb[i]) ext[i]! += g.wt[k]!;
  }
  const wTo = new Float64Array(n);
  const mark = new Int32Array(n);
  let stamp = 0;
  for (const c of [...members.keys()].sort((a, b) => a - b)) {
    const nodes = members.get(c)!;
    if (nodes.length === 1) continue;
    const volC = cvol.get(c)!;
    const order = shuffled(nodes.length, rand);
    for (const idx of order) {
      const v = nodes[idx]!;
      if (!singleton[v]) continue;
      const kv = g.deg[v]!;
      // v must be well connected to its community.
      if (ext[v]! < (gamma * kv * (volC - kv)) / twoM) continue;
      const touched: number[] = [];
      stamp++;
      for (let k = g.start[v]!; k < g.start[v + 1]!; k++) {
        const u = g.nbr[k]!;
        if (memb[u] !== c) continue;
        const s = ref[u]!;
        if (mark[s] !== stamp) {
          mark[s] = stamp;
          touched.push(s);
        }
        wTo[s]! += g.wt[k]!;
      }
      // Candidates: well-connected refined communities with a non-negative gain.
      const cand: number[] = [];
      const gains: number[] = [];
      for (const s of touched) {
        if (s === ref[v]) continue;
        if (ext[s]! < (gamma * rvol[s]! * (volC - rvol[s]!)) / twoM) continue;
        const gain = wTo[s]! - (gamma * kv * rvol[s]!) / twoM;
        if (gain >= 0) {
          cand.push(s);
          gains.push(gain / g.m);
        }
      }
      for (const s of touched) wTo[s] = 0;
      if (cand.length === 0) continue;
      let pick = 0;
      if (cand.length > 1) {
        const mx = Math.max(...gains);
        const p = gains.map((x) => Math.exp((x - mx) / theta));
        const tot = p.reduce((a, b) => a + b, 0);
        let r = rand() * tot;
        pick = cand.length - 1;
        for (let i = 0; i < p.length; i++) {
          r -= p[i]!;
          if (r < 0) {
            pick = i;
            break;
          }
        }
      }
      const s = cand[pick]!;
      // Merge v into s: update the refined volume and the external weight of s.
      const own = ref[v]!;
      let wvs = 0;
      for (let k = g.start[v]!; k < g.start[v + 1]!; k++) if (ref[g.nbr[k]!] === s) wvs += g.wt[k]!;
      ext[s] = ext[s]! + ext[own]! - 2 * wvs;
      rvol[s]! += rvol[own]!;
      rvol[own] = 0;
      ext[own] = 0;
      ref[v] = s;
      singleton[v] = 0;
      for (const u of nodes) if (ref[u] === s) singleton[u] = 0;
    }
  }
  return ref;
}

/** Aggregates g by `part` (labels 0..k−1): the weights between and inside parts. */
function aggregate(g: Csr, part: Int32Array, k: number): Csr {
  const edges: { u: number; v: number; w: number }[] = [];
  for (let i = 0; i < g.n; i++) {
    const pi = part[i]!;
    if (g.self[i]! > 0) edges.push({ u: pi, v: pi, w: g.self[i]! });
    for (let e = g.start[i]!; e < g.start[i + 1]!; e++) {
      const j = g.nbr[e]!;
      if (j < i) continue;
      edges.push({ u: pi, v: part[j]!, w: g.wt[e]! });
    }
  }
  return toCsr(k, edges);
}

/** Relabels to 0..k−1 in order of first appearance; returns k. */
function compact(memb: Int32Array): number {
  const map = new Map<number, number>();
  for (let i = 0; i < memb.length; i++) {
    const c = memb[i]!;
    let m = map.get(c);
    if (m === undefined) {
      m = map.size;
      map.set(c, m);
    }
    memb[i] = m;
  }
  return map.size;
}

/** One Leiden run from `init` (membership of the original nodes); returns the new membership. */
function leidenRun(g0: Csr, init: Int32Array, gamma: number, theta: number, rand: () => number): Int32Array {
  let g = g0;
  // node → current aggregate node, for the original nodes.
  const map = Int32Array.from({ length: g0.n }, (_, i) => i);
  let memb = Int32Array.from(init);
  compact(memb);
  for (let level = 0; level < 64; level++) {
    localMove(g, memb, gamma, rand);
    const k = compact(memb);
    if (k === g.n) break; // every community is one node: done
    let ref = refine(g, memb, gamma, theta, rand);
    let kr = compact(ref);
    // Refinement merged nothing: aggregate by the unrefined partition instead (as leidenalg).
    if (kr === g.n) {
      ref = Int32Array.from(memb);
      kr = k;
    }
    // Aggregate nodes start in their unrefined community.
    const next = new Int32Array(kr);
    for (let i = 0; i < g.n; i++) next[ref[i]!] = memb[i]!;
    for (let i = 0; i < g0.n; i++) map[i] = ref[map[i]!]!;
    g = aggregate(g, ref, kr);
    memb = next;
  }
  const out = new Int32Array(g0.n);
  for (let i = 0; i < g0.n; i++) out[i] = memb[map[i]!]!;
  return out;
}

/** Renumbers communities by decreasing size, ties by smallest member. */
function canonical(memb: Int32Array): { membership: Int32Array; count: number } {
  const info = new Map<number, { size: number; first: number }>();
  for (let i = 0; i < memb.length; i++) {
    const c = memb[i]!;
    const e = info.get(c);
    if (e) e.size++;
    else info.set(c, { size: 1, first: i });
  }
  const order = [...info].sort((a, b) => b[1].size - a[1].size || a[1].first - b[1].first);
  const rank = new Map(order.map(([c], i) => [c, i]));
  return { membership: Int32Array.from(memb, (c) => rank.get(c)!), count: order.length };
}

function samePartition(a: Int32Array, b: Int32Array): boolean {
  const ca = canonical(a).membership;
  const cb = canonical(b).membership;
  for (let i = 0; i < ca.length; i++) if (ca[i] !== cb[i]) return false;
  return true;
}

/** Leiden clustering of `graph`. Isolated nodes end up as singleton communities. */
export function leiden(graph: WeightedGraph, opts: LeidenOptions = {}): LeidenResult {
  const gamma = opts.gamma ?? 1;
  const theta = opts.theta ?? 0.01;
  const iterations = opts.iterations ?? 10;
  if (!(gamma >= 0) || !Number.isFinite(gamma)) throw new RangeError(`leiden: gamma must be a finite number >= 0, got ${gamma}`);
  if (!(theta > 0)) throw new RangeError(`leiden: theta must be > 0, got ${theta}`);
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError(`leiden: iterations must be a positive integer, got ${iterations}`);
  const g = toCsr(graph.n, graph.edges);
  const rand = prng(opts.seed ?? 0);
  let memb: Int32Array = Int32Array.from({ length: g.n }, (_, i) => i);
  let done = 0;
  if (g.m > 0) {
    for (let it = 0; it < iterations; it++) {
      const next = leidenRun(g, memb, gamma, theta, rand);
      done++;
      const same = it > 0 && samePartition(next, memb);
      // Keep a run only if it does not lower the quality (a run cannot, up to rounding).
      if (qualityOf(g, next, gamma) >= qualityOf(g, memb, gamma) - 1e-12) memb = next;
      if (same) break;
    }
  }
  const { membership, count } = canonical(memb);
  return { membership, count, quality: qualityOf(g, membership, gamma), modularity: qualityOf(g, membership, 1), iterations: done };
}

/** Q_γ of a given partition (membership by node) of `graph`. */
export function partitionQuality(graph: WeightedGraph, membership: ArrayLike<number>, gamma = 1): number {
  return qualityOf(toCsr(graph.n, graph.edges), Int32Array.from(membership), gamma);
}
