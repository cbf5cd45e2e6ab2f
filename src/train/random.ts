// Seeded randomness for training: weight initialisation and the per-epoch shuffles. Everything
// is a pure function of (seed, stream), so a training run is reproducible from its seed alone.
//
// Generator: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 128-bit state), seeded
// through splitmix32 from the seed and a stream id; streams are independent sequences (stream 0:
// initialisation, stream 1 + e: the shuffle of epoch e).

import { IbgpuError } from '../errors.js';

/** splitmix32 step: a well-mixed 32-bit value from a 32-bit counter. */
function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

export interface Rng {
  /** Uniform 32-bit unsigned integer. */
  u32(): number;
  /** Uniform in [0, 1) with 53 random bits. */
  next(): number;
  /** Uniform integer in [0, n), unbiased (rejection sampling). */
  int(n: number): number;
}

export function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new IbgpuError('BAD_CONFIG', `seed must be an integer in [0, 4294967295], got ${seed}`);
  }
}

/** The generator for (seed, stream). */
export function makeRng(seed: number, stream = 0): Rng {
  checkSeed(seed);
  let s = splitmix32(seed ^ 0x5bd1e995);
  let a = (s = splitmix32(s + stream));
  let b = (s = splitmix32(s));
  let c = (s = splitmix32(s));
  let d = 1; // counter
  const u32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) u32(); // discard the warm-up outputs
  return {
    u32,
    next: () => ((u32() >>> 5) * 67108864 + (u32() >>> 6)) / 9007199254740992,
    int: (n: number) => {
      if (!Number.isInteger(n) || n < 1 || n > 0x100000000) throw new Error(`Rng.int: bad bound ${n}`);
      const limit = 0x100000000 - (0x100000000 % n); // largest multiple of n <= 2^32
      for (;;) {
        const v = u32();
        if (v < limit) return v % n;
      }
    },
  };
}

/** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
export function permutation(n: number, rng: Rng): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/**
 * torch.nn.Linear's default initialisation: kaiming_uniform_(a = √5) for the weight and
 * U(−1/√fan_in, 1/√fan_in) for the bias, i.e. both uniform in ±1/√dIn. W is [dIn, dOut]
 * (y = x·W + b); values are drawn in row-major order of W, then b.
 */
export function kaimingUniform(dIn: number, dOut: number, rng: Rng): { W: Float32Array; b: Float32Array } {
  const bound = 1 / Math.sqrt(dIn);
  const W = new Float32Array(dIn * dOut);
  for (let i = 0; i < W.length; i++) W[i] = (2 * rng.next() - 1) * bound;
  const b = new Float32Array(dOut);
  for (let i = 0; i < dOut; i++) b[i] = (2 * rng.next() - 1) * bound;
  return { W, b };
}
