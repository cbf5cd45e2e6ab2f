// Degeneracy accounting (SPEC §6): from per-section statistics measured on the build's data to
// per-layer free-parameter counts and an effective-parameter estimate.
//
// For the section ℓ with folded input f^ℓ (d = dIn + 1 entries, the last the constant 1) and n_out
// trainable output units (pre-activations p = W̄ᵀf):
//   (a) activation degeneracy   r_G = rank E[f fᵀ] (= the basis' stage-1 k), free_a = n_out (d − r_G)
//   (b) Jacobian degeneracy     r_J = rank E[J_pᵀ J_p], J_p = ∂f_out/∂p the Jacobian of the NETWORK
//                                OUTPUT with respect to p, free_b = d (n_out − r_J)
//   combined (Kronecker)        free_ab = d·n_out − r_G·r_J  (= free_a + free_b − overlap)
//   (c) synchronised ReLUs      groups of k >= 2 live neurons with identical firing patterns:
//                                k(k−1) extra free directions per group; every live ReLU neuron also
//                                has its rescaling symmetry.
// SPEC §6.4–6.5 estimate:  free = Σ_ℓ free_ab + #live hidden ReLUs + Σ_groups k(k−1).
//
// All of these counts are DERIVED in SPEC (§6.2–6.5, checked numerically there), not quoted from
// the paper; SPEC §12.3 lists them as open points to verify against the PDF.
//
// Overlap-corrected estimate (this engine's refinement, DERIVED here and checked against the
// Gauss–Newton nullity in test/degeneracy.test.ts): the GL(k) symmetry of a group S (including
// k = 1, the rescaling) adds only the directions that are not already within-layer free
// directions of (a)/(b). In the Kronecker picture these are σ_S·ρ_S of its k² directions, where
// ρ_S = rank of the group's pre-activations over its firing set (= rank of its block of E[h hᵀ])
// and σ_S = rank of its block of E[J_pᵀJ_p]. With linearly independent pre-activations and
// Jacobians (σ_S = ρ_S = k) this is k + k(k−1), the SPEC count; duplicated neurons (ρ_S < k) or
// neurons with no downstream effect (σ_S < k) give less. Always-on neurons (one class) are linear
// on the data, so their pre-activations may also be shifted by a constant that the next layer's
// bias absorbs: for them ρ_S is the rank of (h_S, 1), up to k + 1 — SPEC's "the same formula
// applies" undercounts them by k (checked: two always-on neurons in 3→5→4 give nullity 9, not 7):
//   free_corrected = Σ_ℓ free_ab + Σ_{live classes S} σ_S ρ_S.

import type { Activation } from '../model/activations.js';
import { symEigValuesHost } from '../host/eigh-wasm.js';
import { groupPatterns, type SignPatternResult } from '../kernels/sign-patterns.js';
import { lshRecall, nearPairsLsh } from './lsh.js';

/** The statistics pass's degeneracy statistics of one build (collected on the GPU or the host). */
export interface HiddenStats {
  patterns: SignPatternResult;
  /** (1/N) Σ h hᵀ. */
  actGram: Float64Array;
  /** (1/N) Σ h. */
  actMean: Float64Array;
}

export interface DegeneracyStats {
  n: number;
  /** Model layer → (1/N) Σ J_pᵀJ_p (dOut × dOut). */
  jacobianGram: Map<number, Float64Array>;
  /** Hidden ReLU layers among the sections. */
  hidden: Map<number, HiddenStats>;
}

export const DEGENERACY_FORMAT = 'ibgpu-degeneracy';
export const DEGENERACY_VERSION = 1;

/** Numerical rank rule: eigenvalues > τ·λ_max ('relative') or > τ ('absolute'). */
export interface RankRule {
  tau: number;
  mode: 'relative' | 'absolute';
}

