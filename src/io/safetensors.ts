// safetensors reader and writer.
//
// Layout: 8-byte little-endian u64 N, then N bytes of UTF-8 JSON mapping each tensor name to
// {dtype, shape, data_offsets: [begin, end]} (offsets relative to the first byte after the
// header) plus an optional "__metadata__" map of strings, then the raw little-endian C-order data.
// The data regions must tile the rest of the file exactly, in offset order.
//
// The reader parses and validates the header once and then reads each tensor on demand with a
// positional read (Node FileHandle, or Blob.slice in browsers): opening a multi-GB checkpoint to
// take one matrix costs one header read plus that matrix. The writer produces the same bytes as
// the reference implementation: header padded with spaces to a multiple of 8 so every tensor
// starts 8-aligned, tensors ordered by decreasing dtype alignment then by name.

import { openInput } from './open-input.js';
import { IbgpuError } from '../errors.js';
import { writeFileAtomic } from './atomic.js';
import {
  ALL_DTYPES,
  arrayFromBytes,
  checkTensor,
  dtypeSize,
  isDType,
  littleEndianBytes,
  numel,
  toFloat32,
  toFloat64,
  type DType,
  type Tensor,
} from './tensor.js';

/** The reference implementation refuses headers above 100 MB; so do we (guards huge allocations). */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  /** [begin, end) byte offsets relative to the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsFile {
  /** File path (or a label for in-memory / Blob sources), used in error messages. */
  readonly source: string;
  /** The "__metadata__" string map ({} when absent). */
  readonly metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  readonly dataStart: number;
  /** Tensor names in file (offset) order. */
  keys(): string[];
  has(name: string): boolean;
  /** dtype, shape and offsets of a tensor; MISSING_TENSOR if absent. */
  info(name: string): TensorInfo;
  /** Reads one tensor in its stored dtype (F16/BF16 as Uint16Array bit patterns). */
  read(name: string): Promise<Tensor>;
  /** Reads one tensor converted to float32 (F64 rounds to nearest, integers convert exactly up to 2^24). */
  readF32(name: string): Promise<{ shape: number[]; data: Float32Array }>;
  /**
   * Reads leading-axis rows [start, start + count) of a tensor in its stored dtype with one
   * positioned read (a batch of a large data matrix without loading the rest).
   */
  readRows(name: string, start: number, count: number): Promise<Tensor>;
  /** Reads one tensor converted to float64. */
  readF64(name: string): Promise<{ shape: number[]; data: Float64Array }>;
  /** Reads every tensor. */
  readAll(): Promise<Record<string, Tensor>>;
  /** Releases the file handle (idempotent); later reads fail with DISPOSED. */
  close(): Promise<void>;
}

/** obj[key] = value that stays an own property even for keys like "__proto__" (names come from files). */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function badFile(source: string, problem: string, hint?: string): IbgpuError {
  return new IbgpuError(
    'BAD_FILE',
    `${source}: ${problem}`,
    hint ?? 'the file is corrupt or not a safetensors file; re-export it (e.g. safetensors.numpy.save_file / safetensors.torch.save_file)',
  );
}

