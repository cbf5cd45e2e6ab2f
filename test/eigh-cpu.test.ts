// Float64 CPU eigensolver (src/cpu/eigh.ts): residual, orthogonality, ordering and special
// spectra. Tolerances: backward-stable Householder + QL gives ‖AV − VΛ‖ ≤ c·n·ε·‖A‖ and
// ‖VᵀV − I‖ ≤ c·n·ε; we test against 1e-13·n (ε ≈ 2.2e-16, so c ≈ 450 of headroom; the
// measured constants are ~0.1).
import { describe, expect, it } from 'vitest';
import { symEig, symEigValues } from '../src/cpu/eigh.js';
import { eigAbsSorted } from '../src/ib/basis.js';
import { IbgpuError } from '../src/errors.js';
import { gaussian, rng } from './helpers/random.js';
import { randomSymmetric, withSpectrum } from './helpers/spectra.js';

function frob(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! ** 2;
  return Math.sqrt(s);
}

/** ‖AV − VΛ‖_F / ‖A‖_F (absolute when A = 0) and max |VᵀV − I|. */
function quality(a: Float64Array, n: number, values: Float64Array, vectors: Float64Array): { res: number; orth: number } {
  let r2 = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += a[i * n + j]! * vectors[j * n + k]!;
      r2 += (s - values[k]! * vectors[i * n + k]!) ** 2;
    }
  }
  let orth = 0;
  for (let k = 0; k < n; k++) {
    for (let l = k; l < n; l++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += vectors[i * n + k]! * vectors[i * n + l]!;
      orth = Math.max(orth, Math.abs(s - (k === l ? 1 : 0)));
    }
  }
  const an = frob(a);
  return { res: Math.sqrt(r2) / (an > 0 ? an : 1), orth };
}

function check(a: Float64Array, n: number, expected?: readonly number[]): void {
  const { values, vectors } = symEig(a, n);
  expect(values.length).toBe(n);
  expect(vectors.length).toBe(n * n);
  for (let k = 1; k < n; k++) expect(values[k]!).toBeLessThanOrEqual(values[k - 1]!);
  const { res, orth } = quality(a, n, values, vectors);
  const tol = 1e-13 * n;
  expect(res).toBeLessThan(tol);
  expect(orth).toBeLessThan(tol);
  const only = symEigValues(a, n);
  const scale = Math.max(1, Math.abs(values[0]!), Math.abs(values[n - 1]!));
  for (let k = 0; k < n; k++) expect(Math.abs(only[k]! - values[k]!)).toBeLessThan(tol * scale);
  if (expected) {
    const sorted = [...expected].sort((x, y) => y - x);
    for (let k = 0; k < n; k++) expect(Math.abs(values[k]! - sorted[k]!)).toBeLessThan(tol * scale);
  }
}

