// PyTorch checkpoints (`torch.save`, the ZIP format of torch ≥ 1.6): rib's trained models are
// saved this way (`torch.save(model.state_dict(), "model_epoch_N.pt")`), so ibgpu reads them as it
// reads safetensors. The archive holds `<name>/data.pkl` (a pickle of the saved object), one raw
// record per tensor storage (`<name>/data/<key>`) and `<name>/byteorder`.
//
// The pickle is interpreted, never executed: a small stack machine over the opcodes torch.save
// emits (protocols 2–5). Tensors are rebuilt from `torch._utils._rebuild_tensor_v2` /
// `_rebuild_parameter` calls and `torch.*Storage` persistent ids; `collections.OrderedDict`
// becomes a dict; every other callable becomes an opaque value that holds nothing the loader
// uses (an optimizer's state, a dtype, a config object) — a checkpoint cannot run code here.
// The tensors are listed under their dotted path: a state dict saved on its own gives its own
// names ("embed.W_E"); one nested in a dict gives "model.embed.W_E".

import { openInput } from './open-input.js';
import { IbgpuError } from '../errors.js';
import { arrayFromBytes, arrayClassOf, dtypeSize, numel, toFloat32, toFloat64, type DType, type Tensor } from './tensor.js';
import { readZipDirectory, readZipEntry, type ReadAt, type ZipEntry } from './zip.js';

/** A callable or class from the pickle's GLOBAL opcodes, and what was built from it. */
class PyOpaque {
  constructor(
    readonly global: string,
    readonly args: unknown = undefined,
  ) {}
}

class PyDict {
  readonly entries: [unknown, unknown][] = [];
  set(k: unknown, v: unknown): void {
    this.entries.push([k, v]);
  }
}

class PyGlobal {
  constructor(readonly name: string) {}
}

/** A storage record: its dtype and key; its bytes are read when a tensor needs them. */
interface StorageRef {
  kind: 'storage';
  dtype: DType;
  key: string;
  numel: number;
}

