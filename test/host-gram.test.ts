// The host statistics pass's dense Gram in WebAssembly SIMD (src/host/gram.ts) gives gramF64's
// bits (src/cpu/gram.ts, the float64 reference): widths of 1, primes and non-multiples of 4, row
// counts below, at and across the 128-row block (a padded last block), with and without a shift,
// exact zeros (ReLU outputs). Compared with toEqual (no tolerance).
import { describe, expect, it } from 'vitest';
import { GRAM_ROW_BLOCK, gramF64 } from '../src/cpu/gram.js';
import { gramHost } from '../src/host/gram.js';
import { gaussian, rng } from './helpers/random.js';

function reluRows(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  return Float64Array.from({ length: n }, () => Math.max(0, g()));
}

describe('gramHost', () => {
  it.each([
    [1, 1],
    [7, 3],
    [GRAM_ROW_BLOCK, 13],
    [GRAM_ROW_BLOCK + 1, 101],
    [1000, 100],
    [300, 64],
  ])('%i rows of width %i: bit-identical to gramF64, shifted or not', (rows, d) => {
    const x = reluRows(rows * d, rows + d);
    const shift = Float64Array.from({ length: d }, (_, i) => 0.3 + 0.01 * i);
    expect(Array.from(gramHost(x, rows, d))).toEqual(Array.from(gramF64(x, rows, d)));
    expect(Array.from(gramHost(x, rows, d, shift))).toEqual(Array.from(gramF64(x, rows, d, shift)));
  });

  it('no rows: zeros; bad shapes are refused', () => {
    expect(Array.from(gramHost(new Float64Array(0), 0, 3))).toEqual(new Array(9).fill(0));
    expect(() => gramHost(new Float64Array(5), 2, 3)).toThrow(/expected rows\*d/);
    expect(() => gramHost(new Float64Array(6), 2, 3, [1, 2])).toThrow(/shift has length/);
  });
});
