// NumPy .npy reader and writer (format versions 1.0, 2.0, 3.0).
//
// Layout: magic "\x93NUMPY", major and minor version bytes, header length (u16 LE in 1.0, u32 LE
// in 2.0/3.0), then a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }
// padded with spaces and a newline (latin-1 in 1.0/2.0, UTF-8 in 3.0), then the raw data.
//
// openNpy reads only the header; readRows(start, count) reads a block of leading-axis rows, so a
// large activation matrix saved with np.save can be streamed in batches. Fortran-order arrays are
// read column segment by column segment and transposed to C order; big-endian data are swapped.

import { openInput } from './open-input.js';
import { IbgpuError } from '../errors.js';
import { writeFileAtomic } from './atomic.js';
import { arrayFromBytes, checkTensor, dtypeSize, littleEndianBytes, numel, toFloat32, toFloat64, type DType, type Tensor, type TypedArray } from './tensor.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export interface NpyHeader {
  /** numpy type string as stored, e.g. '<f4'. */
  descr: string;
  dtype: DType;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
  /** Format version [major, minor]. */
  version: [number, number];
  /** Byte offset of the data. */
  dataOffset: number;
}

export interface NpyFile extends NpyHeader {
  readonly path: string;
  /** Length of the leading axis (1 for a 0-d array). */
  readonly rows: number;
  /** Values per leading-axis row (product of the other dimensions). */
  readonly rowLength: number;
  /** Rows [start, start + count) as a C-order float32 array of count × rowLength values. */
  readRows(start: number, count: number): Promise<Float32Array>;
  /** Same, as float64. */
  readRowsF64(start: number, count: number): Promise<Float64Array>;
  /** Rows [start, start + count) in the stored dtype, C order, host byte order. */
  readRowsRaw(start: number, count: number): Promise<Tensor>;
  /** The whole array in the stored dtype, C order, host byte order. */
  readAll(): Promise<Tensor>;
  /** Releases the file handle (idempotent). */
  close(): Promise<void>;
}

const DESCR_KINDS: Record<string, DType> = {
  f2: 'F16',
  f4: 'F32',
  f8: 'F64',
  i1: 'I8',
  i2: 'I16',
  i4: 'I32',
  i8: 'I64',
  u1: 'U8',
  u2: 'U16',
  u4: 'U32',
  u8: 'U64',
  b1: 'BOOL',
};

function badFile(path: string, problem: string, hint?: string): IbgpuError {
  return new IbgpuError('BAD_FILE', `${path}: ${problem}`, hint ?? 'the file is corrupt or not a .npy file; re-save it with numpy.save');
}

// ---- header dict parser (the subset of Python literals np.save writes) ------------------------

type PyValue = string | boolean | number | null | PyValue[] | { [k: string]: PyValue };

function parsePyLiteral(text: string, path: string): PyValue {
  let i = 0;
  const fail = (what: string): never => {
    throw badFile(path, `cannot parse the header dict (${what} at character ${i}): ${JSON.stringify(text.slice(0, 200))}`);
  };
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, PyValue> = {};
      for (;;) {
        ws();
        if (text[i] === '}') {
          i++;
          return obj;
        }
        const k = value();
        if (typeof k !== 'string') fail('a non-string key');
        ws();
        if (text[i] !== ':') fail("a missing ':'");
        i++;
        obj[k as string] = value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') fail("a missing ',' or '}'");
      }
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const arr: PyValue[] = [];
      for (;;) {
        ws();
        if (text[i] === close) {
          i++;
          return arr;
        }
        arr.push(value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== close) fail(`a missing ',' or '${close}'`);
      }
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) fail('an unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const m = /^(True|False|None|-?\d+L?)/.exec(text.slice(i));
    if (!m) return fail('an unexpected token');
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return Number(m[0].replace('L', '')); // Python 2 wrote longs as 3L
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing characters');
  return v;
}

