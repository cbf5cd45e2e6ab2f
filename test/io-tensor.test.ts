import { describe, expect, it } from 'vitest';
import { bf16Bits, bf16Value, decodeBF16, decodeF16, encodeBF16, f16Bits, f16Value } from '../src/io/half.js';
import { ALL_DTYPES, checkTensor, fromNumbers, makeTensor, swapBytes, toFloat32, toFloat64 } from '../src/io/tensor.js';
import { IbgpuError } from '../src/errors.js';
import { rng } from './helpers/random.js';

describe('float16 encoding', () => {
  it('encodes edge values to the IEEE bit patterns', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [1 / 3, 0x3555],
      [2 ** -24, 0x0001], // smallest subnormal
      [1023 * 2 ** -24, 0x03ff], // largest subnormal
      [2 ** -14, 0x0400], // smallest normal
      [65504, 0x7bff], // max
      [65519.99, 0x7bff], // just below the rounding midpoint to Inf
      [65520, 0x7c00], // midpoint: ties to even -> Inf
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -25, 0x0000], // half the smallest subnormal: tie to even (0)
      [3 * 2 ** -26, 0x0001], // 0.75 of it rounds up
      [-(2 ** -26), 0x8000], // underflow keeps the sign
      [1 + 2 ** -11, 0x3c00], // tie -> even mantissa 0
      [1 + 3 * 2 ** -11, 0x3c02], // tie -> even mantissa 2
      [1 + 2 ** -11 + 2 ** -40, 0x3c01], // above the tie in f64 (a float32 detour would round to the tie, then down)
      [2047 * 2 ** -25, 0x0400], // subnormal rounding up into the smallest normal
    ];
    for (const [v, bits] of cases) expect([v, f16Bits(v)]).toEqual([v, bits]);
    const nan = f16Bits(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
  });

  it('decodes all 65536 patterns and re-encodes them bit-exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const dec = decodeF16(all);
    let nans = 0;
    for (let h = 0; h < 65536; h++) {
      const v = dec[h]!;
      expect(v).toBe(f16Value(h));
      if (Number.isNaN(v)) {
        nans++;
        continue;
      }
      if (f16Bits(v) !== h) throw new Error(`f16 round trip failed for 0x${h.toString(16)} (${v})`);
    }
    expect(nans).toBe(2 * 1023); // exponent 31 with a non-zero mantissa, both signs
    expect(f16Value(0x7bff)).toBe(65504);
    expect(f16Value(0x0001)).toBe(2 ** -24);
    expect(Object.is(f16Value(0x8000), -0)).toBe(true);
  });

  it('rounds random doubles to the nearest float16', () => {
    const r = rng(7);
    for (let i = 0; i < 20000; i++) {
      const v = (r() - 0.5) * 2 ** Math.floor(r() * 40 - 28);
      const h = f16Bits(v);
      const err = Math.abs(f16Value(h) - v);
      // No neighbouring pattern (same sign) is strictly closer.
      for (const n of [h - 1, h + 1]) {
        if ((n & 0x7fff) === 0x7fff || n < 0 || ((n ^ h) & 0x8000) !== 0) continue;
        const nv = f16Value(n & 0xffff);
        if (Number.isFinite(nv)) expect(Math.abs(nv - v)).toBeGreaterThanOrEqual(err);
      }
    }
  });
});

describe('bfloat16 encoding', () => {
  it('encodes edge values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3f80],
      [-1, 0xbf80],
      [(2 - 2 ** -7) * 2 ** 127, 0x7f7f], // max
      [3.4028234663852886e38, 0x7f80], // float32 max rounds up to Inf in bfloat16
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [2 ** -133, 0x0001], // smallest subnormal
      [2 ** -126, 0x0080], // smallest normal
      [1 + 2 ** -8, 0x3f80], // tie -> even
      [1 + 3 * 2 ** -8, 0x3f82],
    ];
    for (const [v, bits] of cases) expect([v, bf16Bits(v)]).toEqual([v, bits]);
    expect(Number.isNaN(bf16Value(bf16Bits(NaN)))).toBe(true);
  });

  it('round-trips all 65536 patterns; the float32 fast path agrees with the exact encoder', () => {
    for (let h = 0; h < 65536; h++) {
      const v = bf16Value(h);
      if (Number.isNaN(v)) continue;
      if (bf16Bits(v) !== h) throw new Error(`bf16 round trip failed for 0x${h.toString(16)}`);
    }
    // Random float32 bit patterns, including exact ties (low 16 bits = 0x8000).
    const r = rng(11);
    const u = new Uint32Array(50000);
    for (let i = 0; i < u.length; i++) {
      u[i] = Math.floor(r() * 2 ** 32) >>> 0;
      if (i % 5 === 0) u[i] = (u[i]! & 0xffff0000) | 0x8000;
    }
    const f = new Float32Array(u.buffer);
    const fast = encodeBF16(f);
    for (let i = 0; i < f.length; i++) {
      if (Number.isNaN(f[i]!)) {
        expect(Number.isNaN(bf16Value(fast[i]!))).toBe(true);
        continue;
      }
      if (fast[i] !== bf16Bits(f[i]!)) throw new Error(`fast bf16 differs for ${f[i]}`);
    }
    const back = decodeBF16(fast, new Float64Array(fast.length));
    expect(back[0]).toBe(bf16Value(fast[0]!));
  });
});

describe('tensors', () => {
  it('builds every dtype from numbers and converts back', () => {
    const vals = [0, 1, 2, 3, 100, 127];
    for (const dt of ALL_DTYPES) {
      const t = fromNumbers(vals, dt, [2, 3]);
      const want = dt === 'BOOL' ? vals.map((v) => (v ? 1 : 0)) : vals;
      expect([dt, Array.from(toFloat64(t))]).toEqual([dt, want]);
      expect([dt, Array.from(toFloat32(t))]).toEqual([dt, want]);
    }
  });

  it('rejects inconsistent tensors with SHAPE errors', () => {
    const bad = [
      () => makeTensor('F32', [2, 3], new Float32Array(5)),
      () => makeTensor('F32', [2], new Float64Array(2)),
      () => makeTensor('F16', [2], new Float32Array(2)),
      () => makeTensor('F32', [-1], new Float32Array(0)),
      () => checkTensor({ dtype: 'F8' as never, shape: [1], data: new Uint8Array(1) }),
    ];
    for (const f of bad) {
      expect(f).toThrow(IbgpuError);
      try {
        f();
      } catch (e) {
        expect((e as IbgpuError).code).toBe('SHAPE');
      }
    }
    expect(makeTensor('F32', [], new Float32Array(1)).shape).toEqual([]);
  });

  it('swaps bytes per element', () => {
    const b = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    swapBytes(b, 4);
    expect(Array.from(b)).toEqual([4, 3, 2, 1, 8, 7, 6, 5]);
  });
});
