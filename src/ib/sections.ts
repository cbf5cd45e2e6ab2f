// The MLP's sections as the build driver (src/pipeline/driver.ts) sees them: the plan of node
// layers, and the specialisations of a section that is one MLP layer (one folded `linear` and its
// activation, as compileMlp cuts adjacent node layers): its basis from the gate-Gram M′ (its
// stage-1 eigenproblem possibly solved on a background thread) or rib's legacy formulas, and its
// edges by one data pass over a run of consecutive layer sections (GPU, functional, or the host's
// carried Jacobian). The one-process build (pipeline.ts) and the staged builds (staged.ts: shards,
// combine, resume) both take their bases and edges from here.

import { IbgpuError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { buildLayerBasis, thresholdOf, type EigPairs, type LayerBasis, type NextBasis } from './basis.js';
import type { BasisFormula, BuildConfig } from './config.js';
import type { DataSource } from './data.js';
import { computeEdges, type EdgePair } from './edges.js';
import { computeEdgesHost } from '../host/edges.js';
import { chooseStagePath, type StagePathChoice } from '../runtime/stage-paths.js';
import { computeFunctionalEdges } from './edges-functional.js';
import type { ActivationCache } from './activation-cache.js';
import { GpuMlp } from './gpu-model.js';
import type { IntegrationPoints } from './integration.js';
import { foldedWeight, type MlpModel } from '../model/mlp.js';
import type { SectionProgram } from '../model/program.js';
import type { Progress, StatsResult } from './stats.js';
import type { BasisStep, EdgeMatrix, EdgePass, GraphPlan, SectionSpec } from '../pipeline/driver.js';

export interface NodePlan {
  name: string;
  /** Model activation index: 0 = input of layer 0, i = input of layer i, L = output. */
  act: number;
  folded: boolean;
}

/** Checks node_layers against the model: consecutive layers, optionally ending with 'output'. */
export function planNodes(model: MlpModel, nodeLayers: string[]): NodePlan[] {
  const L = model.layers.length;
  const names = model.layers.map((l) => l.name);
  const plan: NodePlan[] = nodeLayers.map((nl, idx) => {
    if (nl === 'output') {
      if (idx !== nodeLayers.length - 1) throw new IbgpuError('BAD_CONFIG', "'output' must be the last node layer");
      return { name: nl, act: L, folded: false };
    }
    const i = names.indexOf(nl);
    if (i < 0)
      throw new IbgpuError('BAD_CONFIG', `node layer '${nl}' is not a layer of the model`, `the model's node layers are ${[...names, 'output'].join(', ')}`);
    return { name: nl, act: i, folded: true };
  });
  for (let j = 1; j < plan.length; j++) {
    if (plan[j]!.act !== plan[j - 1]!.act + 1) {
      throw new IbgpuError(
        'BAD_CONFIG',
        `node layers '${plan[j - 1]!.name}' and '${plan[j]!.name}' are not adjacent`,
        'ibgpu builds MLP sections of exactly one layer; list every layer between them',
      );
    }
  }
  return plan;
}

/**
 * Which statistics a build collects: every non-final node layer (the final one only when it is
 * rotated), and the activation-derivative Grams of every section for the jacobian basis.
 */
export function statsPlanOf(plan: NodePlan[], config: BuildConfig): { statNodes: NodePlan[]; gateLayers: number[] } {
  const statNodes = plan.filter((_p, j) => j < plan.length - 1 || config.rotate_final_node_layer);
  const gateLayers = config.basis_formula === 'jacobian' ? plan.slice(0, -1).map((p) => p.act) : [];
  return { statNodes, gateLayers };
}

/**
 * Where a build's edge stage runs (src/runtime/stage-paths.ts): the config's stage_paths.edges,
 * else a measurement, else the adapter kind. Functional edges have no host path.
 */
export function edgeStagePath(engine: Engine, config: BuildConfig): StagePathChoice {
  return chooseStagePath(
    engine,
    'edges',
    config.stage_paths?.edges ?? 'auto',
    config.edge_formula === 'functional' ? { gpuOnly: 'functional edges have no host path (the host pass computes squared edges)' } : {},
  );
}

/** Rejects a plan whose bases are undefined: the output layer rotated while centring. */
export function checkFinalRotation(plan: NodePlan[], config: BuildConfig): void {
  const final = plan[plan.length - 1]!;
  if (final.name === 'output' && config.rotate_final_node_layer && config.center) {
    throw new IbgpuError(
      'BAD_CONFIG',
      'rotating the output node layer with center=true is undefined (the logits have no bias slot)',
      'set rotate_final_node_layer: false, or center: false',
    );
  }
}

/**
 * Start of the backward recursion (SPEC §4): the final node layer's basis when it is rotated
 * (added to `bases`), and the `next` basis the last section sees (the identity otherwise).
 */
export function finalNodeBasis(model: MlpModel, plan: NodePlan[], stats: StatsResult, config: BuildConfig, bases: Map<string, LayerBasis>): NextBasis {
  const final = plan[plan.length - 1]!;
  if (!config.rotate_final_node_layer) {
    const dim = final.folded ? model.layers[final.act]!.dIn + 1 : model.layers[model.layers.length - 1]!.dOut;
    return { C: undefined, dim, r: dim };
  }
  const formula = config.basis_formula === 'neuron' ? 'neuron' : 'svd';
  const b = buildLayerBasis(stats.nodes.get(final.name)!, formula, config.center && final.folded, thresholdOf(config));
  bases.set(final.name, b);
  return { C: b.C, dim: b.dim, r: b.r };
}

/** The basis of node layer `nd` (not a legacy formula) from complete statistics and the next basis. */
export function sectionBasis(model: MlpModel, nd: NodePlan, stats: StatsResult, config: BuildConfig, next: NextBasis, stage1Eig?: EigPairs): LayerBasis {
  const W = foldedWeight(model, nd.act);
  return buildLayerBasis(
    stats.nodes.get(nd.name)!,
    config.basis_formula,
    config.center,
    thresholdOf(config),
    config.basis_formula === 'jacobian' ? { Wbar: W.data, dimOut: W.cols, gates: stats.gates.get(nd.act)! } : undefined,
    next,
    stage1Eig,
  );
}

/** The edge pair of section j (node layer j → j+1); both bases must be in `bases` (the next one unless unrotated). */
export function edgePairOf(model: MlpModel, plan: NodePlan[], j: number, bases: ReadonlyMap<string, LayerBasis>, formula: BasisFormula): EdgePair {
  const nd = plan[j]!;
  const nx = plan[j + 1]!;
  const W = foldedWeight(model, nd.act);
  const nb = bases.get(nx.name);
  return {
    layer: nd.act,
    inName: nd.name,
    outName: nx.name,
    basis: bases.get(nd.name)!,
    formula,
    Wbar: W.data,
    dimOut: W.cols,
    nextC: nb?.C,
    ro: nb ? nb.r : W.cols,
  };
}

/**
 * The MLP layer a section program runs, when it is one folded `linear` followed by its activation
 * (what compileMlp makes of a section between adjacent node layers): such sections take the MLP
 * specialisations (gate-Gram M′, carried-Jacobian edges).
 */
export function isMlpLayerSection(sec: SectionProgram): boolean {
  const [lin, act] = sec.ops;
  return (
    sec.ops.length === 2 &&
    lin?.kind === 'linear' &&
    act?.kind === 'act' &&
    sec.inputs.length === 1 &&
    lin.x === sec.inputs[0] &&
    act.x === lin.y &&
    sec.outputs.length === 1 &&
    sec.outputs[0] === act.y
  );
}

/** What an MLP edge pass runs with. */
export interface MlpEdgeContext {
  engine: Engine;
  model: MlpModel;
  data: DataSource;
  config: BuildConfig;
  pts: IntegrationPoints;
  /** Squared edges on the host (edgeStagePath chose it); else on the GPU. */
  onHost: boolean;
  /** The GPU model of the build, when it has one; else made (and freed) for a GPU pass. */
  mlp?: GpuMlp;
  /** The statistics pass's kept hidden activations (GPU passes). */
  cache?: ActivationCache;
  /** Host pass threads (undefined: its default). */
  threads?: number;
  /** The rows [start, end) one shard of a staged build covers, and the divisor of its sums (1: raw). */
  shard?: { start: number; end: number; divisor: number };
}

/**
 * The edges of MLP edge pairs in one data pass, keyed `${in}->${out}`: functional edges (GPU), or
 * squared edges on the host (carried Jacobian, float64) or the GPU, as stage_paths.edges says.
 */
export async function mlpEdgeSums(c: MlpEdgeContext, pairs: EdgePair[], progress: Progress = () => {}): Promise<Map<string, Float64Array>> {
  const { engine, config, data } = c;
  const shard = c.shard ? { shard: c.shard } : {};
  if (config.edge_formula !== 'functional' && c.onHost) {
    return computeEdgesHost(c.model, data, pairs, config.batch_size, c.pts, progress, { ...shard, ...(c.threads !== undefined ? { threads: c.threads } : {}) });
  }
  const mlp = c.mlp ?? new GpuMlp(engine, c.model, c.pts);
  try {
    const gpuOpts = { ...shard, ...(c.cache ? { cache: c.cache } : {}) };
    return config.edge_formula === 'functional'
      ? await computeFunctionalEdges(engine, mlp, data, pairs, config.batch_size, c.pts, progress, gpuOpts)
      : await computeEdges(engine, mlp, data, pairs, config.batch_size, progress, gpuOpts);
  } finally {
    if (!c.mlp) mlp.dispose();
  }
}

/**
 * The MLP edge pass: one data pass over a run of consecutive layer sections. The bases stage
 * waits for it (inline), since on a software adapter its work runs on this thread.
 */
export function mlpEdgePass(c: MlpEdgeContext, plan: NodePlan[], progress: Progress): EdgePass {
  return {
    joint: true,
    inline: true,
    run: async ({ lo, hi, bases, label }) => {
      const pairs: EdgePair[] = [];
      for (let j = lo; j < hi; j++) pairs.push(edgePairOf(c.model, plan, j, bases, c.config.basis_formula));
      // Each pass is named by its sections, so a progress display never shows one bar twice.
      const E = await mlpEdgeSums(c, pairs, (_stage, done, total) => progress(label, done, total));
      const out = new Map<number, EdgeMatrix>();
      pairs.forEach((p, i) => out.set(lo + i, { data: E.get(`${p.inName}->${p.outName}`)!, rows: p.ro, cols: p.basis.r }));
      return out;
    },
  };
}

/** A basis step that builds rib's legacy basis of a section (it runs a data pass of its own). */
export type LegacyBasisStep = (j: number) => BasisStep;

/**
 * The MLP specialisations of every section of a build, from complete statistics: the final node
 * layer's rule, and per section the gate-Gram basis (awaiting `background`'s stage-1
 * eigenpairs where a background solve was started) or, for legacy formulas, `legacy`; `edges`
 * (absent for a bases-only run) computes the edges.
 */
export function mlpGraphPlan(
  model: MlpModel,
  plan: NodePlan[],
  config: BuildConfig,
  stats: StatsResult,
  edges: EdgePass | undefined,
  o: { background?: ReadonlyMap<string, Promise<EigPairs | undefined>>; legacy?: LegacyBasisStep; logger?: { info(msg: string): void } } = {},
): GraphPlan {
  const sections = plan.slice(0, -1).map((nd, j): SectionSpec => {
    const withEdges = edges ? { edges } : {};
    if (o.legacy) return { basis: o.legacy(j), ...withEdges };
    const pending = o.background?.get(nd.name);
    return {
      basis: {
        // Waiting for a background stage-1 eigensolve: the sections already based get their edges
        // meanwhile. It gives undefined when no solver thread could be had: solved here then.
        waits: pending !== undefined,
        build: async (next) => {
          const b = sectionBasis(model, nd, stats, config, next, pending ? await pending : undefined);
          o.logger?.info(`basis ${nd.name}: dim ${b.dim} -> stage 1 keeps ${b.k}, kept ${b.r}`);
          return b;
        },
      },
      ...withEdges,
    };
  });
  return {
    finalBasis: () => {
      const bases = new Map<string, LayerBasis>();
      finalNodeBasis(model, plan, stats, config, bases);
      return bases.get(plan[plan.length - 1]!.name);
    },
    sections,
  };
}
