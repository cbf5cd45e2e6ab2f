// torch.randperm(n, generator=torch.Generator().manual_seed(seed)) on the CPU, bit for bit.
//
// torch's CPU generator is a standard 32-bit Mersenne Twister (at::mt19937) initialised with
// init_genrand(seed & 0xffffffff); CPUGeneratorImpl::random() returns its next 32-bit output.
// randperm_cpu (aten/src/ATen/native/TensorFactories.cpp) starts from 0..n−1 and, for
// n < 2^32/20 ("preserve old behavior"), swaps r[i] with r[i + random() % (n − i)] for
// i = 0..n−2. Larger n switch to random64() and an inside-out shuffle; no dataset here is that
// large, so they are refused rather than guessed. Verified against rib's modular-arithmetic split
// (test/data-transformer.test.ts).

import { IbgpuError } from '../errors.js';

/** MT19937 (Matsumoto & Nishimura), 32-bit outputs. */
export class Mt19937 {
  private readonly mt = new Uint32Array(624);
  private idx = 624;

  constructor(seed: number) {
    const mt = this.mt;
    mt[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      // 1812433253 · prev + i (mod 2^32), split to stay exact in doubles
      mt[i] = (((((prev & 0xffff0000) >>> 16) * 1812433253) << 16) + (prev & 0x0000ffff) * 1812433253 + i) >>> 0;
    }
  }

  next(): number {
    const mt = this.mt;
    if (this.idx >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k]! & 0x80000000) | (mt[(k + 1) % 624]! & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.idx = 0;
    }
    let y = mt[this.idx++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

/** torch.randperm(n) with a CPU generator seeded by `seed` (torch.Generator().manual_seed(seed)). */
export function torchRandperm(n: number, seed: number): Int32Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`torchRandperm: n = ${n}`);
  if (n >= Math.floor(4294967295 / 20)) {
    throw new IbgpuError(
      'BAD_CONFIG',
      `a permutation of ${n} items uses torch's random64() path, which ibgpu does not reproduce`,
      'use fewer than 214,748,364 items',
    );
  }
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new IbgpuError(
      'BAD_CONFIG',
      `seed ${seed} is not an integer in 0..2^32−1`,
      'torch seeds its Mersenne Twister with the low 32 bits; give such a seed',
    );
  }
  const gen = new Mt19937(seed);
  const r = new Int32Array(n);
  for (let i = 0; i < n; i++) r[i] = i;
  for (let i = 0; i < n - 1; i++) {
    const z = gen.next() % (n - i);
    const sav = r[i]!;
    r[i] = r[i + z]!;
    r[i + z] = sav;
  }
  return r;
}
