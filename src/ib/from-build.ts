// Glue between a build (src/ib/pipeline.ts) and the report: the degeneracy report from the
// build's bases and the degeneracy statistics of its stats pass, the modules from its edges, and
// the config block `modularity`.

import { covariance, type LayerBasis, type NodeStats } from './basis.js';
import type { BuildConfig } from './config.js';
import type { MlpModel } from '../model/mlp.js';
import { parameterCount } from '../cpu/gauss-newton.js';
import { symEigValues } from '../cpu/eigh.js';
import { degeneracyReport, rankOf, type DegeneracyReport, type RankRule, type SectionInput } from '../report/degeneracy.js';
import type { DegeneracyStats } from '../report/degeneracy.js';
import { graphLayers, modules, type EdgeMatrix, type ModularityOptions, type ModulesReport } from '../report/modularity.js';

/** The rank rule for degeneracy counts: the build's relative τ, or 1e-6 relative when it is absolute. */
export function degeneracyRule(config: Pick<BuildConfig, 'threshold_mode' | 'truncation_threshold'>): RankRule {
  return config.threshold_mode === 'relative' ? { tau: config.truncation_threshold, mode: 'relative' } : { tau: 1e-6, mode: 'relative' };
}

export interface SectionRef {
  /** Node layer names of the section's input and output. */
  from: string;
  to: string;
  /** Model layer index. */
  layer: number;
}

/** Degeneracy report of a build: r_G from the bases' stage 1, the rest from the GPU statistics. */
/** Largest input dimension for which the rank of M′ is computed. */
export const MPRIME_RANK_MAX_DIM = 512;

export type BasisSummary = Pick<LayerBasis, 'k' | 'r' | 'dim' | 'dropped' | 'Mprime' | 'gramEigenvalues' | 'centred'>;

/**
 * r_G of a node layer under the degeneracy rule. With the build's relative threshold this is the
 * basis' stage-1 k; with an absolute one (rib-compat, which may keep f32 noise directions) it is
 * recounted from the stored Gram eigenvalues: centred, the constant's eigenvalue 1 plus the
 * covariance eigenvalues above τ·max.
 */
export function gramRank(b: BasisSummary, config: Pick<BuildConfig, 'threshold_mode' | 'truncation_threshold'>): number {
  if (config.threshold_mode === 'relative') return b.k;
  const rule = degeneracyRule(config);
  const ev = Array.from(b.gramEigenvalues);
  if (b.centred) {
    const i = ev.indexOf(1);
    if (i >= 0) {
      ev.splice(i, 1);
      return 1 + rankOf(ev, rule);
    }
  }
  return rankOf(ev, rule);
}

export function degeneracyFromBuild(
  model: MlpModel,
  config: Pick<BuildConfig, 'threshold_mode' | 'truncation_threshold'>,
  sections: SectionRef[],
  bases: Map<string, BasisSummary>,
  stats: DegeneracyStats,
  nodeStats?: Map<string, NodeStats>,
): DegeneracyReport {
  const rule = degeneracyRule(config);
  const L = model.layers.length;
  const inputs: SectionInput[] = sections.map((s) => {
    const l = model.layers[s.layer]!;
    const b = bases.get(s.from);
    if (!b) throw new Error(`degeneracy: no basis for node layer ${s.from}`);
    const jac = stats.jacobianGram.get(s.layer);
    if (!jac) throw new Error(`degeneracy: no Jacobian statistics for layer ${s.layer}`);
    const hidden = stats.hidden.get(s.layer);
    // The covariance of the layer's outputs from the build's shifted Gram (no cancellation).
    const ns = nodeStats?.get(s.to);
    const actCov = hidden && ns && ns.folded && ns.d === l.dOut ? covariance(ns) : undefined;
    let mprimeRank: number | undefined;
    // Rank of M′ over the whole folded input space (the IB's local Jacobian Gram); its rank on the
    // data subspace is the basis size r. Skipped for wide inputs (an O(d³) eigensolve).
    if (b.Mprime && b.dim <= MPRIME_RANK_MAX_DIM) mprimeRank = rankOf(symEigValues(b.Mprime, b.dim), rule);
    return {
      from: s.from,
      to: s.to,
      layer: s.layer,
      activation: l.activation,
      hidden: s.layer < L - 1,
      d: l.dIn + 1,
      nOut: l.dOut,
      n: stats.n,
      rG: gramRank(b, config),
      rGSource: 'basis' as const,
      jacobianGram: jac,
      ib: { k: b.k, r: b.r, stage2Dropped: b.dropped.stage2, ...(mprimeRank !== undefined ? { mprimeRank } : {}) },
      ...(hidden ? { hiddenStats: { ...hidden, ...(actCov ? { actCov } : {}) } } : {}),
    };
  });
  return degeneracyReport(inputs, rule, { rawParams: parameterCount(model) });
}

/** Modules of a build's interaction graph. */
export function modulesFromBuild(
  nodeLayers: string[],
  bases: Map<string, LayerBasis>,
  edges: Map<string, { data: Float64Array; rows: number; cols: number }>,
  opts: ModularityOptions,
): ModulesReport {
  const mats: EdgeMatrix[] = [...edges].map(([key, e]) => {
    const [from, to] = key.split('->') as [string, string];
    return { from, to, rows: e.rows, cols: e.cols, data: e.data };
  });
  const layers = graphLayers(nodeLayers, (n) => bases.get(n), mats);
  return modules(layers, mats, opts);
}
