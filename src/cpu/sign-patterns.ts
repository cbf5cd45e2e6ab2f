// Integer CPU references for sign-pattern hashing (SPEC §6.5 (c), §10.3): the firing bits
// s_a(n) = [pre[n, a] > 0] packed into u32 words, the two 32-bit pattern hashes, the firing
// counts and the co-firing matrix A_ab = Σ_n s_a(n) s_b(n).
//
// These are the test oracles of the GPU kernels (shaders/sign_*.wgsl, cofire_reg.wgsl) and the
// CPU baseline of the benchmark. The hash mixes are written on u32 with Math.imul and `>>> 0`,
// so they are bit-identical to the WGSL ones; everything else is exact integer arithmetic.
//
// Word layout: neuron-major, W = ceil(n / 32) words per neuron; bit (n % 32) of word (n >> 5)
// of neuron a is s_a(n); bits past the last datapoint are 0.

import { checkShape } from '../errors.js';

/** What a sign-pattern pass yields (the GPU accumulator in src/kernels/sign-patterns.ts and signPatternsCpu). */
export interface SignPatternResult {
  /** Datapoints seen. */
  n: number;
  /** Neurons. */
  d: number;
  /** d: first 32-bit mix of each neuron's packed words (chain 1, finalised with n). */
  hashLo: Uint32Array;
  /** d: second, independent 32-bit mix (chain 2, finalised with n). */
  hashHi: Uint32Array;
  /** d: number of datapoints with pre-activation > 0. */
  fireCount: Float64Array;
  /**
   * d*d row-major symmetric: A_ab = #datapoints where both a and b fire (diagonal = fireCount).
   * Empty (length 0) when the accumulator was created with cofire: false.
   */
  cofire: Float64Array;
  /** Only with keepWords: d × ceil(n/32), neuron-major; bit (n%32) of word n>>5 is s_a(n). */
  words?: Uint32Array;
}

/** Initial states of the two hash chains. */
export const SIGN_HASH_SEED1 = 0x243f6a88;
export const SIGN_HASH_SEED2 = 0x85a308d3;

function rotl(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

/** MurmurHash3 x86_32 block step: the first chain (h1), one packed word at a time. */
export function signMix1(h: number, w: number): number {
  let k = Math.imul(w, 0xcc9e2d51);
  k = Math.imul(rotl(k >>> 0, 15), 0x1b873593);
  return (Math.imul(rotl((h ^ k) >>> 0, 13), 5) + 0xe6546b64) >>> 0;
}

/** xxHash32 round: the second, independent chain (h2). */
export function signMix2(h: number, w: number): number {
  return Math.imul(rotl((h + Math.imul(w, 0x85ebca77)) >>> 0, 13), 0x9e3779b1) >>> 0;
}

function fmix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function avalanche(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca77);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae3d);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Finalises chain 1 with the datapoint count n: hash_lo. */
export function signFinal1(h: number, n: number): number {
  const lo = n >>> 0;
  const hi = Math.floor(n / 2 ** 32) >>> 0;
  return fmix32((h ^ lo ^ rotl(hi, 16)) >>> 0);
}

/** Finalises chain 2 with the datapoint count n: hash_hi. */
export function signFinal2(h: number, n: number): number {
  const lo = n >>> 0;
  const hi = Math.floor(n / 2 ** 32) >>> 0;
  return avalanche((h + Math.imul(lo, 0x165667b1) + hi) >>> 0);
}

/** Number of set bits of a u32. */
export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

function checkArgs(fn: string, len: number, rows: number, d: number): void {
  checkShape(Number.isInteger(rows) && rows >= 0, `${fn}: rows must be a non-negative integer, got ${rows}`);
  checkShape(Number.isInteger(d) && d >= 1, `${fn}: d must be a positive integer, got ${d}`);
  checkShape(len === rows * d, `${fn}: pre has ${len} values, expected rows*d = ${rows}*${d} = ${rows * d}`);
}

function checkWords(fn: string, words: Uint32Array, d: number, n: number): number {
  checkShape(Number.isInteger(d) && d >= 1, `${fn}: d must be a positive integer, got ${d}`);
  checkShape(Number.isInteger(n) && n >= 0, `${fn}: n must be a non-negative integer, got ${n}`);
  const W = Math.ceil(n / 32);
  checkShape(words.length === d * W, `${fn}: words has ${words.length} entries, expected d*ceil(n/32) = ${d}*${W} = ${d * W}`);
  return W;
}

/**
 * Packs s_a(n) = [pre[n, a] > 0] (row-major rows×d, datapoint-major) into neuron-major words:
 * d × ceil(rows/32). NaN never fires; +Infinity and positive subnormals do.
 */
