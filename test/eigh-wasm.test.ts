// The host eigensolver's WebAssembly SIMD kernels (src/host/eigh-wasm.ts, src/host/wasm/eigh.wat)
// against the JS reference kernels of src/cpu/eigh.ts. The contract is exact: every kernel, and
// so the whole solve, gives the reference's bits, so these tests compare with toEqual (no
// tolerance). Kernels are checked one by one on random operands (orders 1, 2, odd, even, prime;
// every step k, column ranges with odd ends, row strides > 1), the whole solver on random,
// graded, clustered and rank-deficient spectra; and its accuracy where the answer is known
// (withSpectrum): eigenvalues within 1e-13·n·max|λ| and residual ‖AV − VΛ‖_F ≤ 1e-13·n·‖A‖_F
// (backward stability gives c·n·ε with c ~ 0.1 measured, ε ≈ 2.2e-16).
import { describe, expect, it } from 'vitest';
import { JS_KERNELS, symEig, symEigReduce, type EighKernels } from '../src/cpu/eigh.js';
import { symEigHost, symEigReduceHost, wasmEigAvailable, wasmEighKernels, WASM_EIG_MIN_ORDER } from '../src/host/eigh-wasm.js';
import { gaussian, rng } from './helpers/random.js';
import { randomSymmetric, rankDeficientGram, withSpectrum } from './helpers/spectra.js';
import { eigQuality } from './helpers/eig-quality.js';

function randn(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  return Float64Array.from({ length: n }, () => g());
}

/** The wasm kernels and workspace for order n (the module must run in Node: not vacuous). */
function wasm(n: number): { ws: NonNullable<ReturnType<typeof wasmEighKernels>>['ws']; kern: EighKernels } {
  const k = wasmEighKernels(n);
  if (!k) throw new Error('the eigh WebAssembly module does not run here');
  return k;
}

const ORDERS = [1, 2, 3, 4, 7, 16, 31, 64];

describe('eigh WebAssembly kernels', () => {
  it('run in Node (so the tests below are not vacuous)', () => {
    expect(wasmEigAvailable()).toBe(true);
  });

  it.each(ORDERS)('symvUpper and rank2Upper give the reference bits at n = %i, every step k', (n) => {
    const { ws, kern } = wasm(n);
    for (let k = 0; k < n; k++) {
      const w0 = randn(n * n, 10 * n + k);
      const p0 = randn(n, 20 * n + k);
      const wj = Float64Array.from(w0);
      const pj = Float64Array.from(p0);
      ws.w.set(w0);
      ws.p.set(p0);
      JS_KERNELS.symvUpper(wj, n, k, pj);
      kern.symvUpper(ws.w, n, k, ws.p);
      expect(Array.from(ws.p), `symv k=${k}`).toEqual(Array.from(pj));
      JS_KERNELS.rank2Upper(wj, n, k, pj);
      kern.rank2Upper(ws.w, n, k, ws.p);
      expect(Array.from(ws.w), `rank2 k=${k}`).toEqual(Array.from(wj));
    }
  });

  it.each(ORDERS)('accumulatePair and accumulateSingle give the reference bits at n = %i (strides 1..3)', (n) => {
    const { ws, kern } = wasm(n);
    for (let lo = 0; lo < n; lo++) {
      for (const step of [1, 2, 3]) {
        const i0 = Math.min(n - 1, lo + (lo % step));
        const z0 = randn(n * n, 100 * n + lo + 7 * step);
        const va = randn(n, 3 * lo + step);
        const vb = randn(n, 5 * lo + step + 1);
        const [vab, b1, b2] = randn(3, lo + 11 * step);
        const zj = Float64Array.from(z0);
        ws.zt.set(z0);
        ws.p.set(va);
        ws.vb.set(vb);
        JS_KERNELS.accumulatePair(zj, n, lo, va, vb, vab!, b1!, b2!, i0, step);
        kern.accumulatePair(ws.zt, n, lo, ws.p, ws.vb, vab!, b1!, b2!, i0, step);
        expect(Array.from(ws.zt), `pair lo=${lo} step=${step}`).toEqual(Array.from(zj));
        JS_KERNELS.accumulateSingle(zj, n, va, b1!, i0, step);
        kern.accumulateSingle(ws.zt, n, ws.p, b1!, i0, step);
        expect(Array.from(ws.zt), `single lo=${lo} step=${step}`).toEqual(Array.from(zj));
      }
    }
  });

  it.each(ORDERS.filter((n) => n >= 2))('rotationChain gives the reference bits at n = %i (chains of 1..n-1 rotations, odd column ranges, offsets)', (n) => {
    const { ws, kern } = wasm(n);
    for (let lo = 0; lo < n - 1; lo++) {
      for (const hi of [lo, Math.min(n - 2, lo + 2), Math.min(n - 2, lo + 5), n - 2]) {
        for (const [k0, k1] of [
          [0, n],
          [1, n],
          [0, Math.max(1, n - 1)],
          [Math.floor(n / 3), Math.ceil((2 * n) / 3)],
        ] as const) {
          const off = (lo * 7) % 3; // coefficients of rotation i at i + off
          const angle = randn(n + 3, 1000 * n + 10 * lo + hi);
          const cs = new Float64Array(n);
          const sn = new Float64Array(n);
          for (let i = 0; i < n; i++) {
            cs[i] = Math.cos(angle[i]!);
            sn[i] = Math.sin(angle[i]!);
          }
          const z0 = randn(n * n, 7 * n + lo + hi + k0);
          const zj = Float64Array.from(z0);
          ws.zt.set(z0);
          ws.cs.set(cs);
          ws.sn.set(sn);
          JS_KERNELS.rotationChain(zj, n, cs, sn, lo, hi, k0, k1, 0);
          kern.rotationChain(ws.zt, n, ws.cs, ws.sn, lo, hi, k0, k1, 0);
          expect(Array.from(ws.zt), `lo=${lo} hi=${hi} cols ${k0}..${k1}`).toEqual(Array.from(zj));
          if (hi + off < n) {
            JS_KERNELS.rotationChain(zj, n, cs, sn, lo, hi, k0, k1, off);
            kern.rotationChain(ws.zt, n, ws.cs, ws.sn, lo, hi, k0, k1, off);
            expect(Array.from(ws.zt), `lo=${lo} hi=${hi} off=${off}`).toEqual(Array.from(zj));
          }
        }
      }
    }
  });

  it('refuses arrays outside its workspace', () => {
    const { kern } = wasm(8);
    expect(() => kern.symvUpper(new Float64Array(64), 8, 0, new Float64Array(8))).toThrow(/outside the WebAssembly workspace/);
  });
});