/** Statistics of one section, measured on the dataset (averages over the N datapoints). */
export interface SectionInput {
  /** Input and output node layer names. */
  from: string;
  to: string;
  /** Model layer index. */
  layer: number;
  activation: Activation;
  /** The section's outputs feed another model layer (hidden neurons). */
  hidden: boolean;
  /** Folded input dimension (real inputs + 1). */
  d: number;
  /** Trainable output units. */
  nOut: number;
  /** Datapoints. */
  n: number;
  /** Rank of the input's Gram (the basis' stage-1 k). */
  rG: number;
  /** Where r_G came from ('basis': the build's stage 1; 'gram': rank rule on the raw Gram). */
  rGSource: 'basis' | 'gram';
  /** (1/N) Σ J_pᵀ J_p over the real output units, nOut × nOut row-major. */
  jacobianGram: Float64Array;
  /** The Interaction Basis of the input node layer (when the build made one). */
  ib?: { k: number; r: number; stage2Dropped: number; mprimeRank?: number };
  /**
   * Hidden ReLU layers: firing patterns, (1/N) Σ h hᵀ and (1/N) Σ h of the outputs h = relu(p),
   * and optionally their covariance computed without cancellation (else actGram − μμᵀ).
   */
  hiddenStats?: { patterns: SignPatternResult; actGram: Float64Array; actMean: Float64Array; actCov?: Float64Array };
}

export interface SyncGroup {
  neurons: number[];
  k: number;
  /** Datapoints on which the group fires. */
  fire_count: number;
  /** SPEC §6.5: k(k−1). */
  extra: number;
  /**
   * ρ_S: rank of the group's pre-activations on its firing set; for the always-on group, of the
   * pre-activations and the constant 1 (its shifts are compensated by the next layer's bias).
   */
  rank_pre: number;
  /** σ_S: rank of the group's block of E[J_pᵀJ_p]. */
  rank_jac: number;
  /** σ_S ρ_S − k: the group's contribution beyond its k rescalings in the corrected count. */
  extra_corrected: number;
}

export interface NearPair {
  a: number;
  b: number;
  /** Datapoints on which exactly one of the two fires. */
  hamming: number;
  jaccard: number;
}

export interface SyncReport {
  live: number;
  dead: number[];
  always_on: number[];
  /** Exact groups (k >= 2, identical patterns), always-on neurons included as one group. */
  groups: SyncGroup[];
  /** Σ k(k−1) over groups. */
  extra: number;
  /** Σ over live classes (groups and single neurons) of σ_S ρ_S. */
  independent: number;
  /** Live neurons whose rescaling is already a within-layer free direction (σ or ρ = 0). */
  rescalings_absorbed: number;
  /** Pairs of live, not always-on neurons with 0 < Hamming distance <= near_max_hamming. */
  near_pairs: NearPair[];
  near_pairs_total: number;
  near_max_hamming: number;
  /** 'cofire': every pair from the co-firing counts (exact); 'lsh': bit-sampling LSH candidates, checked exactly. */
  near_method: 'cofire' | 'lsh';
  /** LSH: probability that a pair at near_max_hamming was found. */
  near_recall?: number;
  /** Equal 64-bit hashes whose patterns differed (confirmed exactly; expected 0). */
  hash_collisions: number;
  /** Firing count of every neuron. */
  fire_count: number[];
}

export interface SectionReport {
  section: string;
  layer: number;
  activation: Activation;
  /** d·n_out: weights and biases of the layer. */
  params: number;
  d: number;
  n_out: number;
  activation_degeneracy: { rank: number; dim: number; free: number; source: 'basis' | 'gram' };
  jacobian_degeneracy: { rank: number; n_out: number; free: number; eigenvalues?: number[] };
  /** d·n_out − r_G·r_J. */
  combined_free: number;
  ib?: { stage1_k: number; basis_dim: number; stage2_dropped: number; mprime_rank?: number };
  sync?: SyncReport;
  /** What this section adds to the SPEC §6.4–6.5 estimate. */
  free_spec: number;
  /** What it adds to the overlap-corrected estimate. */
  free_corrected: number;
  notes: string[];
}

