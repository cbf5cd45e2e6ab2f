// Stage path choice (src/runtime/stage-paths.ts): config over measurement over the adapter guess,
// one choice per engine, listed for the manifest; and the config key's validation.
import { afterEach, describe, expect, it } from 'vitest';
import { chooseStagePath, recordStageTiming, stagePathChoices } from '../src/runtime/stage-paths.js';
import { setTuningStore, type TuningStore } from '../src/runtime/tuning-store.js';
import type { Engine } from '../src/runtime/engine.js';
import { parseConfig } from '../src/ib/config.js';

function fakeEngine(isSoftware: boolean): Engine {
  return { info: { isSoftware }, adapterName: isSoftware ? 'soft' : 'hard' } as unknown as Engine;
}

function memStore(): TuningStore {
  const m = new Map<string, unknown>();
  return { location: 'memory', host: 'test', get: (k) => m.get(k), set: (k, v) => void m.set(k, v) };
}

afterEach(() => setTuningStore(undefined));

describe('chooseStagePath', () => {
  it('guesses host on a software adapter and gpu on a hardware one', () => {
    expect(chooseStagePath(fakeEngine(true), 'edges')).toMatchObject({ path: 'host', how: 'guess' });
    expect(chooseStagePath(fakeEngine(false), 'edges')).toMatchObject({ path: 'gpu', how: 'guess' });
  });

  it('follows a stored measurement, and the config over both', () => {
    setTuningStore(memStore());
    const e = fakeEngine(true);
    recordStageTiming(e, 'stats', { gpuMs: 10, hostMs: 30, what: 'test' });
    expect(chooseStagePath(e, 'stats')).toMatchObject({ path: 'gpu', how: 'measured' });
    expect(chooseStagePath(e, 'stats').note).toMatch(/gpu 10\.0 ms, host 30\.0 ms/);
    expect(chooseStagePath(e, 'stats', 'host')).toMatchObject({ path: 'host', how: 'config' });
    recordStageTiming(e, 'stats', { gpuMs: 10, hostMs: 3, what: 'test' }); // a config choice stays
    expect(chooseStagePath(e, 'stats')).toMatchObject({ path: 'host', how: 'config' });
    expect(stagePathChoices(e).map((c) => c.stage)).toEqual(['stats']);
  });

  it('a new measurement replaces an earlier measured or guessed choice', () => {
    setTuningStore(memStore());
    const e = fakeEngine(true);
    expect(chooseStagePath(e, 'edges').path).toBe('host');
    recordStageTiming(e, 'edges', { gpuMs: 1, hostMs: 2, what: '' });
    expect(chooseStagePath(e, 'edges')).toMatchObject({ path: 'gpu', how: 'measured' });
  });
});

describe('config.stage_paths', () => {
  const base = { node_layers: ['a', 'b'] };
  it('accepts known stages and paths', () => {
    expect(parseConfig({ ...base, stage_paths: { edges: 'host', stats: 'auto' } }).stage_paths).toEqual({ edges: 'host', stats: 'auto' });
  });
  it('rejects unknown stages and paths with the allowed values', () => {
    expect(() => parseConfig({ ...base, stage_paths: { basis: 'host' } })).toThrow(/'stats', 'edges'/);
    expect(() => parseConfig({ ...base, stage_paths: { edges: 'cpu' } })).toThrow(/'auto', 'gpu', 'host'/);
    expect(() => parseConfig({ ...base, stage_paths: 'host' })).toThrow(/must be an object/);
  });
});
