// Modularity (SPEC §7): the Leiden implementation (src/cpu/leiden.ts) against an independent
// modularity formula and planted partitions; the interaction graph's edge normalisations; the
// block-diagonal modular MLP of SPEC §9.3 splitting into exactly its two modules; the report
// files and `ibgpu report`.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { leiden, type WeightedGraph } from '../src/cpu/leiden.js';
import { reportCommand } from '../src/cli/report.js';
import { parseConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import type { MlpModel } from '../src/model/mlp.js';
import { buildInteractionBasis, type IbResult } from '../src/ib/pipeline.js';
import { writeResults } from '../src/ib/results.js';
import { modulesFromBuild } from '../src/ib/from-build.js';
import { interactionGraph, type EdgeMatrix, type GraphLayer } from '../src/report/modularity.js';
import { useEngine } from './helpers/gpu.js';
import { gaussian, rng } from './helpers/random.js';

const engine = useEngine();

// ------------------------------------------------------------------ independent oracles

/** Q_γ = (1/2m) Σ_ij [A_ij − γ k_i k_j / 2m] δ(c_i, c_j), from a dense adjacency (A_ii = 2·loop). */
function denseQuality(g: WeightedGraph, memb: ArrayLike<number>, gamma: number): number {
  const n = g.n;
  const A = new Float64Array(n * n);
  for (const { u, v, w } of g.edges) {
    if (u === v) A[u * n + u]! += 2 * w;
    else {
      A[u * n + v]! += w;
      A[v * n + u]! += w;
    }
  }
  const k = new Float64Array(n);
  let twoM = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) k[i]! += A[i * n + j]!;
  for (let i = 0; i < n; i++) twoM += k[i]!;
  let q = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (memb[i] === memb[j]) q += A[i * n + j]! - (gamma * k[i]! * k[j]!) / twoM;
  return q / twoM;
}

function planted(sizes: number[], pIn: number, pOut: number, seed: number): { g: WeightedGraph; truth: number[] } {
  const r = rng(seed);
  const truth = sizes.flatMap((s, c) => Array(s).fill(c) as number[]);
  const n = truth.length;
  const edges: WeightedGraph['edges'] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) if (r() < (truth[i] === truth[j] ? pIn : pOut)) edges.push({ u: i, v: j, w: 0.5 + r() });
  }
  return { g: { n, edges }, truth };
}

/** Same partition up to relabelling. */
function samePartition(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  const ab = new Map<number, number>();
  const ba = new Map<number, number>();
  for (let i = 0; i < a.length; i++) {
    if ((ab.get(a[i]!) ?? b[i]) !== b[i] || (ba.get(b[i]!) ?? a[i]) !== a[i]) return false;
    ab.set(a[i]!, b[i]!);
    ba.set(b[i]!, a[i]!);
  }
  return true;
}

