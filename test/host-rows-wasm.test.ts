// The WebAssembly SIMD row products of the transformer host forward (src/host/rows-times-wasm.ts
// over src/host/wasm/edge_inputs.wat) give the same bits as the JS loops of
// src/host/transformer-forward.ts (mulRowsF64, actSectionFinish), which are checked against a
// plain float64 reference here as well: shapes of 1, primes and widths that are not multiples of
// the kernel's 8-column block, inputs with zeros (and −0) that both sides skip, ReLU and GELU, row
// ranges that start inside the matrix, products of several sizes in a row on one thread (the
// kept instance is replaced by a larger one), adding into the output, and IBGPU_HOST_WASM=0.

import { afterEach, describe, expect, it } from 'vitest';
import { actSectionFinish, mulRowsF64, tableRowsTimes, type ActSectionMaps } from '../src/host/transformer-forward.js';
import { wasmActSectionFinish, wasmMulRows, wasmTableRowsTimes } from '../src/host/rows-times-wasm.js';
import { act } from '../src/model/activations.js';
import { gaussian, rng } from './helpers/random.js';

function randn(n: number, seed: number, zeros = 0): Float64Array {
  const g = gaussian(rng(seed));
  const u = rng(seed + 1);
  return Float64Array.from({ length: n }, () => {
    const z = u();
    if (z < zeros / 2) return 0;
    if (z < zeros) return -0;
    return g();
  });
}

/** Indices where a and b differ as float64 bit patterns (Object.is: −0 ≠ 0, NaN = NaN). */
function bitDiffs(a: Float64Array, b: Float64Array): number[] {
  expect(b.length).toBe(a.length);
  const out: number[] = [];
  for (let t = 0; t < a.length; t++) if (!Object.is(a[t], b[t])) out.push(t);
  return out;
}

/** Max |a − b| / max(1, |b|). */
function relErr(a: Float64Array, b: Float64Array): number {
  let e = 0;
  for (let t = 0; t < a.length; t++) e = Math.max(e, Math.abs(a[t]! - b[t]!) / Math.max(1, Math.abs(b[t]!)));
  return e;
}

/** X·M by the textbook triple loop (the float64 reference). */
function refMul(X: Float64Array, rows: number, k: number, M: Float64Array, n: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let i = 0; i < rows; i++)
    for (let c = 0; c < n; c++) {
      let acc = 0;
      for (let a = 0; a < k; a++) acc += X[i * k + a]! * M[a * n + c]!;
      out[i * n + c] = acc;
    }
  return out;
}

const shapes = [
  { rows: 1, k: 1, n: 1 },
  { rows: 3, k: 1, n: 9 },
  { rows: 7, k: 13, n: 5 },
  { rows: 11, k: 17, n: 8 },
  { rows: 5, k: 31, n: 23 },
  { rows: 13, k: 64, n: 129 },
  { rows: 4, k: 128, n: 512 },
];

afterEach(() => {
  delete process.env['IBGPU_HOST_WASM'];
});

describe('wasmMulRows = mulRowsF64, bit for bit', () => {
  for (const [si, { rows, k, n }] of shapes.entries()) {
    for (const zeros of [0, 0.5]) {
      it(`${rows} × ${k} · ${k} × ${n}, ${zeros * 100} % zeros`, () => {
        const X = randn(rows * k, 10 + si, zeros);
        const M = randn(k * n, 50 + si);
        const js = new Float64Array(rows * n).fill(7);
        mulRowsF64(X, k, M, n, 0, rows, js);
        expect(relErr(js, refMul(X, rows, k, M, n))).toBeLessThan(1e-13);
        const wa = new Float64Array(rows * n).fill(-3);
        expect(wasmMulRows(X, k, M, n, 0, rows, wa)).toBe(true);
        expect(bitDiffs(wa, js)).toEqual([]);
        // add: out += X·M, each entry's terms added to it in order (the JS loop without the reset).
        const base = randn(rows * n, 30 + si);
        const jsAdd = Float64Array.from(base);
        for (let i = 0; i < rows; i++)
          for (let a = 0; a < k; a++) {
            const v = X[i * k + a]!;
            if (v === 0) continue;
            for (let c = 0; c < n; c++) jsAdd[i * n + c]! += v * M[a * n + c]!;
          }
        const waAdd = Float64Array.from(base);
        expect(wasmMulRows(X, k, M, n, 0, rows, waAdd, true)).toBe(true);
        expect(bitDiffs(waAdd, jsAdd)).toEqual([]);
        // A range of rows leaves the others alone.
        if (rows > 2) {
          const part = new Float64Array(rows * n).fill(5);
          expect(wasmMulRows(X, k, M, n, 1, rows - 1, part)).toBe(true);
          expect(bitDiffs(part.subarray(n, (rows - 1) * n), js.subarray(n, (rows - 1) * n))).toEqual([]);
          expect(part[0]).toBe(5);
          expect(part[rows * n - 1]).toBe(5);
        }
      });
    }
  }

  it('falls back (answers false, writes nothing) with IBGPU_HOST_WASM=0', () => {
    process.env['IBGPU_HOST_WASM'] = '0';
    const X = randn(2 * 3, 1);
    const M = randn(3 * 4, 2);
    const out = new Float64Array(8).fill(1);
    expect(wasmMulRows(X, 3, M, 4, 0, 2, out)).toBe(false);
    expect([...out]).toEqual(new Array(8).fill(1));
    const mp: ActSectionMaps = { act: 'relu', d: 1, m: 3, dOut: 4, A: new Float64Array(3), S: new Float64Array(4), R: M };
    expect(wasmActSectionFinish(mp, 0, 2, X, out)).toBe(false);
    expect([...out]).toEqual(new Array(8).fill(1));
  });
});

