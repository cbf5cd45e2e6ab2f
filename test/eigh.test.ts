// GPU f32 block-Jacobi eigensolver (src/kernels/eigh.ts) and the float64 refinement / driver
// (src/host/eig-refine.ts), against the float64 CPU solver symEig.
//
// Tolerances (u = 2^-24, the f32 unit roundoff; ‖A‖ = max|λ|):
//   f32:     ‖AV − VΛ‖_F/‖A‖_F ≤ n·u,  max|VᵀV − I| ≤ n·u,  |λ_k − λ_k^ref| ≤ n·u·‖A‖
//            (measured constants 0.1–0.25; without the Newton–Schulz re-orthogonalisation of
//            each step's rotation they were ~11, so these bounds do bite);
//   refined: |λ_k − λ_k^ref| ≤ 1e-12·‖A‖, residual ≤ 1e-13, max|VᵀV − I| ≤ 1e-13;
//            eigenvectors equal up to sign (|v·v_ref| ≥ 1 − 1e-10) where the gap is ≥ 1e-3·‖A‖,
//            and spectral projectors of degenerate clusters agree to 1e-10.
import { describe, expect, it, vi } from 'vitest';
import { chooseEighSolver, eigh, refineEig } from '../src/host/eig-refine.js';
import { symEig } from '../src/cpu/eigh.js';
import { IbgpuError } from '../src/errors.js';
import { blockPairs, eighGpu, selfCheck } from '../src/kernels/eigh.js';
import { useEngine } from './helpers/gpu.js';
import { gaussian, rng } from './helpers/random.js';
import { randomSymmetric, rankDeficientGram, withSpectrum } from './helpers/spectra.js';
import { eigQuality } from './helpers/eig-quality.js';

const U = 2 ** -24;

function maxAbs(v: Float64Array): number {
  let m = 0;
  for (const x of v) m = Math.max(m, Math.abs(x));
  return m;
}

/**
 * Eigenvectors agree with the reference up to sign for isolated eigenvalues (gap ≥ gapTol) and
 * via spectral projectors Σ v vᵀ over each cluster of eigenvalues closer than gapTol.
 */
function expectSameEigenvectors(
  n: number,
  got: { values: Float64Array; vectors: Float64Array },
  ref: { values: Float64Array; vectors: Float64Array },
  gapTol: number,
  tol: number,
): void {
  let start = 0;
  for (let k = 1; k <= n; k++) {
    if (k < n && ref.values[k - 1]! - ref.values[k]! < gapTol) continue;
    const cols = Array.from({ length: k - start }, (_, c) => start + c);
    if (cols.length === 1) {
      let d = 0;
      for (let i = 0; i < n; i++) d += got.vectors[i * n + start]! * ref.vectors[i * n + start]!;
      expect(Math.abs(d)).toBeGreaterThan(1 - tol);
    } else {
      let worst = 0;
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          let pg = 0;
          let pr = 0;
          for (const c of cols) {
            pg += got.vectors[i * n + c]! * got.vectors[j * n + c]!;
            pr += ref.vectors[i * n + c]! * ref.vectors[j * n + c]!;
          }
          worst = Math.max(worst, Math.abs(pg - pr));
        }
      expect(worst).toBeLessThan(tol);
    }
    start = k;
  }
}

describe('block pairs (round-robin ordering)', () => {
  it('meets every pair of blocks exactly once per sweep, each block once per step', () => {
    for (const p of [1, 2, 3, 8]) {
      const t = blockPairs(p);
      const seen = new Set<string>();
      for (let s = 0; s < 2 * p - 1; s++) {
        const inStep = new Set<number>();
        for (let k = 0; k < p; k++) {
          const x = t[(s * p + k) * 2]!;
          const y = t[(s * p + k) * 2 + 1]!;
          inStep.add(x).add(y);
          seen.add(`${Math.min(x, y)},${Math.max(x, y)}`);
        }
        expect(inStep.size).toBe(2 * p);
      }
      expect(seen.size).toBe(p * (2 * p - 1));
    }
  });
});