describe('Leiden', () => {
  it('recovers planted partitions exactly; its reported Q_γ and Q_1 match the dense formula', () => {
    for (const [seed, sizes, pIn] of [
      [1, [30, 30, 30, 30], 0.35],
      [2, [12, 25, 40], 0.35],
      [3, [8, 8, 8, 8, 8, 8], 0.7],
    ] as const) {
      const { g, truth } = planted([...sizes], pIn, 0.02, seed);
      const res = leiden(g, { seed: 0 });
      expect(res.quality).toBeGreaterThanOrEqual(denseQuality(g, truth, 1) - 1e-12);
      expect(samePartition(res.membership, truth), `seed ${seed}`).toBe(true);
      expect(res.count).toBe(sizes.length);
      expect(res.quality).toBeCloseTo(denseQuality(g, res.membership, 1), 12);
      expect(res.modularity).toBeCloseTo(denseQuality(g, res.membership, 1), 12);
      const r2 = leiden(g, { gamma: 0.7, seed: 0 });
      expect(r2.quality).toBeCloseTo(denseQuality(g, r2.membership, 0.7), 12);
      expect(r2.modularity).toBeCloseTo(denseQuality(g, r2.membership, 1), 12);
    }
  });

  it('is deterministic for a seed, and numbers modules by decreasing size', () => {
    const { g } = planted([20, 14, 9], 0.3, 0.05, 7);
    const a = leiden(g, { seed: 3 });
    const b = leiden(g, { seed: 3 });
    expect(Array.from(a.membership)).toEqual(Array.from(b.membership));
    const sizes = Array.from({ length: a.count }, (_, c) => a.membership.filter((m) => m === c).length);
    expect(sizes).toEqual([...sizes].sort((x, y) => y - x));
  });

  it('ends node-optimal with connected communities (random graphs, several γ)', () => {
    const r = rng(9);
    for (let t = 0; t < 40; t++) {
      const n = 6 + (t % 25);
      const p = 0.08 + 0.4 * r();
      const edges: WeightedGraph['edges'] = [];
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (r() < p) edges.push({ u: i, v: j, w: r() < 0.5 ? 1 : 3 * r() });
      const g = { n, edges };
      for (const gamma of [0.3, 1, 3]) {
        const res = leiden(g, { gamma, seed: t });
        const m = Array.from(res.membership);
        // No single node move (to any community or a new one) improves Q_γ.
        for (let v = 0; v < n; v++) {
          const own = m[v]!;
          for (let c = 0; c <= res.count; c++) {
            if (c === own) continue;
            m[v] = c;
            expect(denseQuality(g, m, gamma), `t=${t} γ=${gamma} node ${v} → ${c}`).toBeLessThanOrEqual(res.quality + 1e-12);
          }
          m[v] = own;
        }
        // Every community is connected.
        const adj: number[][] = Array.from({ length: n }, () => []);
        for (const e of edges) {
          adj[e.u]!.push(e.v);
          adj[e.v]!.push(e.u);
        }
        for (let c = 0; c < res.count; c++) {
          const members = m.flatMap((x, i) => (x === c ? [i] : []));
          const seen = new Set([members[0]!]);
          const stack = [members[0]!];
          while (stack.length)
            for (const w of adj[stack.pop()!]!)
              if (m[w] === c && !seen.has(w)) {
                seen.add(w);
                stack.push(w);
              }
          expect(seen.size, `t=${t} γ=${gamma} community ${c}`).toBe(members.length);
        }
      }
    }
  });

  it('a small γ gives fewer clusters than a large one (rib test_gamma)', () => {
    const { g } = planted([15, 15, 15, 15], 0.4, 0.05, 4);
    expect(leiden(g, { gamma: 1e-3 }).count).toBeLessThan(leiden(g, { gamma: 10 }).count);
    expect(leiden(g, { gamma: 0 }).count).toBe(1);
  });

  it('handles isolated nodes, self-loops and an empty graph', () => {
    const g: WeightedGraph = {
      n: 5,
      edges: [
        { u: 0, v: 1, w: 2 },
        { u: 1, v: 1, w: 1 },
        { u: 2, v: 3, w: 1 },
      ],
    };
    const res = leiden(g);
    expect(res.count).toBe(3);
    expect(res.membership[0]).toBe(res.membership[1]);
    expect(res.membership[4]).not.toBe(res.membership[0]);
    expect(res.quality).toBeCloseTo(denseQuality(g, res.membership, 1), 12);
    expect(leiden({ n: 3, edges: [] }).count).toBe(3);
    expect(() => leiden({ n: 2, edges: [{ u: 0, v: 2, w: 1 }] })).toThrow(/outside/);
    expect(() => leiden({ n: 2, edges: [{ u: 0, v: 1, w: -1 }] })).toThrow(/weight/);
  });
});

// ------------------------------------------------------------------ the interaction graph

