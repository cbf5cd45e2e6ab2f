// The transformer build: statistics → bases from the last node layer backwards (each needs the
// next one's C) → edges, over a compiled ModelProgram, run by the build driver
// (src/pipeline/driver.ts) with the transformer specialisation for every section: M′ from the
// passes (passes.ts: VJPs or their closed forms) and the Jacobian basis (basis.ts, host float64),
// one edge pass per section. The result is an IbResult, so the existing result writer, viewer and
// report read it unchanged. The staged builds (staged.ts) take the same specialisations, with M′
// combined from the partials of rounds run as processes of their own.

import { IbgpuError } from '../errors.js';
import { thresholdOf, type LayerBasis, type NextBasis } from '../ib/basis.js';
import type { BuildConfig } from '../ib/config.js';
import { integrationPoints, type IntegrationPoints } from '../ib/integration.js';
import type { IbResult } from '../ib/pipeline.js';
import { cutAtFinal } from '../model/compose.js';
import type { ModelProgram } from '../model/program.js';
import { identityBasis, isolatesLnVar, jacobianBasis, stage1Transformer, svdBasis, type NodeMoments } from './basis.js';
import { PassesF64 } from './passes-f64.js';
import type { NodeStatsResult, TransformerPasses } from './passes.js';
import { runEdges, runGraph, type BasisStep, type EdgePass, type GraphBuild, type GraphPlan } from '../pipeline/driver.js';
import type { StochasticSources } from './stochastic.js';

export interface TransformerBuildOptions {
  logger?: { info(msg: string): void };
  /**
   * Passes over another cut of the same model and data: naive gradient flow runs M′ of node
   * layer ℓ on the model cut only at ℓ and the final node layer (cutAtFinal).
   */
  passesFor?: (mp: ModelProgram) => Promise<TransformerPasses>;
  /** Where the statistics come from when not from `passes` (a separate statistics dataset, a stored file). */
  stats?: () => Promise<NodeStatsResult[]>;
  /** Stored bases of every node layer but `output` (interaction_matrices_path): no statistics or bases stage. */
  bases?: Map<string, LayerBasis>;
}

/** The config's stochastic sources (undefined when none is set). */
export function stochasticOf(config: BuildConfig): StochasticSources | undefined {
  const { n_stochastic_sources_basis_pos: p, n_stochastic_sources_basis_hidden: h, n_stochastic_sources_edges: e } = config;
  if (p === undefined && h === undefined && e === undefined) return undefined;
  return {
    seed: config.seed ?? 0,
    ...(p !== undefined ? { basisPos: p } : {}),
    ...(h !== undefined ? { basisHidden: h } : {}),
    ...(e !== undefined ? { edges: e } : {}),
  };
}

/** The node layers' moments from their statistics (every node layer's but the logits'). */
export function transformerMoments(names: readonly string[], stats: readonly NodeStatsResult[], centred: boolean): NodeMoments[] {
  return stats.map((s, i) => ({ name: names[i]!, dim: s.dim, mean: s.mean, gram: s.gram, centred }));
}

/**
 * The final node layer's rule: unrotated logits have no basis; unembed & co. are rotated by PCA
 * (rotate_final_node_layer) or kept as the identity.
 */
export function transformerFinalBasis(config: BuildConfig, names: readonly string[], moments: readonly NodeMoments[]): LayerBasis | undefined {
  const L = names.length - 1;
  if (names[L] === 'output') return undefined;
  const m = moments[L]!;
  return config.rotate_final_node_layer
    ? svdBasis(m, stage1Transformer(m, thresholdOf(config), isolatesLnVar(m.name, config.isolate_ln_var ?? true)))
    : identityBasis(m);
}

/**
 * Where the M′ of section l comes from: a pass from the next node layer's basis (one process), M′
 * itself (a staged build's round, combined from its partials), or undefined where another process
 * computes it later (a staged build's next rounds: the basis step is then pending).
 */
