// The phased float64 eigensolver (src/cpu/eigh.ts: reduce → accumulate → rotate → assemble) and
// the solver threads that run it (src/cpu/eigh-worker.ts). The contract is exact: whatever the
// number of parts or threads, the result equals symEig's bit for bit, because every element
// sees the same operations in the same order. So these tests compare with toEqual, no tolerance.
import { describe, expect, it } from 'vitest';
import {
  columnBlock, symEig, symEigAccumulate, symEigAssemble, symEigReduce, symEigRotate, type SymEigResult,
} from '../src/cpu/eigh.js';
import {
  backgroundSolverAvailable, PARALLEL_EIG_MIN_ORDER, solverThreads, symEigInBackground,
} from '../src/cpu/eigh-worker.js';
import { gaussian, rng } from './helpers/random.js';

/** A random symmetric n×n matrix (row-major) of rank ≤ `rank` plus `diag`·I. */
function symmetric(n: number, seed: number, rank = n, diag = 0): Float64Array {
  const g = gaussian(rng(seed));
  const x = new Float64Array(rank * n);
  for (let i = 0; i < x.length; i++) x[i] = g();
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = i === j ? diag : 0;
      for (let k = 0; k < rank; k++) s += x[k * n + i]! * x[k * n + j]!;
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
  return a;
}

/** A symmetric matrix with every entry independent (indefinite spectrum). */
function indefinite(n: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) { const v = g(); a[i * n + j] = v; a[j * n + i] = v; }
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
  ['odd, indefinite', 37, () => indefinite(37, 1)],
  ['prime, positive definite', 101, () => symmetric(101, 2)],
  ['rank-deficient (rank 9 of 64)', 64, () => symmetric(64, 3, 9)],
  ['repeated eigenvalue (rank 5 + 2·I)', 50, () => symmetric(50, 4, 5, 2)],
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
    const a = symmetric(5, 6);
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
      [PARALLEL_EIG_MIN_ORDER + 13, indefinite(PARALLEL_EIG_MIN_ORDER + 13, 7)],
      [PARALLEL_EIG_MIN_ORDER - 1, symmetric(PARALLEL_EIG_MIN_ORDER - 1, 8, 40)],
    ] as const) {
      const input = Float64Array.from(a);
      expectIdentical(await symEigInBackground(a, n, { threads }), symEig(a, n), `n=${n}, ${threads} threads`);
      expect(Array.from(a), 'the input is copied, never transferred or changed').toEqual(Array.from(input));
    }
  });

  it('concurrent solves on the same threads each get their own result', async () => {
    const n = PARALLEL_EIG_MIN_ORDER + 5;
    const as = [indefinite(n, 9), symmetric(n, 10, 30), symmetric(n, 11)];
    const got = await Promise.all(as.map((a) => symEigInBackground(a, n, { threads: 2 })));
    as.forEach((a, i) => expectIdentical(got[i]!, symEig(a, n), `problem ${i}`));
  });

  it('the zero matrix and NaN input behave as in symEig', async () => {
    const n = PARALLEL_EIG_MIN_ORDER;
    expectIdentical(await symEigInBackground(new Float64Array(n * n), n, { threads: 2 }), symEig(new Float64Array(n * n), n), 'zero');
    const bad = indefinite(n, 12);
    bad[3] = NaN;
    await expect(symEigInBackground(bad, n, { threads: 2 })).rejects.toThrow(/NaN/);
  });
});
