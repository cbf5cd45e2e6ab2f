// Float64 CPU collection of the degeneracy statistics (the reference for the GPU accumulator in
// src/ib/degeneracy-gpu.ts, and a standalone path for small models): per datapoint a forward pass, the
// Jacobians J_p = ∂f_out/∂p^ℓ of the network output with respect to every layer's
// pre-activations (backward, f64), and the sign patterns of every hidden layer.

import { actGrad } from '../model/activations.js';
import { matmulF64 } from '../cpu/matmul.js';
import { forwardSampleF64 } from '../cpu/mlp-forward.js';
import type { MlpModel } from '../model/mlp.js';
import { symEigValues } from '../cpu/eigh.js';
import { signPatternsCpu } from '../cpu/sign-patterns.js';
import { rankOf, type RankRule, type SectionInput } from './degeneracy.js';

export interface CpuStatsOptions {
  rule: RankRule;
  /** Model layers (sections) to report; default all. */
  layers?: number[];
  /** Node layer names of the layer inputs (default model layer names, then 'output'). */
  names?: string[];
}

/** Per-section inputs of degeneracyReport, computed in float64 from the data x (n × dIn_0). */
export function degeneracyInputsCpu(model: MlpModel, x: ArrayLike<number>, n: number, opts: CpuStatsOptions): SectionInput[] {
  const L = model.layers.length;
  const layers = opts.layers ?? model.layers.map((_, i) => i);
  const names = opts.names ?? [...model.layers.map((l) => l.name), 'output'];
  const nOutF = model.layers[L - 1]!.dOut;
  // Input sums and raw Grams of the real inputs (centred ranks at the end).
  const grams = layers.map((i) => new Float64Array(model.layers[i]!.dIn ** 2));
  const sums = layers.map((i) => new Float64Array(model.layers[i]!.dIn));
  const jac = layers.map((i) => new Float64Array(model.layers[i]!.dOut ** 2));
  const hiddenRelu = layers.map((i) => i < L - 1 && model.layers[i]!.activation === 'relu');
  const pres = layers.map((i, j) => (hiddenRelu[j] ? new Float64Array(n * model.layers[i]!.dOut) : undefined));
  const actG = layers.map((i, j) => (hiddenRelu[j] ? new Float64Array(model.layers[i]!.dOut ** 2) : undefined));
  const actM = layers.map((i, j) => (hiddenRelu[j] ? new Float64Array(model.layers[i]!.dOut) : undefined));
  for (let s = 0; s < n; s++) {
    const { inputs, pres: pre } = forwardSampleF64(model, x, s);
    // G_ℓ = ∂out/∂p^ℓ (nOutF × dOut_ℓ), backwards.
    const G = new Array<Float64Array>(L);
    const last = model.layers[L - 1]!;
    G[L - 1] = new Float64Array(nOutF * nOutF);
    for (let o = 0; o < nOutF; o++) G[L - 1]![o * nOutF + o] = actGrad(last.activation, pre[L - 1]![o]!);
    for (let li = L - 1; li > 0; li--) {
      const l = model.layers[li]!;
      const prev = model.layers[li - 1]!;
      const g = new Float64Array(nOutF * prev.dOut);
      for (let i = 0; i < prev.dOut; i++) {
        const der = actGrad(prev.activation, pre[li - 1]![i]!);
        if (der === 0) continue;
        for (let o = 0; o < nOutF; o++) {
          let t = 0;
          for (let j = 0; j < l.dOut; j++) t += G[li]![o * l.dOut + j]! * l.W[i * l.dOut + j]!;
          g[o * prev.dOut + i] = t * der;
        }
      }
      G[li - 1] = g;
    }
    layers.forEach((li, j) => {
      const l = model.layers[li]!;
      const f = inputs[li]!;
      const d = l.dIn;
      const gr = grams[j]!;
      for (let a = 0; a < d; a++) {
        const fa = f[a]!;
        sums[j]![a]! += fa / n;
        if (fa === 0) continue;
        for (let b = 0; b < d; b++) gr[a * d + b]! += (fa * f[b]!) / n;
      }
      const h = l.dOut;
      const Gl = G[li]!;
      const M = jac[j]!;
      for (let o = 0; o < nOutF; o++) {
        for (let a = 0; a < h; a++) {
          const ga = Gl[o * h + a]!;
          if (ga === 0) continue;
          for (let b = 0; b < h; b++) M[a * h + b]! += (ga * Gl[o * h + b]!) / n;
        }
      }
      if (hiddenRelu[j]) {
        const p = pre[li]!;
        pres[j]!.set(p, s * h);
        const A = actG[j]!;
        for (let a = 0; a < h; a++) {
          const ha = p[a]! > 0 ? p[a]! : 0;
          if (ha === 0) continue;
          actM[j]![a]! += ha / n;
          for (let b = 0; b < h; b++) A[a * h + b]! += (ha * (p[b]! > 0 ? p[b]! : 0)) / n;
        }
      }
    });
  }
  return layers.map((li, j) => {
    const l = model.layers[li]!;
    const d = l.dIn + 1;
    return {
      from: names[li]!,
      to: names[li + 1]!,
      layer: li,
      activation: l.activation,
      hidden: li < L - 1,
      d,
      nOut: l.dOut,
      n,
      // r_G = rank of the raw Gram of (f, 1) = 1 + rank Cov(f), as the centred basis counts it.
      rG: 1 + rankOf(symEigValues(centred(grams[j]!, sums[j]!), l.dIn), opts.rule),
      rGSource: 'gram' as const,
      jacobianGram: jac[j]!,
      ...(hiddenRelu[j]
        ? { hiddenStats: { patterns: signPatternsCpu(pres[j]!, n, l.dOut), actGram: actG[j]!, actMean: actM[j]!, actCov: centred(actG[j]!, actM[j]!) } }
        : {}),
    };
  });
}

/** E[f fᵀ] − μμᵀ. */
function centred(gram: Float64Array, mean: Float64Array): Float64Array {
  const outer = matmulF64(mean, mean, { m: mean.length, n: mean.length, k: 1 });
  return Float64Array.from(gram, (v, i) => v - outer[i]!);
}