describe('interaction graph and edge normalisations', () => {
  // Two layers of 4 and 3 directions (both centred: index 0 is the constant) and an output of 2.
  const layers: GraphLayer[] = [
    { name: 'a', size: 4, constant: true },
    { name: 'b', size: 3, constant: true },
    { name: 'output', size: 2, constant: false },
  ];
  const r = rng(21);
  const E1: EdgeMatrix = { from: 'a', to: 'b', rows: 3, cols: 4, data: Float64Array.from({ length: 12 }, () => 10 ** (4 * r() - 2)) };
  const E2: EdgeMatrix = { from: 'b', to: 'output', rows: 2, cols: 3, data: Float64Array.from({ length: 6 }, () => 10 ** (4 * r() - 2)) };

  it('one node per non-constant direction; weights E, √E, E/ΣE, E/maxE between the right nodes', () => {
    const id = interactionGraph(layers, [E1, E2], { norm: 'identity' });
    expect(id.nodes.map((nd) => `${nd.layer}:${nd.index}`)).toEqual(['a:1', 'a:2', 'a:3', 'b:1', 'b:2', 'output:0', 'output:1']);
    expect(id.graph.edges.length).toBe(3 * 2 + 2 * 2); // constant row and column dropped
    for (const e of id.graph.edges) {
      const u = id.nodes[e.u]!;
      const v = id.nodes[e.v]!;
      const M = u.layer === 'a' ? E1 : E2;
      expect(e.w).toBe(M.data[v.index * M.cols + u.index]);
    }
    const sq = interactionGraph(layers, [E1, E2], { norm: 'sqrt' });
    sq.graph.edges.forEach((e, k) => expect(e.w).toBeCloseTo(Math.sqrt(id.graph.edges[k]!.w), 14));
    const mx = interactionGraph(layers, [E1, E2], { norm: 'max' });
    const ab = interactionGraph(layers, [E1, E2], { norm: 'abs' });
    const pairMax = Math.max(...id.graph.edges.slice(0, 6).map((e) => e.w));
    const pairSum = id.graph.edges.slice(0, 6).reduce((s, e) => s + e.w, 0);
    expect(mx.graph.edges[0]!.w).toBeCloseTo(id.graph.edges[0]!.w / pairMax, 14);
    expect(ab.graph.edges[0]!.w).toBeCloseTo(id.graph.edges[0]!.w / pairSum, 14);
    expect(interactionGraph(layers, [E1, E2], { includeOutput: false }).graph.n).toBe(5);
  });

  it('log10(E/ε): a given ε, and the per-pair median ε halves the edge count (rib)', () => {
    const lg = interactionGraph(layers, [E1, E2], { norm: 'log', epsilon: 1 });
    const id = interactionGraph(layers, [E1, E2], { norm: 'identity' });
    const above = id.graph.edges.filter((e) => e.w > 1);
    expect(lg.graph.edges.length).toBe(above.length);
    lg.graph.edges.forEach((e, k) => expect(e.w).toBeCloseTo(Math.log10(above[k]!.w), 14));
    // 200 × 100 random edges: the median per pair keeps half of them.
    const big: EdgeMatrix = { from: 'x', to: 'y', rows: 100, cols: 201, data: Float64Array.from({ length: 100 * 201 }, () => r()) };
    const g = interactionGraph(
      [
        { name: 'x', size: 201, constant: true },
        { name: 'y', size: 100, constant: false },
      ],
      [big],
      { norm: 'log', quantile: 0.5 },
    );
    expect(g.graph.edges.length).toBe((100 * 200) / 2);
    expect(Object.keys(g.epsilons)).toEqual(['x->y']);
  });
});

// ------------------------------------------------------------------ modular MLP (SPEC §9.3)

/**
 * Block-diagonal ReLU MLP 6 → 10 → 10 → 4 with blocks (3, 5, 5, 2) + (3, 5, 5, 2); the second block's
 * weights are 1.7× larger so that no eigenvalue is shared between blocks. Data: the product set
 * {(a_i, b_j)} of two lists of 24 three-vectors, so the blocks are empirically independent.
 */
