import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IbgpuError } from '../src/errors.js';
import { f16Bits } from '../src/io/half.js';
import { loadSafetensors, openSafetensors, openSafetensorsBlob, parseSafetensors, serializeSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { ALL_DTYPES, dtypeSize, fromNumbers, toFloat64, type DType, type Tensor } from '../src/io/tensor.js';
import { rng } from './helpers/random.js';

/** The fixture as shipped beside the repository (../shared), when present. */
const SHARED_MLP_FIXTURE = resolve(import.meta.dirname, '..', '..', 'shared', 'fixtures', 'synthetic-mlp');

const dir = mkdtempSync(join(tmpdir(), 'ibgpu-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmpFile = (name = 'f') => join(dir, `${name}-${fileNo++}.safetensors`);

const enc = new TextEncoder();

/** A file from a raw header (object or exact text) and `dataBytes` bytes of data (0..255 ramp). */
function rawFile(header: unknown, dataBytes: number, lengthOverride?: bigint): Uint8Array {
  const json = typeof header === 'string' ? enc.encode(header) : enc.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  for (let i = 0; i < dataBytes; i++) out[8 + json.length + i] = i & 0xff;
  return out;
}

/** Asserts that parsing these bytes (in memory and from a file) fails with `code` and message parts. */
async function expectBad(bytes: Uint8Array, code: string, ...parts: (string | RegExp)[]): Promise<void> {
  const path = tmpFile('bad');
  writeFileSync(path, bytes);
  for (const attempt of [() => Promise.resolve().then(() => parseSafetensors(bytes, 'mem.safetensors')), () => openSafetensors(path)]) {
    const err = await attempt().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, `expected ${code} for ${parts.join(' ')}`).toBeInstanceOf(IbgpuError);
    const e = err as IbgpuError;
    expect(e.code).toBe(code);
    expect(e.hint).toBeTruthy();
    for (const p of parts) expect(e.message).toMatch(p);
  }
}

/** Values for each dtype including its edge cases. */
function sampleValues(dt: DType, n: number, seed: number): Tensor {
  const r = rng(seed);
  const rand = Array.from({ length: n }, () => r());
  switch (dt) {
    case 'F64':
      return fromNumbers([0, -0, Number.MIN_VALUE, -Number.MAX_VALUE, Infinity, -Infinity, NaN, 1 / 3, ...rand.map((x) => (x - 0.5) * 1e10)].slice(0, n), dt, [
        n,
      ]);
    case 'F32':
      return fromNumbers([0, -0, 1e-45, 3.4028234663852886e38, Infinity, -Infinity, NaN, 1 / 3, ...rand.map((x) => x - 0.5)].slice(0, n), dt, [n]);
    case 'F16':
      return fromNumbers([0, -0, 2 ** -24, 65504, Infinity, -Infinity, NaN, 2 ** -14, ...rand.map((x) => (x - 0.5) * 100)].slice(0, n), dt, [n]);
    case 'BF16':
      return fromNumbers([0, -0, 2 ** -133, 3.3895313892515355e38, Infinity, -Infinity, NaN, 2 ** -126, ...rand.map((x) => (x - 0.5) * 1e30)].slice(0, n), dt, [
        n,
      ]);
    case 'I64':
      return {
        dtype: dt,
        shape: [n],
        data: BigInt64Array.from({ length: n }, (_, i) => (i === 0 ? -(2n ** 63n) : i === 1 ? 2n ** 63n - 1n : BigInt(Math.floor((rand[i]! - 0.5) * 2 ** 52)))),
      };
    case 'U64':
      return { dtype: dt, shape: [n], data: BigUint64Array.from({ length: n }, (_, i) => (i === 0 ? 2n ** 64n - 1n : BigInt(Math.floor(rand[i]! * 2 ** 52)))) };
    case 'I32':
      return fromNumbers([-(2 ** 31), 2 ** 31 - 1, ...rand.map((x) => Math.floor((x - 0.5) * 2 ** 31))].slice(0, n), dt, [n]);
    case 'U32':
      return fromNumbers([2 ** 32 - 1, 0, ...rand.map((x) => Math.floor(x * 2 ** 32))].slice(0, n), dt, [n]);
    case 'I16':
      return fromNumbers([-32768, 32767, ...rand.map((x) => Math.floor((x - 0.5) * 65536))].slice(0, n), dt, [n]);
    case 'U16':
      return fromNumbers([65535, 0, ...rand.map((x) => Math.floor(x * 65536))].slice(0, n), dt, [n]);
    case 'I8':
      return fromNumbers([-128, 127, ...rand.map((x) => Math.floor((x - 0.5) * 256))].slice(0, n), dt, [n]);
    case 'U8':
      return fromNumbers([255, 0, ...rand.map((x) => Math.floor(x * 256))].slice(0, n), dt, [n]);
    case 'BOOL':
      return fromNumbers(
        rand.map((x) => (x > 0.5 ? 1 : 0)),
        dt,
        [n],
      );
  }
}

function sameBits(a: Tensor, b: Tensor): void {
  expect(b.dtype).toBe(a.dtype);
  expect(b.shape).toEqual(a.shape);
  expect(b.data.constructor).toBe(a.data.constructor);
  expect(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength).equals(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength))).toBe(true);
}

