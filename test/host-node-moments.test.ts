// The node-layer and gate moments of the transformer host statistics pass (src/host/node-moments.ts):
// rowMomentsF64 against a plain float64 reference (raw and centred with the constant slot at zero);
// the ReLU co-firing counts summed over any split of the rows equal HostGateStats's counts, and
// gateMomentsFromCounts gives HostGateStats's G_a and Σa bit for bit (one point and three
// positive points); other activations and non-positive points take the gate Gram path. Shapes
// of 1, primes and row counts that are not multiples of the 32-row sign words.

import { describe, expect, it } from 'vitest';
import { gateMomentsByCounts, gateMomentsF64, gateMomentsFromCounts, reluCofireCounts, rowMomentsF64 } from '../src/host/node-moments.js';
import { HostGateStats } from '../src/host/stats.js';
import { gaussian, rng } from './helpers/random.js';

function randn(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  return Float64Array.from({ length: n }, () => g());
}

function bitDiffs(a: Float64Array, b: Float64Array): number[] {
  expect(b.length).toBe(a.length);
  const out: number[] = [];
  for (let t = 0; t < a.length; t++) if (!Object.is(a[t], b[t])) out.push(t);
  return out;
}

describe('rowMomentsF64', () => {
  for (const [n, w] of [
    [1, 1],
    [7, 3],
    [37, 13],
    [101, 29],
  ] as const) {
    for (const centred of [false, true]) {
      it(`${n} rows × ${w}, ${centred ? 'centred' : 'raw'}`, () => {
        const x = randn(n * w, n + w);
        for (let i = 0; i < n; i++) x[i * w + w - 1] = 1; // the constant slot
        const t = rowMomentsF64(x, n, w, centred);
        const mean = new Float64Array(w);
        for (let i = 0; i < n; i++) for (let a = 0; a < w; a++) mean[a]! += x[i * w + a]! / n;
        const shift = centred ? Float64Array.from(mean, (v, a) => (a === w - 1 ? 0 : v)) : new Float64Array(w);
        for (let a = 0; a < w; a++) expect(t.mean[a]).toBeCloseTo(mean[a]!, 12);
        expect(t.shift === undefined).toBe(!centred);
        for (let a = 0; a < w; a++)
          for (let b = 0; b < w; b++) {
            let g = 0;
            for (let i = 0; i < n; i++) g += (x[i * w + a]! - shift[a]!) * (x[i * w + b]! - shift[b]!);
            expect(Math.abs(t.gram[a * w + b]! - g / n)).toBeLessThan(1e-12 * Math.max(1, Math.abs(g / n)));
          }
      });
    }
  }
});

describe('ReLU gate moments from co-firing counts', () => {
  const pointSets = [
    { alphas: [1], weights: [1] },
    { alphas: [0.25, 0.5, 1], weights: [0.2, 0.3, 0.5] },
  ];
  for (const [rows, h] of [
    [1, 1],
    [5, 2],
    [33, 7],
    [97, 13],
    [130, 31],
  ] as const) {
    it(`${rows} rows × ${h} units`, () => {
      const pre = randn(rows * h, 3 * rows + h);
      const whole = reluCofireCounts(pre, h, 0, rows);
      // Any split of the rows adds up to the same counts.
      const cut = Math.floor(rows / 3);
      const a = reluCofireCounts(pre, h, 0, cut);
      const b = reluCofireCounts(pre, h, cut, rows);
      expect(
        bitDiffs(
          a.map((v, i) => v + b[i]!),
          whole,
        ),
      ).toEqual([]);
      // The counts themselves.
      for (let u = 0; u < h; u++)
        for (let v = 0; v < h; v++) {
          let c = 0;
          for (let i = 0; i < rows; i++) if (pre[i * h + u]! > 0 && pre[i * h + v]! > 0) c++;
          expect(whole[u * h + v]).toBe(c);
        }
      for (const pts of pointSets) {
        expect(gateMomentsByCounts('relu', pts)).toBe(true);
        const st = new HostGateStats(h, 'relu', pts);
        st.add(pre, rows);
        const got = gateMomentsFromCounts(whole, h, pts);
        expect(bitDiffs(got.Ga, st.gram())).toEqual([]);
        expect(bitDiffs(got.sa, st.sums())).toEqual([]);
        const direct = gateMomentsF64('relu', pre, rows, pts);
        expect(bitDiffs(got.Ga, direct.Ga)).toEqual([]);
      }
    });
  }

  it('other activations and non-positive points take the gate Gram', () => {
    expect(gateMomentsByCounts('gelu', { alphas: [1], weights: [1] })).toBe(false);
    expect(gateMomentsByCounts('relu', { alphas: [0, 1], weights: [0.5, 0.5] })).toBe(false);
    expect(gateMomentsByCounts('relu', { alphas: [], weights: [] })).toBe(false);
    const pre = randn(20 * 3, 5);
    const pts = { alphas: [0.5, 1], weights: [0.5, 0.5] };
    const st = new HostGateStats(3, 'gelu', pts);
    st.add(pre, 20);
    expect(bitDiffs(gateMomentsF64('gelu', pre, 20, pts).Ga, st.gram())).toEqual([]);
  });
});