export interface GroundTruth {
  gauss_newton_nullity: number;
  rank: number;
  params: number;
  method: string;
  rtol: number;
  gap_at_cut: number;
  /** False when σ_r/σ_r+1 at the cut is below CLEAR_GAP (src/cpu/gauss-newton.ts): the nullity depends on the tolerance. */
  clear_gap?: boolean;
  /** The spectrum's largest ratio of neighbouring singular values and the nullity a cut there would give. */
  largest_gap?: { ratio: number; nullity: number };
}

/**
 * What a report covers when it is not a whole MLP (absent: every layer of an MLP build). Transformer
 * reports count only the MLP blocks' own parameters (W_in, b_in, W_out, b_out of every block), per
 * (datapoint, position) row; `not_counted` names the parts of the model whose degeneracies are not
 * estimated, so no whole-model total is given.
 */
export interface DegeneracyScope {
  model: 'transformer';
  /** The parts whose free directions are counted. */
  counted: string;
  /** The parts of the model that are not analysed (their parameters are in raw_params only). */
  not_counted: string[];
  /** Sequences, positions per sequence seen by the MLP blocks, and the rows N·P the statistics average over. */
  sequences: number;
  positions: number;
  rows: number;
  /** Positions of the model output whose Jacobians are taken (rib's last_pos_module_type cut). */
  output_positions: number;
  last_pos_module_type: string | null;
  /** Activation function of the MLP blocks. */
  act_fn: string;
  /** How the Jacobian Grams were computed, and what they cost. */
  jacobians: { path: string; vjps_per_sequence: number; sequences: number; ms: number };
  /** Milliseconds of the host float64 forward pass collecting Grams and firing patterns. */
  forward_ms: number;
}

export interface DegeneracyReport {
  format: typeof DEGENERACY_FORMAT;
  version: typeof DEGENERACY_VERSION;
  dataset_size: number;
  rank_rule: RankRule;
  sections: SectionReport[];
  totals: {
    /** Every weight and bias of the model. */
    raw_params: number;
    /** Parameters of the sections covered by the build's node layers. */
    covered_params: number;
    free_spec: number;
    free_corrected: number;
    /** raw_params − free (only meaningful when every layer is covered). */
    effective_spec: number;
    effective_corrected: number;
    complete: boolean;
    /**
     * What effective_spec/_corrected are taken of: absent or 'model' — raw_params − free; 'mlp_blocks'
     * (transformer reports) — covered_params − free, the MLP blocks' own effective count.
     */
    effective_scope?: 'model' | 'mlp_blocks';
  };
  ground_truth?: GroundTruth;
  provenance: Record<string, string>;
  notes: string[];
  /** Present on reports that do not cover a whole MLP (transformers). */
  scope?: DegeneracyScope;
}

export const PROVENANCE: Record<string, string> = {
  free_a: 'SPEC §6.2 [DERIVED, NUM]: n_out·(d − r_G); not quoted from the paper',
  free_b: 'SPEC §6.3 [DERIVED, NUM]: d·(n_out − r_J), first order only; not quoted from the paper',
  combined_free: 'SPEC §6.4 [DERIVED, NUM]: d·n_out − r_G·r_J (exact under the Kronecker approximation)',
  sync_extra: 'SPEC §6.5 [DERIVED, NUM]: k(k−1) extra free directions per synchronised group (the paper names the mechanism, [PAPER: abstract], not the count)',
  free_spec: 'SPEC §6.5 accounting [NUM]: Σ combined_free + #live hidden ReLUs + Σ k(k−1)',
  free_corrected:
    'ibgpu [DERIVED]: Σ combined_free + Σ_classes σ_S·ρ_S (removes GL(k) directions already counted by (a)/(b)); checked against the Gauss–Newton nullity on small networks',
  effective: "N_eff ≈ raw − free: the quadratic (Gauss–Newton) approximation of SPEC §6.1 [DERIVED]; the paper's N_eff = 2λ is [SUMMARY]",
};