export type MprimeSource = (l: number) => ((next: NextBasis) => Promise<Float64Array>) | Float64Array | undefined;

/**
 * The transformer specialisations of every section, from complete statistics: the final node
 * layer's rule, and per section the Jacobian basis from M′ (mPrime) or, for svd / pca, the PCA
 * basis; `edges` (absent for a bases-only run) computes the edges.
 */
export function transformerGraphPlan(
  config: BuildConfig,
  names: readonly string[],
  moments: readonly NodeMoments[],
  o: { mPrime: MprimeSource; edges?: EdgePass; log?: (msg: string) => void },
): GraphPlan {
  const th = thresholdOf(config);
  const isolate = config.isolate_ln_var ?? true;
  const jacobian = config.basis_formula === 'jacobian';
  const logged = (m: NodeMoments, k: number, b: LayerBasis): LayerBasis => {
    o.log?.(`${m.name}: dim ${m.dim}, stage 1 keeps ${k}, basis ${b.r}${b.Lambda ? `, Λ_0 ${b.Lambda[0]!.toExponential(6)}` : ''}`);
    return b;
  };
  /** Section l's basis: M′ and the Jacobian basis, or PCA. */
  const basis = (l: number): BasisStep => {
    const m = moments[l]!;
    if (!jacobian)
      return {
        waits: false,
        usesNext: false,
        build: () => {
          const st = stage1Transformer(m, th, isolatesLnVar(m.name, isolate));
          return logged(m, st.k, svdBasis(m, st));
        },
      };
    const mPrime = o.mPrime(l);
    if (!mPrime)
      return {
        waits: true,
        pending: true,
        usesNext: false,
        build: () => {
          throw new Error(`M′ of ${m.name} is computed by another process`);
        },
      };
    if (mPrime instanceof Float64Array)
      return {
        waits: false,
        usesNext: false,
        build: () => {
          const st = stage1Transformer(m, th, isolatesLnVar(m.name, isolate));
          return logged(m, st.k, jacobianBasis(m, st, mPrime, th));
        },
      };
    return {
      waits: true,
      build: async (next) => {
        const st = stage1Transformer(m, th, isolatesLnVar(m.name, isolate));
        return logged(m, st.k, jacobianBasis(m, st, await mPrime(next), th));
      },
    };
  };
  return {
    finalBasis: () => transformerFinalBasis(config, names, moments),
    sections: names.slice(0, -1).map((_n, l) => ({ basis: basis(l), ...(o.edges ? { edges: o.edges } : {}) })),
  };
}

/**
 * Where M′ of section l runs: on the section itself, against the next node layer's basis
 * (undefined), or, with naive gradient flow (rib's gradient_flow_loop) and l < L−1, on sections
 * l … L−1 composed (cutAtFinal) against the output side of section L−1, the final node layer's basis.
 */
export function mPrimeCut(mp: ModelProgram, config: BuildConfig, l: number): { program: ModelProgram; outSection: number } | undefined {
  const L = mp.sections.length;
  if (config.naive_gradient_flow !== true || config.basis_formula !== 'jacobian' || l >= L - 1) return undefined;
  return { program: cutAtFinal(mp, l), outSection: L - 1 };
}

/** The output side of section l: C of node layer l+1 (undefined: the unrotated logits), its directions and its width. */
export function sectionOutput(
  mp: ModelProgram,
  bases: ReadonlyMap<string, LayerBasis>,
  l: number,
): { Chat: Float64Array | undefined; rOut: number; dOut: number } {
  const next = bases.get(mp.nodeLayers[l + 1]!);
  if (next) return { Chat: next.C, rOut: next.r, dOut: next.dim };
  const sec = mp.sections[l]!;
  const width = sec.outputs.reduce((a, id) => a + sec.values[id]!.width, 0);
  return { Chat: undefined, rOut: width, dOut: width };
}

