// The host's WebAssembly SIMD matrix product (src/host/matmul.ts, src/host/wasm/matmul.wat) gives
// matmulF64's bits (src/cpu/matmul.ts, the float64 reference): shapes of 1, primes and
// non-multiples of the 4 × 4 block and of the 64-column panel, every transpose, products above
// and below the size where it takes over, and the shapes it leaves to the reference (batched,
// scaled). Compared with toEqual (no tolerance).
import { describe, expect, it } from 'vitest';
import { matmulF64, type MatmulShape } from '../src/cpu/matmul.js';
import { matmulHost, WASM_MATMUL_MIN_WORK } from '../src/host/matmul.js';
import { gaussian, rng } from './helpers/random.js';

function randn(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  return Float64Array.from({ length: n }, () => g());
}

const SHAPES: [number, number, number][] = [
  [1, 1, 40000],
  [40000, 1, 1],
  [3, 67, 211],
  [97, 131, 5],
  [64, 64, 64],
  [130, 65, 33],
  [257, 101, 101],
];

describe('matmulHost', () => {
  it.each(SHAPES)('%i×%i (k = %i): bit-identical to matmulF64 for every transpose', (m, n, k) => {
    expect(m * n * k).toBeGreaterThanOrEqual(WASM_MATMUL_MIN_WORK); // the WebAssembly path
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randn(m * k, m + 3 * k);
        const b = randn(k * n, n + 5 * k);
        const shape: MatmulShape = { m, n, k, transA, transB };
        expect(Array.from(matmulHost(a, b, shape)), `transA ${transA} transB ${transB}`).toEqual(Array.from(matmulF64(a, b, shape)));
      }
    }
  });

  it('sparse operands (exact zeros, -0) and plain arrays give the reference bits', () => {
    const m = 45,
      n = 38,
      k = 61;
    const a = randn(m * k, 1).map((v, i) => (i % 3 === 0 ? 0 : i % 7 === 0 ? -0 : v));
    const b = Array.from(randn(k * n, 2), (v, i) => (i % 5 === 0 ? 0 : v));
    expect(Array.from(matmulHost(a, b, { m, n, k }))).toEqual(Array.from(matmulF64(a, b, { m, n, k })));
  });

  it('small, batched and scaled products are the reference itself', () => {
    const a = randn(2 * 40 * 40, 3);
    const b = randn(2 * 40 * 40, 4);
    const c = randn(2 * 40 * 40, 5);
    for (const shape of [
      { m: 4, n: 5, k: 6 },
      { m: 40, n: 40, k: 40, batch: 2 },
      { m: 40, n: 40, k: 40, alpha: 0.5, beta: 2 },
    ] as MatmulShape[]) {
      expect(Array.from(matmulHost(a, b, shape, c))).toEqual(Array.from(matmulF64(a, b, shape, c)));
    }
  });

  it('a larger product after a smaller one (the kept memory grows) and again after it', () => {
    for (const [m, n, k] of [
      [40, 40, 40],
      [300, 200, 150],
      [50, 60, 70],
    ] as const) {
      const a = randn(m * k, m);
      const b = randn(k * n, n);
      expect(Array.from(matmulHost(a, b, { m, n, k }))).toEqual(Array.from(matmulF64(a, b, { m, n, k })));
    }
  });
});