// ------------------------------------------------------------------ ranks

function cutOf(values: ArrayLike<number>, rule: RankRule): number {
  if (rule.mode === 'absolute') return rule.tau;
  let mx = 0;
  for (let i = 0; i < values.length; i++) mx = Math.max(mx, Math.abs(values[i]!));
  return rule.tau * mx;
}

/** Eigenvalues (descending) of the symmetric principal sub-matrix of `a` (n×n) on `idx`. */
export function subEigenvalues(a: ArrayLike<number>, n: number, idx: readonly number[]): Float64Array {
  const k = idx.length;
  if (k === 0) return new Float64Array(0);
  const s = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) s[i * k + j] = a[idx[i]! * n + idx[j]!]!;
  return symEigValuesHost(s, k);
}

/**
 * Largest eigenvalue of a symmetric PSD matrix (power iteration, and the largest diagonal entry as
 * a lower bound): a few per cent are all a relative cut needs, at O(n²)
 * per step instead of an O(n³) eigensolve.
 */
export function lambdaMax(a: ArrayLike<number>, n: number, steps = 50): number {
  let lo = 0;
  for (let i = 0; i < n; i++) lo = Math.max(lo, a[i * n + i]!);
  if (lo === 0) return 0;
  // A fixed, irregular start vector (all-ones could be orthogonal to the top eigenvector).
  let v = Float64Array.from({ length: n }, (_, i) => 1 + 0.5 * Math.sin(12.9898 * (i + 1)));
  let est = 0;
  for (let it = 0; it < steps; it++) {
    const w = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let t = 0;
      for (let j = 0; j < n; j++) t += a[i * n + j]! * v[j]!;
      w[i] = t;
    }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += w[i]! * w[i]!;
    norm = Math.sqrt(norm);
    if (norm === 0) break;
    const prev = est;
    est = norm;
    v = w.map((x) => x / norm);
    if (Math.abs(est - prev) <= 1e-6 * est) break;
  }
  return Math.max(lo, est);
}

/**
 * Numerical rank of a symmetric PSD matrix from its eigenvalues: those above the rule's cut and
 * above `floor` (a cut inherited from an enclosing matrix). A zero matrix has rank 0.
 */
export function rankOf(values: ArrayLike<number>, rule: RankRule, floor = 0): number {
  const cut = Math.max(cutOf(values, rule), floor);
  let r = 0;
  for (let i = 0; i < values.length; i++) if (values[i]! > cut && values[i]! > 0) r++;
  return r;
}

// ------------------------------------------------------------------ synchronisation

export interface SyncOptions {
  /** Near-synchronised pairs: Hamming distance <= max(1, floor(fraction·N)) (default 0.01). */
  nearFraction?: number;
  /** At most this many near pairs are listed per layer (all are counted; default 200). */
  maxNearPairs?: number;
}

