// The host forward pass with WebAssembly SIMD sums (src/host/mlp-forward-wasm.ts) gives
// forwardRowsHost's bits (src/host/mlp-forward.ts, itself equal to the float64 reference
// forwardSampleF64): widths of 1, primes and non-multiples of the kernel's 8-column block, sparse
// and dense inputs, every activation, upTo below the depth, zero rows and a forwarder reused
// across calls (its buffers reused at a smaller size). Compared with toEqual (no tolerance).
import { describe, expect, it } from 'vitest';
import type { ForwardLayer } from '../src/cpu/mlp-forward.js';
import { forwardRowsHost } from '../src/host/mlp-forward.js';
import { hostForwardRows, wasmForwardRows } from '../src/host/mlp-forward-wasm.js';
import type { Activation } from '../src/model/activations.js';
import { gaussian, rng } from './helpers/random.js';

function layersOf(widths: number[], acts: Activation[], seed: number): ForwardLayer[] {
  const g = gaussian(rng(seed));
  return widths.slice(1).map((dOut, i) => ({
    dIn: widths[i]!,
    dOut,
    W: Float32Array.from({ length: widths[i]! * dOut }, () => g() / Math.sqrt(widths[i]!)),
    b: Float32Array.from({ length: dOut }, () => 0.1 * g()),
    activation: acts[i % acts.length]!,
  }));
}

/** rows × d inputs, a fraction `density` non-zero (MNIST-like when < 1). */
function inputs(rows: number, d: number, density: number, seed: number): Float32Array {
  const u = rng(seed);
  return Float32Array.from({ length: rows * d }, () => (u() < density ? u() : 0));
}

const CASES: [string, number[], Activation[], number][] = [
  ['widths of 1', [1, 1, 1], ['relu'], 1],
  ['MNIST-like sparse input', [97, 13, 29, 10], ['relu', 'relu', 'identity'], 0.19],
  ['dense input, smooth activations', [31, 17, 8, 9], ['gelu', 'gelu_tanh', 'identity'], 1],
  ['multiples of the block', [16, 8, 24], ['relu', 'identity'], 0.5],
];

describe('wasmForwardRows', () => {
  it('runs in Node (so the tests below are not vacuous)', () => {
    expect(wasmForwardRows({ layers: layersOf([3, 2], ['relu'], 0) })).toBeDefined();
  });

  it.each(CASES)('%s: bit-identical to forwardRowsHost for every upTo', (_label, widths, acts, density) => {
    const model = { layers: layersOf(widths, acts, widths.length + widths[0]!) };
    const fw = wasmForwardRows(model)!;
    for (const rows of [0, 1, 37, 5]) {
      // 5 after 37: buffers reused at a smaller size
      const x = inputs(rows, widths[0]!, density, rows + 3);
      if (rows > 2) x.fill(0, 0, widths[0]); // an all-zero row
      for (let upTo = 0; upTo <= model.layers.length; upTo++) {
        const want = forwardRowsHost(model, x, rows, upTo);
        const got = fw(x, rows, upTo);
        expect(got.rows).toBe(rows);
        expect(got.acts.map((a) => Array.from(a))).toEqual(want.acts.map((a) => Array.from(a)));
        expect(got.pres.map((a) => Array.from(a))).toEqual(want.pres.map((a) => Array.from(a)));
      }
    }
  });

  it('hostForwardRows falls back to the JS pass with IBGPU_HOST_WASM=0 (same bits)', () => {
    const model = { layers: layersOf([29, 11, 5], ['relu', 'identity'], 5) };
    const x = inputs(9, 29, 0.3, 6);
    const wasmRes = hostForwardRows(model)(x, 9, 2);
    process.env['IBGPU_HOST_WASM'] = '0';
    try {
      expect(wasmForwardRows(model)).toBeUndefined();
      const js = hostForwardRows(model)(x, 9, 2);
      expect(js.acts.map((a) => Array.from(a))).toEqual(wasmRes.acts.map((a) => Array.from(a)));
    } finally {
      delete process.env['IBGPU_HOST_WASM'];
    }
  });

  it('refuses a bad upTo or too few values', () => {
    const model = { layers: layersOf([4, 3], ['relu'], 7) };
    const fw = wasmForwardRows(model)!;
    expect(() => fw(new Float32Array(8), 2, 2)).toThrow(/upTo/);
    expect(() => fw(new Float32Array(7), 2, 1)).toThrow(/expected rows\*d/);
  });
});
