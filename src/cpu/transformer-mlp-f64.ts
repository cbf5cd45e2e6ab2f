// Float64 references for the degeneracy report of a transformer's MLP blocks
// (src/transformer/degeneracy.ts), by brute force and without the VJP code:
//   - mlpBlockStatsFd: the rows' statistics from the float64 program interpreter (two-pass
//     moments, unpacked pre-activations), and E[J_pᵀJ_p], E[J_yᵀJ_y] by central finite
//     differences: each (position, unit) of the node layer mlp_act.i (resp. add_resid2.i) is moved
//     by ±h in every sequence at once and the rest of the model, composed into one section, run
//     forward (sequences do not interact, so one forward pass gives every sequence's column);
//   - mlpBlockGaussNewton: the ground truth, the nullity of the Gauss–Newton matrix of block i's
//     own parameters (W_in, b_in, W_out, b_out) for the behavioural loss, from the stacked
//     per-sequence Jacobian of the logits by central differences on the unfolded weights through
//     the plain TransformerLens forward pass (src/model/transformer/reference.ts), then its
//     singular values (Jacobi SVD).
// Finite differences are exact up to rounding (~ε/h) where the model is piecewise linear and
// nothing crosses a ReLU kink; `margin` reports the smallest |p| so callers can check that.

import { act } from '../model/activations.js';
import { composeSections } from '../model/compose.js';
import type { SectionProgram } from '../model/program.js';
import { compileTransformer } from '../model/transformer/compile.js';
import { activationOf } from '../model/transformer/config.js';
import type { LastPosModuleType } from '../model/transformer/modules.js';
import { forwardTransformerF64 } from '../model/transformer/reference.js';
import type { BlockWeights, TransformerModel } from '../model/transformer/weights.js';
import { largestGap, singularValues } from './gauss-newton.js';
import { embedF64, forwardF64 } from './program-f64.js';

export interface MlpBlockStatsF64 {
  block: number;
  rows: number;
  positions: number;
  /** MLP inputs x, [rows, d_model]. */
  x: Float64Array;
  /** Pre-activations p, [rows, d_mlp]. */
  pre: Float64Array;
  xCov: Float64Array;
  hMean: Float64Array;
  hCov: Float64Array;
  hGram: Float64Array;
  jacobianPre: Float64Array;
  jacobianOut: Float64Array;
  /** min |p| over the rows: central differences with step h cross no ReLU kink when margin > h·max|∂p|. */
  margin: number;
}

function nodeNames(nLayers: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < nLayers; i++) out.push(`mlp_in.${i}`, `mlp_act.${i}`, `mlp_out.${i}`, `add_resid2.${i}`);
  out.push('output');
  return out;
}

/** Columns [0, w) of rows with `stride` values each. */
function columns(a: Float64Array, rows: number, stride: number, w: number): Float64Array {
  const out = new Float64Array(rows * w);
  for (let r = 0; r < rows; r++) for (let k = 0; k < w; k++) out[r * w + k] = a[r * stride + k]!;
  return out;
}

/** Mean, covariance (two-pass) and raw second moment of [rows, d]. */
function moments(x: Float64Array, rows: number, d: number): { mean: Float64Array; cov: Float64Array; gram: Float64Array } {
  const mean = new Float64Array(d);
  for (let r = 0; r < rows; r++) for (let a = 0; a < d; a++) mean[a]! += x[r * d + a]! / rows;
  const cov = new Float64Array(d * d);
  const gram = new Float64Array(d * d);
  for (let r = 0; r < rows; r++) {
    for (let a = 0; a < d; a++) {
      const ca = x[r * d + a]! - mean[a]!;
      for (let b = 0; b < d; b++) {
        cov[a * d + b]! += (ca * (x[r * d + b]! - mean[b]!)) / rows;
        gram[a * d + b]! += (x[r * d + a]! * x[r * d + b]!) / rows;
      }
    }
  }
  return { mean, cov, gram };
}

/**
 * (1/(n·P_l)) Σ_sequences Σ_positions J_sᵀJ_s for the first k coordinates of the first member of
 * the composed section's input tuple, J_s = ∂(outputs)/∂(member[s, :k]) by central differences.
 */
function jacobianGramFd(sec: SectionProgram, inputs: Float64Array[], n: number, k: number, h: number): Float64Array {
  const v0 = sec.values[sec.inputs[0]!]!;
  const Pl = v0.positions;
  const w = v0.width;
  const outOf = (parts: Float64Array[]): Float64Array[] => {
    const vals = forwardF64(sec, parts, n);
    return sec.outputs.map((id) => vals[id]!);
  };
  const G = new Float64Array(k * k);
  for (let s = 0; s < Pl; s++) {
    // cols[j]: per sequence, the output vector's derivative along (s, j), concatenated over members.
    const cols: Float64Array[] = [];
    for (let j = 0; j < k; j++) {
      const shifted = (sign: number): Float64Array[] => {
        const p0 = Float64Array.from(inputs[0]!);
        for (let b = 0; b < n; b++) p0[(b * Pl + s) * w + j]! += sign * h;
        return outOf([p0, ...inputs.slice(1)]);
      };
      const plus = shifted(1);
      const minus = shifted(-1);
      const per = plus.reduce((t, a) => t + a.length / n, 0);
      const col = new Float64Array(n * per);
      for (let b = 0; b < n; b++) {
        let off = 0;
        plus.forEach((a, m) => {
          const len = a.length / n;
          for (let q = 0; q < len; q++) col[b * per + off + q] = (a[b * len + q]! - minus[m]![b * len + q]!) / (2 * h);
          off += len;
        });
      }
      cols.push(col);
    }
    const per = cols[0] ? cols[0].length / n : 0;
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < k; i++) {
        for (let j = i; j < k; j++) {
          let t = 0;
          for (let q = 0; q < per; q++) t += cols[i]![b * per + q]! * cols[j]![b * per + q]!;
          G[i * k + j]! += t;
        }
      }
    }
  }
  const div = n * Pl;
  for (let i = 0; i < k; i++) {
    for (let j = i; j < k; j++) {
      G[i * k + j] = G[i * k + j]! / div;
      G[j * k + i] = G[i * k + j]!;
    }
  }
  return G;
}