function syncReport(inp: SectionInput, rule: RankRule, opts: SyncOptions, jacCut: number): SyncReport {
  const { patterns, actGram, actMean } = inp.hiddenStats!;
  const h = inp.nOut;
  const actCut = cutOf([lambdaMax(actGram, h)], rule);
  let cov = inp.hiddenStats!.actCov;
  if (!cov) {
    cov = new Float64Array(h * h);
    for (let a = 0; a < h; a++) for (let b = 0; b < h; b++) cov[a * h + b] = actGram[a * h + b]! - actMean[a]! * actMean[b]!;
  }
  const covCut = cutOf([lambdaMax(cov, h)], rule);
  // rank of (h_S, 1) for an always-on class S: 1 + rank Cov(h_S) (centred: well conditioned even
  // when a large constant offset dominates the raw moments).
  const augmentedRank = (c: readonly number[]): number => 1 + rankOf(subEigenvalues(cov, h, c), rule, covCut);
  const n = patterns.n;
  const pg = groupPatterns(patterns);
  const fc = patterns.fireCount;
  const classes: number[][] = pg.groups.map((g) => [...g]);
  if (pg.alwaysOn.length >= 2) classes.push([...pg.alwaysOn]);
  const inClass = new Int32Array(h).fill(-1);
  classes.forEach((c, i) => c.forEach((a) => (inClass[a] = i)));
  const dead = new Set(pg.dead);
  const groups: SyncGroup[] = [];
  let independent = 0;
  let extra = 0;
  let absorbed = 0;
  // Group ranks: relative to the group's own scale (its block's largest eigenvalue), and never
  // below the whole layer's cut (a block that vanishes at the layer's scale has rank 0).
  const on = new Set(pg.alwaysOn);
  for (const c of classes) {
    const rho = on.has(c[0]!) ? augmentedRank(c) : rankOf(subEigenvalues(actGram, h, c), rule, actCut);
    const sigma = rankOf(subEigenvalues(inp.jacobianGram, h, c), rule, jacCut);
    const k = c.length;
    groups.push({ neurons: c, k, fire_count: fc[c[0]!]!, extra: k * (k - 1), rank_pre: rho, rank_jac: sigma, extra_corrected: sigma * rho - k });
    extra += k * (k - 1);
    independent += sigma * rho;
  }
  groups.sort((x, y) => y.k - x.k || x.neurons[0]! - y.neurons[0]!);
  let live = 0;
  for (let a = 0; a < h; a++) {
    if (dead.has(a)) continue;
    live++;
    if (inClass[a]! >= 0) continue;
    const g = on.has(a) ? augmentedRank([a]) : actGram[a * h + a]! > actCut && actGram[a * h + a]! > 0 ? 1 : 0;
    const j = inp.jacobianGram[a * h + a]! > jacCut && inp.jacobianGram[a * h + a]! > 0 ? 1 : 0;
    independent += g * j;
    if (g * j === 0) absorbed++;
  }
  // Near-synchronised pairs from the co-firing counts.
  const maxH = Math.max(1, Math.floor((opts.nearFraction ?? 0.01) * n));
  const near: NearPair[] = [];
  let nearTotal = 0;
  const alwaysOn = new Set(pg.alwaysOn);
  const A = patterns.cofire;
  const useLsh = A.length !== h * h;
  if (useLsh && patterns.words) {
    const cand: number[] = [];
    for (let a = 0; a < h; a++) if (!dead.has(a) && !alwaysOn.has(a)) cand.push(a);
    for (const p of nearPairsLsh(patterns.words, h, n, cand, maxH)) {
      nearTotal++;
      near.push({ a: p.a, b: p.b, hamming: p.hamming, jaccard: p.both / (fc[p.a]! + fc[p.b]! - p.both) });
    }
  } else if (!useLsh) {
    for (let a = 0; a < h; a++) {
      if (dead.has(a) || alwaysOn.has(a)) continue;
      for (let b = a + 1; b < h; b++) {
        if (dead.has(b) || alwaysOn.has(b)) continue;
        const ham = fc[a]! + fc[b]! - 2 * A[a * h + b]!;
        if (ham === 0 || ham > maxH) continue;
        nearTotal++;
        near.push({ a, b, hamming: ham, jaccard: A[a * h + b]! / (fc[a]! + fc[b]! - A[a * h + b]!) });
      }
    }
  }
  near.sort((x, y) => x.hamming - y.hamming || x.a - y.a || x.b - y.b);
  return {
    live,
    dead: pg.dead,
    always_on: pg.alwaysOn,
    groups,
    extra,
    independent,
    rescalings_absorbed: absorbed,
    near_pairs: near.slice(0, opts.maxNearPairs ?? 200),
    near_pairs_total: nearTotal,
    near_max_hamming: maxH,
    near_method: useLsh ? 'lsh' : 'cofire',
    ...(useLsh ? { near_recall: lshRecall(maxH, n) } : {}),
    hash_collisions: pg.hashCollisions,
    fire_count: Array.from(fc),
  };
}

