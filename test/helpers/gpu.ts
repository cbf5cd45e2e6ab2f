// Shared engine for a test file: created once (pipeline compiles are slow on software
// adapters), disposed after the file. Backend from IBGPU_BACKEND, else auto.
import { afterAll, beforeAll } from 'vitest';
import { Engine } from '../../src/runtime/engine.js';

let engine: Promise<Engine> | undefined;

export function useEngine(): () => Promise<Engine> {
  afterAll(async () => {
    if (engine) (await engine).dispose();
    engine = undefined;
  });
  return () => (engine ??= Engine.create());
}

/**
 * A SwiftShader Vulkan engine for the file (Debian's chromium-common; has `subgroups` and
 * timestamp queries, which llvmpipe lacks, and is the WebGPU of headless Chromium). The getter
 * returns undefined and `why` says why when there is none: tests then skip, saying so.
 */
export function useSwiftShader(): { get: () => Engine | undefined; why: () => string } {
  let e: Engine | undefined;
  let why = '';
  beforeAll(async () => {
    try {
      e = await Engine.create({ backend: 'swiftshader' });
    } catch (err) {
      why = `no SwiftShader adapter (${(err as Error).message.split('\n')[0]})`;
    }
  }, 60_000);
  afterAll(() => {
    e?.dispose();
    e = undefined;
  });
  return { get: () => e, why: () => why };
}