describe('symEig (float64 Householder + QL)', () => {
  it('1×1 and 2×2 in closed form', () => {
    const one = symEig([-3.5], 1);
    expect([...one.values]).toEqual([-3.5]);
    expect(Math.abs(one.vectors[0]!)).toBe(1);
    // [[2, 1], [1, 2]]: eigenvalues 3 and 1, vectors (1, 1)/√2 and (1, −1)/√2.
    const two = symEig([2, 1, 1, 2], 2);
    expect(two.values[0]).toBeCloseTo(3, 14);
    expect(two.values[1]).toBeCloseTo(1, 14);
    expect(Math.abs(two.vectors[0]!)).toBeCloseTo(Math.SQRT1_2, 14); // column 0 = (v00, v10)
    expect(two.vectors[0]! * two.vectors[2]!).toBeGreaterThan(0); // same sign: (1, 1) direction
    expect(two.vectors[1]! * two.vectors[3]!).toBeLessThan(0); // (1, −1) direction
    check(new Float64Array([2, 1, 1, 2]), 2, [3, 1]);
    check(new Float64Array([0, 1e-30, 1e-30, 0]), 2);
  });

  it('random symmetric matrices at sizes 3, 17, 64, 130, 257', () => {
    for (const n of [3, 17, 64, 130, 257]) check(randomSymmetric(n, n), n);
  });

  it('sorts descending by signed value (negative spectrum last)', () => {
    const lambda = [-5, 4, -1, 0.5, 3, -2, 1e-3];
    const a = withSpectrum(lambda, 11);
    check(a, lambda.length, lambda);
    expect(symEig(a, lambda.length).values[lambda.length - 1]!).toBeCloseTo(-5, 12);
  });

  it('clustered eigenvalues (gaps of 1e-10)', () => {
    const n = 40;
    const lambda = Array.from({ length: n }, (_, i) => (i < 20 ? 1 + i * 1e-10 : -2 + i * 1e-3));
    check(withSpectrum(lambda, 5), n, lambda);
  });

  it('exactly repeated eigenvalues give an orthonormal basis of the eigenspace', () => {
    const n = 50;
    const lambda = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 2 : i % 3 === 1 ? -1 : 7));
    check(withSpectrum(lambda, 9), n, lambda);
    check(new Float64Array(Array.from({ length: 36 }, (_, i) => (i % 7 === 0 ? 4 : 0))), 6, [4, 4, 4, 4, 4, 4]);
  });

  it('zero matrix: zero eigenvalues and the identity basis', () => {
    const n = 9;
    const { values, vectors } = symEig(new Float64Array(n * n), n);
    expect([...values]).toEqual(new Array(n).fill(0));
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) expect(vectors[i * n + k]).toBe(i === k ? 1 : 0);
    expect([...symEigValues(new Float64Array(n * n), n)]).toEqual(new Array(n).fill(0));
  });

  it('rank-deficient PSD matrix (a Gram of rank 5 in 60 dimensions)', () => {
    const n = 60,
      r = 5;
    const g = gaussian(rng(21));
    const x = Array.from({ length: n * r }, () => g());
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += x[i * r + k]! * x[j * r + k]!;
        a[i * n + j] = s;
      }
    check(a, n);
    const v = symEig(a, n).values;
    for (let k = r; k < n; k++) expect(Math.abs(v[k]!)).toBeLessThan(1e-13 * n * v[0]!);
    expect(v[r - 1]!).toBeGreaterThan(1e-3);
  });

  it('a large cluster of numerically-zero eigenvalues (a Gram of rank 150 in 300 dimensions) deflates', () => {
    // Rounding leaves the 150 zero eigenvalues as a noise cluster at ~ε‖A‖; QL must treat
    // off-diagonals at that level as negligible instead of iterating on them forever.
    const n = 300,
      r = 150;
    const g = gaussian(rng(33));
    const x = new Float64Array(r * n);
    for (let i = 0; i < x.length; i++) x[i] = g();
    const a = new Float64Array(n * n);
    for (let k = 0; k < r; k++)
      for (let i = 0; i < n; i++) {
        const xi = x[k * n + i]!;
        for (let j = 0; j < n; j++) a[i * n + j]! += xi * x[k * n + j]!;
      }
    check(a, n);
    const v = symEig(a, n).values;
    for (let k = r; k < n; k++) expect(Math.abs(v[k]!)).toBeLessThan(1e-13 * n * v[0]!);
    expect(v[r - 1]!).toBeGreaterThan(1e-3 * v[0]!);
  });

  it('diagonal and already-tridiagonal input', () => {
    const d = [3, -1, 0, 8, 2, 2, -7];
    const n = d.length;
    const a = new Float64Array(n * n);
    d.forEach((v, i) => {
      a[i * n + i] = v;
    });
    check(a, n, d);
    const t = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      t[i * n + i] = 2;
      if (i + 1 < n) {
        t[i * n + i + 1] = -1;
        t[(i + 1) * n + i] = -1;
      }
    }
    // 1-D Laplacian: eigenvalues 2 − 2cos(kπ/(n+1)).
    check(
      t,
      n,
      Array.from({ length: n }, (_, k) => 2 - 2 * Math.cos(((k + 1) * Math.PI) / (n + 1))),
    );
  });

  it('wide dynamic range (1e-12 .. 1e12)', () => {
    const lambda = [1e12, 1e6, 1, 1e-6, 1e-12, -1e3, 0];
    check(withSpectrum(lambda, 3), lambda.length);
  });

  it('uses (A + Aᵀ)/2 for a slightly asymmetric input', () => {
    const n = 20;
    const a = randomSymmetric(n, 4);
    const b = Float64Array.from(a);
    const g = gaussian(rng(8));
    for (let i = 0; i < n; i++)
      for (let j = i + 1; j < n; j++) {
        const t = 1e-9 * g();
        b[i * n + j]! += t;
        b[j * n + i]! -= t;
      }
    const va = symEig(a, n).values;
    const vb = symEig(b, n).values;
    for (let k = 0; k < n; k++) expect(Math.abs(va[k]! - vb[k]!)).toBeLessThan(1e-12 * n);
  });

  it('rejects non-square length, bad n and non-finite input', () => {
    expect(() => symEig(new Float64Array(10), 3)).toThrow(IbgpuError);
    expect(() => symEig(new Float64Array(10), 3)).toThrow(/expected n\*n/);
    expect(() => symEig(new Float64Array(0), 0)).toThrow(/positive integer/);
    expect(() => symEigValues([1, NaN, NaN, 1], 2)).toThrow(/NaN/);
    expect(() => symEig([1, 2, 2, Infinity], 2)).toThrow(IbgpuError);
  });

  it('n = 400 in reasonable time', () => {
    const n = 400;
    const a = randomSymmetric(n, 400);
    const t0 = performance.now();
    const { values, vectors } = symEig(a, n);
    const ms = performance.now() - t0;
    const { res, orth } = quality(a, n, values, vectors);
    expect(res).toBeLessThan(1e-13 * n);
    expect(orth).toBeLessThan(1e-13 * n);
    expect(ms).toBeLessThan(10_000); // ~0.15 s unloaded; generous for a shared 2-core machine
  });
});