/** Per block: the rows' statistics and both Jacobian Grams, in float64 (see the header). */
export function mlpBlockStatsFd(
  model: TransformerModel,
  tokens: ArrayLike<number>,
  n: number,
  P: number,
  lastPos: LastPosModuleType | null,
  opts: { h?: number } = {},
): MlpBlockStatsF64[] {
  const c = model.config;
  const h = opts.h ?? 1e-6;
  const { d_model: d, d_mlp: m } = c;
  const mp = compileTransformer(model, nodeNames(c.n_layers), { positions: P, lastPosModuleType: lastPos });
  // Node-layer tuples: pre from the embedding, then each section.
  const tuples: Float64Array[][] = [];
  const run = (sec: SectionProgram, inputs: Float64Array[]): Float64Array[] => {
    const vals = forwardF64(sec, inputs, n);
    return sec.outputs.map((id) => vals[id]!);
  };
  let t = run(mp.pre, embedF64(mp.embed!, tokens, n, P));
  tuples.push(t);
  for (const sec of mp.sections) {
    t = run(sec, t);
    tuples.push(t);
  }
  const a = activationOf(c.act_fn);
  return Array.from({ length: c.n_layers }, (_, i) => {
    const Pl = mp.sections[4 * i]!.values[mp.sections[4 * i]!.inputs[0]!]!.positions;
    const rows = n * Pl;
    const x = columns(tuples[4 * i]![0]!, rows, d + 1, d);
    const pre = columns(tuples[4 * i + 1]![0]!, rows, m + 1, m);
    const hAct = pre.map((v) => act(a, v));
    const xm = moments(x, rows, d);
    const hm = moments(hAct, rows, m);
    let margin = Infinity;
    for (const v of pre) margin = Math.min(margin, Math.abs(v));
    return {
      block: i,
      rows,
      positions: Pl,
      x,
      pre,
      xCov: xm.cov,
      hMean: hm.mean,
      hCov: hm.cov,
      hGram: hm.gram,
      jacobianPre: jacobianGramFd(composeSections(mp.sections.slice(4 * i + 1)), tuples[4 * i + 1]!, n, m, h),
      jacobianOut: jacobianGramFd(composeSections(mp.sections.slice(4 * i + 3)), tuples[4 * i + 3]!, n, d, h),
      margin,
    };
  });
}

export interface BlockGaussNewton {
  params: number;
  rank: number;
  nullity: number;
  /** σ_rank−1/σ_rank at the cut, and the largest neighbouring ratio of the spectrum with the nullity it gives. */
  gapAtCut: number;
  largestGap: { ratio: number; nullity: number };
  singularValues: Float64Array;
}

/** Ground truth: Gauss–Newton nullity of block `block`'s W_in, b_in, W_out, b_out (see the header). */
export function mlpBlockGaussNewton(
  model: TransformerModel,
  tokens: ArrayLike<number>,
  n: number,
  P: number,
  lastPos: LastPosModuleType | null,
  block: number,
  /** `only`: vary just these tensors (the others fixed), e.g. W_in and b_in for that map's own nullity. */
  opts: { h?: number; rtol?: number; only?: ('Win' | 'bin' | 'Wout' | 'bout')[] } = {},
): BlockGaussNewton {
  const h = opts.h ?? 1e-6;
  const rtol = opts.rtol ?? 1e-7;
  const keys: (keyof BlockWeights)[] = ['Win', 'bin', 'Wout', 'bout'];
  const varied = new Set<string>(opts.only ?? keys);
  const b0 = model.weights.blocks[block]!;
  const arrays = keys.map((k) => Float64Array.from(b0[k]));
  const blocks = model.weights.blocks.slice();
  const perturbed: TransformerModel = { config: model.config, weights: { ...model.weights, blocks } };
  blocks[block] = { ...b0, Win: arrays[0]!, bin: arrays[1]!, Wout: arrays[2]!, bout: arrays[3]! };
  const logits = (): Float64Array => forwardTransformerF64(perturbed, tokens, n, P, lastPos).logits;
  const rows = logits().length;
  const moving = arrays.filter((_, i) => varied.has(keys[i]!));
  const params = moving.reduce((t, a) => t + a.length, 0);
  const J = new Float64Array(rows * params);
  let col = 0;
  for (const a of moving) {
    for (let e = 0; e < a.length; e++, col++) {
      const v = a[e]!;
      a[e] = v + h;
      const plus = logits();
      a[e] = v - h;
      const minus = logits();
      a[e] = v;
      for (let r = 0; r < rows; r++) J[r * params + col] = (plus[r]! - minus[r]!) / (2 * h);
    }
  }
  const sv = singularValues(J, rows, params);
  const cut = rtol * (sv[0] ?? 0);
  let rank = 0;
  while (rank < sv.length && sv[rank]! > cut) rank++;
  const lg = largestGap(sv);
  return {
    params,
    rank,
    nullity: params - rank,
    gapAtCut: rank < sv.length ? (sv[rank]! > 0 ? sv[rank - 1]! / sv[rank]! : Infinity) : Infinity,
    largestGap: { ratio: lg.ratio, nullity: params - lg.rank },
    singularValues: sv,
  };
}