interface Header {
  headerLength: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

/** Reads the u64 header length, checking it fits in the file (fileSize) and below the cap. */
function headerLengthOf(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) throw badFile(source, `file is ${fileSize} bytes, too short for the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw badFile(source, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (n > BigInt(fileSize - 8)) {
    throw badFile(source, `header length ${n} runs past the end of the file (${fileSize} bytes); the file is truncated or not safetensors`);
  }
  return Number(n);
}

/** Parses and validates the JSON header against the size of the data section. */
function parseHeader(json: Uint8Array, headerLength: number, dataBytes: number, source: string): Header {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    throw badFile(source, 'header is not valid UTF-8');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw badFile(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badFile(source, 'header must be a JSON object');

  const metadata: Record<string, string> = {};
  const entries: [string, TensorInfo][] = [];
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badFile(source, '"__metadata__" must be an object of strings');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') throw badFile(source, `"__metadata__" value for ${JSON.stringify(k)} is ${JSON.stringify(s)}, not a string`);
        setOwn(metadata, k, s);
      }
      continue;
    }
    entries.push([name, parseInfo(name, v, source)]);
  }

  // The data regions must tile [0, dataBytes) exactly: sort by offsets, then walk.
  entries.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let pos = 0;
  let prev = '';
  for (const [name, info] of entries) {
    const [b, e] = info.dataOffsets;
    if (e > dataBytes) {
      throw badFile(source, `tensor '${name}': data_offsets [${b}, ${e}] run past the end of the data section (${dataBytes} bytes); the file is truncated`);
    }
    if (b < pos) throw badFile(source, `tensor '${name}': data_offsets [${b}, ${e}] overlap tensor '${prev}', which ends at ${pos}`);
    if (b > pos)
      throw badFile(
        source,
        `tensor '${name}': data_offsets start at ${b}, leaving a gap of ${b - pos} unused bytes after ${prev ? `'${prev}'` : 'the header'}`,
      );
    pos = e;
    prev = name;
  }
  if (pos !== dataBytes) {
    throw badFile(source, `the tensors cover ${pos} bytes but the data section has ${dataBytes} (${dataBytes - pos} trailing bytes)`);
  }
  return { headerLength, tensors: new Map(entries), metadata };
}

function parseInfo(name: string, v: unknown, source: string): TensorInfo {
  const bad = (problem: string, hint?: string) => badFile(source, `tensor '${name}': ${problem}`, hint);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('entry must be an object {dtype, shape, data_offsets}');
  const o = v as Record<string, unknown>;
  const dtype = o['dtype'];
  if (!isDType(dtype)) {
    throw bad(`unsupported dtype ${JSON.stringify(dtype)}`, `supported: ${ALL_DTYPES.join(', ')}; convert the tensor (e.g. to float32) before saving`);
  }
  const shape = o['shape'];
  if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
    throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  const off = o['data_offsets'];
  if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0)) {
    throw bad(`data_offsets ${JSON.stringify(off)} must be two non-negative integers [begin, end]`);
  }
  const [b, e] = off as [number, number];
  if (e < b) throw bad(`data_offsets [${b}, ${e}] end before they begin`);
  const n = numel(shape as number[]);
  const want = n * dtypeSize(dtype);
  if (!Number.isSafeInteger(want) || want !== e - b) {
    throw bad(`shape [${shape.join(', ')}] × ${dtype} (${dtypeSize(dtype)} bytes) needs ${want} bytes, but data_offsets [${b}, ${e}] hold ${e - b}`);
  }
  return { dtype, shape: [...(shape as number[])], dataOffsets: [b, e] };
}

type RangeReader = (position: number, length: number) => Promise<Uint8Array>;

class Reader implements SafetensorsFile {
  private closed = false;

  constructor(
    readonly source: string,
    private readonly header: Header,
    private readonly readRange: RangeReader,
    private readonly onClose: () => Promise<void>,
  ) {}

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  get dataStart(): number {
    return 8 + this.header.headerLength;
  }

  keys(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) {
      const keys = this.keys();
      const shown = keys.slice(0, 30).join(', ') + (keys.length > 30 ? `, … (${keys.length} in all)` : '');
      throw new IbgpuError(
        'MISSING_TENSOR',
        `${this.source}: no tensor named '${name}'; available: ${shown || '(none)'}`,
        'check the tensor name (and the weight/bias names in the architecture file)',
      );
    }
    return { dtype: info.dtype, shape: [...info.shape], dataOffsets: [...info.dataOffsets] };
  }

  async read(name: string): Promise<Tensor> {
    const info = this.info(name);
    if (this.closed) throw new IbgpuError('DISPOSED', `${this.source}: read('${name}') after close()`, 'keep the file open until all reads finish');
    const [b, e] = info.dataOffsets;
    const bytes = await this.readRange(this.dataStart + b, e - b);
    return { dtype: info.dtype, shape: info.shape, data: arrayFromBytes(info.dtype, bytes, numel(info.shape)) };
  }

  async readRows(name: string, start: number, count: number): Promise<Tensor> {
    const info = this.info(name);
    if (this.closed) throw new IbgpuError('DISPOSED', `${this.source}: readRows('${name}') after close()`, 'keep the file open until all reads finish');
    if (info.shape.length === 0) throw new IbgpuError('SHAPE', `${this.source}: tensor '${name}' is a scalar; it has no rows`);
    const rows = info.shape[0]!;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > rows) {
      throw new IbgpuError(
        'SHAPE',
        `${this.source}: rows [${start}, ${start}+${count}) of '${name}' are outside its ${rows} rows`,
        'request 0 <= start, start + count <= rows',
      );
    }
    const rowBytes = numel(info.shape.slice(1)) * dtypeSize(info.dtype);
    const bytes = await this.readRange(this.dataStart + info.dataOffsets[0] + start * rowBytes, count * rowBytes);
    const shape = [count, ...info.shape.slice(1)];
    return { dtype: info.dtype, shape, data: arrayFromBytes(info.dtype, bytes, numel(shape)) };
  }

  async readF32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    const t = await this.read(name);
    return { shape: t.shape, data: toFloat32(t) };
  }

  async readF64(name: string): Promise<{ shape: number[]; data: Float64Array }> {
    const t = await this.read(name);
    return { shape: t.shape, data: toFloat64(t) };
  }

  async readAll(): Promise<Record<string, Tensor>> {
    const out: Record<string, Tensor> = {};
    for (const k of this.keys()) setOwn(out, k, await this.read(k));
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.onClose();
  }
}

/** Opens a safetensors file: reads and validates only the header; tensors are read on demand. */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  const fh = await openInput(path);
  try {
    const size = (await fh.stat()).size;
    const readRange: RangeReader = async (position, length) => {
      const buf = new Uint8Array(length); // fresh buffer: offset 0, so aligned for any dtype
      const CHUNK = 1 << 30;
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, Math.min(CHUNK, length - done), position + done);
        if (bytesRead === 0) {
          throw badFile(
            path,
            `unexpected end of file at byte ${position + done} (the file shrank after it was opened?)`,
            'do not modify the file while it is being read',
          );
        }
        done += bytesRead;
      }
      return buf;
    };
    const n = headerLengthOf(await readRange(0, Math.min(8, size)), size, path);
    const header = parseHeader(await readRange(8, n), n, size - 8 - n, path);
    return new Reader(path, header, readRange, () => fh.close());
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

/** Parses an in-memory safetensors file. Tensors are copied out of `bytes` when read. */
export function parseSafetensors(bytes: Uint8Array, source = '<bytes>'): SafetensorsFile {
  const n = headerLengthOf(bytes, bytes.length, source);
  const header = parseHeader(bytes.subarray(8, 8 + n), n, bytes.length - 8 - n, source);
  return new Reader(
    source,
    header,
    async (p, len) => bytes.slice(p, p + len),
    async () => undefined,
  );
}

/** Opens a safetensors Blob / File (browser or Node): header first, each tensor via Blob.slice. */
export async function openSafetensorsBlob(blob: Blob, source = (blob as { name?: string }).name ?? '<blob>'): Promise<SafetensorsFile> {
  const readRange: RangeReader = async (p, len) => new Uint8Array(await blob.slice(p, p + len).arrayBuffer());
  const n = headerLengthOf(await readRange(0, Math.min(8, blob.size)), blob.size, source);
  const header = parseHeader(await readRange(8, n), n, blob.size - 8 - n, source);
  return new Reader(source, header, readRange, async () => undefined);
}

/** Opens, reads every tensor and closes. */
export async function loadSafetensors(path: string): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string> }> {
  const f = await openSafetensors(path);
  try {
    return { tensors: await f.readAll(), metadata: f.metadata };
  } finally {
    await f.close();
  }
}

// ---- writer ----------------------------------------------------------------------------------

/** Reference dtype order (increasing alignment); the writer sorts by it, descending. */
const DTYPE_RANK: Record<DType, number> = {
  BOOL: 0,
  U8: 1,
  I8: 2,
  I16: 3,
  U16: 4,
  F16: 5,
  BF16: 6,
  I32: 7,
  U32: 8,
  F32: 9,
  F64: 10,
  I64: 11,
  U64: 12,
};

export interface PreparedSafetensors {
  /** The 8-byte length plus the padded JSON header. */
  header: Uint8Array;
  /** Tensors in data order. */
  order: [string, Tensor][];
  /** Total file size in bytes. */
  byteLength: number;
}

/** Validates the tensors and builds the header (no data copied). */
export function prepareSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): PreparedSafetensors {
  const order = Object.entries(tensors);
  for (const [name, t] of order) {
    if (name === METADATA_KEY) throw new IbgpuError('BAD_CONFIG', `"${METADATA_KEY}" is reserved and cannot be a tensor name`, 'rename the tensor');
    checkTensor(t, `tensor '${name}'`);
  }
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new IbgpuError(
          'BAD_CONFIG',
          `safetensors metadata value for ${JSON.stringify(k)} must be a string (got ${typeof v})`,
          'JSON.stringify non-string values',
        );
      }
    }
  }
  // Decreasing alignment keeps every tensor aligned to its element size; names break ties
  // (code-unit order, as the reference's byte-wise comparison for ASCII names).
  order.sort((a, b) => DTYPE_RANK[b[1].dtype] - DTYPE_RANK[a[1].dtype] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const json: Record<string, unknown> = {};
  if (metadata !== undefined) json[METADATA_KEY] = { ...metadata };
  let offset = 0;
  for (const [name, t] of order) {
    const bytes = t.data.byteLength;
    setOwn(json, name, { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] });
    offset += bytes;
  }
  let text = JSON.stringify(json);
  // Pad with spaces so the data section starts 8-aligned (JSON allows trailing whitespace).
  const enc = new TextEncoder();
  let headerJson = enc.encode(text);
  const pad = (8 - (headerJson.length % 8)) % 8;
  if (pad) {
    text += ' '.repeat(pad);
    headerJson = enc.encode(text);
  }
  const header = new Uint8Array(8 + headerJson.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(headerJson.length), true);
  header.set(headerJson, 8);
  return { header, order, byteLength: header.length + offset };
}

/** Serializes tensors into one in-memory safetensors file. */
export function serializeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  const p = prepareSafetensors(tensors, metadata);
  const out = new Uint8Array(p.byteLength);
  out.set(p.header, 0);
  let pos = p.header.length;
  for (const [, t] of p.order) {
    out.set(littleEndianBytes(t), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Writes a safetensors file atomically (temp file + rename), streaming tensor data without copies. */
export async function writeSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  const p = prepareSafetensors(tensors, metadata);
  await writeFileAtomic(path, [p.header, ...p.order.map(([, t]) => littleEndianBytes(t))]);
}
