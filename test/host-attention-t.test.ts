// T^{a,h} = Σ_k Y_k^a dz_k^hᵀ of the attention closed form (src/host/attention-t.ts): the
// WebAssembly row products give the JS loops' bits, on shapes with K, d, dV = 1, primes and widths
// that are not multiples of the kernel's 8-column blocks, with +0 and −0 entries in Y and dz; and
// the blocks Z = ΩQ Qᵀ + ΩK Kᵀ of X_m (omegaRows) in WebAssembly, bit for bit, d odd and even.

import { describe, expect, it } from 'vitest';
import { attentionT, omegaRows } from '../src/host/attention-t.js';
import { wasmOmegaRowsKernel } from '../src/host/attention-mdash-wasm.js';
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

describe('omegaRows', () => {
  it.each([
    [1, 1, 1],
    [2, 3, 5],
    [7, 13, 4],
    [32, 129, 32],
  ] as const)('dV %i, d %i, dHead %i: WebAssembly = JS, bit for bit', (dV, d, dH) => {
    const m = 3 * dH + 2;
    const J = sparse(d * m, d + 1);
    const omq = sparse(dV * dH, dV + 2);
    const omk = sparse(dV * dH, dV + 3);
    const qc = 2 + dH,
      kc = 1;
    const want = new Float64Array(dV * d);
    omegaRows(omq, omk, J, m, qc, kc, d, dV, dH, want);
    const zk = wasmOmegaRowsKernel(d, dV, dH)!;
    expect(zk).toBeDefined();
    zk.omq.set(omq);
    zk.omk.set(omk);
    for (let i = 0; i < d; i++)
      for (let c = 0; c < dH; c++) {
        zk.jqt[c * d + i] = J[i * m + qc + c]!;
        zk.jkt[c * d + i] = J[i * m + kc + c]!;
      }
    zk.run();
    for (let e = 0; e < want.length; e++) if (!Object.is(zk.zm[e], want[e])) expect([e, zk.zm[e]]).toEqual([e, want[e]]);
  });
});
