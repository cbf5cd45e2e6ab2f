// The one small seeded generator of the host code and the tests: mulberry32 (Tommy Ettinger),
// 32-bit state, uniform in [0, 1) with 32 random bits. Enough for tie-breaking, shuffles, hash
// seeds and test data; training uses train/random.ts (sfc32, independent streams) instead.

/** A generator of uniform numbers in [0, 1), a pure function of the seed (taken mod 2^32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