/** A strided view of a storage, as _rebuild_tensor_v2 describes it. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const MARK = Symbol('mark');

function badPickle(source: string, what: string): IbgpuError {
  return new IbgpuError(
    'BAD_FILE',
    `${source}: ${what}`,
    'the checkpoint is damaged or not written by torch.save; save the state dict again (or export it to safetensors)',
  );
}

function intList(v: unknown, what: string, source: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x))) throw badPickle(source, `${what} is not a tuple of integers`);
  return v as number[];
}

/** Interprets the pickle `bytes`; `persistent` resolves persistent ids (torch's storages). */
export function unpickle(bytes: Uint8Array, source: string, persistent: (pid: unknown) => unknown): unknown {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const need = (n: number): void => {
    if (p + n > bytes.length) throw badPickle(source, `the pickle ends inside an opcode at byte ${p}`);
  };
  const u8 = (): number => (need(1), bytes[p++]!);
  const u16 = (): number => (need(2), (p += 2), v.getUint16(p - 2, true));
  const i32 = (): number => (need(4), (p += 4), v.getInt32(p - 4, true));
  const u32 = (): number => (need(4), (p += 4), v.getUint32(p - 4, true));
  const u64 = (): number => {
    need(8);
    p += 8;
    return Number(v.getBigUint64(p - 8, true));
  };
  const take = (n: number): Uint8Array => {
    need(n);
    p += n;
    return bytes.subarray(p - n, p);
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw badPickle(source, `stack underflow at byte ${p}`);
    return stack.pop();
  };
  const popMark = (): unknown[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) throw badPickle(source, `no MARK on the stack at byte ${p}`);
    const items = stack.splice(at);
    items.shift();
    return items;
  };
  const top = (): unknown => {
    if (stack.length === 0) throw badPickle(source, `stack underflow at byte ${p}`);
    return stack[stack.length - 1];
  };
  const setItems = (d: unknown, kv: unknown[]): void => {
    if (!(d instanceof PyDict)) return; // items of an opaque object: kept out
    for (let i = 0; i + 1 < kv.length; i += 2) d.set(kv[i], kv[i + 1]);
  };
  const call = (f: unknown, args: unknown): unknown => {
    const name = f instanceof PyGlobal ? f.name : String(f);
    const a: unknown[] = Array.isArray(args) ? (args as unknown[]) : [];
    switch (name) {
      case 'collections.OrderedDict':
      case 'builtins.dict': {
        const d = new PyDict();
        const init = a[0];
        if (Array.isArray(init)) for (const kv of init as unknown[]) if (Array.isArray(kv) && kv.length === 2) d.set(kv[0], kv[1]);
        return d;
      }
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2': {
        const [storage, offset, size, stride] = a;
        if (typeof storage !== 'object' || storage === null || (storage as StorageRef).kind !== 'storage') throw badPickle(source, `${name} without a storage`);
        if (typeof offset !== 'number') throw badPickle(source, `${name}: the storage offset is not an integer`);
        return new TensorRef(storage as StorageRef, offset, intList(size, 'a tensor size', source), intList(stride, 'a tensor stride', source));
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        return a[0];
      default:
        return new PyOpaque(name, args);
    }
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x8f: // EMPTY_SET
        stack.push([]);
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
      case 0x91: // FROZENSET
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x61: {
        // APPEND
        const x = pop();
        const l = top();
        if (Array.isArray(l)) l.push(x);
        break;
      }
      case 0x65: // APPENDS
      case 0x90: {
        // ADDITEMS
        const xs = popMark();
        const l = top();
        if (Array.isArray(l)) l.push(...xs);
        break;
      }
      case 0x73: {
        // SETITEM
        const val = pop();
        const key = pop();
        setItems(top(), [key, val]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw badPickle(source, `memo entry ${k} is read before it is written`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const nl1 = bytes.indexOf(0x0a, p);
        const nl2 = nl1 < 0 ? -1 : bytes.indexOf(0x0a, nl1 + 1);
        if (nl2 < 0) throw badPickle(source, `an unterminated GLOBAL at byte ${p}`);
        const mod = dec.decode(bytes.subarray(p, nl1));
        const name = dec.decode(bytes.subarray(nl1 + 1, nl2));
        p = nl2 + 1;
        stack.push(new PyGlobal(`${mod === '__builtin__' ? 'builtins' : mod}.${name}`));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const mod = pop();
        stack.push(new PyGlobal(`${String(mod)}.${String(name)}`));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x62: // BUILD: the state of the object below (an OrderedDict's _metadata, …) is not used
        pop();
        break;
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        const n = u8();
        const b = take(n);
        let x = 0n;
        for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) x -= 1n << BigInt(8 * n);
        stack.push(x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        p += 8;
        stack.push(v.getFloat64(p - 8, false));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x58: // BINUNICODE
        stack.push(dec.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(dec.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(dec.decode(take(u64())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(dec.decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(dec.decode(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(take(u64()).slice());
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      default:
        throw badPickle(source, `pickle opcode 0x${op.toString(16)} at byte ${p - 1} is not one torch.save writes`);
    }
  }
}

/** The torch storage a persistent id names: ('storage', torch.FloatStorage, key, location, numel). */
function storageRef(id: unknown, source: string): StorageRef {
  if (!Array.isArray(id) || id[0] !== 'storage' || id.length < 5) throw badPickle(source, 'a persistent id that is not a torch storage');
  const pid = id as unknown[];
  const type = pid[1];
  const cls = type instanceof PyGlobal ? type.name.replace(/^torch\./, '') : '';
  const dtype = STORAGE_DTYPES[cls];
  if (!dtype) {
    throw new IbgpuError(
      'BAD_FILE',
      `${source}: tensors of storage type ${type instanceof PyGlobal ? type.name : String(type)} are not supported`,
      `convert them to float32 or float64 before saving; supported: ${Object.keys(STORAGE_DTYPES).join(', ')}`,
    );
  }
  if (typeof pid[2] !== 'string' || typeof pid[4] !== 'number') throw badPickle(source, 'a storage id without a key or size');
  return { kind: 'storage', dtype, key: pid[2], numel: pid[4] };
}

/** Every tensor under its dotted path (dict keys, list indices). */
function collectTensors(x: unknown, path: string, out: Map<string, TensorRef>): void {
  if (x instanceof TensorRef) out.set(path, x);
  else if (x instanceof PyDict) for (const [k, v] of x.entries) collectTensors(v, path ? `${path}.${String(k)}` : String(k), out);
  else if (Array.isArray(x)) x.forEach((v, i) => collectTensors(v, path ? `${path}.${i}` : String(i), out));
}

/** The saved object with its tensors as `{ tensor: path }` (read them by that path) and other callables' results as `{ opaque: name }`. */
function plain(x: unknown, path: string): unknown {
  const at = (k: unknown): string => (path ? `${path}.${String(k)}` : String(k));
  if (x instanceof TensorRef) return { tensor: path };
  if (x instanceof PyDict) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of x.entries) Object.defineProperty(o, String(k), { value: plain(v, at(k)), enumerable: true, writable: true, configurable: true });
    return o;
  }
  if (Array.isArray(x)) return x.map((v, i) => plain(v, at(i)));
  if (x instanceof PyOpaque) return { opaque: x.global };
  if (x instanceof PyGlobal) return { opaque: x.name };
  if (typeof x === 'bigint') return x.toString();
  return x;
}

/** A PyTorch checkpoint's tensors, read on demand. */
export interface TorchCheckpoint {
  readonly source: string;
  /** The saved object (dicts as objects, tuples and lists as arrays, tensors as `{ tensor: name }`). */
  structure(): unknown;
  keys(): string[];
  has(name: string): boolean;
  info(name: string): { dtype: DType; shape: number[] };
  read(name: string): Promise<Tensor>;
  readF32(name: string): Promise<{ shape: number[]; data: Float32Array }>;
  readF64(name: string): Promise<{ shape: number[]; data: Float64Array }>;
  close(): Promise<void>;
}

/** True when `head` starts like a ZIP archive (a torch.save checkpoint) rather than safetensors. */
export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

/** Reads the checkpoint behind `readAt` (`size` bytes). */
export async function readTorchCheckpoint(readAt: ReadAt, size: number, source: string, close: () => Promise<void> = async () => {}): Promise<TorchCheckpoint> {
  const head = await readAt(0, Math.min(size, 4));
  if (!looksLikeZip(head)) {
    throw new IbgpuError(
      'BAD_FILE',
      `${source} is not a ZIP-format PyTorch checkpoint`,
      'checkpoints from torch < 1.6 or saved with _use_new_zipfile_serialization=False are not read: load and save them again with a current torch.save, or export the state dict to safetensors',
    );
  }
  const dir = await readZipDirectory(readAt, size, source);
  const pkl = [...dir.keys()].find((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
  if (!pkl) throw new IbgpuError('BAD_FILE', `${source}: a ZIP archive without data.pkl is not a torch.save checkpoint`, 'pass the .pt file torch.save wrote');
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const order = dir.get(`${prefix}byteorder`);
  const littleEndian = order ? new TextDecoder().decode(await readZipEntry(readAt, order, source)).trim() !== 'big' : true;
  const root = unpickle(await readZipEntry(readAt, dir.get(pkl)!, source), source, (pid) => storageRef(pid, source));
  const tensors = new Map<string, TensorRef>();
  collectTensors(root, '', tensors);
  const storages = new Map<string, Promise<Uint8Array>>();
  const storageBytes = (s: StorageRef): Promise<Uint8Array> => {
    let b = storages.get(s.key);
    if (!b) {
      const entry: ZipEntry | undefined = dir.get(`${prefix}data/${s.key}`);
      if (!entry) return Promise.reject(badPickle(source, `storage record data/${s.key} is missing`));
      b = readZipEntry(readAt, entry, source);
      storages.set(s.key, b);
    }
    return b;
  };
  const get = (name: string): TensorRef => {
    const t = tensors.get(name);
    if (!t) {
      const names = [...tensors.keys()];
      throw new IbgpuError(
        'MISSING_TENSOR',
        `${source} has no tensor '${name}'`,
        `it has ${names.length} tensors: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''}`,
      );
    }
    return t;
  };
  let closed = false;
  const read = async (name: string): Promise<Tensor> => {
    if (closed) throw new IbgpuError('DISPOSED', `${source} is closed`);
    const t = get(name);
    const { dtype } = t.storage;
    const size = dtypeSize(dtype);
    const raw = await storageBytes(t.storage);
    if (raw.length !== t.storage.numel * size)
      throw badPickle(source, `storage data/${t.storage.key} holds ${raw.length} bytes, not ${t.storage.numel} × ${size}`);
    const all = arrayFromBytes(dtype, raw, t.storage.numel, littleEndian);
    const n = numel(t.shape);
    // The view's extent must lie inside the storage.
    let last = t.offset;
    for (let i = 0; i < t.shape.length; i++) if (t.shape[i]! > 0) last += (t.shape[i]! - 1) * t.stride[i]!;
    if (n > 0 && (t.offset < 0 || last >= t.storage.numel || t.stride.some((s) => s < 0))) {
      throw badPickle(source, `tensor '${name}' reaches outside its storage`);
    }
    const out = new (arrayClassOf(dtype))(n);
    // Row-major walk over the view (a contiguous one is one copy).
    const contiguous = t.stride.every((s, i) => s === t.shape.slice(i + 1).reduce((a, b) => a * b, 1) || t.shape[i] === 1);
    if (contiguous) (out as unknown as { set(a: ArrayLike<unknown>): void }).set(all.subarray(t.offset, t.offset + n));
    else {
      const idx = new Array<number>(t.shape.length).fill(0);
      for (let k = 0; k < n; k++) {
        let at = t.offset;
        for (let i = 0; i < idx.length; i++) at += idx[i]! * t.stride[i]!;
        (out as unknown as unknown[])[k] = (all as unknown as unknown[])[at];
        for (let i = idx.length - 1; i >= 0; i--) {
          if (++idx[i]! < t.shape[i]!) break;
          idx[i] = 0;
        }
      }
    }
    return { dtype, shape: t.shape.slice(), data: out };
  };
  return {
    source,
    structure: () => plain(root, ''),
    keys: () => [...tensors.keys()],
    has: (name) => tensors.has(name),
    info: (name) => ({ dtype: get(name).storage.dtype, shape: get(name).shape.slice() }),
    read,
    readF32: async (name) => {
      const t = await read(name);
      return { shape: t.shape, data: toFloat32(t) };
    },
    readF64: async (name) => {
      const t = await read(name);
      return { shape: t.shape, data: toFloat64(t) };
    },
    close: async () => {
      if (!closed) {
        closed = true;
        storages.clear();
        await close();
      }
    },
  };
}

/** Opens a torch.save checkpoint file; its records are read with positioned reads as tensors are needed. */
export async function openTorchCheckpoint(path: string): Promise<TorchCheckpoint> {
  const handle = await openInput(path);
  try {
    const { size } = await handle.stat();
    const readAt: ReadAt = async (offset, length) => {
      const buf = new Uint8Array(Math.max(0, Math.min(length, size - offset)));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await handle.read(buf, got, buf.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === buf.length ? buf : buf.subarray(0, got);
    };
    return await readTorchCheckpoint(readAt, size, path, () => handle.close());
  } catch (e) {
    await handle.close();
    throw e;
  }
}
