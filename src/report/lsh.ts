// Near-synchronised neuron pairs without the d×d co-firing matrix (SPEC §6.5 step 3, for wide
// layers): bit-sampling locality-sensitive hashing on the packed firing patterns.
//
// Each of `tables` hash tables samples `bits` datapoints at random; a neuron's key is its firing
// bits at those datapoints. Two patterns at Hamming distance H agree on one sampled datapoint with
// probability 1 − H/N, so they share a key in one table with probability (1 − H/N)^bits, and in at
// least one table with probability 1 − (1 − (1 − H/N)^bits)^tables. Every candidate pair (same key
// in some table) is then checked exactly by popcount over its packed words, so the listed pairs
// and their distances are exact; only a pair that never collides can be missed (the recall bound
// below). By default each table samples as many datapoints as keep a pair at the largest wanted
// distance colliding with probability >= 1/2 (at most 32), and 16 tables make its recall
// >= 1 − 2⁻¹⁶; pairs at H = N/2 collide in a table with probability 2^−bits.

import { mulberry32 } from '../util/mulberry32.js';
import { popcount32 } from '../cpu/sign-patterns.js';

export interface LshOptions {
  /** Hash tables (default 16). */
  tables?: number;
  /** Sampled datapoints per table (at most 32; default: see bitsFor). */
  bits?: number;
  seed?: number;
  /** Candidate buckets larger than this are checked pairwise only up to this size (default 4096). */
  maxBucket?: number;
}

export interface LshPair {
  a: number;
  b: number;
  hamming: number;
  /** Datapoints where both fire. */
  both: number;
}

/** Default sampled datapoints per table: the most with (1 − maxH/n)^bits >= 1/2, in 1..32. */
export function bitsFor(maxHamming: number, n: number): number {
  const q = 1 - maxHamming / n;
  if (q >= 1) return 32;
  if (q <= 0) return 1;
  return Math.max(1, Math.min(32, Math.floor(Math.log(0.5) / Math.log(q))));
}

/** Probability that a pair at Hamming distance h of n is a candidate (tables/bits as nearPairsLsh, for maxHamming = h). */
export function lshRecall(h: number, n: number, opts: LshOptions = {}): number {
  const bits = Math.min(32, opts.bits ?? bitsFor(h, n));
  const tables = opts.tables ?? 16;
  return 1 - (1 - (1 - h / n) ** bits) ** tables;
}

const prng = mulberry32;

/**
 * Pairs (a < b) among `candidates` (neuron indices) whose patterns differ on 1..maxHamming
 * datapoints. `words` is neuron-major d × ceil(n/32) (SignPatternResult.words).
 */
export function nearPairsLsh(words: Uint32Array, d: number, n: number, candidates: readonly number[], maxHamming: number, opts: LshOptions = {}): LshPair[] {
  const W = Math.ceil(n / 32);
  if (n === 0 || candidates.length < 2) return [];
  const bits = Math.min(32, opts.bits ?? bitsFor(maxHamming, n));
  const tables = opts.tables ?? 16;
  const maxBucket = opts.maxBucket ?? 4096;
  const rand = prng(opts.seed ?? 0x5eed);
  const seen = new Set<number>();
  const out: LshPair[] = [];
  const check = (a: number, b: number) => {
    const key = a * d + b;
    if (seen.has(key)) return;
    seen.add(key);
    let ham = 0;
    let both = 0;
    const pa = a * W;
    const pb = b * W;
    for (let w = 0; w < W; w++) {
      const x = words[pa + w]!;
      const y = words[pb + w]!;
      ham += popcount32(x ^ y);
      both += popcount32(x & y);
      if (ham > maxHamming) return;
    }
    if (ham > 0) out.push({ a, b, hamming: ham, both });
  };
  for (let t = 0; t < tables; t++) {
    const pts = Array.from({ length: bits }, () => Math.floor(rand() * n));
    const buckets = new Map<number, number[]>();
    for (const a of candidates) {
      let key = 0;
      for (let k = 0; k < bits; k++) {
        const p = pts[k]!;
        key = (key * 2 + ((words[a * W + (p >>> 5)]! >>> (p & 31)) & 1)) >>> 0;
      }
      let bkt = buckets.get(key);
      if (!bkt) buckets.set(key, (bkt = []));
      bkt.push(a);
    }
    for (const bkt of buckets.values()) {
      const m = Math.min(bkt.length, maxBucket);
      for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) check(Math.min(bkt[i]!, bkt[j]!), Math.max(bkt[i]!, bkt[j]!));
    }
  }
  return out.sort((x, y) => x.hamming - y.hamming || x.a - y.a || x.b - y.b);
}
