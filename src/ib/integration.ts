// Integration points (α_k, w_k) for the Jacobian along the path u = α·f, SPEC §4.2.
// `gradient` is the single point (1, 1); for positively homogeneous sections (folded ReLU,
// identity) every rule gives the same Jacobian, since J(αf) = J(f) for α > 0.

import { IbgpuError } from '../errors.js';

export type IntegrationMethod = 'gradient' | 'trapezoidal' | 'gauss-legendre';

export interface IntegrationPoints {
  alphas: Float64Array;
  weights: Float64Array;
}

export function integrationPoints(method: IntegrationMethod, nIntervals: number, epsRel = 1e-3): IntegrationPoints {
  if (!Number.isInteger(nIntervals) || nIntervals < 0) {
    throw new IbgpuError('BAD_CONFIG', `n_intervals must be a non-negative integer, got ${nIntervals}`);
  }
  if (method === 'gradient') {
    if (nIntervals !== 0) {
      throw new IbgpuError(
        'BAD_CONFIG',
        `integration_method 'gradient' requires n_intervals = 0 (got ${nIntervals})`,
        "set n_intervals: 0, or use 'trapezoidal' / 'gauss-legendre'",
      );
    }
    return { alphas: Float64Array.of(1), weights: Float64Array.of(1) };
  }
  if (method === 'trapezoidal') {
    if (nIntervals === 0) return { alphas: Float64Array.of(0.5), weights: Float64Array.of(1) };
    const n = nIntervals;
    const eps = epsRel / (n + 1);
    const alphas = new Float64Array(n + 1);
    const weights = new Float64Array(n + 1).fill(1 / n);
    for (let i = 0; i <= n; i++) alphas[i] = eps + ((1 - 2 * eps) * i) / n;
    weights[0] = weights[n]! / 2;
    weights[n] = weights[n]! / 2;
    return { alphas, weights };
  }
  if (method === 'gauss-legendre') {
    const { nodes, weights } = gaussLegendre(nIntervals + 1);
    return { alphas: nodes.map((x) => (x + 1) / 2), weights: weights.map((w) => w / 2) };
  }
  throw new IbgpuError('BAD_CONFIG', `unknown integration_method '${method as string}'`, "use 'gradient', 'trapezoidal' or 'gauss-legendre'");
}

/** Nodes and weights of the m-point Gauss–Legendre rule on [-1, 1] (Newton on P_m), ascending. */
export function gaussLegendre(m: number): { nodes: Float64Array; weights: Float64Array } {
  const nodes = new Float64Array(m);
  const weights = new Float64Array(m);
  for (let i = 0; i < Math.ceil(m / 2); i++) {
    let x = Math.cos((Math.PI * (i + 0.75)) / (m + 0.5));
    let dp = 0;
    for (let it = 0; it < 100; it++) {
      let p0 = 1;
      let p1 = x;
      for (let k = 2; k <= m; k++) {
        const p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      const pm = m === 1 ? x : p1;
      const pm1 = m === 1 ? 1 : p0;
      dp = (m * (x * pm - pm1)) / (x * x - 1);
      const dx = pm / dp;
      x -= dx;
      if (Math.abs(dx) < 1e-16) break;
    }
    const w = 2 / ((1 - x * x) * dp * dp);
    nodes[i] = -x;
    nodes[m - 1 - i] = x;
    weights[i] = w;
    weights[m - 1 - i] = w;
  }
  return { nodes, weights };
}
