// T^{a,h} = Σ_k Y_k^a dz_k^hᵀ of the attention closed form (src/host/attention-t.ts): the
// WebAssembly row products give the JS loops' bits, on shapes with K, d, dV = 1, primes and widths
// that are not multiples of the kernel's 8-column blocks, with +0 and −0 entries in Y and dz.

import { describe, expect, it } from 'vitest';
import { attentionT } from '../src/host/attention-t.js';
import { gaussian, rng } from './helpers/random.js';

function sparse(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  const r = rng(seed + 3);
  return Float64Array.from({ length: n }, () => {
    const x = r();
    return x < 0.15 ? 0 : x < 0.3 ? -0 : g();
  });
}

const SHAPES = [
  { A: 2, H: 1, K: 1, d: 1, dV: 1 },
  { A: 3, H: 2, K: 5, d: 7, dV: 3 },
  { A: 4, H: 3, K: 13, d: 11, dV: 9 },
  { A: 5, H: 4, K: 31, d: 17, dV: 32 },
];

describe('attentionT', () => {
  it.each(SHAPES.map((s, i) => [i, s] as const))('shape %i: WebAssembly = JS, bit for bit', (i, { A, H, K, d, dV }) => {
    const Y = Array.from({ length: A }, (_, a) => sparse(K * d, 10 * i + a));
    const DZ = sparse(K * H * dV, 100 + i);
    const js = attentionT(Y, DZ, K, d, H, dV, false);
    const got = attentionT(Y, DZ, K, d, H, dV);
    expect(got.length).toBe(A * H);
    for (let b = 0; b < js.length; b++)
      for (let e = 0; e < js[b]!.length; e++) if (!Object.is(got[b]![e], js[b]![e])) expect([b, e, got[b]![e]]).toEqual([b, e, js[b]![e]]);
    // And the sums are what they say: T^{a,h}[i, j] = Σ_k Y^a[k, i] dz[k, h·dV + j] (to rounding).
    const a = A - 1,
      h = H - 1;
    for (let ii = 0; ii < d; ii++)
      for (let j = 0; j < dV; j++) {
        let want = 0;
        for (let k = 0; k < K; k++) want += Y[a]![k * d + ii]! * DZ[k * H * dV + h * dV + j]!;
        expect(got[a * H + h]![ii * dV + j]).toBeCloseTo(want, 12);
      }
  });
});
