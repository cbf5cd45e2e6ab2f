// IEEE binary16 (F16) and bfloat16 (BF16) <-> JS numbers. Tensors of these dtypes are stored as
// their raw 16-bit patterns in a Uint16Array (Node 20 has no Float16Array), so a file round trip
// never changes a bit; these functions convert only when values are needed.
//
// Encoding rounds directly from float64 with round-half-to-even. Going through float32 first
// would round twice and can be off by one ulp for values just past a float16 midpoint.

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** Round half to even for x >= 0 (x - floor(x) is exact at the magnitudes used here). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Largest e with 2^e <= a (a finite, > 0). Math.log2 can be off by one near powers of two. */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return e;
}

/** Encodes v in a binary format with 1 sign, `eBits` exponent and `mBits` mantissa bits. */
function encodeSmallFloat(v: number, eBits: number, mBits: number): number {
  const expAll = (1 << eBits) - 1;
  const inf = expAll << mBits;
  if (Number.isNaN(v)) return inf | (1 << (mBits - 1)); // canonical quiet NaN
  const sign = v < 0 || Object.is(v, -0) ? 1 << (eBits + mBits) : 0;
  const a = Math.abs(v);
  if (a === Infinity) return sign | inf;
  if (a === 0) return sign;
  const bias = (1 << (eBits - 1)) - 1;
  const minNormalExp = 1 - bias;
  if (a < 2 ** minNormalExp) {
    // Subnormal: quantum 2^(minNormalExp - mBits). A result of 2^mBits is the smallest normal,
    // whose bit pattern is exactly that integer, so no special case is needed.
    return sign | roundHalfEven(a * 2 ** (mBits - minNormalExp));
  }
  const e = exponentOf(a);
  if (e > bias) return sign | inf;
  // m in [2^mBits, 2^(mBits+1)]; the carry of m = 2^(mBits+1) moves into the exponent field.
  const m = roundHalfEven(a * 2 ** (mBits - e));
  const bits = ((e + bias) << mBits) + m - (1 << mBits);
  return sign | Math.min(bits, inf);
}

/** float64 -> float16 bit pattern (round half to even; overflow -> ±Inf; NaN -> 0x7e00). */
export function f16Bits(v: number): number {
  return encodeSmallFloat(v, 5, 10);
}

/** float64 -> bfloat16 bit pattern (round half to even; overflow -> ±Inf; NaN -> 0x7fc0). */
export function bf16Bits(v: number): number {
  return encodeSmallFloat(v, 8, 7);
}

let f16Table: Float32Array | undefined;

/** All 65536 float16 values; built once, 256 KiB, makes bulk decoding a table lookup. */
function f16Lut(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const man = h & 0x3ff;
    if (exp === 0) t[h] = sign * man * 2 ** -24;
    else if (exp === 31) t[h] = man ? NaN : sign * Infinity;
    else t[h] = sign * (1024 + man) * 2 ** (exp - 25);
  }
  f16Table = t;
  return t;
}

/** float16 bit pattern -> number (exact). */
export function f16Value(bits: number): number {
  return f16Lut()[bits & 0xffff]!;
}

/** bfloat16 bit pattern -> number (exact: bfloat16 is the top half of a float32). */
export function bf16Value(bits: number): number {
  U32[0] = (bits & 0xffff) << 16;
  return F32[0]!;
}

/** Decodes a float16 array into `out` (float32 holds every float16 value exactly). */
export function decodeF16(src: Uint16Array, out: Float32Array | Float64Array = new Float32Array(src.length)): typeof out {
  const lut = f16Lut();
  for (let i = 0; i < src.length; i++) out[i] = lut[src[i]!]!;
  return out;
}

/** Decodes a bfloat16 array into `out` (exact in float32). */
export function decodeBF16(src: Uint16Array, out: Float32Array | Float64Array = new Float32Array(src.length)): typeof out {
  if (out instanceof Float32Array) {
    const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  } else {
    for (let i = 0; i < src.length; i++) out[i] = bf16Value(src[i]!);
  }
  return out;
}

/** Encodes numbers as float16 bit patterns. */
export function encodeF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16Bits(src[i]!);
  return out;
}

/** Encodes numbers as bfloat16 bit patterns. */
export function encodeBF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  if (src instanceof Float32Array) {
    // From float32 a single round of the low 16 bits is exact: add 0x7fff plus the lowest kept
    // bit (ties to even), keep the top half. NaN is handled first so the carry cannot turn it
    // into Inf.
    const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < src.length; i++) {
      const x = u[i]!;
      if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) out[i] = (x >>> 16) | 0x40;
      else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
    return out;
  }
  for (let i = 0; i < src.length; i++) out[i] = bf16Bits(src[i]!);
  return out;
}