export function packSignsCpu(pre: ArrayLike<number>, rows: number, d: number): Uint32Array {
  checkArgs('packSignsCpu', pre.length, rows, d);
  const W = Math.ceil(rows / 32);
  const out = new Uint32Array(d * W);
  for (let w = 0; w < W; w++) {
    const r1 = Math.min(rows, 32 * w + 32);
    for (let r = 32 * w; r < r1; r++) {
      const bit = (1 << (r & 31)) >>> 0;
      const o = r * d;
      for (let a = 0; a < d; a++) if (pre[o + a]! > 0) out[a * W + w]! |= bit;
    }
  }
  return out;
}

/** The two 32-bit hashes of every neuron's packed words (hashLo: chain 1, hashHi: chain 2). */
export function hashPatternsCpu(words: Uint32Array, d: number, n: number): { hashLo: Uint32Array; hashHi: Uint32Array } {
  const W = checkWords('hashPatternsCpu', words, d, n);
  const hashLo = new Uint32Array(d);
  const hashHi = new Uint32Array(d);
  for (let a = 0; a < d; a++) {
    let h1 = SIGN_HASH_SEED1;
    let h2 = SIGN_HASH_SEED2;
    for (let w = a * W; w < (a + 1) * W; w++) {
      h1 = signMix1(h1, words[w]!);
      h2 = signMix2(h2, words[w]!);
    }
    hashLo[a] = signFinal1(h1, n);
    hashHi[a] = signFinal2(h2, n);
  }
  return { hashLo, hashHi };
}

/** Firing count of every neuron: the number of set bits of its words. */
export function fireCountCpu(words: Uint32Array, d: number, n: number): Float64Array {
  const W = checkWords('fireCountCpu', words, d, n);
  const out = new Float64Array(d);
  for (let a = 0; a < d; a++) {
    let c = 0;
    for (let w = a * W; w < (a + 1) * W; w++) c += popcount32(words[w]!);
    out[a] = c;
  }
  return out;
}

/**
 * Co-firing matrix A_ab = Σ_w popcount(B_a[w] & B_b[w]) as a symmetric d×d Float64Array
 * (row-major; the diagonal is the firing count). Only a ≤ b is computed, 2×2 neurons per pass
 * over the words; the lower triangle is mirrored.
 */
export function cofireCpu(words: Uint32Array, d: number, n: number): Float64Array {
  const W = checkWords('cofireCpu', words, d, n);
  const A = new Float64Array(d * d);
  let a = 0;
  for (; a + 1 < d; a += 2) {
    const p = a * W;
    const q = p + W;
    let s00 = 0,
      s01 = 0,
      s11 = 0;
    for (let w = 0; w < W; w++) {
      const u = words[p + w]!,
        v = words[q + w]!;
      s00 += popcount32(u);
      s01 += popcount32(u & v);
      s11 += popcount32(v);
    }
    A[a * d + a] = s00;
    A[a * d + a + 1] = s01;
    A[(a + 1) * d + a + 1] = s11;
    let b = a + 2;
    for (; b + 1 < d; b += 2) {
      const r = b * W;
      const s = r + W;
      let t00 = 0,
        t01 = 0,
        t10 = 0,
        t11 = 0;
      for (let w = 0; w < W; w++) {
        const u = words[p + w]!,
          v = words[q + w]!,
          x = words[r + w]!,
          y = words[s + w]!;
        t00 += popcount32(u & x);
        t01 += popcount32(u & y);
        t10 += popcount32(v & x);
        t11 += popcount32(v & y);
      }
      A[a * d + b] = t00;
      A[a * d + b + 1] = t01;
      A[(a + 1) * d + b] = t10;
      A[(a + 1) * d + b + 1] = t11;
    }
    if (b < d) {
      const r = b * W;
      let t0 = 0,
        t1 = 0;
      for (let w = 0; w < W; w++) {
        const x = words[r + w]!;
        t0 += popcount32(words[p + w]! & x);
        t1 += popcount32(words[q + w]! & x);
      }
      A[a * d + b] = t0;
      A[(a + 1) * d + b] = t1;
    }
  }
  if (a < d) {
    // odd d: the last diagonal entry
    let s = 0;
    for (let w = a * W; w < (a + 1) * W; w++) s += popcount32(words[w]!);
    A[a * d + a] = s;
  }
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) A[j * d + i] = A[i * d + j]!;
  return A;
}

/**
 * Everything the GPU accumulator returns, from a row-major rows×d array of pre-activations
 * (words are always included). `cofire: false` skips the O(d² n / 32) co-firing matrix and
 * returns an empty one, as the accumulator does.
 */
export function signPatternsCpu(pre: ArrayLike<number>, rows: number, d: number, opts: { cofire?: boolean } = {}): SignPatternResult {
  const words = packSignsCpu(pre, rows, d);
  const { hashLo, hashHi } = hashPatternsCpu(words, d, rows);
  return {
    n: rows,
    d,
    hashLo,
    hashHi,
    fireCount: fireCountCpu(words, d, rows),
    cofire: opts.cofire === false ? new Float64Array(0) : cofireCpu(words, d, rows),
    words,
  };
}
