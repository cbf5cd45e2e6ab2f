import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IbgpuError } from '../src/errors.js';
import { fortranToC, loadNpy, openNpy, parseNpy, serializeNpy, writeNpy } from '../src/io/npy.js';
import { ALL_DTYPES, fromNumbers, toFloat64, type DType } from '../src/io/tensor.js';
import { f16Bits } from '../src/io/half.js';

const dir = mkdtempSync(join(tmpdir(), 'ibgpu-npy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmpFile = (name = 'a') => join(dir, `${name}-${fileNo++}.npy`);

// ---- hand-built .npy files, straight from the format description ----------------------------

interface NpySpec {
  descr: string;
  fortran: boolean;
  shape: number[];
  /** Values in the file's own element order (C or Fortran), encoded per descr. */
  values: number[];
  version?: 1 | 2 | 3;
  /** Override the dict text entirely. */
  dict?: string;
}

function encodeValues(descr: string, values: number[]): Uint8Array {
  const le = descr[0] !== '>';
  const kind = descr.slice(1);
  const size = Number(kind.slice(1));
  const out = new Uint8Array(values.length * size);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => {
    const o = i * size;
    switch (kind) {
      case 'f2':
        dv.setUint16(o, f16Bits(v), le);
        break;
      case 'f4':
        dv.setFloat32(o, v, le);
        break;
      case 'f8':
        dv.setFloat64(o, v, le);
        break;
      case 'i1':
        dv.setInt8(o, v);
        break;
      case 'i2':
        dv.setInt16(o, v, le);
        break;
      case 'i4':
        dv.setInt32(o, v, le);
        break;
      case 'i8':
        dv.setBigInt64(o, BigInt(v), le);
        break;
      case 'u1':
      case 'b1':
        dv.setUint8(o, v);
        break;
      case 'u2':
        dv.setUint16(o, v, le);
        break;
      case 'u4':
        dv.setUint32(o, v, le);
        break;
      case 'u8':
        dv.setBigUint64(o, BigInt(v), le);
        break;
      default:
        throw new Error(`test helper: no encoder for ${descr}`);
    }
  });
  return out;
}

function npyBytes(s: NpySpec): Uint8Array {
  const version = s.version ?? 1;
  const shape = s.shape.length === 1 ? `(${s.shape[0]},)` : `(${s.shape.join(', ')})`;
  let dict = s.dict ?? `{'descr': '${s.descr}', 'fortran_order': ${s.fortran ? 'True' : 'False'}, 'shape': ${shape}, }`;
  const pre = version === 1 ? 10 : 12;
  dict += ' '.repeat(63 - ((pre + dict.length) % 64)) + '\n';
  const header = new TextEncoder().encode(dict);
  const data = encodeValues(s.descr, s.values);
  const out = new Uint8Array(pre + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  out.set(header, pre);
  out.set(data, pre + header.length);
  return out;
}

/** Values of a C-order array of `shape` with element [i, j, ...] = f(flat C index). */
function cOrder(shape: number[], f: (i: number) => number): number[] {
  return Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i));
}

/** The same values laid out in Fortran order. */
function toFortranLayout(c: number[], shape: number[]): number[] {
  const out = new Array<number>(c.length);
  const d = shape.length;
  for (let flat = 0; flat < c.length; flat++) {
    let rem = flat;
    let f = 0;
    let stride = 1;
    const idx = new Array<number>(d);
    for (let k = d - 1; k >= 0; k--) {
      idx[k] = rem % shape[k]!;
      rem = Math.floor(rem / shape[k]!);
    }
    for (let k = 0; k < d; k++) {
      f += idx[k]! * stride;
      stride *= shape[k]!;
    }
    out[f] = c[flat]!;
  }
  return out;
}

async function writeTmp(bytes: Uint8Array, name = 'in'): Promise<string> {
  const p = tmpFile(name);
  writeFileSync(p, bytes);
  return p;
}

