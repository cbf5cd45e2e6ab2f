// The WebAssembly kernel of the attention M′ sums' per-sample ds, β and row-space accumulators
// (src/host/attention-mdash-wasm.ts) against its JS references (tableSampleDs and tableSampleRows in
// attention-table-sums.ts, sampleBeta in attention-sums.ts), bit for bit: random shapes with one
// head, one position, one cotangent, primes and widths that are not multiples of the kernel's
// two-lane pairs (H·P, dHead, dV odd), softmax rows with masked (+0) and −0 entries, ds and β with
// +0 and −0 entries and whole zero columns, rows repeated across samples and within one.

import { describe, expect, it } from 'vitest';
import { sampleBeta, type AttentionShape } from '../src/host/attention-sums.js';
import { rowAccumulators, rowScratch, tableSampleDs, tableSampleRows } from '../src/host/attention-table-sums.js';
import { wasmTableSampleKernel } from '../src/host/attention-mdash-wasm.js';
import { gaussian, rng } from './helpers/random.js';

const SHAPES: { H: number; P: number; K: number; R: number; dH: number; dV: number }[] = [
  { H: 1, P: 1, K: 1, R: 1, dH: 1, dV: 1 },
  { H: 1, P: 2, K: 3, R: 4, dH: 2, dV: 3 },
  { H: 2, P: 3, K: 5, R: 7, dH: 5, dV: 7 },
  { H: 3, P: 3, K: 13, R: 11, dH: 8, dV: 4 },
  { H: 4, P: 3, K: 17, R: 9, dH: 32, dV: 32 },
  { H: 5, P: 7, K: 2, R: 3, dH: 3, dV: 11 },
  { H: 3, P: 5, K: 31, R: 23, dH: 13, dV: 6 },
];

function shapeOf(H: number, P: number, K: number, dH = 3, dV = 2): AttentionShape {
  return { heads: H, dHead: dH, dV, scale: Math.sqrt(dH), causal: true, P, m: H * dV + 2 * H * dH, K };
}

/** Random values with about a quarter +0 and −0 entries. */
function sparse(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  const r = rng(seed + 7);
  return Float64Array.from({ length: n }, () => {
    const x = r();
    return x < 0.12 ? 0 : x < 0.24 ? -0 : g();
  });
}

function expectSameBits(got: Float64Array, want: Float64Array): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) expect([i, got[i]]).toEqual([i, want[i]]);
}

const wasm = wasmTableSampleKernel(1, 1, 1, new Float64Array(1)) !== undefined;

describe.skipIf(!wasm)('attention M′ sample kernel in WebAssembly', () => {
  it.each(SHAPES.map((s, i) => [i, s] as const))('shape %i: ds and β have the JS bits', (i, { H, P, K, R }) => {
    const sh = shapeOf(H, P, K);
    const NJ = H * P;
    const dzv = sparse(R * K * H, 10 + i);
    const kn = wasmTableSampleKernel(K, H, P, dzv)!;
    const r = rng(50 + i);
    const ds = new Float64Array(K * NJ);
    const dzb = new Float64Array(K * H);
    const beta = new Float64Array(NJ * NJ);
    for (let rep = 0; rep < 6; rep++) {
      // A softmax-like row with masked entries (+0) and, on some reps, −0 entries.
      const prob = sparse(NJ, 100 * i + rep).map(Math.abs);
      if (rep % 2 === 1) for (let j = 0; j < NJ; j += 3) prob[j] = -0;
      const rho = Int32Array.from({ length: P }, () => Math.floor(r() * R));
      kn.rho.set(rho);
      kn.prob.set(prob);
      kn.sampleDs();
      tableSampleDs(sh, dzv, rho, prob, ds, dzb);
      expectSameBits(kn.ds, ds);
      // β of that ds, and of a ds with +0/−0 entries and whole zero columns.
      kn.sampleBeta();
      sampleBeta(sh, ds, beta);
      expectSameBits(kn.beta, beta);
      const d2 = sparse(K * NJ, 300 * i + rep);
      for (let k = 0; k < K; k++) d2[k * NJ + (rep % NJ)] = rep % 2 ? -0 : 0;
      kn.ds.set(d2);
      kn.sampleBeta();
      sampleBeta(sh, d2, beta);
      expectSameBits(kn.beta, beta);
    }
  });

  it.each(SHAPES.map((s, i) => [i, s] as const))('shape %i: the row-space accumulators have the JS bits over many samples', (i, { H, P, K, R, dH, dV }) => {
    const sh = shapeOf(H, P, K, dH, dV);
    const NJ = H * P;
    const vkq = sparse(R * sh.m, 20 + i);
    const dzv = sparse(R * K * H, 30 + i);
    const kn = wasmTableSampleKernel(K, H, P, dzv, { dHead: dH, dV, m: sh.m, vkq })!;
    const rows = kn.rows!;
    const Z = rowAccumulators(sh, R);
    const scratch = rowScratch(sh);
    const r = rng(70 + i);
    const beta = new Float64Array(NJ * NJ);
    for (let n = 0; n < 40; n++) {
      // Softmax-like rows with masked (+0) and −0 entries; β with +0 and −0 entries.
      const prob = sparse(NJ, 1000 * i + n).map(Math.abs);
      if (n % 3 === 1) for (let j = 0; j < NJ; j += 2) prob[j] = -0;
      const rho = Int32Array.from({ length: P }, () => Math.floor(r() * R));
      const b = sparse(NJ * NJ, 2000 * i + n);
      kn.rho.set(rho);
      kn.prob.set(prob);
      kn.beta.set(b);
      beta.set(b);
      rows.sampleRows();
      tableSampleRows(sh, vkq, rho, prob, beta, Z, scratch);
    }
    expectSameBits(rows.Zq, Z.Zq);
    expectSameBits(rows.Zk, Z.Zk);
    expectSameBits(rows.Zqq, Z.Zqq);
    expectSameBits(rows.Zqk, Z.Zqk);
    expectSameBits(rows.Zkk, Z.Zkk);
  });

  it('β is symmetric to the bit', () => {
    const sh = shapeOf(3, 3, 29);
    const kn = wasmTableSampleKernel(29, 3, 3, new Float64Array(29 * 3))!;
    kn.ds.set(sparse(29 * 9, 4));
    kn.sampleBeta();
    for (let a = 0; a < 9; a++) for (let b = 0; b < 9; b++) expect(Object.is(kn.beta[a * 9 + b], kn.beta[b * 9 + a])).toBe(true);
    expect(sh.K).toBe(29);
  });
});

it('the kernel is undefined with IBGPU_HOST_WASM=0 (the JS loops run)', () => {
  process.env['IBGPU_HOST_WASM'] = '0';
  try {
    expect(wasmTableSampleKernel(2, 2, 2, new Float64Array(8))).toBeUndefined();
  } finally {
    delete process.env['IBGPU_HOST_WASM'];
  }
});
