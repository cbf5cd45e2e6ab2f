// The Interaction Basis build for MLPs, end to end:
//   stats (one streamed pass, on the GPU or on the host in float64: stage_paths.stats) -> bases
//   (host f64, from the output backwards) -> edges (GPU or host, second streamed pass). Library
//   entry point; the CLI and result writers sit on top. The MLP is compiled to the model floor
//   (src/model/mlp-program.ts) and run by the build driver (src/pipeline/driver.ts) with the MLP's
//   specialisations for every section: gate-Gram M′ and background stage-1 eigensolves (or rib's
//   legacy formulas), and one edge pass over a run of consecutive layers.

import { IbgpuError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { eigAbsSortedInBackground, stage1Matrix, thresholdOf, type EigPairs, type LayerBasis, type NodeStats } from './basis.js';
import { solverThreads } from '../host/eigh-worker.js';
import { refuseStochastic, refuseTransformerWorkflows, type BuildConfig } from './config.js';
import type { DataSource } from './data.js';
import { chooseStagePath } from '../runtime/stage-paths.js';
import { ActivationCache } from './activation-cache.js';
import { GpuMlp } from './gpu-model.js';
import { integrationPoints } from './integration.js';
import { buildLegacyBasis, collectLegacyStats, isLegacyFormula, projector, type LegacyFormula } from './legacy.js';
import { foldedWeight, type MlpModel } from '../model/mlp.js';
import { collectStats, type Progress, type StatsResult } from './stats.js';
import type { DegeneracyReport } from '../report/degeneracy.js';
import { DegeneracyAccumulator } from './degeneracy-gpu.js';
import { HostDegeneracyAccumulator } from '../host/degeneracy.js';
import { startDegeneracyThread, type DegeneracyObserverThread } from '../host/degeneracy-thread.js';
import { degeneracyFromBuild, modulesFromBuild } from './from-build.js';
import { modularityOptions } from '../report/config.js';
import { compileMlp } from '../model/mlp-program.js';
import { runGraph, type BasisStep } from '../pipeline/driver.js';
import type { ModulesReport } from '../report/modularity.js';
import { checkFinalRotation, edgeStagePath, isMlpLayerSection, mlpEdgePass, mlpGraphPlan, planNodes, statsPlanOf } from './sections.js';

export interface Logger {
  info(msg: string): void;
  debug?(msg: string): void;
}

export interface BuildOptions {
  logger?: Logger;
  progress?: Progress;
  /**
   * Stage-1 eigenproblems of at least this order run on a background thread (Node) while the
   * GPU computes the edges of the sections whose bases are ready; default 256. Infinity turns it
   * off. The results are identical either way (the same solver runs).
   */
  backgroundEigMinOrder?: number;
  /**
   * Threads one background eigenproblem may use. Default: 1 on a software adapter (its
   * dispatches already run on the machine's cores), else the cores, at most 4. Results are
   * identical whatever the count.
   */
  eigThreads?: number;
  /**
   * Device memory the edge pass may use to keep the statistics pass's hidden activations instead
   * of recomputing them (src/ib/activation-cache.ts); default ACTIVATION_CACHE_BYTES (64 MiB),
   * 0 turns it off. A build that needs more recomputes them. Results are identical either way.
   */
  activationCacheBytes?: number;
  /**
   * Threads of the host edge pass (when the edges stage runs on the host): default the machine's
   * cores, at most 4; 1 keeps it on this thread. Results are identical whatever the count.
   */
  edgeThreads?: number;
}

/** Default of BuildOptions.backgroundEigMinOrder: below it, thread hand-off costs more than it saves. */
export const BACKGROUND_EIG_MIN_ORDER = 256;

export interface IbResult {
  config: BuildConfig;
  /** Per node layer (excluding an unrotated final layer). */
  bases: Map<string, LayerBasis>;
  /** `${in}->${out}` → E [out, in], row-major f64. */
  edges: Map<string, { data: Float64Array; rows: number; cols: number }>;
  stats: StatsResult;
  timings: Record<string, number>;
  n: number;
  /** Degeneracy counts (SPEC §6) when config.degeneracy. */
  degeneracy?: DegeneracyReport;
  /** Modules of the interaction graph (SPEC §7) when edges were computed. */
  modules?: ModulesReport;
}

export { checkFinalRotation, edgePairOf, edgeStagePath, finalNodeBasis, planNodes, sectionBasis, statsPlanOf, type NodePlan } from './sections.js';
export { thresholdOf } from './basis.js';

export async function buildInteractionBasis(
  engine: Engine,
  model: MlpModel,
  data: DataSource,
  config: BuildConfig,
  opts: BuildOptions = {},
): Promise<IbResult> {
  const log = opts.logger ?? { info: () => {} };
  const progress = opts.progress ?? (() => {});
  if (data.d !== model.layers[0]!.dIn) {
    throw new IbgpuError(
      'SHAPE',
      `data has ${data.d} features per datapoint, the model's first layer takes ${model.layers[0]!.dIn}`,
      'use the data the model was trained on (or fix the arch file)',
    );
  }
  if (data.n < 1) throw new IbgpuError('SHAPE', 'the dataset is empty');
  refuseStochastic(config, 'MLP builds');
  refuseTransformerWorkflows(config, 'MLP builds');
  const plan = planNodes(model, config.node_layers);
  const centred = config.center;
  const formula = config.basis_formula;
  checkFinalRotation(plan, config);
  const th = thresholdOf(config);
  const pts = integrationPoints(config.integration_method, config.n_intervals);
  const program = compileMlp(model, config.node_layers);
  for (const sec of program.sections) {
    if (!isMlpLayerSection(sec)) throw new Error(`section ${sec.from}->${sec.to} is not one MLP layer (planNodes admits only those)`);
  }
  const timings: Record<string, number> = {};
  const t = () => performance.now();

  const { statNodes, gateLayers } = statsPlanOf(plan, config);
  // The background solver threads (bases stage, below) are started now, so that their start-up
  // overlaps the statistics pass; only builds with a stage-1 eigenproblem that large need them.
  const minOrder = opts.backgroundEigMinOrder ?? BACKGROUND_EIG_MIN_ORDER;
  const widthOf = (act: number) => (act === 0 ? model.layers[0]!.dIn : model.layers[act - 1]!.dOut);
  const eigThreads = opts.eigThreads ?? (engine.info.isSoftware ? 1 : undefined);
  const backgroundEligible = !isLegacyFormula(formula) && formula !== 'neuron';
  const solverThread =
    backgroundEligible && plan.slice(0, -1).some((p) => widthOf(p.act) >= minOrder) ? solverThreads(eigThreads).then((k) => k > 0) : Promise.resolve(false);
  const mlp = new GpuMlp(engine, model, pts);
  // Degeneracy statistics ride along the statistics pass (src/ib/degeneracy-gpu.ts).
  const sections = plan.slice(0, -1).map((p, j) => ({ from: p.name, to: plan[j + 1]!.name, layer: p.act }));
  let degAcc: DegeneracyAccumulator | undefined;
  let degHost: HostDegeneracyAccumulator | DegeneracyObserverThread | undefined;
  const edgesOnHost = config.calculate_edges && edgeStagePath(engine, config).path === 'host';
  // The GPU edge pass reuses the statistics pass's hidden activations when they fit the budget
  // (the host pass runs its own float64 forward pass, so it needs none kept).
  const cache =
    config.calculate_edges && !edgesOnHost && !isLegacyFormula(formula)
      ? ActivationCache.plan(
          engine,
          sections.map((s) => s.layer),
          widthOf,
          0,
          data.n,
          opts.activationCacheBytes,
        )
      : undefined;
  try {
    // Large stage-1 eigenproblems go to a background thread as soon as their statistics are
    // complete: the input layer's (host-accumulated on a software adapter) before the GPU pass.
    const background = new Map<string, Promise<EigPairs | undefined>>();
    const solveInBackground = (st: NodeStats): void => {
      const { a, n } = stage1Matrix(st, centred);
      const pending = solverThread.then((ok) => (ok ? eigAbsSortedInBackground(a, n, eigThreads) : undefined));
      pending.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
      background.set(st.name, pending);
    };
    let degGpuStats: Awaited<ReturnType<DegeneracyAccumulator['result']>> | undefined;
    let degHostStats: Promise<Awaited<ReturnType<HostDegeneracyAccumulator['result']>>> | undefined;

    // The statistics pass, on the GPU or on the host (src/runtime/stage-paths.ts), with the
    // degeneracy observer riding it.
    const statistics = async (): Promise<StatsResult> => {
      const t0 = t();
      const statsPath = chooseStagePath(engine, 'stats', config.stage_paths?.stats ?? 'auto').path;
      // The degeneracy statistics ride the same pass: a float64 host observer on the host path.
      // On the host it runs on a thread of its own when it can (src/host/degeneracy-thread.ts, on the host thread pool).
      if (config.degeneracy && statsPath === 'host') {
        const layers = sections.map((s) => s.layer);
        degHost = (await startDegeneracyThread(model, layers)) ?? new HostDegeneracyAccumulator(model, layers);
      } else if (config.degeneracy)
        degAcc = new DegeneracyAccumulator(
          engine,
          model,
          sections.map((s) => s.layer),
        );
      log.info(`stats: ${data.n} datapoints in batches of ${config.batch_size} (${data.description})`);
      const onInputStats = (st: NodeStats): void => {
        if (backgroundEligible && st.d >= minOrder && plan.slice(0, -1).some((p) => p.name === st.name)) solveInBackground(st);
      };
      const stats = await collectStats(
        engine,
        mlp,
        data,
        {
          nodes: statNodes,
          gateLayers,
          cache,
          onInputStats,
          path: statsPath,
          ...(degAcc ? { observer: degAcc } : {}),
          ...(degHost ? { hostObserver: degHost } : {}),
        },
        config.batch_size,
        pts,
        progress,
      );
      // The degeneracy statistics ride along the statistics pass but are booked as their own stage.
      const degMs = stats.observerMs ?? 0;
      const t2 = t();
      // A host observer on its own thread may still be working: its result is awaited only where it
      // is used (after the edges), so that it overlaps the bases and edges too; the wait there is
      // booked as degeneracy time.
      degGpuStats = degAcc ? await degAcc.result() : undefined;
      degHostStats = degHost ? Promise.resolve(degHost.result()) : undefined;
      degHostStats?.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
      const degResultMs = t() - t2;
      timings['stats'] = t() - t0 - degMs - degResultMs;
      if (config.degeneracy) timings['degeneracy'] = degMs + degResultMs;
      return stats;
    };

    // Rib's legacy basis formulas: one pass over the data per section, through the next layer's basis.
    const legacyBasis = (lf: LegacyFormula, stats: StatsResult, j: number): BasisStep => ({
      waits: false,
      build: async (next) => {
        const nd = plan[j]!;
        const s = stats.nodes.get(nd.name)!;
        const W = foldedWeight(model, nd.act);
        if (next.dim !== W.cols) throw new Error(`section out dim ${W.cols} != next basis dim ${next.dim}`);
        const ls = await collectLegacyStats(
          engine,
          mlp,
          data,
          {
            layer: nd.act,
            formula: lf,
            P: next.C ? projector(next.C, next.dim, next.r) : undefined,
            shift: s.shift,
          },
          config.batch_size,
          pts,
          progress,
        );
        const b = buildLegacyBasis(s, lf, centred, th, { Wbar: W.data, dimOut: W.cols, stats: ls });
        log.info(`basis ${nd.name}: dim ${b.dim} -> stage 1 keeps ${b.k}, kept ${b.r}`);
        return b;
      },
    });
    const edgePass = mlpEdgePass(
      {
        engine,
        model,
        data,
        config,
        pts,
        onHost: edgesOnHost,
        mlp,
        ...(cache ? { cache } : {}),
        ...(opts.edgeThreads !== undefined ? { threads: opts.edgeThreads } : {}),
      },
      plan,
      progress,
    );

    const g = await runGraph<StatsResult>({
      program,
      calculateEdges: config.calculate_edges,
      statistics,
      plan: async (stats) => {
        // While the background solves run, this thread builds the small bases and runs the edge
        // pass of the sections that are ready (on a software adapter the GPU work runs on this
        // thread, so otherwise a core would idle).
        if (await solverThread) {
          for (let j = plan.length - 2; j >= 0; j--) {
            const st = stats.nodes.get(plan[j]!.name)!;
            if (st.d >= minOrder && !background.has(st.name)) solveInBackground(st);
          }
        }
        return mlpGraphPlan(model, plan, config, stats, edgePass, {
          background,
          logger: log,
          ...(isLegacyFormula(formula) ? { legacy: (j: number) => legacyBasis(formula, stats, j) } : {}),
        });
      },
    });
    const stats = g.stats!;
    const { bases } = g;
    timings['basis'] = g.timings.bases;
    if (config.calculate_edges) timings['edges'] = g.timings.edgesTotal;

    const res: IbResult = { config, bases, edges: g.edges, stats, timings, n: data.n };
    if (config.degeneracy) {
      const t0 = t();
      const degStats = degGpuStats ?? (await degHostStats)!;
      res.degeneracy = degeneracyFromBuild(model, config, sections, bases, degStats, stats.nodes);
      timings['degeneracy'] = (timings['degeneracy'] ?? 0) + (t() - t0);
    }
    if (g.edges.size > 0) {
      const t0 = t();
      res.modules = modulesFromBuild(config.node_layers, bases, g.edges, modularityOptions(config.modularity));
      timings['modules'] = t() - t0;
    }
    return res;
  } finally {
    cache?.dispose();
    degAcc?.dispose();
    if (degHost && 'dispose' in degHost) degHost.dispose();
    mlp.dispose();
  }
}