function modularMlp(): { model: MlpModel; x: Float32Array; n: number; blockOf: (layer: number, unit: number) => number } {
  const g = gaussian(rng(3));
  const blocks = [
    [3, 3],
    [5, 5],
    [5, 5],
    [2, 2],
  ];
  const layers: MlpModel['layers'] = [];
  for (let i = 0; i < 3; i++) {
    const [a0, b0] = blocks[i]! as [number, number];
    const [a1, b1] = blocks[i + 1]! as [number, number];
    const din = a0 + b0;
    const dout = a1 + b1;
    const W = new Float32Array(din * dout);
    const b = new Float32Array(dout);
    for (let r = 0; r < din; r++) for (let c = 0; c < dout; c++) if (r < a0 === c < a1) W[r * dout + c] = g() * (r < a0 ? 1 : 1.7);
    for (let c = 0; c < dout; c++) b[c] = 0.3 * g();
    layers.push({ name: `layers.${i}`, dIn: din, dOut: dout, W, b, activation: i < 2 ? 'relu' : 'identity' });
  }
  const A = Array.from({ length: 24 }, () => [g(), g(), g()]);
  const B = Array.from({ length: 24 }, () => [g(), g(), g()]);
  const x = new Float32Array(24 * 24 * 6);
  let k = 0;
  for (const a of A) for (const bb of B) x.set([...a, ...bb], 6 * k++);
  return { model: { layers }, x, n: 24 * 24, blockOf: (layer, unit) => (unit < blocks[layer]![0]! ? 0 : 1) };
}

describe('block-diagonal modular MLP (SPEC §9.3)', () => {
  const NODES = ['layers.0', 'layers.1', 'layers.2', 'output'];
  let res: IbResult;
  let blockOfNode: (layer: string, index: number) => number;

  beforeAll(async () => {
    const m = modularMlp();
    // SPEC §9.3's clustering: γ = 1, weights log10(E/1e-12).
    const config = parseConfig({ node_layers: NODES, batch_size: 128, modularity: { norm: 'log', epsilon: 1e-12, gamma: 1 } });
    res = await buildInteractionBasis(await engine(), m.model, arraySource(m.x, m.n, 6), config);
    // The block of a basis direction: where its C column has its weight (the bias slot aside).
    blockOfNode = (layer, index) => {
      if (layer === 'output') return m.blockOf(3, index);
      const b = res.bases.get(layer)!;
      const li = NODES.indexOf(layer);
      let w0 = 0;
      let w1 = 0;
      for (let i = 0; i < b.dim - 1; i++) {
        const v = b.C[i * b.r + index]! ** 2;
        if (m.blockOf(li, i) === 0) w0 += v;
        else w1 += v;
      }
      const leak = Math.min(w0, w1) / (w0 + w1);
      expect(leak, `${layer}:${index} lies in one block`).toBeLessThan(1e-6);
      return w0 > w1 ? 0 : 1;
    };
  });

  it('splits into exactly its two modules, with no edge mass between them', () => {
    const mods = res.modules!;
    expect(mods.norm).toBe('log');
    expect(mods.count).toBe(2);
    expect(mods.excluded).toEqual(['layers.0:0', 'layers.1:0', 'layers.2:0']); // constant directions
    for (const mod of mods.modules) {
      const blocks = new Set(Object.entries(mod.nodes).flatMap(([layer, idx]) => idx.map((i) => blockOfNode(layer, i))));
      expect(blocks.size, `module ${mod.id}`).toBe(1);
    }
    expect(new Set(mods.modules.map((md) => blockOfNode(Object.keys(md.nodes)[0]!, Object.values(md.nodes)[0]![0]!)))).toEqual(new Set([0, 1]));
    expect(mods.cross_module.weight_fraction).toBe(0);
    expect(mods.cross_module.raw_fraction).toBeLessThan(1e-12);
    expect(mods.modularity).toBeGreaterThan(0.45);
  });

  it('other normalisations and resolutions never put two blocks in one module', () => {
    for (const norm of ['sqrt', 'identity', 'max'] as const) {
      for (const gamma of [0.5, 1, 2]) {
        const mods = modulesFromBuild(NODES, res.bases, res.edges, { norm, gamma });
        for (const mod of mods.modules) {
          const blocks = new Set(Object.entries(mod.nodes).flatMap(([layer, idx]) => idx.map((i) => blockOfNode(layer, i))));
          expect(blocks.size, `${norm} γ=${gamma} module ${mod.id}`).toBe(1);
        }
        expect(mods.cross_module.raw_fraction).toBeLessThan(0.5);
      }
    }
    // γ = 0.5 with √E also finds exactly the two blocks.
    expect(modulesFromBuild(NODES, res.bases, res.edges, { norm: 'sqrt', gamma: 0.5 }).count).toBe(2);
  });
});