describe("eigAbsSorted (the pipeline's |λ|-sorted eigendecomposition)", () => {
  it('splits off exactly-zero rows: same spectrum and eigenvectors as the full solve', () => {
    const n = 40;
    const g = gaussian(rng(5));
    const x = Array.from({ length: 60 * n }, () => g());
    const deadCols = [0, 7, 8, 39];
    for (let r = 0; r < 60; r++) for (const c of deadCols) x[r * n + c] = 0;
    const a = new Float64Array(n * n);
    for (let r = 0; r < 60; r++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j]! += x[r * n + i]! * x[r * n + j]!;
    const got = eigAbsSorted(a, n);
    const full = symEig(a, n); // descending; PSD, so |λ| order is the same up to the zero block
    for (let k = 0; k < n; k++) expect(Math.abs(got.values[k]! - Math.abs(full.values[k]!))).toBeLessThan(1e-12 * full.values[0]!);
    for (let k = n - deadCols.length; k < n; k++) expect(got.values[k]).toBe(0);
    const { res, orth } = quality(a, n, got.values, got.vectors);
    expect(res).toBeLessThan(1e-13 * n);
    expect(orth).toBeLessThan(1e-13 * n);
    // Well-separated eigenvectors agree with the full solve up to sign.
    for (let k = 0; k < 10; k++) {
      let d = 0;
      for (let i = 0; i < n; i++) d += got.vectors[i * n + k]! * full.vectors[i * n + k]!;
      expect(Math.abs(Math.abs(d) - 1)).toBeLessThan(1e-9);
    }
    // The zero block: unit vectors on the dead indices.
    const zeroCols = Array.from({ length: deadCols.length }, (_, t) => n - deadCols.length + t);
    for (const k of zeroCols) expect(deadCols.some((i) => got.vectors[i * n + k] === 1)).toBe(true);
  });

  it('handles the all-zero matrix', () => {
    const r = eigAbsSorted(new Float64Array(9), 3);
    expect(Array.from(r.values)).toEqual([0, 0, 0]);
    expect(Array.from(r.vectors)).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  });
});
