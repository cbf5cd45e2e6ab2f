// The float64 moments the transformer host statistics pass takes of the rows it computed
// (src/transformer/host-stats.ts): a node layer's column means and Gram (about its mean with the
// constant slot at zero when centred), and a one-activation section's gate moments from its act
// inputs (for ReLU at positive integration points: its co-firing counts, which do not depend on
// the points, so they can be counted as soon as the act inputs exist, in row ranges on several
// threads: integer counts, exact in any order). Plain functions of typed arrays, so they run on a host worker thread (tasks.ts) beside
// each other and beside the main thread's work, with the same bits as on the calling thread.

import { actGrad, type Activation } from '../model/activations.js';
import { cofireCpu, packSignsCpu } from '../cpu/sign-patterns.js';
import { columnMeansF64, HostGateStats, HostGramF64, type GatePoints } from './stats.js';

export interface RowMoments {
  mean: Float64Array;
  /** (1/n) Σ (x − shift)(x − shift)ᵀ, or (1/n) Σ x xᵀ without a shift. */
  gram: Float64Array;
  shift?: Float64Array;
}

/**
 * Means and Gram (divided by n) of rows x [n, w]; `centred`: the Gram about the mean with its
 * last entry (the constant slot) set to zero, which is the shift returned.
 */
export function rowMomentsF64(x: Float64Array, n: number, w: number, centred: boolean): RowMoments {
  const mean = columnMeansF64(x, n, w);
  let shift: Float64Array | undefined;
  if (centred) {
    shift = Float64Array.from(mean);
    shift[w - 1] = 0;
  }
  const acc = new HostGramF64(w, shift);
  acc.add(x, n);
  const gram = acc.gram();
  for (let i = 0; i < gram.length; i++) gram[i] = gram[i]! / n;
  return { mean, gram, ...(shift ? { shift } : {}) };
}

/** G_a = Σ a aᵀ and Σ a of a one-activation section from its act inputs pre [rows, m] (a = Σ_k w_k act'(α_k x)). */
export function gateMomentsF64(act: Activation, pre: Float64Array, rows: number, points: GatePoints): { Ga: Float64Array; sa: Float64Array } {
  const m = pre.length / rows;
  const st = new HostGateStats(m, act, points);
  st.add(pre, rows);
  return { Ga: st.gram(), sa: st.sums() };
}

/**
 * Σ_n [p_na > 0][p_nb > 0] over rows [r0, r1) of act inputs pre [rows, h] (full h × h; its
 * diagonal is each unit's firing count): the co-firing counts HostGateStats takes for ReLU.
 */
export function reluCofireCounts(pre: Float64Array, h: number, r0: number, r1: number): Float64Array {
  const rows = r1 - r0;
  if (rows <= 0) return new Float64Array(h * h);
  return cofireCpu(packSignsCpu(pre.subarray(r0 * h, r1 * h), rows, h), h, rows);
}

/** Whether gateMomentsFromCounts applies: ReLU with every α_k > 0 (HostGateStats's count path). */
export function gateMomentsByCounts(act: Activation, points: GatePoints): boolean {
  if (act !== 'relu' || points.alphas.length === 0) return false;
  for (let k = 0; k < points.alphas.length; k++) if (!(points.alphas[k]! > 0)) return false;
  return true;
}

/**
 * gateMomentsF64's G_a and Σ a for ReLU at positive points from co-firing counts (h × h) of all
 * rows: g = gOn where a unit fires, so G_a = gOn²·counts and Σ a = gOn·(firing counts), the same
 * bits as HostGateStats.
 */
export function gateMomentsFromCounts(counts: Float64Array, h: number, points: GatePoints): { Ga: Float64Array; sa: Float64Array } {
  let gOn = 0;
  for (let k = 0; k < points.alphas.length; k++) gOn += points.weights[k]! * actGrad('relu', points.alphas[k]!);
  const g2 = gOn * gOn;
  const Ga = new Float64Array(h * h);
  for (let i = 0; i < Ga.length; i++) Ga[i] = counts[i]! * g2;
  const sa = new Float64Array(h);
  for (let a = 0; a < h; a++) sa[a] = counts[a * h + a]! * gOn;
  return { Ga, sa };
}
