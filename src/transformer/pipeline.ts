// The transformer build: statistics → bases from the last node layer backwards (each needs the
// next one's C) → edges, over a compiled ModelProgram, run by the build driver
// (src/pipeline/driver.ts) with the transformer specialisation for every section: M′ from the
// passes (passes.ts: VJPs or their closed forms) and the Jacobian basis (basis.ts, host float64),
// one edge pass per section. The result is an IbResult, so the existing result writer, viewer and
// report read it unchanged.

import { IbgpuError } from '../errors.js';
import type { LayerBasis, Threshold } from '../ib/basis.js';
import type { BuildConfig } from '../ib/config.js';
import { integrationPoints } from '../ib/integration.js';
import type { IbResult } from '../ib/pipeline.js';
import { cutAtFinal } from '../model/compose.js';
import type { ModelProgram } from '../model/program.js';
import { identityBasis, isolatesLnVar, jacobianBasis, stage1Transformer, svdBasis, type NodeMoments } from './basis.js';
import { PassesF64 } from './passes-f64.js';
import type { NodeStatsResult, TransformerPasses } from './passes.js';
import { runGraph, type BasisStep, type EdgePass, type GraphBuild } from '../pipeline/driver.js';
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

function thresholdOf(config: BuildConfig): Threshold {
  return { tau: config.truncation_threshold, mode: config.threshold_mode, countMasked: config.rib_compat };
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
  const th = thresholdOf(config);
  const pts = integrationPoints(config.integration_method, config.n_intervals);
  const isolate = config.isolate_ln_var ?? true;
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
  const hasOutput = names[L] === 'output';
  const clock = () => performance.now();

  // Every section's edges: one pass per section, from the bases of its two node layers; it runs
  // beside the next basis step (its GPU work on this thread, M′'s host sums on worker threads).
  const edgePass: EdgePass = {
    joint: false,
    inline: false,
    run: async ({ lo, bases }) => {
      const sec = mp.sections[lo]!;
      const bin = bases.get(names[lo]!)!;
      const bout = bases.get(names[lo + 1]!);
      const rO = bout ? bout.r : sec.outputs.reduce((a, id) => a + sec.values[id]!.width, 0);
      const E = await passes.edges(lo, { C: bin.C, Cpinv: bin.Cpinv, rIn: bin.r }, bout?.C, rO, pts, stoch);
      return new Map([[lo, { data: E, rows: rO, cols: bin.r }]]);
    },
  };
  const build: GraphBuild<NodeMoments[]> = {
    program: mp,
    calculateEdges: config.calculate_edges,
    statistics: async () => {
      const t0 = clock();
      const stats = await (opts.stats ? opts.stats() : passes.nodeStats(centred));
      log.info(`statistics of ${stats.length} node layers over ${passes.n} sequences (${((clock() - t0) / 1000).toFixed(2)} s)`);
      return stats.map((s, i) => ({ name: names[i]!, dim: s.dim, mean: s.mean, gram: s.gram, centred }));
    },
    plan: (moments) => ({
      // The final node layer: unrotated logits (no basis), or unembed & co. rotated by PCA or left as I.
      finalBasis: () => {
        if (hasOutput) return undefined;
        const m = moments[L]!;
        return config.rotate_final_node_layer ? svdBasis(m, stage1Transformer(m, th, isolatesLnVar(m.name, isolate))) : identityBasis(m);
      },
      sections: mp.sections.map((_sec, l) => ({ basis: transformerBasis(moments, l), edges: edgePass })),
    }),
  };

  let mPrimeMs = 0;
  // Naive gradient flow (rib's gradient_flow_loop): node layer ℓ's M′ differentiates the final
  // node layer's basis through sections ℓ … L−1 composed; for ℓ = L−1 that is the local M′.
  const ngf = config.naive_gradient_flow === true && formula === 'jacobian';
  let finalOut: { Chat: Float64Array | undefined; rOut: number } | undefined;
  const mPrimeOf = async (l: number, Chat: Float64Array | undefined, rOut: number): Promise<Float64Array> => {
    finalOut ??= { Chat, rOut };
    if (!ngf || l === L - 1) return passes.mPrime(l, Chat, rOut, pts, stoch);
    if (!opts.passesFor)
      throw new IbgpuError(
        'BAD_CONFIG',
        'naive_gradient_flow needs passes over the recut model, which this caller did not provide',
        'build through runTransformerBuild or buildTransformerF64',
      );
    const p = await opts.passesFor(cutAtFinal(mp, l));
    try {
      return await p.mPrime(l, finalOut.Chat, finalOut.rOut, pts, stoch);
    } finally {
      p.dispose?.();
    }
  };
  /** Section l's basis: M′ from the passes (VJPs or their closed forms) and the Jacobian basis, or PCA. */
  function transformerBasis(moments: NodeMoments[], l: number): BasisStep {
    return {
      waits: formula === 'jacobian',
      build: async (next) => {
        const m = moments[l]!;
        const st = stage1Transformer(m, th, isolatesLnVar(m.name, isolate));
        let b: LayerBasis;
        if (formula === 'jacobian') {
          const tm = clock();
          const Mp = await mPrimeOf(l, next.C, next.r);
          mPrimeMs += clock() - tm;
          b = jacobianBasis(m, st, Mp, th);
        } else {
          b = svdBasis(m, st);
        }
        log.info(`${m.name}: dim ${m.dim}, stage 1 keeps ${st.k}, basis ${b.r}${b.Lambda ? `, Λ_0 ${b.Lambda[0]!.toExponential(6)}` : ''}`);
        return b;
      },
    };
  }

  const edgesOnly = async (bases: Map<string, LayerBasis>): Promise<IbResult> => {
    await passes.prepareEdges?.(centred);
    const g = await runGraph(build, { bases, edges: mp.sections.map(() => edgePass) });
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
