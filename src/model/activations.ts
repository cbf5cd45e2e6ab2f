// Elementwise activations of MLP sections, their derivatives, and the "root of one" used when
// folding biases (SPEC §1.2): the constant slot carries σ(ρ·1) = 1, so ρ solves σ(ρ) = 1.

import { IbgpuError } from '../errors.js';

export type Activation = 'relu' | 'identity' | 'gelu' | 'gelu_tanh';
export const ACTIVATIONS: readonly Activation[] = ['relu', 'identity', 'gelu', 'gelu_tanh'];

/** Numeric id shared with the WGSL kernels (override ACT). */
export const ACTIVATION_ID: Record<Activation, number> = { identity: 0, relu: 1, gelu: 2, gelu_tanh: 3 };

export function parseActivation(s: string, where: string): Activation {
  if ((ACTIVATIONS as readonly string[]).includes(s)) return s as Activation;
  throw new IbgpuError('BAD_CONFIG', `${where}: unknown activation '${s}'`, `use one of ${ACTIVATIONS.join(', ')}`);
}

/** erf with |error| < 1.2e-16 relative for our use (W. J. Cody's rational approximations would do too). */
export function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse for f64 work; use the series / continued fraction split.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: erf x = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)); converges fast for |x| < 2.5.
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  // erfc continued fraction (Lentz) for the tail.
  const tiny = 1e-300;
  let f = ax;
  let c = ax;
  let d = 0;
  for (let i = 1; i < 300; i++) {
    const a = i / 2;
    d = ax + a * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = ax + a / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  const r = 1 - erfc;
  return x < 0 ? -r : r;
}

export function act(a: Activation, x: number): number {
  switch (a) {
    case 'identity':
      return x;
    case 'relu':
      return x > 0 ? x : 0;
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_tanh':
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
  }
}

/** Derivative; relu'(0) = 0 as in torch. */
export function actGrad(a: Activation, x: number): number {
  switch (a) {
    case 'identity':
      return 1;
    case 'relu':
      return x > 0 ? 1 : 0;
    case 'gelu': {
      const cdf = 0.5 * (1 + erf(x / Math.SQRT2));
      const pdf = Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
      return cdf + x * pdf;
    }
    case 'gelu_tanh': {
      const k = Math.sqrt(2 / Math.PI);
      const u = k * (x + 0.044715 * x * x * x);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    }
  }
}

/** ρ with σ(ρ) = 1 (Newton from 1; ρ = 1 for relu and identity). */
export function rootOfOne(a: Activation): number {
  if (a === 'relu' || a === 'identity') return 1;
  let r = 1;
  for (let i = 0; i < 100; i++) {
    const step = (act(a, r) - 1) / actGrad(a, r);
    r -= step;
    if (Math.abs(step) < 1e-15) break;
  }
  return r;
}
