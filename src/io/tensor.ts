// Host tensors as read from and written to files: a dtype, a C-order shape and a typed array
// holding the values in the stored dtype. F16/BF16 are kept as raw bit patterns (Uint16Array) so
// that reading and writing a file never changes a bit; convert with toFloat32 / toFloat64.

import { IbgpuError } from '../errors.js';
import { decodeBF16, decodeF16, encodeBF16, encodeF16 } from './half.js';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export type TypedArray =
  Float64Array | Float32Array | BigInt64Array | Int32Array | Int16Array | Int8Array | BigUint64Array | Uint32Array | Uint16Array | Uint8Array;

export interface Tensor {
  dtype: DType;
  /** C-order (row-major) shape; [] is a scalar holding one value. */
  shape: number[];
  data: TypedArray;
}

type ArrayCtor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray;
  new (length: number): TypedArray;
  readonly BYTES_PER_ELEMENT: number;
};

/** The typed array class of each dtype (its BYTES_PER_ELEMENT is the dtype's size). */
const DTYPES: Record<DType, ArrayCtor> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

export const ALL_DTYPES = Object.keys(DTYPES) as DType[];

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, s);
}

/** Bytes per element. */
export function dtypeSize(dtype: DType): number {
  return DTYPES[dtype].BYTES_PER_ELEMENT;
}

/** Number of elements of a shape ([] -> 1). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** Whether a shape is a list of non-negative safe integers. */
export function isValidShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((s) => Number.isSafeInteger(s) && s >= 0) && Number.isSafeInteger(numel(shape));
}

/** The typed array class that holds `dtype` values. */
export function arrayClassOf(dtype: DType): ArrayCtor {
  return DTYPES[dtype];
}

/** A zero-filled tensor. */
export function zeros(dtype: DType, shape: number[]): Tensor {
  return { dtype, shape: [...shape], data: new DTYPES[dtype](numel(shape)) };
}

/**
 * Validates and returns a tensor: the data must be the typed array class of the dtype (Uint16Array
 * bit patterns for F16/BF16) and hold exactly numel(shape) values.
 */
export function makeTensor(dtype: DType, shape: number[], data: TypedArray, what = 'tensor'): Tensor {
  checkTensor({ dtype, shape, data }, what);
  return { dtype, shape: [...shape], data };
}

/** Throws a SHAPE error unless `t` is a consistent tensor. */
export function checkTensor(t: Tensor, what = 'tensor'): void {
  if (!isDType(t.dtype)) {
    throw new IbgpuError('SHAPE', `${what}: unknown dtype ${JSON.stringify(t.dtype)}`, `use one of ${ALL_DTYPES.join(', ')}`);
  }
  if (!isValidShape(t.shape)) {
    throw new IbgpuError('SHAPE', `${what}: shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`);
  }
  const ctor = DTYPES[t.dtype];
  if (!(t.data instanceof (ctor as unknown as new () => TypedArray))) {
    const got = (t.data as { constructor?: { name?: string } } | undefined)?.constructor?.name ?? typeof t.data;
    throw new IbgpuError(
      'SHAPE',
      `${what}: dtype ${t.dtype} needs a ${(ctor as unknown as { name: string }).name}, got ${got}`,
      t.dtype === 'F16' || t.dtype === 'BF16'
        ? `${t.dtype} data are raw 16-bit patterns; build them with fromNumbers(values, '${t.dtype}', shape)`
        : `convert the data or use fromNumbers(values, '${t.dtype}', shape)`,
    );
  }
  const n = numel(t.shape);
  if (t.data.length !== n) {
    throw new IbgpuError('SHAPE', `${what}: shape [${t.shape.join(', ')}] needs ${n} values, the data has ${t.data.length}`);
  }
}

/** Builds a tensor of `dtype` from numbers (rounding to the dtype; F16/BF16 round half to even). */
export function fromNumbers(values: ArrayLike<number>, dtype: DType, shape: number[] = [values.length]): Tensor {
  let data: TypedArray;
  switch (dtype) {
    case 'F16':
      data = encodeF16(values);
      break;
    case 'BF16':
      data = encodeBF16(values);
      break;
    case 'I64':
      data = BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
      break;
    case 'U64':
      data = BigUint64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
      break;
    case 'BOOL':
      data = Uint8Array.from(values, (v) => (v ? 1 : 0));
      break;
    default: {
      const ctor = DTYPES[dtype] as unknown as { from(a: ArrayLike<number>): TypedArray };
      data = ctor.from(values);
    }
  }
  return makeTensor(dtype, shape, data);
}

function convert<T extends Float32Array | Float64Array>(t: Tensor, out: T): T {
  const d = t.data;
  if (t.dtype === 'F16') return decodeF16(d as Uint16Array, out) as T;
  if (t.dtype === 'BF16') return decodeBF16(d as Uint16Array, out) as T;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) {
    for (let i = 0; i < d.length; i++) out[i] = Number(d[i]!);
    return out;
  }
  out.set(d);
  return out;
}

/** Values as float32 (a new array, except that an F32 tensor returns its own data). */
export function toFloat32(t: Tensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  return convert(t, new Float32Array(t.data.length));
}

/** Values as float64 (a new array, except that an F64 tensor returns its own data). */
export function toFloat64(t: Tensor): Float64Array {
  if (t.data instanceof Float64Array) return t.data;
  return convert(t, new Float64Array(t.data.length));
}

export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses the bytes of every `size`-byte element in place. */
export function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/** The tensor's values as little-endian bytes (a view of the data on little-endian hosts). */
export function littleEndianBytes(t: Tensor): Uint8Array {
  const v = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (HOST_LITTLE_ENDIAN) return v;
  const copy = v.slice();
  swapBytes(copy, dtypeSize(t.dtype));
  return copy;
}

/**
 * Interprets little-endian bytes (already copied, owned by the caller) as `count` values of
 * `dtype`. Copies once more only if the bytes are misaligned for the element size.
 */
export function arrayFromBytes(dtype: DType, bytes: Uint8Array, count: number, littleEndian = true): TypedArray {
  const ctor = DTYPES[dtype];
  const size = ctor.BYTES_PER_ELEMENT;
  let b = bytes;
  if (b.byteOffset % size !== 0) b = b.slice();
  if (littleEndian !== HOST_LITTLE_ENDIAN) swapBytes(b, size);
  return new ctor(b.buffer, b.byteOffset, count);
}
