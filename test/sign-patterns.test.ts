import { describe, expect, it } from 'vitest';
import { cofireCpu, fireCountCpu, hashPatternsCpu, packSignsCpu, popcount32, signFinal1, signMix1, signPatternsCpu } from '../src/cpu/sign-patterns.js';
import { IbgpuError } from '../src/errors.js';
import {
  chooseSignPackVariant,
  COFIRE_LOOP_ITERATIONS_PER_WORD,
  groupPatterns,
  hammingFromCofire,
  maxWindowWords,
  selfCheck,
  SignPatternAccumulator,
  type SignPackVariant,
  type SignPatternResult,
} from '../src/kernels/sign-patterns.js';
import { useEngine, useSwiftShader } from './helpers/gpu.js';
import { randomF32, rng } from './helpers/random.js';

/** s_a(n) for every (n, a), straight from the definition. */
function bit(pre: ArrayLike<number>, d: number, n: number, a: number): number {
  return pre[n * d + a]! > 0 ? 1 : 0;
}

/** Groups by the exact pattern string: the reference for the reference. */
function naiveGroups(pre: ArrayLike<number>, rows: number, d: number): { groups: number[][]; dead: number[]; alwaysOn: number[] } {
  const byKey = new Map<string, number[]>();
  const dead: number[] = [];
  const alwaysOn: number[] = [];
  for (let a = 0; a < d; a++) {
    let key = '';
    let ones = 0;
    for (let n = 0; n < rows; n++) {
      const b = bit(pre, d, n, a);
      key += b;
      ones += b;
    }
    if (ones === 0) dead.push(a);
    else if (ones === rows) alwaysOn.push(a);
    else byKey.set(key, [...(byKey.get(key) ?? []), a]);
  }
  const groups = [...byKey.values()].filter((g) => g.length >= 2).sort((x, y) => x[0]! - y[0]!);
  return { groups, dead, alwaysOn };
}

/** Random pre-activations with planted structure; returns the data and the planted groups. */
function planted(rows: number, d: number, seed: number): Float32Array {
  const x = randomF32(rows * d, seed);
  const r = rng(seed + 1);
  for (let n = 0; n < rows; n++) {
    const o = n * d;
    x[o + 1] = -Math.abs(x[o + 1]!) - 0.1; // dead
    x[o + d - 2] = Math.abs(x[o + d - 2]!) + 0.1; // always on
    x[o + 4] = 3 * x[o]!; // group {0, 4, 7}: positive multiples
    x[o + 7] = 0.01 * x[o]!;
    x[o + d - 1] = x[o + 2]! + (x[o + 2]! > 0 ? 1 : -1) * r(); // group {2, d−1}: same sign, other values
    x[o + 5] = x[o + 3]!; // near-duplicate of 3, one bit flipped below
  }
  const flip = Math.floor(rows / 2) * d + 5;
  x[flip] = x[flip]! > 0 ? -1 : 1;
  return x;
}

/** Exact comparison of a GPU result with the CPU reference (all fields, words if kept). */
function expectSame(got: SignPatternResult, ref: SignPatternResult, what: string, withWords = true): void {
  expect(got.n, `${what} n`).toBe(ref.n);
  expect(got.d, `${what} d`).toBe(ref.d);
  const cmp = (k: 'hashLo' | 'hashHi' | 'fireCount' | 'cofire' | 'words'): void => {
    const g = got[k]!;
    const r = ref[k]!;
    expect(g.length, `${what} ${k} length`).toBe(r.length);
    let bad = -1;
    for (let i = 0; i < r.length && bad < 0; i++) if (g[i] !== r[i]) bad = i;
    expect(bad, `${what} ${k}: first differing index ${bad} (${g[bad]} vs ${r[bad]})`).toBe(-1);
  };
  cmp('hashLo');
  cmp('hashHi');
  cmp('fireCount');
  if (got.cofire.length > 0) cmp('cofire');
  if (withWords) cmp('words');
}

/** The IbgpuError code `fn` throws (fails the test if it throws something else or nothing). */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IbgpuError);
    return (err as IbgpuError).code;
  }
  throw new Error('expected an IbgpuError, nothing was thrown');
}

