// The input Gram's WebAssembly accumulator (src/host/sparse-gram.ts, src/host/wasm/sparse_gram.wat)
// and its host-thread feed (src/host/sparse-gram-thread.ts) give the bits of the float64 reference
// SparseGramF64 (src/cpu/sparse-gram.ts): widths of 1, primes and a row of 785, densities from
// empty to full (so the unrolled pair loop ends at every remainder), -0 entries, batches that
// straddle the copy chunk, shifted and unshifted Grams. Compared with toEqual (no tolerance).
import { describe, expect, it } from 'vitest';
import { SparseGramF64 } from '../src/cpu/sparse-gram.js';
import { hostSparseGram } from '../src/host/sparse-gram.js';
import { startSparseGram } from '../src/host/sparse-gram-thread.js';
import { rng } from './helpers/random.js';

function rows(n: number, d: number, density: number, seed: number): Float32Array {
  const u = rng(seed);
  return Float32Array.from({ length: n * d }, () => {
    const r = u();
    if (r >= density) return r < density + 0.01 ? -0 : 0;
    return 2 * u() - 1;
  });
}

describe('hostSparseGram', () => {
  it('runs the WebAssembly accumulator in Node (so the tests below are not vacuous)', () => {
    expect(hostSparseGram(4).constructor.name).toBe('WasmSparseGram');
  });

  it.each([
    [1, 0.5],
    [2, 1],
    [5, 0.6],
    [13, 0.19],
    [97, 0.05],
    [97, 1],
    [785, 0.19],
  ])('d = %i, density %f: bit-identical to SparseGramF64 over several batches', (d, density) => {
    const ref = new SparseGramF64(d);
    const acc = hostSparseGram(d);
    const sizes = d > 100 ? [3, 40, 0, 17] : [1, 1300, 0, 7]; // 1300 rows straddle the 1024-row chunk
    sizes.forEach((n, i) => {
      const x = rows(n, d, density, 31 * d + i);
      ref.add(x, n);
      acc.add(x, n);
    });
    expect(acc.rows).toBe(ref.rows);
    expect(Array.from(acc.sums())).toEqual(Array.from(ref.sums()));
    expect(Array.from(acc.gram())).toEqual(Array.from(ref.gram()));
    const shift = Float64Array.from({ length: d }, (_, i) => 0.01 * i - 0.2);
    expect(Array.from(acc.gram(shift))).toEqual(Array.from(ref.gram(shift)));
  });

  it('refuses too few values or a bad width', () => {
    expect(() => hostSparseGram(3).add(new Float32Array(5), 2)).toThrow(/expected rows\*d/);
    expect(() => hostSparseGram(0)).toThrow(/positive integer/);
  });
});

describe('startSparseGram', () => {
  it('on a host thread: the reference bits, the caller keeping its rows', async () => {
    const d = 61;
    const feed = await startSparseGram(d);
    expect(feed.threaded).toBe(true);
    const ref = new SparseGramF64(d);
    for (let b = 0; b < 4; b++) {
      const x = rows(50, d, 0.2, b);
      const keep = Float32Array.from(x);
      feed.add(x, 50);
      expect(Array.from(x)).toEqual(Array.from(keep)); // copied, not moved
      ref.add(x, 50);
    }
    const shift = Float64Array.from({ length: d }, (_, i) => i / d);
    const r = await feed.result(shift);
    expect(r.n).toBe(200);
    expect(Array.from(r.sum)).toEqual(Array.from(ref.sums()));
    expect(Array.from(r.gram)).toEqual(Array.from(ref.gram(shift)));
    feed.dispose(); // a no-op after result
  });
});