// ------------------------------------------------------------------ the report

export interface ReportOptions extends SyncOptions {
  /** Total trainable parameters of the model (for the totals). */
  rawParams: number;
  /** Include the Jacobian Gram's eigenvalues when n_out <= this (default 1024). */
  spectrumMax?: number;
}

export function sectionReport(inp: SectionInput, rule: RankRule, opts: ReportOptions): SectionReport {
  const { d, nOut } = inp;
  const jev = symEigValuesHost(inp.jacobianGram, nOut);
  const rJ = rankOf(jev, rule);
  const rG = inp.rG;
  const combined = d * nOut - rG * rJ;
  const notes: string[] = [];
  let freeSpec = combined;
  let freeCorr = combined;
  let sync: SyncReport | undefined;
  if (inp.hidden && inp.activation === 'relu' && inp.hiddenStats) {
    sync = syncReport(inp, rule, opts, cutOf(jev, rule));
    freeSpec += sync.live + sync.extra;
    freeCorr += sync.independent;
    if (sync.hash_collisions > 0) notes.push(`${sync.hash_collisions} hash collision(s) were resolved by exact comparison`);
  } else if (inp.hidden && inp.activation === 'identity') {
    notes.push('linear hidden layer: its GL(n) symmetry overlaps (a)/(b) and is not counted');
  } else if (inp.hidden) {
    notes.push(`${inp.activation} is not positively homogeneous: no rescaling or synchronisation symmetry is counted`);
  }
  return {
    section: `${inp.from} -> ${inp.to}`,
    layer: inp.layer,
    activation: inp.activation,
    params: d * nOut,
    d,
    n_out: nOut,
    activation_degeneracy: { rank: rG, dim: d, free: nOut * (d - rG), source: inp.rGSource },
    jacobian_degeneracy: {
      rank: rJ,
      n_out: nOut,
      free: d * (nOut - rJ),
      ...(nOut <= (opts.spectrumMax ?? 1024) ? { eigenvalues: Array.from(jev) } : {}),
    },
    combined_free: combined,
    ...(inp.ib
      ? {
          ib: {
            stage1_k: inp.ib.k,
            basis_dim: inp.ib.r,
            stage2_dropped: inp.ib.stage2Dropped,
            ...(inp.ib.mprimeRank !== undefined ? { mprime_rank: inp.ib.mprimeRank } : {}),
          },
        }
      : {}),
    ...(sync ? { sync } : {}),
    free_spec: freeSpec,
    free_corrected: freeCorr,
    notes,
  };
}

export function degeneracyReport(inputs: SectionInput[], rule: RankRule, opts: ReportOptions): DegeneracyReport {
  const sections = inputs.map((s) => sectionReport(s, rule, opts));
  const covered = sections.reduce((t, s) => t + s.params, 0);
  const freeSpec = sections.reduce((t, s) => t + s.free_spec, 0);
  const freeCorr = sections.reduce((t, s) => t + s.free_corrected, 0);
  const complete = covered === opts.rawParams;
  const notes: string[] = [];
  if (!complete) notes.push(`the build's node layers cover ${covered} of the model's ${opts.rawParams} parameters; totals are over the covered sections only`);
  return {
    format: DEGENERACY_FORMAT,
    version: DEGENERACY_VERSION,
    dataset_size: inputs[0]?.n ?? 0,
    rank_rule: rule,
    sections,
    totals: {
      raw_params: opts.rawParams,
      covered_params: covered,
      free_spec: freeSpec,
      free_corrected: freeCorr,
      effective_spec: opts.rawParams - freeSpec,
      effective_corrected: opts.rawParams - freeCorr,
      complete,
    },
    provenance: PROVENANCE,
    notes,
  };
}
