// mapCotangents (src/transformer/gpu-mdash-local.ts), Ĉᵀ X for the cotangent parts: the
// WebAssembly row products give the JS loop's bits, on shapes with r_out, d_out, w = 1, primes and
// widths that are not multiples of the kernel's 8-column blocks, with +0 and −0 entries in Ĉ
// (whole zero columns too) and in X.

import { describe, expect, it } from 'vitest';
import { mapCotangents } from '../src/transformer/gpu-mdash-local.js';
import { gaussian, rng } from './helpers/random.js';

function sparse(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  const r = rng(seed + 5);
  return Float64Array.from({ length: n }, () => {
    const x = r();
    return x < 0.15 ? 0 : x < 0.3 ? -0 : g();
  });
}

const SHAPES = [
  { rOut: 1, dOut: 1, w: 1 },
  { rOut: 3, dOut: 5, w: 7 },
  { rOut: 11, dOut: 13, w: 17 },
  { rOut: 29, dOut: 31, w: 64 },
];

describe('mapCotangents', () => {
  it.each(SHAPES.map((s, i) => [i, s] as const))('shape %i: WebAssembly = JS, bit for bit', (i, { rOut, dOut, w }) => {
    const Chat = sparse(dOut * rOut, 10 + i);
    for (let c = 0; c < dOut; c++) Chat[c * rOut + (rOut - 1)] = 0;
    const X = sparse(dOut * w, 20 + i);
    const js = mapCotangents(Chat, rOut, X, dOut, w, false);
    const got = mapCotangents(Chat, rOut, X, dOut, w);
    expect(got.length).toBe(rOut * w);
    for (let e = 0; e < js.length; e++) if (!Object.is(got[e], js[e])) expect([e, got[e]]).toEqual([e, js[e]]);
    // What it says: out[i, a] = Σ_c Ĉ[c, i] X[c, a] (to rounding).
    for (let a = 0; a < w; a++) {
      let want = 0;
      for (let c = 0; c < dOut; c++) want += Chat[c * rOut]! * X[c * w + a]!;
      expect(got[a]).toBeCloseTo(want, 12);
    }
  });
});