// ------------------------------------------------------------------ files and the CLI

describe('result files and `ibgpu report`', () => {
  let dir: string;
  let res: IbResult;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ibgpu-report-'));
    const m = modularMlp();
    const config = parseConfig({ node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'], batch_size: 128, degeneracy: true });
    res = await buildInteractionBasis(await engine(), m.model, arraySource(m.x, m.n, 6), config);
    await writeResults(join(dir, 'out'), res, { adapter: 'test', data: 'modular product set' });
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the build writes degeneracy.json, modules.json and the modules into graph.json', async () => {
    const deg = JSON.parse(await readFile(join(dir, 'out', 'degeneracy.json'), 'utf8'));
    expect(deg.format).toBe('ibgpu-degeneracy');
    expect(deg.totals).toEqual(res.degeneracy!.totals);
    const mods = JSON.parse(await readFile(join(dir, 'out', 'modules.json'), 'utf8'));
    expect(mods.format).toBe('ibgpu-modules');
    expect(mods.norm).toBe('sqrt'); // default
    const graph = JSON.parse(await readFile(join(dir, 'out', 'graph.json'), 'utf8'));
    for (const nd of graph.nodes as { layer: string; index: number; module: number | null }[]) {
      expect(nd.module).toBe(mods.membership[nd.layer][nd.index]);
    }
    expect(graph.modules.count).toBe(mods.count);
  });

  it('`ibgpu report` prints the summary and re-clusters with new options, rewriting the files', async () => {
    const logs: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((s: unknown) => {
      logs.push(String(s));
    });
    try {
      expect(await reportCommand(join(dir, 'out'), { quiet: true, norm: 'log', epsilon: '1e-12' })).toBe(0);
    } finally {
      spy.mockRestore();
    }
    const text = logs.join('\n');
    expect(text).toContain('Degeneracy (SPEC §6)');
    expect(text).toContain('Modules (Leiden, γ = 1');
    expect(text).toMatch(/2 module\(s\) of size >= 2/);
    const mods = JSON.parse(await readFile(join(dir, 'out', 'modules.json'), 'utf8'));
    expect(mods.norm).toBe('log');
    expect(mods.count).toBe(2);
    const graph = JSON.parse(await readFile(join(dir, 'out', 'graph.json'), 'utf8'));
    expect(graph.modules.norm).toBe('log');
    for (const nd of graph.nodes as { layer: string; index: number; module: number | null }[]) expect(nd.module).toBe(mods.membership[nd.layer][nd.index]);
    // --no-write leaves the files alone; --json prints both reports.
    const before = await readFile(join(dir, 'out', 'modules.json'), 'utf8');
    const out: string[] = [];
    const spy2 = vi.spyOn(console, 'log').mockImplementation((s: unknown) => {
      out.push(String(s));
    });
    try {
      expect(await reportCommand(join(dir, 'out'), { quiet: true, gamma: '5', write: false, json: true })).toBe(0);
    } finally {
      spy2.mockRestore();
    }
    expect(await readFile(join(dir, 'out', 'modules.json'), 'utf8')).toBe(before);
    const j = JSON.parse(out.join('\n'));
    expect(j.modules.gamma).toBe(5);
    expect(j.degeneracy.format).toBe('ibgpu-degeneracy');
  });

  it('rejects a directory that is not a build result, and bad options', async () => {
    await expect(reportCommand(dir, { quiet: true })).rejects.toThrow(/manifest/);
    await expect(reportCommand(join(dir, 'out'), { quiet: true, norm: 'cubic' })).rejects.toThrow(/--norm/);
    expect(() => parseConfig({ node_layers: ['layers.0', 'output'], modularity: { gamma: -1 } })).toThrow(/gamma/);
    expect(() => parseConfig({ node_layers: ['layers.0', 'output'], modularity: { epsilon: 1 } })).toThrow(/log/);
    expect(() => parseConfig({ node_layers: ['layers.0', 'output'], modularity: { colour: 1 } })).toThrow(/unknown key/);
  });
});