/** Cuts `rows` into random pieces, including 0, 1 and pieces that are not multiples of 32. */
function randomCuts(rows: number, seed: number): number[] {
  const r = rng(seed);
  const cuts: number[] = [];
  let left = rows;
  while (left > 0) {
    const pick = r();
    const len = pick < 0.1 ? 0 : pick < 0.25 ? 1 : Math.max(1, Math.floor(r() * Math.min(left, 97)));
    cuts.push(Math.min(len, left));
    left -= Math.min(len, left);
  }
  return cuts;
}

describe('CPU sign-pattern reference', () => {
  it('packs bits exactly as defined (neuron-major, bit n%32 of word n>>5), for odd and prime sizes', () => {
    for (const [rows, d] of [
      [1, 1],
      [31, 3],
      [32, 5],
      [33, 2],
      [97, 13],
      [200, 1],
    ] as const) {
      const x = randomF32(rows * d, rows * 31 + d);
      const words = packSignsCpu(x, rows, d);
      const W = Math.ceil(rows / 32);
      expect(words.length).toBe(d * W);
      for (let a = 0; a < d; a++) {
        for (let n = 0; n < 32 * W; n++) {
          const got = (words[a * W + (n >> 5)]! >>> (n & 31)) & 1;
          expect(got).toBe(n < rows ? bit(x, d, n, a) : 0);
        }
      }
    }
  });

  it('fires on positive values only: subnormals and +Inf fire; 0, −0, negatives and NaN do not', () => {
    const x = new Float32Array([1.4e-45, 0, -0, -1e-45, NaN, Infinity, -Infinity, 3]);
    expect(Array.from(packSignsCpu(x, 8, 1))).toEqual([0b10100001]);
  });

  it('mix 1 is MurmurHash3 x86_32 (known answers for 4-byte keys)', () => {
    const murmur4 = (key: number, seed: number): number => signFinal1(signMix1(seed, key), 4); // len = 4 bytes
    expect(murmur4(0x74736574, 0)).toBe(0xba6bd213); // "test", seed 0
    expect(murmur4(0x61616161, 0x9747b28c)).toBe(0x5a97808a); // "aaaa"
    expect(murmur4(0x64636261, 0x9747b28c)).toBe(0xf0478627); // "abcd"
  });

  it('counts bits and co-firing exactly (vs the per-datapoint definition)', () => {
    expect([0, 1, 0xffffffff, 0x80000001, 0x12345678].map(popcount32)).toEqual([0, 1, 32, 2, 13]);
    for (const [rows, d] of [
      [1, 1],
      [45, 7],
      [64, 4],
      [130, 9],
    ] as const) {
      const x = randomF32(rows * d, rows + 7 * d);
      const words = packSignsCpu(x, rows, d);
      const A = cofireCpu(words, d, rows);
      const f = fireCountCpu(words, d, rows);
      for (let a = 0; a < d; a++) {
        let c = 0;
        for (let n = 0; n < rows; n++) c += bit(x, d, n, a);
        expect(f[a]).toBe(c);
        for (let b = 0; b < d; b++) {
          let s = 0;
          for (let n = 0; n < rows; n++) s += bit(x, d, n, a) * bit(x, d, n, b);
          expect(A[a * d + b], `A[${a},${b}] ${rows}x${d}`).toBe(s);
        }
      }
    }
  });

  it('gives different hashes (both halves) to patterns one bit apart, equal ones to equal patterns', () => {
    const rows = 70;
    const base = packSignsCpu(randomF32(rows, 5), rows, 1);
    const W = base.length;
    const variants = new Uint32Array((rows + 1) * W); // the base and every single-bit flip
    variants.set(base, 0);
    for (let n = 0; n < rows; n++) {
      variants.set(base, (n + 1) * W);
      variants[(n + 1) * W + (n >> 5)]! ^= 1 << (n & 31);
    }
    const { hashLo, hashHi } = hashPatternsCpu(variants, rows + 1, rows);
    expect(new Set(hashLo).size).toBe(rows + 1);
    expect(new Set(hashHi).size).toBe(rows + 1);
    const again = hashPatternsCpu(base, 1, rows);
    expect([again.hashLo[0], again.hashHi[0]]).toEqual([hashLo[0], hashHi[0]]);
  });

  it('rejects inconsistent shapes', () => {
    expect(() => packSignsCpu(new Float32Array(5), 2, 3)).toThrow(/expected rows\*d = 2\*3 = 6/);
    expect(() => cofireCpu(new Uint32Array(3), 2, 40)).toThrow(/expected d\*ceil\(n\/32\) = 2\*2 = 4/);
    expect(() => hashPatternsCpu(new Uint32Array(1), 0, 1)).toThrow(IbgpuError);
  });
});