describe('safetensors round trips', () => {
  const tensors: Record<string, Tensor> = {};
  ALL_DTYPES.forEach((dt, i) => {
    tensors[`t.${dt}`] = sampleValues(dt, 13 + i, i);
  });
  tensors['matrix'] = fromNumbers(
    Array.from({ length: 35 }, (_, i) => i * 0.25),
    'F32',
    [5, 7],
  );
  tensors['scalar'] = fromNumbers([42.5], 'F64', []);
  tensors['empty'] = fromNumbers([], 'F32', [0, 3]);
  tensors['empty16'] = fromNumbers([], 'BF16', [4, 0]);
  tensors['x.ü/ß'] = fromNumbers([1, 2, 3], 'U8', [3]);
  const metadata = { format: 'np', note: 'unicode ✓', empty: '' };

  it('preserves every dtype bit-exactly through a file, memory and a Blob', async () => {
    const path = tmpFile();
    await writeSafetensors(path, tensors, metadata);
    const bytes = new Uint8Array(readFileSync(path));
    expect(Buffer.from(serializeSafetensors(tensors, metadata)).equals(Buffer.from(bytes))).toBe(true);
    const sources = [await openSafetensors(path), parseSafetensors(bytes), await openSafetensorsBlob(new Blob([bytes]))];
    for (const f of sources) {
      expect(f.metadata).toEqual(metadata);
      expect(new Set(f.keys())).toEqual(new Set(Object.keys(tensors)));
      for (const [name, t] of Object.entries(tensors)) {
        sameBits(t, await f.read(name));
        expect(f.info(name).shape).toEqual(t.shape);
      }
      await f.close();
    }
    const all = await loadSafetensors(path);
    expect(Object.keys(all.tensors).length).toBe(Object.keys(tensors).length);
    expect(all.tensors['scalar']!.data[0]).toBe(42.5);
  });

  it('aligns every tensor and orders them by decreasing alignment, then name', async () => {
    const f = parseSafetensors(serializeSafetensors(tensors));
    expect(f.dataStart % 8).toBe(0);
    for (const k of f.keys()) {
      const { dtype, dataOffsets } = f.info(k);
      expect((f.dataStart + dataOffsets[0]) % dtypeSize(dtype)).toBe(0);
    }
    expect(f.keys().map((k) => f.info(k).dtype)).toEqual([
      'U64',
      'I64',
      'F64',
      'F64',
      'F32',
      'F32',
      'F32',
      'U32',
      'I32',
      'BF16',
      'BF16',
      'F16',
      'U16',
      'I16',
      'I8',
      'U8',
      'U8',
      'BOOL',
    ]);
    expect(f.keys().slice(4, 7)).toEqual(['empty', 'matrix', 't.F32']);
  });

  it('writes the same bytes as the reference implementation', () => {
    // Reference serialization of {"attn0": f32 [1,1,2,3] = 0..5}: compact JSON padded with spaces to 8.
    const t = fromNumbers([0, 1, 2, 3, 4, 5], 'F32', [1, 1, 2, 3]);
    const out = serializeSafetensors({ attn0: t });
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    expect(out.length).toBe(8 + 72 + 24);
    expect(new DataView(out.buffer).getBigUint64(0, true)).toBe(72n);
    expect(new TextDecoder().decode(out.subarray(8, 80))).toBe(json + ' '.repeat(72 - json.length));
    expect(Array.from(new Float32Array(out.slice(80).buffer))).toEqual([0, 1, 2, 3, 4, 5]);
    // Empty file, and metadata only.
    expect(Array.from(serializeSafetensors({}))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, ...enc.encode('{}      ')]);
    const meta = serializeSafetensors({}, { framework: 'pt' });
    expect(new TextDecoder().decode(meta.subarray(8))).toBe('{"__metadata__":{"framework":"pt"}}     ');
    // Trailing whitespace of any JSON kind is accepted on read.
    expect(parseSafetensors(rawFile('{}\r \t\n', 0)).keys()).toEqual([]);
  });

  it('keeps awkward names such as __proto__ as ordinary tensors and metadata keys', async () => {
    const t: Record<string, Tensor> = {};
    Object.defineProperty(t, '__proto__', { value: fromNumbers([1, 2], 'F32'), enumerable: true });
    t['constructor'] = fromNumbers([3], 'F32');
    const meta = JSON.parse('{"__proto__": "m"}') as Record<string, string>;
    const f = parseSafetensors(serializeSafetensors(t, meta));
    expect(f.keys().sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.keys(f.metadata)).toEqual(['__proto__']);
    const all = await f.readAll();
    expect(Object.keys(all).sort()).toEqual(['__proto__', 'constructor']);
    expect(Array.from(toFloat64(all['__proto__']!))).toEqual([1, 2]);
  });

  it('converts to float32 / float64 on request', async () => {
    const f = parseSafetensors(
      serializeSafetensors({
        h: { dtype: 'F16', shape: [4], data: Uint16Array.from([f16Bits(1.5), f16Bits(-(2 ** -24)), 0x7c00, 0x7e00]) },
        b: fromNumbers([1, -3.5, 2 ** 100], 'BF16', [3]),
        d: fromNumbers([0.1, 1e300, -1e-300], 'F64', [3]),
        i: { dtype: 'I64', shape: [3], data: BigInt64Array.from([-5n, 2n ** 40n, 0n]) },
        z: fromNumbers([1, 0, 1], 'BOOL', [3]),
      }),
    );
    expect(Array.from((await f.readF32('h')).data)).toEqual([1.5, -(2 ** -24), Infinity, NaN]);
    expect(Array.from((await f.readF64('b')).data)).toEqual([1, -3.5, 2 ** 100]);
    expect(Array.from((await f.readF32('d')).data)).toEqual([Math.fround(0.1), Infinity, -0]);
    expect(Array.from((await f.readF64('d')).data)).toEqual([0.1, 1e300, -1e-300]);
    expect(Array.from((await f.readF64('i')).data)).toEqual([-5, 2 ** 40, 0]);
    expect(Array.from((await f.readF32('z')).data)).toEqual([1, 0, 1]);
    expect((await f.readF32('h')).shape).toEqual([4]);
  });

  it('rejects invalid tensors and reserved names before writing anything', async () => {
    const path = tmpFile('never');
    await expect(writeSafetensors(path, { a: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).rejects.toMatchObject({ code: 'SHAPE' });
    await expect(writeSafetensors(path, { __metadata__: fromNumbers([1], 'F32') })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    await expect(writeSafetensors(path, {}, { a: 3 as unknown as string })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('never'))).toEqual([]);
  });

  it('replaces an existing file atomically', async () => {
    const path = tmpFile('replace');
    await writeSafetensors(path, { a: fromNumbers([1, 2], 'F32') });
    await writeSafetensors(path, { b: fromNumbers([3], 'F64') });
    const f = await openSafetensors(path);
    expect(f.keys()).toEqual(['b']);
    await f.close();
    expect(readdirSync(dir).filter((n) => n.includes('replace'))).toEqual([path.split('/').pop()]);
  });
});

describe('safetensors lazy reads', () => {
  it('reads only the header and the requested tensor', async () => {
    const a = fromNumbers(
      Array.from({ length: 1000 }, (_, i) => i),
      'F32',
      [10, 100],
    );
    const b = fromNumbers(
      Array.from({ length: 5000 }, (_, i) => -i),
      'F64',
      [5000],
    );
    const bytes = serializeSafetensors({ a, b });
    const inner = new Blob([bytes]);
    const slices: [number, number][] = [];
    const spy = { size: inner.size, slice: (s: number, e: number) => (slices.push([s, e]), inner.slice(s, e)) } as unknown as Blob;
    const f = await openSafetensorsBlob(spy, 'spy');
    const headerSlices = slices.length;
    sameBits(a, await f.read('a'));
    const [b0, e0] = f.info('a').dataOffsets;
    expect(slices.slice(headerSlices)).toEqual([[f.dataStart + b0, f.dataStart + e0]]);
    const read = slices.reduce((s, [x, y]) => s + (y - x), 0);
    expect(read).toBeLessThan(bytes.length - b.data.byteLength + 1);
  });

  it("reads one tensor correctly while another tensor's bytes are corrupt", async () => {
    const path = tmpFile('corrupt');
    const a = fromNumbers([1, 2, 3, 4], 'F32', [2, 2]);
    const b = fromNumbers([5, 6, 7], 'F64', [3]);
    await writeSafetensors(path, { a, b });
    const f = await openSafetensors(path);
    const [bb, be] = f.info('b').dataOffsets;
    const fh = await openFile(path, 'r+');
    await fh.write(new Uint8Array(be - bb).fill(0xff), 0, be - bb, f.dataStart + bb);
    await fh.close();
    sameBits(a, await f.read('a'));
    expect(Array.from(toFloat64(await f.read('b'))).every(Number.isNaN)).toBe(true);
    await f.close();
  });

  it('fails clearly for missing tensors and reads after close', async () => {
    const path = tmpFile('missing');
    await writeSafetensors(path, { 'layers.0.W': fromNumbers([1], 'F32'), 'layers.0.b': fromNumbers([1], 'F32') });
    const f = await openSafetensors(path);
    expect(f.has('layers.0.W')).toBe(true);
    await expect(f.read('layers.1.W')).rejects.toMatchObject({ code: 'MISSING_TENSOR' });
    await expect(f.read('layers.1.W')).rejects.toThrow(/layers\.1\.W.*available: .*layers\.0\.W/);
    expect(() => f.info('nope')).toThrow(/missing-\d+\.safetensors/);
    await f.close();
    await f.close();
    await expect(f.read('layers.0.W')).rejects.toMatchObject({ code: 'DISPOSED' });
    await expect(openSafetensors(join(dir, 'does-not-exist.safetensors'))).rejects.toMatchObject({ code: 'BAD_FILE' });
  });
});

describe('safetensors malformed files', () => {
  const info = (dtype: string, shape: unknown, off: unknown) => ({ dtype, shape, data_offsets: off });

  it('too short, header length past the end or too large', async () => {
    await expectBad(new Uint8Array(5), 'BAD_FILE', /too short/);
    await expectBad(rawFile({}, 0, 100n), 'BAD_FILE', /header length 100 runs past the end/);
    await expectBad(rawFile({}, 0, 2n ** 62n), 'BAD_FILE', /exceeds/);
  });

  it('header not UTF-8, not JSON, not an object', async () => {
    const notUtf8 = rawFile('{}', 0);
    notUtf8[9] = 0xff;
    await expectBad(notUtf8, 'BAD_FILE', /UTF-8/);
    await expectBad(rawFile('{"a":', 0), 'BAD_FILE', /not valid JSON/);
    await expectBad(rawFile('[1,2]', 0), 'BAD_FILE', /JSON object/);
  });

  it('unknown dtype, bad shape, bad offsets, size mismatch', async () => {
    await expectBad(rawFile({ w: info('F8_E4M3', [2], [0, 2]) }, 2), 'BAD_FILE', /tensor 'w'/, /unsupported dtype "F8_E4M3"/);
    await expectBad(rawFile({ w: info('F32', [2, -1], [0, 8]) }, 8), 'BAD_FILE', /tensor 'w'/, /shape/);
    await expectBad(rawFile({ w: info('F32', [2.5], [0, 8]) }, 8), 'BAD_FILE', /tensor 'w'/, /shape/);
    await expectBad(rawFile({ w: info('F32', [2], [0]) }, 8), 'BAD_FILE', /tensor 'w'/, /data_offsets/);
    await expectBad(rawFile({ w: info('F32', [0], [8, 0]) }, 8), 'BAD_FILE', /end before they begin/);
    await expectBad(rawFile({ w: info('F32', [3], [0, 8]) }, 8), 'BAD_FILE', /tensor 'w'/, /needs 12 bytes.*hold 8/);
    await expectBad(rawFile({ w: 'x' }, 0), 'BAD_FILE', /tensor 'w'/, /must be an object/);
    await expectBad(rawFile({ __metadata__: { a: 1 }, w: info('U8', [1], [0, 1]) }, 1), 'BAD_FILE', /__metadata__/);
  });

  it('overlapping, gapped, out-of-range and incompletely covering offsets', async () => {
    await expectBad(rawFile({ a: info('F32', [2], [0, 8]), b: info('F32', [2], [4, 12]) }, 12), 'BAD_FILE', /tensor 'b'/, /overlap tensor 'a'/);
    await expectBad(rawFile({ a: info('F32', [1], [0, 4]), b: info('F32', [1], [8, 12]) }, 12), 'BAD_FILE', /tensor 'b'/, /gap of 4/);
    await expectBad(rawFile({ a: info('F32', [1], [4, 8]) }, 8), 'BAD_FILE', /tensor 'a'/, /gap/);
    await expectBad(rawFile({ a: info('F32', [4], [0, 16]) }, 12), 'BAD_FILE', /tensor 'a'/, /past the end of the data/);
    await expectBad(rawFile({ a: info('F32', [2], [0, 8]) }, 12), 'BAD_FILE', /4 trailing bytes/);
    // Reference example: ten tensors all claiming [0, 16).
    const many: Record<string, unknown> = {};
    for (let i = 0; i < 10; i++) many[`weight_${i}`] = info('F32', [2, 2], [0, 16]);
    await expectBad(rawFile(many, 16), 'BAD_FILE', /overlap/);
  });

  it('truncated files (every cut point of a small file)', async () => {
    const full = serializeSafetensors({ a: fromNumbers([1, 2, 3], 'F32'), b: fromNumbers([4], 'F64') });
    for (let cut = 0; cut < full.length; cut += 3) {
      const err = (() => {
        try {
          parseSafetensors(full.subarray(0, cut), 'cut');
          return undefined;
        } catch (e) {
          return e as IbgpuError;
        }
      })();
      expect(err?.code, `cut at ${cut}`).toBe('BAD_FILE');
    }
    const path = tmpFile('trunc');
    writeFileSync(path, full.subarray(0, full.length - 1));
    await expect(openSafetensors(path)).rejects.toThrow(/trunc-\d+\.safetensors: tensor 'a'.*past the end/);
  });
});

describe('safetensors written by the Python reference implementation', () => {
  const fixtures = join(import.meta.dirname, 'fixtures', 'synthetic-mlp');

  it('reads the synthetic MLP weights and inputs', async () => {
    const w = await openSafetensors(join(fixtures, 'weights.safetensors'));
    const w64 = await openSafetensors(join(fixtures, 'weights_f64.safetensors'));
    expect(w.metadata['layout']).toMatch(/\[in,out\]/);
    expect(new Set(w.keys())).toEqual(new Set(['layers.0.W', 'layers.0.b', 'layers.1.W', 'layers.1.b', 'layers.2.W', 'layers.2.b']));
    const shapes = { 'layers.0.W': [16, 32], 'layers.1.W': [32, 32], 'layers.2.W': [32, 8], 'layers.2.b': [8] };
    for (const [k, s] of Object.entries(shapes)) expect(w.info(k).shape).toEqual(s);
    for (const k of w.keys()) {
      expect(w.info(k).dtype).toBe('F32');
      expect(w64.info(k).dtype).toBe('F64');
      // Every value is exact in float32, so both files hold the same numbers.
      expect(Array.from((await w.readF64(k)).data)).toEqual(Array.from((await w64.readF64(k)).data));
    }
    // Planted structure: neuron 1 duplicates neuron 0 in layer 0.
    const W0 = (await w.readF32('layers.0.W')).data;
    for (let i = 0; i < 16; i++) expect(W0[i * 32 + 1]).toBe(W0[i * 32 + 0]);
    await w.close();
    await w64.close();
    const x = await loadSafetensors(join(fixtures, 'inputs.safetensors'));
    expect(x.tensors['X']!.shape).toEqual([2048, 16]);
    expect(x.tensors['labels']!.dtype).toBe('I64');
    const X = x.tensors['X']!.data as Float32Array;
    for (let r = 0; r < 2048; r++) expect(X[r * 16 + 3]).toBe(X[r * 16 + 2]); // x3 = x2
  });

  it('reads rib reference outputs and re-serializes them byte for byte', async () => {
    const ribDir = join(fixtures, 'rib-reference');
    const files = readdirSync(ribDir).filter((f) => f.endsWith('.safetensors'));
    expect(files.length).toBe(4);
    for (const name of [...files.map((f) => join('rib-reference', f)), 'weights.safetensors', 'weights_f64.safetensors']) {
      const bytes = readFileSync(join(fixtures, name));
      const f = parseSafetensors(new Uint8Array(bytes), name);
      const all = await f.readAll();
      const meta = Object.keys(f.metadata).length ? f.metadata : undefined;
      expect(Buffer.from(serializeSafetensors(all, meta)).equals(bytes), name).toBe(true);
      if (name.includes('jacobian.')) {
        expect(f.info('layers.0/C').shape).toEqual([17, 15]);
        expect(f.info('layers.1/C').shape).toEqual([33, 30]);
      }
    }
  });

  it.skipIf(!existsSync(SHARED_MLP_FIXTURE))('matches the shared fixture files', () => {
    for (const name of ['weights.safetensors', 'inputs_f64.safetensors', 'rib-reference/synthetic_f64_svd.safetensors']) {
      expect(readFileSync(join(fixtures, name)).equals(readFileSync(join(SHARED_MLP_FIXTURE, name)))).toBe(true);
    }
  });
});