function graded(n: number): number[] {
  return Array.from({ length: n }, (_, i) => 10 ** (-12 * (i / Math.max(1, n - 1))) * (i % 3 === 0 ? -1 : 1));
}

function clustered(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i < n / 2 ? 1 + 1e-12 * i : -2 + 1e-9 * i));
}

const MATRICES: [string, number, () => Float64Array][] = [
  ['1×1', 1, () => Float64Array.of(-2.5)],
  ['zero', 30, () => new Float64Array(900)],
  ['odd, indefinite', 37, () => randomSymmetric(37, 1)],
  ['prime, positive definite', 101, () => rankDeficientGram(101, 101, 2)],
  ['rank-deficient (rank 9 of 64)', 64, () => rankDeficientGram(64, 9, 3)],
  ['graded over 12 decades, mixed signs', 97, () => withSpectrum(graded(97), 4)],
  ['two tight clusters', 60, () => withSpectrum(clustered(60), 5)],
  ['even, larger', 256, () => randomSymmetric(256, 6)],
  ['asymmetric input (symmetrised)', 41, () => randn(41 * 41, 7)],
];

describe('symEigHost', () => {
  it.each(MATRICES)('%s: bit-identical to symEig (values and vectors)', (_label, n, make) => {
    const a = make();
    const want = symEig(a, n);
    const got = symEigHost(a, n);
    expect(Array.from(got.values)).toEqual(Array.from(want.values));
    expect(Array.from(got.vectors)).toEqual(Array.from(want.vectors));
  });

  it.each(MATRICES)('%s: symEigReduceHost is bit-identical to symEigReduce', (_label, n, make) => {
    const a = make();
    const want = symEigReduce(a, n);
    const got = symEigReduceHost(a, n);
    expect(got).toEqual(want);
  });

  it.each([
    ['graded', 120, graded(120)],
    ['clustered', 90, clustered(90)],
  ] as const)('%s spectrum: accurate (eigenvalues to 1e-13·n·max|λ|, residual to 1e-13·n·‖A‖)', (_label, n, lambda) => {
    const a = withSpectrum(lambda, 9);
    const { values, vectors } = symEigHost(a, n);
    const want = [...lambda].sort((x, y) => y - x);
    const lmax = Math.max(...lambda.map(Math.abs));
    for (let k = 0; k < n; k++) expect(Math.abs(values[k]! - want[k]!)).toBeLessThanOrEqual(1e-13 * n * lmax);
    expect(eigQuality(a, n, values, vectors).res).toBeLessThanOrEqual(1e-13 * n);
  });

  it('small orders take the JS solver (same bits either way)', () => {
    const n = WASM_EIG_MIN_ORDER - 1;
    const a = randomSymmetric(n, 8);
    expect(symEigHost(a, n)).toEqual(symEig(a, n));
  });
});