describe('eighGpu (f32 block Jacobi) and eigh (refined)', () => {
  const engine = useEngine();

  async function checkCase(a: Float64Array, n: number, gapTol = 1e-3): Promise<void> {
    const e = await engine();
    const ref = symEig(a, n);
    const norm = Math.max(maxAbs(ref.values), 1e-300);
    // f32 stage
    const g = await eighGpu(e, a, n);
    expect(g.converged).toBe(true);
    for (let k = 1; k < n; k++) expect(g.values[k]!).toBeLessThanOrEqual(g.values[k - 1]!);
    const q32 = eigQuality(a, n, g.values, g.vectors);
    expect(q32.res).toBeLessThan(n * U);
    expect(q32.orth).toBeLessThan(n * U);
    for (let k = 0; k < n; k++) expect(Math.abs(g.values[k]! - ref.values[k]!)).toBeLessThan(n * U * norm);
    // refined
    const r = await eigh(e, a, n, { solver: 'gpu' });
    expect(r.fallback).toBe(false);
    for (let k = 0; k < n; k++) expect(Math.abs(r.values[k]! - ref.values[k]!)).toBeLessThan(1e-12 * norm);
    const q64 = eigQuality(a, n, r.values, r.vectors);
    expect(q64.res).toBeLessThan(1e-13);
    expect(q64.orth).toBeLessThan(1e-13);
    expect(r.residual).toBeLessThan(1e-13);
    expectSameEigenvectors(n, r, ref, gapTol * norm, 1e-10);
  }

  it("solver 'auto' picks the float64 CPU solver on software adapters and the GPU otherwise", async () => {
    const e = await engine();
    const n = 33;
    const a = randomSymmetric(n, 7);
    const ref = symEig(a, n);
    const r = await eigh(e, a, n);
    expect(r.solver).toBe(chooseEighSolver(e));
    expect(r.solver).toBe(e.info.isSoftware ? 'cpu' : 'gpu');
    const norm = Math.max(...Array.from(ref.values, Math.abs));
    for (let k = 0; k < n; k++) expect(Math.abs(r.values[k]! - ref.values[k]!)).toBeLessThan(1e-12 * norm);
    expect(r.residual).toBeLessThan(1e-13);
    await expect(eigh(e, a, n, { solver: 'tpu' as never })).rejects.toThrow(/unknown solver/);
  });

  it('random symmetric matrices, n = 1, 2, 17, 64, 130', async () => {
    for (const n of [1, 2, 17, 64, 130]) await checkCase(randomSymmetric(n, 100 + n), n);
  });

  it('clustered spectrum (a cluster of 6 within 1e-9, the rest spread)', async () => {
    const n = 47;
    const lambda = Array.from({ length: n }, (_, i) => (i < 6 ? 3 + i * 1e-10 : -2 + (4 * i) / n));
    await checkCase(withSpectrum(lambda, 3), n, 1e-6);
  });

  it('exactly repeated eigenvalues (multiplicities 16, 16, 17)', async () => {
    const n = 49;
    const lambda = Array.from({ length: n }, (_, i) => [5, -1, 0.25][i % 3]!);
    await checkCase(withSpectrum(lambda, 4), n);
  });

  it('rank-deficient Gram (rank 5 in 64 dimensions) and the zero matrix', async () => {
    await checkCase(rankDeficientGram(64, 5, 9), 64);
    const e = await engine();
    const z = await eighGpu(e, new Float64Array(17 * 17), 17);
    expect([...z.values]).toEqual(new Array(17).fill(0));
    expect(eigQuality(new Float64Array(17 * 17), 17, z.values, z.vectors).orth).toBe(0);
    const rz = await eigh(e, new Float64Array(9), 3, { solver: 'gpu' });
    expect([...rz.values]).toEqual([0, 0, 0]);
  });

  it('scales: tiny and huge magnitudes and a float32 input', async () => {
    const e = await engine();
    const base = randomSymmetric(20, 77);
    const ref = symEig(base, 20);
    for (const s of [1e-30, 1e30]) {
      const a = base.map((x) => x * s);
      const r = await eigh(e, a, 20, { solver: 'gpu' });
      for (let k = 0; k < 20; k++) expect(Math.abs(r.values[k]! - ref.values[k]! * s)).toBeLessThan(1e-12 * maxAbs(ref.values) * s);
    }
    const g = await eighGpu(e, Float32Array.from(base), 20);
    for (let k = 0; k < 20; k++) expect(Math.abs(g.values[k]! - ref.values[k]!)).toBeLessThan(4 * 20 * U * maxAbs(ref.values) + 1e-6);
  });

  it('hits the sweep limit with a warning and converged = false', async () => {
    const e = await engine();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const g = await eighGpu(e, randomSymmetric(64, 5), 64, { maxSweeps: 1 });
      expect(g.converged).toBe(false);
      expect(g.sweeps).toBe(1);
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/did not converge in 1 sweeps/));
    } finally {
      warn.mockRestore();
    }
  });

  it('rejects non-square length, NaN and asymmetric input with IbgpuErrors', async () => {
    const e = await engine();
    await expect(eighGpu(e, new Float64Array(10), 3)).rejects.toThrow(/expected n\*n/);
    const nan = randomSymmetric(5, 1);
    nan[7] = NaN;
    await expect(eighGpu(e, nan, 5)).rejects.toThrow(IbgpuError);
    await expect(eigh(e, nan, 5, { solver: 'gpu' })).rejects.toThrow(/NaN/);
    await expect(eigh(e, nan, 5, { solver: 'cpu' })).rejects.toThrow(/NaN/);
    const asym = randomSymmetric(6, 2);
    asym[1]! += 1e-3;
    await expect(eighGpu(e, asym, 6)).rejects.toThrow(/not symmetric/);
    // Rounding-level asymmetry (1e-8 relative) is accepted and symmetrised.
    const nearly = randomSymmetric(6, 2);
    nearly[1]! += 1e-8;
    await expect(eighGpu(e, nearly, 6)).resolves.toBeDefined();
    await expect(eighGpu(e, new Float64Array(4), 2, { maxSweeps: 0 })).rejects.toThrow(/maxSweeps/);
  });

  it('selfCheck passes', async () => {
    const r = await selfCheck(await engine());
    expect(r.ok, r.detail).toBe(true);
    expect(r.name).toMatch(/eigh/);
  });
});

