// Times the statistics pass on both paths (GPU kernels, host float64) on one small synthetic
// batch shaped like the MNIST MLP's (784 sparse inputs, two ReLU layers of 100, 10 outputs), and
// stores the comparison so that later builds on this adapter and host choose by it
// (src/runtime/stage-paths.ts). Run by `ibgpu doctor`.

import type { Engine } from '../runtime/engine.js';
import { recordStageTiming } from '../runtime/stage-paths.js';
import { mulberry32 } from '../util/mulberry32.js';
import { arraySource } from './data.js';
import { GpuMlp } from './gpu-model.js';
import { integrationPoints } from './integration.js';
import { randomMlp } from './self-check.js';
import { collectStats, type StatsPlan } from './stats.js';

export interface StatsPathTiming {
  gpuMs: number;
  hostMs: number;
  what: string;
}

/** Rows of the timed batch: one batch of the MNIST build's size class, small enough for doctor. */
const ROWS = 512;

/** Timed runs per path after a warm-up run (pipelines compiled, host code optimised). */
const ROUNDS = 3;

/**
 * Each path runs the batch once to warm up, then ROUNDS times interleaved with the other path
 * (so that a burst of load from other processes hits both), and its fastest run counts; the GPU
 * time includes its read-backs. Records the result with recordStageTiming.
 */
export async function timeStatsPaths(engine: Engine): Promise<StatsPathTiming> {
  const sizes = [784, 100, 100, 10];
  const model = randomMlp(sizes, 5);
  const r = mulberry32(17);
  // ~19 % non-zero pixel-like inputs, as MNIST's.
  const x = Float32Array.from({ length: ROWS * sizes[0]! }, () => (r() < 0.19 ? Math.fround(r()) : 0));
  const data = arraySource(x, ROWS, sizes[0]!, 'synthetic');
  const pts = integrationPoints('gradient', 0);
  const plan: StatsPlan = { nodes: [0, 1, 2].map((act) => ({ act, name: `layers.${act}`, folded: true })), gateLayers: [0, 1, 2] };
  const mlp = new GpuMlp(engine, model, pts);
  const ms: Record<'gpu' | 'host', number> = { gpu: Infinity, host: Infinity };
  try {
    for (let round = 0; round <= ROUNDS; round++) {
      for (const path of ['gpu', 'host'] as const) {
        const t0 = performance.now();
        await collectStats(engine, mlp, data, { ...plan, path }, ROWS, pts);
        if (round > 0) ms[path] = Math.min(ms[path], performance.now() - t0);
      }
    }
  } finally {
    mlp.dispose();
  }
  const t = { gpuMs: ms.gpu, hostMs: ms.host, what: `${ROWS} rows of a ${sizes.join('-')} ReLU MLP, 19 % non-zero inputs` };
  recordStageTiming(engine, 'stats', t);
  return t;
}