describe('wasmActSectionFinish = actSectionFinish, bit for bit', () => {
  for (const activation of ['relu', 'gelu'] as const) {
    for (const [si, { rows, k: m, n: dOut }] of shapes.entries()) {
      it(`${activation}: ${rows} rows, m ${m}, d_out ${dOut}`, () => {
        const mp: ActSectionMaps = { act: activation, d: 1, m, dOut, A: new Float64Array(m), S: new Float64Array(dOut), R: randn(m * dOut, 90 + si) };
        const x = randn(rows * m, 70 + si, 0.2);
        const base = randn(rows * dOut, 80 + si);
        const js = Float64Array.from(base);
        actSectionFinish(mp, 0, rows, x, js);
        // Reference: base + act(x)·R.
        const y = x.map((v) => act(activation, v));
        const ref = refMul(y, rows, m, mp.R, dOut).map((v, t) => v + base[t]!);
        expect(relErr(js, ref)).toBeLessThan(1e-13);
        const wa = Float64Array.from(base);
        expect(wasmActSectionFinish(mp, 0, rows, x, wa)).toBe(true);
        expect(bitDiffs(wa, js)).toEqual([]);
      });
    }
  }
});

describe('wasmTableRowsTimes = tableRowsTimes, bit for bit', () => {
  for (const [P, heads, R, w, N] of [
    [1, 1, 1, 1, 1],
    [3, 4, 7, 13, 29],
    [2, 3, 5, 8, 17],
    [3, 2, 11, 37, 41],
  ] as const) {
    it(`P ${P}, ${heads} heads, ${R} rows, width ${w}, ${N} samples`, () => {
      const u = rng(P * 100 + w);
      const ids = Int32Array.from({ length: N * P }, () => Math.floor(u() * R));
      // Softmax-like rows with some exact zeros (masked positions), which both sides skip.
      const probs = Float64Array.from({ length: N * heads * P }, () => (u() < 0.2 ? 0 : u()));
      const resM = randn(R * w, w + 1);
      const vzM = randn(R * heads * w, w + 2);
      const js = new Float64Array(N * w).fill(9);
      tableRowsTimes({ shape: { P, heads }, ids, probs }, { resM, vzM, w }, 0, N, js);
      // Reference: resM(ρ_t*) + Σ p vzM(ρ_u, h).
      for (let n = 0; n < N; n++)
        for (let k = 0; k < w; k++) {
          let v = resM[ids[n * P + P - 1]! * w + k]!;
          for (let h = 0; h < heads; h++) for (let q = 0; q < P; q++) v += probs[(n * heads + h) * P + q]! * vzM[(ids[n * P + q]! * heads + h) * w + k]!;
          expect(Math.abs(js[n * w + k]! - v)).toBeLessThan(1e-12 * Math.max(1, Math.abs(v)));
        }
      const wa = new Float64Array(N * w).fill(-9);
      expect(wasmTableRowsTimes({ shape: { P, heads }, ids, probs }, { resM, vzM, w }, 0, N, wa)).toBe(true);
      expect(bitDiffs(wa, js)).toEqual([]);
    });
  }
});