describe('refineEig (CPU, float64)', () => {
  it('recovers float64 accuracy from a perturbed basis and leaves an exact one alone', () => {
    const n = 30;
    const a = randomSymmetric(n, 12);
    const ref = symEig(a, n);
    const g = gaussian(rng(3));
    const noisy = ref.vectors.map((x) => x + 1e-5 * g());
    const r = refineEig(a, n, { values: ref.values, vectors: noisy });
    expect(r.iterations).toBeGreaterThanOrEqual(1);
    expect(r.residual).toBeLessThan(1e-13);
    for (let k = 0; k < n; k++) expect(Math.abs(r.values[k]! - ref.values[k]!)).toBeLessThan(1e-12 * maxAbs(ref.values));
    expect(refineEig(a, n, ref).iterations).toBe(0);
  });

  it('separates a tight cluster by Rayleigh–Ritz and orthonormalises a degenerate one', () => {
    const lambda = [1, 1 + 1e-9, 1 + 2e-9, 0.5, 0.5, -3];
    const n = lambda.length;
    const a = withSpectrum(lambda, 8);
    const ref = symEig(a, n);
    const g = gaussian(rng(4));
    const noisy = ref.vectors.map((x) => x + 1e-4 * g());
    const r = refineEig(a, n, { values: ref.values, vectors: noisy });
    const q = eigQuality(a, n, r.values, r.vectors);
    expect(q.res).toBeLessThan(1e-13);
    expect(q.orth).toBeLessThan(1e-13);
    for (let k = 0; k < n; k++) expect(Math.abs(r.values[k]! - [...lambda].sort((x, y) => y - x)[k]!)).toBeLessThan(1e-12 * 3);
  });

  it('rejects mismatched approximations', () => {
    expect(() => refineEig(new Float64Array(4), 2, { values: [1], vectors: new Float64Array(4) })).toThrow(/expected n = 2/);
    expect(() => refineEig(new Float64Array(4), 2, { values: [1, 2], vectors: new Float64Array(3) })).toThrow(IbgpuError);
  });
});