function parseDescr(descr: PyValue, path: string): { dtype: DType; littleEndian: boolean } {
  if (typeof descr !== 'string') {
    throw badFile(path, `structured dtype ${JSON.stringify(descr)} is not supported`, 'save a plain numeric array (e.g. arr.astype(np.float32))');
  }
  const m = /^([<>|=]?)([a-zA-Z])(\d*)$/.exec(descr);
  const dtype = m ? DESCR_KINDS[`${m[2]}${m[3]}`] : undefined;
  if (!m || !dtype) {
    const kind = m?.[2];
    const what =
      kind === 'O'
        ? 'object arrays (pickled Python objects)'
        : kind === 'U' || kind === 'S'
          ? 'string arrays'
          : kind === 'c'
            ? 'complex arrays'
            : kind === 'M' || kind === 'm'
              ? 'datetime arrays'
              : `dtype '${descr}'`;
    throw badFile(
      path,
      `${what} are not supported`,
      'save a numeric array: np.save(path, arr.astype(np.float32)); supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1',
    );
  }
  // '|' (no byte order) is only valid for 1-byte types; '=' means native, which np.save never
  // writes but other tools might: treat it as little-endian like every platform we run on.
  return { dtype, littleEndian: m[1] !== '>' };
}

/** Parses the header from the first bytes of a file (needs at least the whole header). */
export function parseNpyHeader(bytes: Uint8Array, fileSize: number, path = '<bytes>'): NpyHeader {
  if (fileSize < 10 || bytes.length < 10) throw badFile(path, `file is ${fileSize} bytes, too short for a .npy header`);
  for (let k = 0; k < MAGIC.length; k++) {
    if (bytes[k] !== MAGIC[k]) throw badFile(path, 'bad magic: not a .npy file (expected the bytes \\x93NUMPY)');
  }
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (![1, 2, 3].includes(major) || minor !== 0) {
    throw badFile(path, `unsupported .npy format version ${major}.${minor}`, 'versions 1.0, 2.0 and 3.0 are supported; re-save with numpy.save');
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  const start = 8 + lenBytes;
  if (fileSize < start || bytes.length < start) throw badFile(path, 'file truncated inside the header length');
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const dataOffset = start + hlen;
  if (dataOffset > fileSize) throw badFile(path, `header length ${hlen} runs past the end of the file (${fileSize} bytes); the file is truncated`);
  if (bytes.length < dataOffset) throw new RangeError('parseNpyHeader: not enough bytes for the header');
  const raw = bytes.subarray(start, dataOffset);
  const text = major === 3 ? new TextDecoder('utf-8').decode(raw) : latin1(raw);
  const dict = parsePyLiteral(text.trim(), path);
  if (typeof dict !== 'object' || dict === null || Array.isArray(dict)) throw badFile(path, 'header is not a dict');
  for (const k of ['descr', 'fortran_order', 'shape']) {
    if (!(k in dict)) throw badFile(path, `header lacks '${k}'`);
  }
  const { dtype, littleEndian } = parseDescr(dict['descr']!, path);
  const fo = dict['fortran_order'];
  if (typeof fo !== 'boolean') throw badFile(path, `fortran_order must be True or False, got ${JSON.stringify(fo)}`);
  const shape = dict['shape'];
  if (!Array.isArray(shape) || !shape.every((s) => typeof s === 'number' && Number.isSafeInteger(s) && s >= 0)) {
    throw badFile(path, `shape ${JSON.stringify(shape)} is not a tuple of non-negative integers`);
  }
  const need = numel(shape as number[]) * dtypeSize(dtype);
  const have = fileSize - dataOffset;
  if (have < need) {
    throw badFile(
      path,
      `truncated: shape (${shape.join(', ')}) of ${String(dict['descr'])} needs ${need} data bytes, the file has ${have}`,
      'the file was cut off (interrupted copy or save?); re-save it',
    );
  }
  if (have > need) {
    throw badFile(
      path,
      `${have - need} unexpected bytes after the data (shape (${shape.join(', ')}) of ${String(dict['descr'])} needs ${need})`,
      'the file is corrupt or was appended to; re-save it',
    );
  }
  return {
    descr: dict['descr'] as string,
    dtype,
    littleEndian: littleEndian || dtypeSize(dtype) === 1,
    fortranOrder: fo,
    shape: shape as number[],
    version: [major, minor],
    dataOffset,
  };
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Reorders a Fortran-order array of `shape` into C order (a new array of the same class). */
export function fortranToC<T extends TypedArray>(src: T, shape: readonly number[]): T {
  const n = src.length;
  const out = new (src.constructor as new (n: number) => T)(n);
  const d = shape.length;
  if (d <= 1 || n === 0) {
    out.set(src as never);
    return out;
  }
  // Walk the output in C order, keeping the multi-index and the matching Fortran offset.
  const fstride = new Array<number>(d);
  let s = 1;
  for (let k = 0; k < d; k++) {
    fstride[k] = s;
    s *= shape[k]!;
  }
  const idx = new Array<number>(d).fill(0);
  let f = 0;
  const last = d - 1;
  const inner = shape[last]!;
  const innerStride = fstride[last]!;
  for (let c = 0; c < n;) {
    // The innermost C axis is the outermost Fortran axis: a strided copy.
    for (let j = 0; j < inner; j++) out[c + j] = src[f + j * innerStride]!;
    c += inner;
    // Advance the outer axes (last-1 .. 0) like an odometer.
    for (let k = last - 1; k >= 0; k--) {
      idx[k]!++;
      f += fstride[k]!;
      if (idx[k]! < shape[k]!) break;
      f -= idx[k]! * fstride[k]!;
      idx[k] = 0;
    }
  }
  return out;
}

/** Opens a .npy file and reads its header; data are read by readRows / readAll. */
export async function openNpy(path: string): Promise<NpyFile> {
  const fh = await openInput(path);
  let closed = false;
  const readAt = async (buf: Uint8Array, bufOffset: number, length: number, position: number) => {
    if (closed) throw new IbgpuError('DISPOSED', `${path}: read after close()`, 'keep the file open until all reads finish');
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, bufOffset + done, Math.min(1 << 30, length - done), position + done);
      if (bytesRead === 0) throw badFile(path, `unexpected end of file at byte ${position + done} (the file shrank after it was opened?)`);
      done += bytesRead;
    }
  };
  try {
    const size = (await fh.stat()).size;
    // Headers are small; 4 KiB covers nearly all, otherwise read exactly what the length says.
    let head = new Uint8Array(Math.min(size, 4096));
    await readAt(head, 0, head.length, 0);
    if (head.length >= 12) {
      const dv = new DataView(head.buffer);
      const end = head[6] === 1 ? 10 + dv.getUint16(8, true) : 12 + dv.getUint32(8, true);
      if (end > head.length && end <= size) {
        head = new Uint8Array(end);
        await readAt(head, 0, end, 0);
      }
    }
    const h = parseNpyHeader(head, size, path);
    const size1 = dtypeSize(h.dtype);
    const rows = h.shape.length === 0 ? 1 : h.shape[0]!;
    const rowLength = h.shape.length === 0 ? 1 : numel(h.shape.slice(1));

    const readRowsRaw = async (start: number, count: number): Promise<Tensor> => {
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > rows) {
        throw new IbgpuError(
          'SHAPE',
          `${path}: rows [${start}, ${start}+${count}) are outside the ${rows} rows of shape (${h.shape.join(', ')})`,
          'request 0 <= start, start + count <= rows',
        );
      }
      const n = count * rowLength;
      const bytes = new Uint8Array(n * size1);
      const subShape = h.shape.length === 0 ? [] : [count, ...h.shape.slice(1)];
      if (!h.fortranOrder || h.shape.length <= 1 || count === rows) {
        // Contiguous: C order, 1-D, or the whole of a Fortran array.
        const first = h.fortranOrder && h.shape.length > 1 ? 0 : start * rowLength;
        await readAt(bytes, 0, bytes.length, h.dataOffset + first * size1);
      } else {
        // Fortran order: element (i, rest) lives at i + rows * restF, so each of the rowLength
        // trailing positions contributes one contiguous run of `count` values. Read the runs
        // into a Fortran-order [count, ...rest] block, transposed below.
        const run = count * size1;
        for (let k = 0; k < rowLength; k++) {
          await readAt(bytes, k * run, run, h.dataOffset + (k * rows + start) * size1);
        }
      }
      let data = arrayFromBytes(h.dtype, bytes, n, h.littleEndian);
      if (h.fortranOrder) data = fortranToC(data, subShape);
      return { dtype: h.dtype, shape: subShape, data };
    };

    const file: NpyFile = {
      ...h,
      path,
      rows,
      rowLength,
      readRowsRaw,
      readRows: async (start, count) => toFloat32(await readRowsRaw(start, count)),
      readRowsF64: async (start, count) => toFloat64(await readRowsRaw(start, count)),
      readAll: async () => {
        const t = await readRowsRaw(0, rows);
        return { ...t, shape: [...h.shape] };
      },
      close: async () => {
        if (closed) return;
        closed = true;
        await fh.close();
      },
    };
    return file;
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

/** Reads a whole .npy file (stored dtype, C order). */
export async function loadNpy(path: string): Promise<Tensor> {
  const f = await openNpy(path);
  try {
    return await f.readAll();
  } finally {
    await f.close();
  }
}

/** Parses an in-memory .npy file (stored dtype, C order, host byte order). */
export function parseNpy(bytes: Uint8Array, source = '<bytes>'): Tensor {
  const h = parseNpyHeader(bytes, bytes.length, source);
  let data = arrayFromBytes(h.dtype, bytes.slice(h.dataOffset), numel(h.shape), h.littleEndian);
  if (h.fortranOrder) data = fortranToC(data, h.shape);
  return { dtype: h.dtype, shape: [...h.shape], data };
}

// ---- writer ----------------------------------------------------------------------------------

const NPY_DESCR: Partial<Record<DType, string>> = {
  F16: '<f2',
  F32: '<f4',
  F64: '<f8',
  I8: '|i1',
  I16: '<i2',
  I32: '<i4',
  I64: '<i8',
  U8: '|u1',
  U16: '<u2',
  U32: '<u4',
  U64: '<u8',
  BOOL: '|b1',
};

/**
 * The header as numpy writes it (C order, little-endian): keys sorted, shape with a trailing
 * comma for 1-d, spare spaces so the header can grow in place, newline, total length a multiple
 * of 64. Version 1.0 unless the header needs more than 65535 bytes.
 */
export function npyHeader(t: Tensor): Uint8Array<ArrayBuffer> {
  checkTensor(t, 'npy tensor');
  return npyHeaderFor(t.dtype, t.shape);
}

/**
 * The header alone, for a file whose data the caller streams after it (datasets larger than
 * memory: write the header, then the rows in C order, little-endian, chunk by chunk).
 */
export function npyHeaderFor(dtype: Tensor['dtype'], shapeDims: readonly number[]): Uint8Array<ArrayBuffer> {
  const descr = NPY_DESCR[dtype];
  if (!descr) {
    throw new IbgpuError('BAD_CONFIG', `dtype ${dtype} has no numpy equivalent`, 'convert to F32 first (toFloat32) or write safetensors instead');
  }
  const shape = shapeDims.length === 1 ? `(${shapeDims[0]},)` : `(${shapeDims.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // numpy leaves room for the leading axis to grow to 21 digits without rewriting the file.
  if (shapeDims.length > 0) dict += ' '.repeat(Math.max(0, 21 - String(shapeDims[0]).length));
  const build = (lenBytes: number) => {
    const pre = 8 + lenBytes;
    // As numpy: between 1 and 64 spaces (never 0), so the header always ends in ' \n'.
    const pad = 64 - ((pre + dict.length + 1) % 64);
    return { pre, text: `${dict}${' '.repeat(pad)}\n` };
  };
  let { pre, text } = build(2);
  let major = 1;
  if (text.length > 0xffff) {
    ({ pre, text } = build(4));
    major = 2;
  }
  const out = new Uint8Array(pre + text.length);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, text.length, true);
  else dv.setUint32(8, text.length, true);
  for (let k = 0; k < text.length; k++) out[pre + k] = text.charCodeAt(k);
  return out;
}

/** Serializes a tensor as an in-memory .npy file. */
export function serializeNpy(t: Tensor): Uint8Array<ArrayBuffer> {
  const h = npyHeader(t);
  const out = new Uint8Array(h.length + t.data.byteLength);
  out.set(h, 0);
  out.set(littleEndianBytes(t), h.length);
  return out;
}

/** Writes a tensor as a C-order little-endian .npy file, atomically. */
export async function writeNpy(path: string, t: Tensor): Promise<void> {
  const h = npyHeader(t);
  await writeFileAtomic(path, [h, littleEndianBytes(t)]);
}
