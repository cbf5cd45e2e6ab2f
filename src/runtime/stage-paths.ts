// Where each pipeline stage runs: through the adapter ('gpu') or on the host CPU in float64
// ('host'). On a software adapter (llvmpipe, SwiftShader) the "GPU" is the host's own cores and
// every storage load of a kernel costs a store-forwarding stall (bench/RESULTS.notes.md), so a
// host loop that follows the data's structure (sparse rows, gate flips) can beat the kernel
// several times over; on a real GPU the kernels win. The choice is made once per engine and
// stage:
//   1. the config's `stage_paths` entry, when it names 'gpu' or 'host';
//   2. a measured comparison stored in the tuning store (src/runtime/tuning-store.ts; keyed by
//      adapter and host CPU), written by `ibgpu doctor` / the benches through recordStageTiming;
//   3. otherwise a guess from the adapter kind: host on software adapters, gpu elsewhere.
// A build that a stage's host path does not cover (e.g. functional edges) asks with `gpuOnly`:
// it runs on the GPU whatever was measured, says why in the note, and refuses a config that
// asks for the host.
// Every choice, with how it was made, is listed by stagePathChoices for the result manifest.

import { IbgpuError } from '../errors.js';
import type { Engine } from './engine.js';
import { tuningStore } from './tuning-store.js';

export type StagePath = 'gpu' | 'host';
export type StagePathRequest = StagePath | 'auto';

export interface StagePathChoice {
  stage: string;
  path: StagePath;
  how: 'config' | 'measured' | 'guess' | 'only';
  /** Human-readable reason (the measured times, or the adapter kind). */
  note: string;
}

interface StoredTiming {
  gpuMs: number;
  hostMs: number;
  /** What was timed (problem size), for messages. */
  what: string;
}

const chosen = new WeakMap<Engine, Map<string, StagePathChoice>>();

function storeKey(engine: Engine, stage: string): string {
  return `stage-path ${stage} on ${engine.adapterName}`;
}

/** The stored measurement for a stage on this adapter and host, if any. */
export function storedStageTiming(engine: Engine, stage: string): StoredTiming | undefined {
  const v = tuningStore()?.get(storeKey(engine, stage)) as Partial<StoredTiming> | undefined;
  if (!v || typeof v.gpuMs !== 'number' || typeof v.hostMs !== 'number' || !(v.gpuMs > 0) || !(v.hostMs > 0)) return undefined;
  return { gpuMs: v.gpuMs, hostMs: v.hostMs, what: typeof v.what === 'string' ? v.what : '' };
}

/**
 * Stores a measured comparison of the two paths of `stage` (same work on both) so that later
 * builds on this adapter and host choose by it. Also replaces this engine's choice unless the
 * config fixed it.
 */
export function recordStageTiming(engine: Engine, stage: string, t: StoredTiming): void {
  tuningStore()?.set(storeKey(engine, stage), t);
  const m = chosen.get(engine);
  if (m?.get(stage)?.how !== 'config') m?.delete(stage);
}

/**
 * Chooses (once per engine) where `stage` runs; see the header for the order of rules.
 * `gpuOnly` (the reason) says this build's work has no host path.
 */
export function chooseStagePath(engine: Engine, stage: string, requested: StagePathRequest = 'auto', { gpuOnly }: { gpuOnly?: string } = {}): StagePathChoice {
  let m = chosen.get(engine);
  if (!m) chosen.set(engine, (m = new Map<string, StagePathChoice>()));
  if (gpuOnly !== undefined) {
    if (requested === 'host') {
      throw new IbgpuError(
        'BAD_CONFIG',
        `stage_paths.${stage} = 'host' in the config, but ${gpuOnly}`,
        `remove stage_paths.${stage} or set it to 'gpu' or 'auto'`,
      );
    }
    // Listed for the manifest, never reused: the next build may have a host path.
    const c: StagePathChoice = { stage, path: 'gpu', how: 'only', note: `gpu: ${gpuOnly}` };
    m.set(stage, c);
    return c;
  }
  const prev = m.get(stage);
  if (prev && prev.how !== 'only' && (requested === 'auto' || prev.path === requested)) return prev;
  let c: StagePathChoice;
  if (requested !== 'auto') {
    c = { stage, path: requested, how: 'config', note: `stage_paths.${stage} = '${requested}' in the config` };
  } else {
    const t = storedStageTiming(engine, stage);
    if (t) {
      const path: StagePath = t.hostMs < t.gpuMs ? 'host' : 'gpu';
      c = { stage, path, how: 'measured', note: `tuning cache${t.what ? ` (${t.what})` : ''}: gpu ${t.gpuMs.toFixed(1)} ms, host ${t.hostMs.toFixed(1)} ms` };
    } else if (engine.info.isSoftware) {
      c = { stage, path: 'host', how: 'guess', note: 'software adapter: its kernels run on the host cores (no measurement cached: run `ibgpu doctor`)' };
    } else {
      c = { stage, path: 'gpu', how: 'guess', note: 'hardware adapter (no measurement cached: run `ibgpu doctor`)' };
    }
  }
  m.set(stage, c);
  return c;
}

/** The choices made so far on this engine, in the order they were made (for the manifest). */
export function stagePathChoices(engine: Engine): StagePathChoice[] {
  return [...(chosen.get(engine)?.values() ?? [])];
}
