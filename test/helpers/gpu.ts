// Shared engine for a test file: created once (pipeline compiles are slow on software
// adapters), disposed after the file. Backend from IBGPU_BACKEND, else auto.
import { afterAll } from 'vitest';
import { Engine } from '../../src/runtime/engine.js';

let engine: Promise<Engine> | undefined;

export function useEngine(): () => Promise<Engine> {
  afterAll(async () => {
    if (engine) (await engine).dispose();
    engine = undefined;
  });
  return () => (engine ??= Engine.create());
}