describe('groupPatterns', () => {
  it('finds exactly the planted groups, dead and always-on neurons (words and co-firing paths agree)', () => {
    const rows = 300;
    const d = 23;
    const x = planted(rows, d, 9);
    const r = signPatternsCpu(x, rows, d);
    const g = groupPatterns(r);
    expect(g).toEqual({
      groups: [
        [0, 4, 7],
        [2, 22],
      ],
      dead: [1],
      alwaysOn: [21],
      hashCollisions: 0,
    });
    expect(groupPatterns({ ...r, words: undefined })).toEqual(g);
    expect(hammingFromCofire(r, 3, 5)).toBe(1);
    expect(hammingFromCofire(r, 0, 7)).toBe(0);
    expect(naiveGroups(x, rows, d)).toEqual({ groups: g.groups, dead: g.dead, alwaysOn: g.alwaysOn });
  });

  it('identical patterns always group and different ones never do (many duplicates, vs string keys)', () => {
    for (const [rows, d, seed] of [
      [3, 60, 1],
      [6, 200, 2],
      [35, 40, 3],
      [1, 5, 4],
    ] as const) {
      const x = randomF32(rows * d, seed);
      const r = signPatternsCpu(x, rows, d);
      const ref = naiveGroups(x, rows, d);
      for (const res of [r, { ...r, words: undefined }, { ...r, cofire: new Float64Array(0) }]) {
        const g = groupPatterns(res);
        expect({ groups: g.groups, dead: g.dead, alwaysOn: g.alwaysOn }, `${rows}x${d}`).toEqual(ref);
        expect(g.hashCollisions).toBe(0);
      }
    }
  });

  it('confirms candidates exactly: forged equal hashes of different patterns are counted, not grouped', () => {
    const rows = 50;
    const d = 6;
    const x = randomF32(rows * d, 17);
    for (let n = 0; n < rows; n++) x[n * d + 3] = x[n * d + 1]!; // one true pair {1, 3}
    const r = signPatternsCpu(x, rows, d);
    // Give every neuron the same 64-bit hash: 15 candidate pairs, of which only (1, 3) is real.
    const forged = { ...r, hashLo: new Uint32Array(d).fill(7), hashHi: new Uint32Array(d).fill(9) };
    for (const res of [forged, { ...forged, words: undefined }]) {
      const g = groupPatterns(res);
      expect(g.groups).toEqual([[1, 3]]);
      expect(g.hashCollisions).toBe(15 - 1);
    }
  });

  it('with n = 0 every neuron is dead; rejects results it cannot confirm or that are malformed', () => {
    const r0 = signPatternsCpu(new Float32Array(0), 0, 3);
    expect(groupPatterns(r0)).toEqual({ groups: [], dead: [0, 1, 2], alwaysOn: [], hashCollisions: 0 });
    const r = signPatternsCpu(randomF32(40, 1), 10, 4);
    expect(() => groupPatterns({ ...r, words: undefined, cofire: new Float64Array(0) })).toThrow(/neither packed words nor a co-firing matrix/);
    expect(() => groupPatterns({ ...r, fireCount: new Float64Array(3) })).toThrow(/fireCount has length 3, expected d = 4/);
    expect(() => groupPatterns({ ...r, words: new Uint32Array(3) })).toThrow(/words has length 3/);
    expect(() => hammingFromCofire(r, 0, 4)).toThrow(/neuron b = 4 is not in 0 .. 3/);
    expect(() => hammingFromCofire({ ...r, cofire: new Float64Array(0) }, 0, 1)).toThrow(/no co-firing matrix/);
  });
});

