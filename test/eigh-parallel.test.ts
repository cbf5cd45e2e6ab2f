// The phased float64 eigensolver (src/cpu/eigh.ts: reduce → accumulate → rotate → assemble) and
// the solver threads that run it (src/host/eigh-worker.ts). The contract is exact: whatever the
// number of parts or threads, the result equals symEig's bit for bit, because every element
// sees the same operations in the same order. So these tests compare with toEqual, no tolerance.
import { describe, expect, it } from 'vitest';
import { columnBlock, symEig, symEigAccumulate, symEigAssemble, symEigReduce, symEigRotate, type SymEigResult } from '../src/cpu/eigh.js';
import { backgroundSolverAvailable, PARALLEL_EIG_MIN_ORDER, solverThreads, symEigInBackground } from '../src/host/eigh-worker.js';
import { randomSymmetric, rankDeficientGram } from './helpers/spectra.js';

/** X Xᵀ (rank `rank`) plus `shift`·I. */
function gramPlus(n: number, rank: number, seed: number, shift = 0): Float64Array {
  const a = rankDeficientGram(n, rank, seed);
  for (let i = 0; i < n; i++) a[i * n + i]! += shift;
  return a;
}

function phased(a: Float64Array, n: number, parts: number): SymEigResult {
  const r = symEigReduce(a, n);
  if ('done' in r) return r.done;
  const zt = new Float64Array(n * n);
  for (let p = 0; p < parts; p++) symEigAccumulate(r.reduced, zt, p, parts);
  for (let p = 0; p < parts; p++) symEigRotate(r.reduced, zt, p, parts);
  return symEigAssemble(r.reduced, zt);
}

function expectIdentical(got: SymEigResult, want: SymEigResult, what: string): void {
  expect(Array.from(got.values), `${what}: values`).toEqual(Array.from(want.values));
  expect(Array.from(got.vectors), `${what}: vectors`).toEqual(Array.from(want.vectors));
}

const MATRICES: [string, number, () => Float64Array][] = [
  ['1×1', 1, () => Float64Array.of(-2.5)],
  ['odd, indefinite', 37, () => randomSymmetric(37, 1)],
  ['prime, positive definite', 101, () => rankDeficientGram(101, 101, 2)],
  ['rank-deficient (rank 9 of 64)', 64, () => rankDeficientGram(64, 9, 3)],
  ['repeated eigenvalue (rank 5 + 2·I)', 50, () => gramPlus(50, 5, 4, 2)],
  ['zero', 12, () => new Float64Array(144)],
];

describe('phased symEig', () => {
  it.each(MATRICES)('%s: bit-identical to symEig for 1, 2, 3 and 5 parts', (label, n, make) => {
    const a = make();
    const want = symEig(a, n);
    for (const parts of [1, 2, 3, 5]) expectIdentical(phased(a, n, parts), want, `${label}, ${parts} parts`);
  });

  it('column blocks tile [0, n) in multiples of 8 (no two threads write one cache line)', () => {
    for (const n of [1, 7, 8, 9, 100, 674]) {
      for (const parts of [1, 2, 3, 4]) {
        let next = 0;
        for (let p = 0; p < parts; p++) {
          const [k0, k1] = columnBlock(n, p, parts);
          expect(k0, `n=${n} parts=${parts} p=${p}`).toBe(next);
          expect(k1).toBeGreaterThanOrEqual(k0);
          if (k1 < n) expect(k1 % 8).toBe(0);
          next = k1;
        }
        expect(next).toBe(n);
      }
    }
  });

  it('rejects NaN like symEig does', () => {
    const a = rankDeficientGram(5, 5, 6);
    a[7] = NaN;
    expect(() => symEigReduce(a, 5)).toThrow(/NaN/);
  });
});

describe('solver threads', () => {
  it('exist in Node (so the tests below are not vacuous)', async () => {
    expect(await backgroundSolverAvailable()).toBe(true);
    expect(await solverThreads()).toBeGreaterThanOrEqual(1);
  });

  it.each([1, 2, 3])('%i thread(s): bit-identical to symEig above and below the parallel order', async (threads) => {
    for (const [n, a] of [
      [PARALLEL_EIG_MIN_ORDER + 13, randomSymmetric(PARALLEL_EIG_MIN_ORDER + 13, 7)],
      [PARALLEL_EIG_MIN_ORDER - 1, rankDeficientGram(PARALLEL_EIG_MIN_ORDER - 1, 40, 8)],
    ] as const) {
      const input = Float64Array.from(a);
      expectIdentical(await symEigInBackground(a, n, { threads }), symEig(a, n), `n=${n}, ${threads} threads`);
      expect(Array.from(a), 'the input is copied, never transferred or changed').toEqual(Array.from(input));
    }
  });

  it('concurrent solves on the same threads each get their own result', async () => {
    const n = PARALLEL_EIG_MIN_ORDER + 5;
    const as = [randomSymmetric(n, 9), rankDeficientGram(n, 30, 10), rankDeficientGram(n, n, 11)];
    const got = await Promise.all(as.map((a) => symEigInBackground(a, n, { threads: 2 })));
    as.forEach((a, i) => expectIdentical(got[i]!, symEig(a, n), `problem ${i}`));
  });

  it('the zero matrix and NaN input behave as in symEig', async () => {
    const n = PARALLEL_EIG_MIN_ORDER;
    expectIdentical(await symEigInBackground(new Float64Array(n * n), n, { threads: 2 }), symEig(new Float64Array(n * n), n), 'zero');
    const bad = randomSymmetric(n, 12);
    bad[3] = NaN;
    await expect(symEigInBackground(bad, n, { threads: 2 })).rejects.toThrow(/NaN/);
  });
});
