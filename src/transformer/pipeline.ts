// The transformer build: statistics → bases from the last node layer backwards (each needs the
// next one's C) → edges, over a compiled ModelProgram. The passes (passes.ts) run the data; the
// bases are computed here on the host in float64 (basis.ts). The result is an IbResult, so the
// existing result writer, viewer and report read it unchanged.

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
  const timings: Record<string, number> = {};
  const clock = () => performance.now();

  let t0 = clock();
  if (opts.bases) {
    await passes.prepareEdges?.(centred);
    return edgesStage(passes, mp, config, opts.bases, { pts, stoch, timings: {}, clock });
  }
  const stats = await (opts.stats ? opts.stats() : passes.nodeStats(centred));
  timings['stats'] = clock() - t0;
  log.info(`statistics of ${stats.length} node layers over ${passes.n} sequences (${(timings['stats'] / 1000).toFixed(2)} s)`);
  const moments: NodeMoments[] = stats.map((s, i) => ({ name: names[i]!, dim: s.dim, mean: s.mean, gram: s.gram, centred }));

  t0 = clock();
  const bases = new Map<string, LayerBasis>();
  // The final node layer: unrotated logits (no basis), or unembed & co. rotated by PCA or left as I.
  let Chat: Float64Array | undefined;
  let rOut: number;
  if (hasOutput) {
    const last = mp.sections[L - 1]!;
    rOut = last.outputs.reduce((a, id) => a + last.values[id]!.width, 0);
  } else {
    const m = moments[L]!;
    const b = config.rotate_final_node_layer ? svdBasis(m, stage1Transformer(m, th, isolatesLnVar(m.name, isolate))) : identityBasis(m);
    bases.set(m.name, b);
    Chat = b.C;
    rOut = b.r;
  }
  let mPrimeMs = 0;
  const ordered: LayerBasis[] = [];
  // Naive gradient flow (rib's gradient_flow_loop): node layer ℓ's M′ differentiates the final
  // node layer's basis through sections ℓ … L−1 composed; for ℓ = L−1 that is the local M′.
  const ngf = config.naive_gradient_flow === true && formula === 'jacobian';
  const finalOut = { Chat, rOut };
  const mPrimeOf = async (l: number): Promise<Float64Array> => {
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
  // Edges of section l need only the bases of node layers l and l + 1, so they start as soon as
  // basis l is built, while M′ of section l − 1 runs: its host sums (worker threads) and the
  // edges' GPU work (this thread) overlap. Each pass keeps its own buffers and sums, so the
  // results do not depend on the interleaving.
  const edgeRuns: (EdgeRun | undefined)[] = Array.from({ length: L }, () => undefined);
  const startEdges = (l: number, bin: LayerBasis, bout: LayerBasis | undefined): void => {
    const prev = edgeRuns[l + 1];
    // One edge pass at a time (they would only compete for the same GPU).
    edgeRuns[l] = (async () => {
      if (prev) await prev.catch(() => undefined);
      return edgeRun(passes, mp, l, bin, bout, pts, stoch, clock);
    })();
    // A failure surfaces where the runs are awaited below; until then it must not be unhandled.
    edgeRuns[l].catch(() => undefined);
  };
  const finalBasis = hasOutput ? undefined : bases.get(names[L]!);
  try {
    for (let l = L - 1; l >= 0; l--) {
      const m = moments[l]!;
      const st = stage1Transformer(m, th, isolatesLnVar(m.name, isolate));
      let b: LayerBasis;
      if (formula === 'jacobian') {
        const tm = clock();
        const Mp = await mPrimeOf(l);
        mPrimeMs += clock() - tm;
        b = jacobianBasis(m, st, Mp, th);
      } else {
        b = svdBasis(m, st);
      }
      log.info(`${m.name}: dim ${m.dim}, stage 1 keeps ${st.k}, basis ${b.r}${b.Lambda ? `, Λ_0 ${b.Lambda[0]!.toExponential(6)}` : ''}`);
      if (config.calculate_edges) startEdges(l, b, l + 1 === L ? finalBasis : ordered[0]);
      ordered.unshift(b);
      Chat = b.C;
      rOut = b.r;
    }
  } catch (e) {
    await Promise.all(edgeRuns.filter((r): r is EdgeRun => r !== undefined).map((r) => r.catch(() => undefined)));
    throw e;
  }
  const allBases = new Map<string, LayerBasis>();
  for (const b of ordered) allBases.set(b.name, b);
  for (const [k, v] of bases) allBases.set(k, v);
  timings['bases'] = clock() - t0;
  timings['m_prime'] = mPrimeMs;
  return edgesStage(passes, mp, config, allBases, { pts, stoch, timings, clock }, edgeRuns);
}

type EdgeRun = Promise<{ E: Float64Array; rows: number; cols: number; ms: number }>;

/** One section's squared edges from the bases of its two node layers. */
async function edgeRun(
  passes: TransformerPasses,
  mp: ModelProgram,
  l: number,
  bin: LayerBasis,
  bout: LayerBasis | undefined,
  pts: ReturnType<typeof integrationPoints>,
  stoch: StochasticSources | undefined,
  clock: () => number,
): EdgeRun {
  const sec = mp.sections[l]!;
  const rO = bout ? bout.r : sec.outputs.reduce((a, id) => a + sec.values[id]!.width, 0);
  const te = clock();
  const E = await passes.edges(l, { C: bin.C, Cpinv: bin.Cpinv, rIn: bin.r }, bout?.C, rO, pts, stoch);
  return { E, rows: rO, cols: bin.r, ms: clock() - te };
}

/**
 * The squared edges between consecutive node layers, from their bases (computed or stored):
 * the runs already started beside the bases stage, else one after another here.
 */
async function edgesStage(
  passes: TransformerPasses,
  mp: ModelProgram,
  config: BuildConfig,
  allBases: Map<string, LayerBasis>,
  o: { pts: ReturnType<typeof integrationPoints>; stoch: StochasticSources | undefined; timings: Record<string, number>; clock: () => number },
  started: (EdgeRun | undefined)[] = [],
): Promise<IbResult> {
  const { pts, stoch, timings, clock } = o;
  const names = mp.nodeLayers;
  const L = names.length - 1;
  const edges: IbResult['edges'] = new Map();
  if (config.calculate_edges) {
    // Wall time from the end of the bases stage (edges that ran beside M′ are not in it);
    // edges_total: the edge passes' own times added up, wherever they ran.
    const t0 = clock();
    let total = 0;
    for (let l = 0; l < L; l++) {
      const r = await (started[l] ?? edgeRun(passes, mp, l, allBases.get(names[l]!)!, allBases.get(names[l + 1]!), pts, stoch, clock));
      total += r.ms;
      edges.set(`${names[l]}->${names[l + 1]}`, { data: r.E, rows: r.rows, cols: r.cols });
    }
    timings['edges'] = clock() - t0;
    timings['edges_total'] = total;
  }
  return { config, bases: allBases, edges, stats: { nodes: new Map(), gates: new Map() }, timings, n: passes.n };
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