/** Columns [a, b) of C (or of the identity, for the unrotated output), [dOut, b − a]. */
function columnBlock(Chat: Float64Array | undefined, dOut: number, rOut: number, a: number, b: number): Float64Array {
  const w = b - a;
  const sub = new Float64Array(dOut * w);
  for (let h = 0; h < dOut; h++) for (let i = a; i < b; i++) sub[h * w + i - a] = Chat ? Chat[h * rOut + i]! : h === i ? 1 : 0;
  return sub;
}

/**
 * The transformer edge pass: one section at a time, from the bases of its two node layers (the
 * passes' squared edges: VJPs or a closed form). It runs beside the next basis step (its GPU work
 * on this thread, M′'s host sums on worker threads). With `block`, only the output rows [a, b)
 * of each section (a staged build's output split, rib's dist_split_over out_dim: each output
 * direction's row needs only its own column of C); an empty block computes nothing.
 */
export function transformerEdgePass(
  passes: TransformerPasses,
  mp: ModelProgram,
  pts: IntegrationPoints,
  stoch: StochasticSources | undefined,
  block?: (l: number, rOut: number) => { a: number; b: number },
): EdgePass {
  return {
    joint: false,
    inline: false,
    run: async ({ lo, bases }) => {
      const bin = bases.get(mp.nodeLayers[lo]!)!;
      const { Chat, rOut, dOut } = sectionOutput(mp, bases, lo);
      const { a, b } = block ? block(lo, rOut) : { a: 0, b: rOut };
      const rows = Math.max(0, b - a);
      const input = { C: bin.C, Cpinv: bin.Cpinv, rIn: bin.r };
      const E = rows === 0 ? new Float64Array(0) : await passes.edges(lo, input, block ? columnBlock(Chat, dOut, rOut, a, b) : Chat, rows, pts, stoch);
      return new Map([[lo, { data: E, rows, cols: bin.r }]]);
    },
  };
}