describe('npy reader', () => {
  const descrs = [
    '<f2',
    '<f4',
    '<f8',
    '>f2',
    '>f4',
    '>f8',
    '|i1',
    '<i2',
    '>i2',
    '<i4',
    '>i4',
    '<i8',
    '>i8',
    '|u1',
    '<u2',
    '>u2',
    '<u4',
    '>u4',
    '<u8',
    '>u8',
    '|b1',
  ];
  const valueFor = (descr: string, i: number) => {
    if (descr.endsWith('b1')) return i % 3 === 0 ? 1 : 0;
    if (descr[1] === 'u') return (i * 37) % 251;
    if (descr[1] === 'i') return ((i * 37) % 251) - 120;
    return (i - 10) * 0.5;
  };

  it('reads every dtype in C and Fortran order, both endiannesses, all versions', async () => {
    for (const descr of descrs) {
      for (const shape of [[5, 7], [3, 4, 2], [6], [], [0, 4], [1, 1]]) {
        for (const fortran of [false, true]) {
          const want = cOrder(shape, (i) => valueFor(descr, i));
          const values = fortran ? toFortranLayout(want, shape) : want;
          const version = ((want.length % 3) + 1) as 1 | 2 | 3;
          const bytes = npyBytes({ descr, fortran, shape, values, version });
          const t = parseNpy(bytes, 'mem');
          expect(t.shape).toEqual(shape);
          expect([descr, shape, fortran, Array.from(toFloat64(t))]).toEqual([descr, shape, fortran, want]);
          const f = await openNpy(await writeTmp(bytes));
          expect(f.fortranOrder).toBe(fortran);
          expect(f.littleEndian).toBe(descr[0] !== '>');
          expect(f.version).toEqual([version, 0]);
          expect(Array.from(toFloat64(await f.readAll()))).toEqual(want);
          await f.close();
        }
      }
    }
  });

  it('reads row ranges lazily (C and Fortran, 2-D and 3-D) matching the full array', async () => {
    for (const shape of [[101, 37], [23, 5, 3], [13]]) {
      for (const fortran of [false, true]) {
        for (const descr of ['<f4', '>f8', '<i2']) {
          const want = cOrder(shape, (i) => (descr[1] === 'i' ? (i % 1000) - 500 : i * 0.25 - 7));
          const values = fortran ? toFortranLayout(want, shape) : want;
          const f = await openNpy(await writeTmp(npyBytes({ descr, fortran, shape, values })));
          const row = f.rowLength;
          expect(f.rows).toBe(shape[0]);
          for (const [start, count] of [
            [0, 1],
            [3, 7],
            [f.rows - 2, 2],
            [0, f.rows],
            [5, 0],
          ] as const) {
            const got = await f.readRows(start, count);
            expect(got).toBeInstanceOf(Float32Array);
            expect([shape, fortran, descr, start, Array.from(got)]).toEqual([shape, fortran, descr, start, want.slice(start * row, (start + count) * row)]);
            expect(Array.from(await f.readRowsF64(start, count))).toEqual(want.slice(start * row, (start + count) * row));
          }
          const raw = await f.readRowsRaw(2, 3);
          expect(raw.shape).toEqual([3, ...shape.slice(1)]);
          await expect(f.readRows(f.rows - 1, 2)).rejects.toMatchObject({ code: 'SHAPE' });
          await expect(f.readRows(-1, 1)).rejects.toMatchObject({ code: 'SHAPE' });
          await f.close();
          await expect(f.readRows(0, 1)).rejects.toMatchObject({ code: 'DISPOSED' });
        }
      }
    }
  });

  it('keeps F16 bit patterns and big-endian int64 extremes exact', () => {
    const h = parseNpy(npyBytes({ descr: '>f2', fortran: false, shape: [3], values: [65504, 2 ** -24, -0] }));
    expect(h.dtype).toBe('F16');
    expect(Array.from(h.data as Uint16Array)).toEqual([0x7bff, 0x0001, 0x8000]);
    const big = npyBytes({ descr: '>i8', fortran: false, shape: [2], values: [0, 0] });
    const dv = new DataView(big.buffer);
    dv.setBigInt64(big.length - 16, -(2n ** 63n), false);
    dv.setBigInt64(big.length - 8, 2n ** 62n + 1n, false);
    expect(Array.from(parseNpy(big).data as BigInt64Array)).toEqual([-(2n ** 63n), 2n ** 62n + 1n]);
  });

  it('accepts Python 2 style headers (3L) and double quotes', () => {
    const t = parseNpy(
      npyBytes({ descr: '<f4', fortran: false, shape: [2, 2], values: [1, 2, 3, 4], dict: `{"descr": "<f4", "fortran_order": False, "shape": (2L, 2L)}` }),
    );
    expect(t.shape).toEqual([2, 2]);
    expect(Array.from(toFloat64(t))).toEqual([1, 2, 3, 4]);
  });

  it('reads headers longer than the first 4 KiB from a file', async () => {
    const shape = Array.from({ length: 1500 }, () => 1);
    const bytes = npyBytes({ descr: '<f4', fortran: false, shape: [2, ...shape], values: [1.5, -2] });
    expect(bytes.length).toBeGreaterThan(4096 + 8);
    const f = await openNpy(await writeTmp(bytes));
    expect(f.shape.length).toBe(1501);
    expect(Array.from(await f.readRows(0, 2))).toEqual([1.5, -2]);
    await f.close();
  });

  it('fortranToC transposes a 2-D block', () => {
    expect(Array.from(fortranToC(Float32Array.from([1, 4, 2, 5, 3, 6]), [2, 3]))).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe('npy malformed files', () => {
  const good = () => npyBytes({ descr: '<f4', fortran: false, shape: [3, 4], values: cOrder([3, 4], (i) => i) });

  async function expectBad(bytes: Uint8Array, ...parts: RegExp[]): Promise<void> {
    const p = await writeTmp(bytes, 'bad');
    for (const attempt of [() => Promise.resolve().then(() => parseNpy(bytes, 'mem.npy')), () => openNpy(p)]) {
      const e = await attempt().then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e, parts.join(' ')).toBeInstanceOf(IbgpuError);
      expect((e as IbgpuError).code).toBe('BAD_FILE');
      expect((e as IbgpuError).hint).toBeTruthy();
      for (const re of parts) expect((e as IbgpuError).message).toMatch(re);
    }
  }

  it('truncated data, truncated header, too short', async () => {
    const g = good();
    await expectBad(g.subarray(0, g.length - 1), /truncated.*needs 48 data bytes.*has 47/);
    await expectBad(g.subarray(0, 40), /header length.*past the end/);
    await expectBad(g.subarray(0, 7), /too short/);
    await expectBad(new Uint8Array([...g, 0, 0, 0, 0]), /4 unexpected bytes/);
  });

  it('bad magic and unsupported versions', async () => {
    const g = good();
    g[1] = 0x4f;
    await expectBad(g, /bad magic/);
    const v = good();
    v[6] = 4;
    await expectBad(v, /version 4\.0/);
  });

  it('object, string, complex and structured arrays', async () => {
    const withDescr = (descr: string) =>
      npyBytes({ descr: '|u1', fortran: false, shape: [0], values: [], dict: `{'descr': ${descr}, 'fortran_order': False, 'shape': (0,), }` });
    await expectBad(withDescr("'|O'"), /object arrays/);
    await expectBad(withDescr("'<U5'"), /string arrays/);
    await expectBad(withDescr("'<c8'"), /complex arrays/);
    await expectBad(withDescr("[('a', '<f4'), ('b', '<i4')]"), /structured dtype/);
    await expectBad(withDescr("'<f16'"), /dtype '<f16'/);
  });

  it('broken header dicts', async () => {
    const withDict = (dict: string) => npyBytes({ descr: '<f4', fortran: false, shape: [1], values: [1], dict });
    await expectBad(withDict(`{'descr': '<f4', 'shape': (1,), }`), /lacks 'fortran_order'/);
    await expectBad(withDict(`{'descr': '<f4', 'fortran_order': 1, 'shape': (1,), }`), /fortran_order must be/);
    await expectBad(withDict(`{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }`), /shape/);
    await expectBad(withDict(`{'descr': '<f4', 'fortran_order': False 'shape': (1,), }`), /cannot parse/);
  });
});

describe('npy writer', () => {
  it('writes exactly the header numpy writes', () => {
    const out = serializeNpy(
      fromNumbers(
        cOrder([3, 4], (i) => i),
        'F32',
        [3, 4],
      ),
    );
    const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    expect(out.length).toBe(128 + 48);
    expect(Array.from(out.subarray(0, 10))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 118, 0]);
    expect(new TextDecoder().decode(out.subarray(10, 128))).toBe(dict + ' '.repeat(117 - dict.length) + '\n');
    const one = new TextDecoder().decode(serializeNpy(fromNumbers([1, 0], 'BOOL', [2])).subarray(10, 128));
    expect(one.startsWith("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }")).toBe(true);
    const scalar = new TextDecoder().decode(serializeNpy(fromNumbers([1], 'F64', [])).subarray(10, 128));
    expect(scalar.startsWith("{'descr': '<f8', 'fortran_order': False, 'shape': (), }")).toBe(true);
  });

  it('round-trips every numpy dtype through a file', async () => {
    for (const dt of ALL_DTYPES.filter((d) => d !== 'BF16') as DType[]) {
      const t = fromNumbers(
        cOrder([4, 3], (i) => (i * 7) % 11),
        dt,
        [4, 3],
      );
      const p = tmpFile('rt');
      await writeNpy(p, t);
      expect(readFileSync(p).length % 16).toBe(t.data.byteLength % 16);
      const back = await loadNpy(p);
      expect(back.dtype).toBe(dt);
      expect(back.shape).toEqual([4, 3]);
      expect(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength)).toEqual(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      );
    }
  });

  it('rejects BF16 (numpy has no such dtype) without leaving a file', async () => {
    const p = tmpFile('bf16');
    await expect(writeNpy(p, fromNumbers([1], 'BF16'))).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    expect(readdirSync(dir).some((f) => f.includes('bf16'))).toBe(false);
  });
});
