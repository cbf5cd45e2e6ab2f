// The transformer build: statistics → bases from the last node layer backwards (each needs the
// next one's C) → edges, over a compiled ModelProgram. The passes (passes.ts) run the data; the
// bases are computed here on the host in float64 (basis.ts). The result is an IbResult, so the
// existing result writer, viewer and report read it unchanged.

import { IbgpuError } from '../errors.js';
import type { LayerBasis, Threshold } from '../ib/basis.js';
import type { BuildConfig } from '../ib/config.js';
import { integrationPoints } from '../ib/integration.js';
import type { IbResult } from '../ib/pipeline.js';
import type { ModelProgram } from '../model/program.js';
import { identityBasis, isolatesLnVar, jacobianBasis, stage1Transformer, svdBasis, type NodeMoments } from './basis.js';
import { PassesF64 } from './passes-f64.js';
import type { TransformerPasses } from './passes.js';
import type { StochasticSources } from './stochastic.js';

export interface TransformerBuildOptions {
  logger?: { info(msg: string): void };
}

/** The config's stochastic sources (undefined when none is set). */
export function stochasticOf(config: BuildConfig): StochasticSources | undefined {
  const { n_stochastic_sources_basis_pos: p, n_stochastic_sources_basis_hidden: h, n_stochastic_sources_edges: e } = config;
  if (p === undefined && h === undefined && e === undefined) return undefined;
  return { seed: config.seed ?? 0, ...(p !== undefined ? { basisPos: p } : {}), ...(h !== undefined ? { basisHidden: h } : {}), ...(e !== undefined ? { edges: e } : {}) };
}

function thresholdOf(config: BuildConfig): Threshold {
  return { tau: config.truncation_threshold, mode: config.threshold_mode, countMasked: config.rib_compat };
}

export async function buildTransformer(passes: TransformerPasses, mp: ModelProgram, config: BuildConfig, opts: TransformerBuildOptions = {}): Promise<IbResult> {
  const log = opts.logger ?? { info: () => {} };
  const formula = config.basis_formula;
  if (formula !== 'jacobian' && formula !== 'svd' && formula !== 'pca') {
    throw new IbgpuError('BAD_CONFIG', `basis_formula '${formula}' is not available for transformers`, "use 'jacobian', 'svd' or 'pca'");
  }
  if (config.rotate_final_node_layer && mp.nodeLayers[mp.nodeLayers.length - 1] === 'output') {
    throw new IbgpuError('BAD_CONFIG', 'rotating the output node layer is not supported (the logits have no constant slot)', 'set rotate_final_node_layer: false, or end node_layers at unembed');
  }
  const th = thresholdOf(config);
  const pts = integrationPoints(config.integration_method, config.n_intervals);
  const isolate = config.isolate_ln_var ?? true;
  const centred = config.center;
  const stoch = stochasticOf(config);
  if (formula !== 'jacobian' && (stoch?.basisPos !== undefined || stoch?.basisHidden !== undefined)) {
    throw new IbgpuError('BAD_CONFIG', `n_stochastic_sources_basis_pos/_hidden estimate M′, which basis_formula '${formula}' does not use`, "remove them, or use basis_formula 'jacobian'");
  }
  const names = mp.nodeLayers;
  const L = names.length - 1;
  const hasOutput = names[L] === 'output';
  const timings: Record<string, number> = {};
  const clock = () => performance.now();

  let t0 = clock();
  const stats = await passes.nodeStats(centred);
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
  // Edges of section l need only the bases of node layers l and l + 1, so they start as soon as
  // basis l is built, while M′ of section l − 1 runs: its host sums (worker threads) and the
  // edges' GPU work (this thread) overlap. Each pass keeps its own buffers and sums, so the
  // results do not depend on the interleaving.
  type EdgeRun = Promise<{ E: Float64Array; rows: number; cols: number; ms: number }>;
  const edgeRuns: (EdgeRun | undefined)[] = Array.from({ length: L }, () => undefined);
  const startEdges = (l: number, bin: LayerBasis, bout: LayerBasis | undefined): void => {
    const rO = bout ? bout.r : mp.sections[l]!.outputs.reduce((a, id) => a + mp.sections[l]!.values[id]!.width, 0);
    const prev = edgeRuns[l + 1];
    // One edge pass at a time (they would only compete for the same GPU).
    edgeRuns[l] = (async () => {
      if (prev) await prev.catch(() => undefined);
      const te = clock();
      const E = await passes.edges(l, { C: bin.C, Cpinv: bin.Cpinv, rIn: bin.r }, bout?.C, rO, pts, stoch);
      return { E, rows: rO, cols: bin.r, ms: clock() - te };
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
        const Mp = await passes.mPrime(l, Chat, rOut, pts, stoch);
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

  const edges: IbResult['edges'] = new Map();
  if (config.calculate_edges) {
    // Wall time from the end of the bases stage (edges that ran beside M′ are not in it);
    // edges_total: the edge passes' own times added up, wherever they ran.
    t0 = clock();
    let total = 0;
    for (let l = 0; l < L; l++) {
      const r = await edgeRuns[l]!;
      total += r.ms;
      edges.set(`${names[l]}->${names[l + 1]}`, { data: r.E, rows: r.rows, cols: r.cols });
    }
    timings['edges'] = clock() - t0;
    timings['edges_total'] = total;
  }
  return { config, bases: allBases, edges, stats: { nodes: new Map(), gates: new Map() }, timings, n: passes.n };
}

/** The float64 reference build: every pass in float64 on the CPU. */
export async function buildTransformerF64(mp: ModelProgram, tokens: Int32Array, n: number, P: number, config: BuildConfig, opts: TransformerBuildOptions = {}): Promise<IbResult> {
  return buildTransformer(new PassesF64(mp, tokens, n, P), mp, config, opts);
}
