// mulRows (src/host/mul-rows.ts) gives the same bits in WebAssembly and in its JS loops
// (IBGPU_HOST_WASM=0), for out = X·M and out += X·M, on shapes of 1, primes and widths that are not
// multiples of the SIMD lanes, with zero entries (+0 and −0) in X; and it equals X·M summed in
// float64 to 1e-13.

import { afterEach, describe, expect, it } from 'vitest';
import { mulRows } from '../src/host/mul-rows.js';
import { wasmMulRows } from '../src/host/rows-times-wasm.js';
import { gaussian, rng } from './helpers/random.js';

function values(n: number, seed: number, zeros: number): Float64Array {
  const g = gaussian(rng(seed));
  const u = rng(seed + 1);
  return Float64Array.from({ length: n }, () => (u() < zeros ? (u() < 0.5 ? 0 : -0) : g()));
}

afterEach(() => {
  delete process.env['IBGPU_HOST_WASM'];
});

describe('mulRows: WebAssembly and JS, the same bits', () => {
  for (const [rows, k, n] of [
    [1, 1, 1],
    [3, 7, 5],
    [13, 31, 17],
    [8, 64, 33],
  ] as const) {
    it(`${rows} × ${k} · ${k} × ${n}`, () => {
      const X = values(rows * k, rows + k, 0.4);
      const M = values(k * n, k + n, 0);
      const start = values(rows * n, n, 0);
      const run = (): Float64Array[] => [mulRows(X, rows, k, M, n), mulRows(X, rows, k, M, n, Float64Array.from(start), true)];
      // Two implementations compared: WebAssembly runs here unless switched off.
      expect(wasmMulRows(X, k, M, n, 0, rows, new Float64Array(rows * n))).toBe(true);
      const [wasm, wasmAdd] = run();
      process.env['IBGPU_HOST_WASM'] = '0';
      const [js, jsAdd] = run();
      expect(Array.from(js!)).toEqual(Array.from(wasm!));
      expect(Array.from(jsAdd!)).toEqual(Array.from(wasmAdd!));
      for (let i = 0; i < rows; i++)
        for (let c = 0; c < n; c++) {
          let ref = 0;
          for (let a = 0; a < k; a++) ref += X[i * k + a]! * M[a * n + c]!;
          expect(Math.abs(js![i * n + c]! - ref)).toBeLessThanOrEqual(1e-13 * Math.max(1, Math.abs(ref)));
          expect(Math.abs(jsAdd![i * n + c]! - (start[i * n + c]! + ref))).toBeLessThanOrEqual(1e-13 * Math.max(1, Math.abs(ref)));
        }
    });
  }
});