export async function buildTransformer(
  passes: TransformerPasses,
  mp: ModelProgram,
  config: BuildConfig,
  opts: TransformerBuildOptions = {},
): Promise<IbResult> {
  const log = opts.logger ?? { info: () => {} };
  const formula = config.basis_formula;
  if (formula !== 'jacobian' && formula !== 'svd' && formula !== 'pca') {
    throw new IbgpuError('BAD_CONFIG', `basis_formula '${formula}' is not available for transformers`, "use 'jacobian', 'svd' or 'pca'");
  }
  if (config.edge_formula !== 'squared') {
    throw new IbgpuError(
      'BAD_CONFIG',
      `edge_formula '${config.edge_formula}' is not available on this path (its passes compute squared edges)`,
      "use edge_formula 'squared'",
    );
  }
  if (config.rotate_final_node_layer && mp.nodeLayers[mp.nodeLayers.length - 1] === 'output') {
    throw new IbgpuError(
      'BAD_CONFIG',
      'rotating the output node layer is not supported (the logits have no constant slot)',
      'set rotate_final_node_layer: false, or end node_layers at unembed',
    );
  }
  const pts = integrationPoints(config.integration_method, config.n_intervals);
  const centred = config.center;
  const stoch = stochasticOf(config);
  if (formula !== 'jacobian' && (stoch?.basisPos !== undefined || stoch?.basisHidden !== undefined)) {
    throw new IbgpuError(
      'BAD_CONFIG',
      `n_stochastic_sources_basis_pos/_hidden estimate M′, which basis_formula '${formula}' does not use`,
      "remove them, or use basis_formula 'jacobian'",
    );
  }
  const names = mp.nodeLayers;
  const L = names.length - 1;
  const clock = () => performance.now();

  // Every section's edges: one pass per section, from the bases of its two node layers.
  const edgePass = transformerEdgePass(passes, mp, pts, stoch);

  let mPrimeMs = 0;
  // Naive gradient flow (rib's gradient_flow_loop): node layer ℓ's M′ differentiates the final
  // node layer's basis through sections ℓ … L−1 composed (mPrimeCut), the output side of section
  // L−1, whose M′ is the first one built.
  let finalOut: { Chat: Float64Array | undefined; rOut: number } | undefined;
  const mPrimeOf = async (l: number, Chat: Float64Array | undefined, rOut: number): Promise<Float64Array> => {
    if (l === L - 1) finalOut = { Chat, rOut };
    const cut = mPrimeCut(mp, config, l);
    if (!cut) return passes.mPrime(l, Chat, rOut, pts, stoch);
    if (!opts.passesFor)
      throw new IbgpuError(
        'BAD_CONFIG',
        'naive_gradient_flow needs passes over the recut model, which this caller did not provide',
        'build through runTransformerBuild or buildTransformerF64',
      );
    if (!finalOut) throw new Error(`M′ of section ${l} by naive gradient flow before that of the last section`);
    const p = await opts.passesFor(cut.program);
    try {
      return await p.mPrime(l, finalOut.Chat, finalOut.rOut, pts, stoch);
    } finally {
      p.dispose?.();
    }
  };
  // M′ from the passes (VJPs or their closed forms), timed on its own.
  const mPrime = (l: number) => async (next: NextBasis) => {
    const tm = clock();
    const Mp = await mPrimeOf(l, next.C, next.r);
    mPrimeMs += clock() - tm;
    return Mp;
  };
  const build: GraphBuild<NodeMoments[]> = {
    program: mp,
    calculateEdges: config.calculate_edges,
    statistics: async () => {
      const t0 = clock();
      const stats = await (opts.stats ? opts.stats() : passes.nodeStats(centred));
      log.info(`statistics of ${stats.length} node layers over ${passes.n} sequences (${((clock() - t0) / 1000).toFixed(2)} s)`);
      return transformerMoments(names, stats, centred);
    },
    plan: (moments) => transformerGraphPlan(config, names, moments, { mPrime, edges: edgePass, log: (m) => log.info(m) }),
  };

  const edgesOnly = async (bases: Map<string, LayerBasis>): Promise<IbResult> => {
    await passes.prepareEdges?.(centred);
    const g = await runEdges(
      mp,
      bases,
      mp.sections.map(() => edgePass),
      config.calculate_edges,
    );
    const timings: Record<string, number> = {};
    if (config.calculate_edges) {
      timings['edges'] = g.timings.edgesAfterBases;
      timings['edges_total'] = g.timings.edgesTotal;
    }
    return { config, bases, edges: g.edges, stats: { nodes: new Map(), gates: new Map() }, timings, n: passes.n };
  };
  if (opts.bases) return edgesOnly(opts.bases);

  const g = await runGraph(build);
  // Node layers in network order, then the final one.
  const allBases = new Map<string, LayerBasis>();
  for (let l = 0; l < L; l++) allBases.set(names[l]!, g.bases.get(names[l]!)!);
  const fb = g.bases.get(names[L]!);
  if (fb) allBases.set(names[L]!, fb);
  const timings: Record<string, number> = { stats: g.timings.stats, bases: g.timings.bases, m_prime: mPrimeMs };
  if (config.calculate_edges) {
    // Wall time from the end of the bases stage (edges that ran beside M′ are not in it);
    // edges_total: the edge passes' own times added up, wherever they ran.
    timings['edges'] = g.timings.edgesAfterBases;
    timings['edges_total'] = g.timings.edgesTotal;
  }
  return { config, bases: allBases, edges: g.edges, stats: { nodes: new Map(), gates: new Map() }, timings, n: passes.n };
}

/** The float64 reference build: every pass in float64 on the CPU. */
export async function buildTransformerF64(
  mp: ModelProgram,
  tokens: Int32Array | Float64Array,
  n: number,
  P: number,
  config: BuildConfig,
  opts: TransformerBuildOptions = {},
): Promise<IbResult> {
  return buildTransformer(new PassesF64(mp, tokens, n, P), mp, config, { passesFor: async (m) => new PassesF64(m, tokens, n, P), ...opts });
}
