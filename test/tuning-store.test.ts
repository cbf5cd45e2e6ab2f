// The on-disk tuning store: entries keyed by adapter and host CPU, atomic writes, foreign files
// left alone, and matmul taking a stored choice without timing anything.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chooseMatmulVariant, matmulTuning, matmulVariantFor, MATMUL_VARIANTS } from '../src/kernels/matmul.js';
import { diskTuningStore, hostCpuKey, tuningCacheDir } from '../src/runtime/tuning-store-node.js';
import { setTuningStore } from '../src/runtime/tuning-store.js';
import { useEngine } from './helpers/gpu.js';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(os.tmpdir(), 'ibgpu-tuning-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  setTuningStore(undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const engine = useEngine();

describe('disk tuning store', () => {
  it('round-trips entries through the file, keyed by the host CPU', () => {
    const dir = tmp();
    const s = diskTuningStore(dir);
    expect(s.get('k')).toBeUndefined();
    s.set('k', { variant: 'x', n: 3 });
    const again = diskTuningStore(dir);
    expect(again.get('k')).toEqual({ variant: 'x', n: 3 });
    const file = JSON.parse(readFileSync(join(dir, 'tuning.json'), 'utf8')) as { format: string; entries: Record<string, unknown> };
    expect(file.format).toBe('ibgpu-tuning-v1');
    expect(Object.keys(file.entries)).toEqual([`k @ ${hostCpuKey()}`]);
    expect(hostCpuKey()).toMatch(/cores$/);
  });

  it('never overwrites a file it did not write', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'tuning.json'), '{"something": "else"}');
    const s = diskTuningStore(dir);
    s.set('k', 1);
    expect(s.get('k')).toBe(1); // kept in memory
    expect(readFileSync(join(dir, 'tuning.json'), 'utf8')).toBe('{"something": "else"}');
    expect(s.location).toMatch(/memory only/);
  });

  it('lives under IBGPU_CACHE_DIR, else XDG_CACHE_HOME/ibgpu, never in the package', () => {
    const saved = { a: process.env.IBGPU_CACHE_DIR, b: process.env.XDG_CACHE_HOME };
    try {
      delete process.env.IBGPU_CACHE_DIR;
      process.env.XDG_CACHE_HOME = '/x/cache';
      expect(tuningCacheDir()).toBe('/x/cache/ibgpu');
      process.env.IBGPU_CACHE_DIR = '/y';
      expect(tuningCacheDir()).toBe('/y');
    } finally {
      if (saved.a === undefined) delete process.env.IBGPU_CACHE_DIR;
      else process.env.IBGPU_CACHE_DIR = saved.a;
      if (saved.b === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = saved.b;
    }
  });

  it('matmul uses a stored tuning for this adapter and CPU without timing', async () => {
    const e = await engine();
    const dir = tmp();
    const s = diskTuningStore(dir);
    // Store a deliberately unusual choice: a measured tuning would not pick it on most adapters.
    const pick = MATMUL_VARIANTS[1]!;
    s.set(`matmul ${MATMUL_VARIANTS.join(',')} on ${e.adapterName}`, { variant: pick, size: 512, ms: { [pick]: 1 } });
    setTuningStore(diskTuningStore(dir));
    expect(matmulVariantFor(e)).toBe(pick);
    const t0 = performance.now();
    expect(await chooseMatmulVariant(e)).toBe(pick);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(matmulTuning(e)!.source).toBe('cache');
  });
});
