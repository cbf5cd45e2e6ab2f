// Symmetric test matrices with known structure (row-major Float64Array), deterministic by seed.
import { gaussian, rng } from './random.js';

/** Random orthogonal n×n from Gram–Schmidt (twice, for stability) on a Gaussian matrix. */
export function randomOrthogonal(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  const q = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) q[i] = g();
  for (let k = 0; k < n; k++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < k; j++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += q[i * n + j]! * q[i * n + k]!;
        for (let i = 0; i < n; i++) q[i * n + k]! -= dot * q[i * n + j]!;
      }
    }
    let nrm = 0;
    for (let i = 0; i < n; i++) nrm += q[i * n + k]! ** 2;
    nrm = Math.sqrt(nrm);
    for (let i = 0; i < n; i++) q[i * n + k]! /= nrm;
  }
  return q;
}

/** Q diag(λ) Qᵀ with a random orthogonal Q, exactly symmetric. */
export function withSpectrum(lambda: readonly number[], seed: number): Float64Array {
  const n = lambda.length;
  const q = randomOrthogonal(n, seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += q[i * n + k]! * lambda[k]! * q[j * n + k]!;
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
  return a;
}

/** Independent Gaussian entries on and above the diagonal (an indefinite spectrum). */
export function randomSymmetric(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i; j < n; j++) {
      const v = g();
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  return a;
}

/** X Xᵀ for a Gaussian n×r X: positive semidefinite of rank min(n, r). */
export function rankDeficientGram(n: number, r: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  const x = Array.from({ length: n * r }, () => g());
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += x[i * r + k]! * x[j * r + k]!;
      a[i * n + j] = s;
    }
  }
  return a;
}