describe('GPU sign-pattern hashing', () => {
  const engine = useEngine();
  const variants: SignPackVariant[] = ['loop', 'atomic'];

  it('matches the CPU reference bit for bit on random shapes (odd, prime) and random batch cuts', async () => {
    const e = await engine();
    const shapes: [number, number][] = [
      [1, 1],
      [31, 7],
      [32, 3],
      [33, 13],
      [97, 65],
      [300, 131],
      [1000, 37],
      [129, 1],
      [70, 613],
    ];
    let seed = 100;
    for (const [rows, d] of shapes) {
      const x = randomF32(rows * d, seed++);
      const ref = signPatternsCpu(x, rows, d);
      const buf = e.upload(x);
      for (const variant of variants) {
        const acc = new SignPatternAccumulator(e, d, { variant, keepWords: true });
        let at = 0;
        for (const [k, len] of randomCuts(rows, seed * 7).entries()) {
          if (k % 2 === 0)
            acc.addBatch(buf, len, at); // from the resident buffer at a row offset
          else acc.addHost(x.subarray(at * d, (at + len) * d), len);
          at += len;
        }
        expect(acc.rows).toBe(rows);
        expectSame(await acc.result(), ref, `${rows}x${d} ${variant}`);
        acc.dispose();
      }
      const noCofire = new SignPatternAccumulator(e, d, { cofire: false });
      noCofire.addBatch(buf, rows);
      const r = await noCofire.result();
      noCofire.dispose();
      expect(r.cofire.length).toBe(0);
      expect(r.words).toBeUndefined();
      expectSame(r, ref, `${rows}x${d} cofire: false`, false);
      e.release(buf);
    }
  });

  it('does not depend on how the stream is cut; result() mid-stream lets the stream go on', async () => {
    const e = await engine();
    const rows = 777;
    const d = 29;
    const x = randomF32(rows * d, 3);
    const one = new SignPatternAccumulator(e, d, { keepWords: true });
    expectSame(await one.result(), signPatternsCpu(new Float32Array(0), 0, d), 'empty stream');
    one.addHost(x, rows);
    const whole = await one.result();
    one.dispose();
    const many = new SignPatternAccumulator(e, d, { keepWords: true, windowRows: 45, cofireBlockWords: 1 });
    many.addHost(x.subarray(0, 100 * d), 100);
    const head = await many.result();
    expectSame(head, signPatternsCpu(x.subarray(0, 100 * d), 100, d), 'first 100 rows');
    for (let r = 100; r < rows; r += 61) many.addHost(x.subarray(r * d, Math.min(rows, r + 61) * d), Math.min(61, rows - r));
    const tail = await many.result();
    many.dispose();
    expectSame(tail, whole, 'cut stream vs one batch');
    expectSame(whole, signPatternsCpu(x, rows, d), 'one batch vs CPU');
    // The hash is order-dependent: reversing the datapoints changes it (for a non-palindromic stream).
    const rev = new Float32Array(rows * d);
    for (let r = 0; r < rows; r++) rev.set(x.subarray(r * d, (r + 1) * d), (rows - 1 - r) * d);
    const back = new SignPatternAccumulator(e, d);
    back.addHost(rev, rows);
    const rb = await back.result();
    back.dispose();
    expect(Array.from(rb.fireCount)).toEqual(Array.from(whole.fireCount));
    expect(Array.from(rb.cofire)).toEqual(Array.from(whole.cofire));
    expect(rb.hashLo[0]).not.toBe(whole.hashLo[0]);
    expect(rb.hashHi[0]).not.toBe(whole.hashHi[0]);
  });

  it("stays exact on long batches (60000, 200000 and 2.2M rows: past llvmpipe's loop cap) and across drains", async () => {
    const e = await engine();
    // Every window keeps the per-invocation loop count below the budget.
    expect(maxWindowWords(e) * COFIRE_LOOP_ITERATIONS_PER_WORD).toBeLessThanOrEqual(e.loopBudget);
    // 2.2M rows are 68751 words: one loop over them per invocation would exceed the cap.
    for (const [rows, d] of [
      [60000, 3],
      [200000, 2],
      [2_200_001, 1],
    ] as const) {
      const x = randomF32(rows * d, rows + d);
      for (let r = 0; r < rows; r++) x[r * d] = r % 3 === 0 ? 1 : -1; // a non-random pattern too
      const ref = signPatternsCpu(x, rows, d);
      const acc = new SignPatternAccumulator(e, d, { keepWords: true });
      const buf = e.upload(x);
      acc.addBatch(buf, rows);
      expectSame(await acc.result(), ref, `${rows}x${d}`);
      acc.dispose();
      e.release(buf);
    }
    // Many windows, and u32 counts drained every 200 rows (the 2^32 guard, scaled down).
    const rows = 5003;
    const d = 9;
    const x = randomF32(rows * d, 8);
    const acc = new SignPatternAccumulator(e, d, { windowRows: 77, maxRowsPerReadback: 200, cofireBlockWords: 2 });
    const before = e.counters.readbacks;
    acc.addHost(x.subarray(0, 2500 * d), 2500);
    acc.addHost(x.subarray(2500 * d), rows - 2500);
    expectSame(await acc.result(), signPatternsCpu(x, rows, d), 'windows of 77 rows, drains every 200', false);
    // Each drain read the firing counts and the co-firing matrix back (counted once settled).
    expect(e.counters.readbacks - before).toBeGreaterThanOrEqual(2 * (Math.ceil(rows / 200) - 1));
    acc.dispose();
  });

  it('groups planted patterns on the GPU like the CPU, with and without kept words', async () => {
    const e = await engine();
    const rows = 4001;
    const d = 150;
    const x = planted(rows, d, 21);
    // More synchronised neurons: 60..69 copy neuron 50 at different positive scales.
    for (let n = 0; n < rows; n++) for (let a = 60; a < 70; a++) x[n * d + a] = (a - 59) * x[n * d + 50]!;
    const want = naiveGroups(x, rows, d);
    expect(want.groups).toEqual([
      [0, 4, 7],
      [2, 149],
      [50, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69],
    ]);
    for (const keepWords of [true, false]) {
      const acc = new SignPatternAccumulator(e, d, { keepWords });
      acc.addHost(x.subarray(0, 1234 * d), 1234);
      acc.addHost(x.subarray(1234 * d), rows - 1234);
      const r = await acc.result();
      acc.dispose();
      const g = groupPatterns(r);
      expect(g.groups).toEqual(want.groups);
      expect(g.dead).toEqual(want.dead);
      expect(g.alwaysOn).toEqual(want.alwaysOn);
      expect(g.hashCollisions).toBe(0);
      expect(hammingFromCofire(r, 3, 5)).toBe(1);
      for (const grp of g.groups) for (const b of grp) expect(r.hashLo[b]).toBe(r.hashLo[grp[0]!]);
      expect(new Set(r.hashLo).size).toBe(d - (3 - 1) - (2 - 1) - (11 - 1)); // all other patterns differ
    }
  });

  it('tests the sign on bit patterns: subnormals and +Inf fire, ±0 and NaN do not; Float64 input keeps tiny positives', async () => {
    const e = await engine();
    const raw = new Float32Array([1.4e-45, 0, -0, -1.4e-45, NaN, Infinity, -Infinity, 3, -NaN, 1e-38]);
    const buf = e.upload(raw);
    for (const variant of variants) {
      const acc = new SignPatternAccumulator(e, 1, { variant, keepWords: true });
      acc.addBatch(buf, raw.length);
      const r = await acc.result();
      acc.dispose();
      expect(Array.from(r.words!)).toEqual([0b1010100001]);
      expect(Array.from(r.words!)).toEqual(Array.from(packSignsCpu(raw, raw.length, 1)));
    }
    e.release(buf);
    const acc = new SignPatternAccumulator(e, 2, { keepWords: true });
    acc.addHost(new Float64Array([1e-300, -1e-300, 0, 5]), 2);
    expect(Array.from((await acc.result()).words!)).toEqual([0b01, 0b10]);
    acc.dispose();
  });

  it('rejects bad input with clear errors', async () => {
    const e = await engine();
    const acc = new SignPatternAccumulator(e, 3);
    expect(() => acc.addHost(new Float32Array(5), 2)).toThrow(/expected rows\*d = 2\*3 = 6/);
    expect(() => acc.addHost(new Float32Array(6), 2.5)).toThrow(IbgpuError);
    expect(() => acc.addHost(new Float32Array([1, 2, 3, 4, NaN, 6]), 2)).toThrow(/NaN at index \[1, 1\]/);
    const small = e.upload(new Float32Array(6)); // pooled: small.size is 256 bytes
    expect(() => acc.addBatch(small, 100)).toThrow(/need 1200/);
    expect(() => acc.addBatch(small, 1, 30)).toThrow(/rows 30\.\.31/);
    expect(() => acc.addBatch(small, -1)).toThrow(/non-negative/);
    expect(acc.rows).toBe(0);
    expect(codeOf(() => acc.addBatch(small, 100))).toBe('SHAPE');
    expect(codeOf(() => acc.addHost(new Float32Array(5), 2))).toBe('SHAPE');
    e.release(small);
    acc.dispose();
    await expect(acc.result()).rejects.toMatchObject({ code: 'DISPOSED' });
    expect(() => acc.addHost(new Float32Array(3), 1)).toThrow(/disposed/);
    expect(() => new SignPatternAccumulator(e, 0)).toThrow(/positive integer/);
    expect(() => new SignPatternAccumulator(e, 2.5)).toThrow(/positive integer/);
    expect(() => new SignPatternAccumulator(e, 3, { variant: 'bogus' as SignPackVariant })).toThrow(/unknown variant/);
    if (!e.features.has('subgroups')) {
      expect(() => new SignPatternAccumulator(e, 3, { variant: 'ballot' })).toThrow(/needs the adapter feature 'subgroups'/);
    }
    expect(codeOf(() => new SignPatternAccumulator(e, 100_000))).toBe('LIMIT_EXCEEDED');
    expect(codeOf(() => new SignPatternAccumulator(e, 10_000_000, { cofire: false }))).toBe('LIMIT_EXCEEDED');
    expect(() => new SignPatternAccumulator(e, 100_000)).toThrow(/co-firing matrix .* exceeds the adapter's storage binding limit/);
    // Without the co-firing matrix a wide layer is fine (hashes and counts only).
    const wide = new SignPatternAccumulator(e, 100_000, { cofire: false });
    wide.dispose();
  });

  it('passes its self-check', async () => {
    const e = await engine();
    const r = await selfCheck(e);
    expect(r.ok, r.detail).toBe(true);
    expect(r.name).toBe('sign-patterns');
  });
});

// The subgroup-ballot packing needs an adapter with `subgroups`; SwiftShader Vulkan (Debian's
// chromium-common, installed by scripts/install-system-deps.sh) has them, llvmpipe does not. All
// three packings must give the CPU reference's words, hashes and co-firing counts bit for bit.
describe('GPU sign-pattern hashing with subgroups (SwiftShader Vulkan)', () => {
  const swiftshader = useSwiftShader();

  it('ballot, atomic and loop packings match the CPU reference on odd shapes, batch cuts and sign edge cases', async (ctx) => {
    const e = swiftshader.get();
    const why = e && !e.features.has('subgroups') ? `${e.adapterName} has no 'subgroups' feature` : swiftshader.why();
    if (!e || !e.features.has('subgroups')) {
      console.log(`skipped: ${why}`);
      ctx.skip();
      return;
    }
    expect(chooseSignPackVariant({ info: { ...e.info, isSoftware: false }, features: e.features })).toBe('ballot');
    const shapes: [number, number][] = [
      [1, 1],
      [33, 13],
      [97, 65],
      [300, 131],
      [70, 613],
      [1000, 9],
    ];
    let seed = 500;
    for (const [rows, d] of shapes) {
      const x = randomF32(rows * d, seed++);
      const ref = signPatternsCpu(x, rows, d);
      for (const variant of ['ballot', 'atomic', 'loop'] as const) {
        const acc = new SignPatternAccumulator(e, d, { variant, keepWords: true });
        let at = 0;
        for (const len of randomCuts(rows, seed * 3)) {
          acc.addHost(x.subarray(at * d, (at + len) * d), len);
          at += len;
        }
        expectSame(await acc.result(), ref, `swiftshader ${rows}x${d} ${variant}`);
        acc.dispose();
      }
    }
    const raw = new Float32Array([1.4e-45, 0, -0, -1.4e-45, NaN, Infinity, -Infinity, 3, -NaN, 1e-38]);
    const buf = e.upload(raw);
    const acc = new SignPatternAccumulator(e, 1, { variant: 'ballot', keepWords: true });
    acc.addBatch(buf, raw.length);
    expect(Array.from((await acc.result()).words!)).toEqual([0b1010100001]);
    acc.dispose();
    e.release(buf);
  }, 120_000);
});
