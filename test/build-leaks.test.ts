// Whole builds leave no GPU buffer behind: the pooled buffers live after a build (and after a
// build that throws midway, in its statistics or its edge pass) are those live before it. Every
// pass owns its buffers through scopes (src/runtime/buffer-scope.ts); a buffer a pass forgets
// shows up here as a live buffer more.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { parseConfig } from '../src/ib/config.js';
import { arraySource, type DataSource } from '../src/ib/data.js';
import { buildInteractionBasis } from '../src/ib/pipeline.js';
import { randomMlp } from '../src/ib/self-check.js';
import type { Engine } from '../src/runtime/engine.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { useEngine } from './helpers/gpu.js';

const engine = useEngine();

/**
 * Buffers handed out and not yet recycled, once everything released so far is retired. A build
 * that throws leaves its last readbacks in flight (their staging buffers return to the pool when
 * the mapping resolves), so the queue is drained first: a leaked buffer stays live regardless.
 */
async function liveBuffers(e: Engine): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await e.sync();
    await new Promise((r) => setTimeout(r, 10));
  }
  e.flush();
  return e.memory().buffersLive;
}

const SIZES = [13, 11, 7, 5];
const N = 300;
const NODES = ['layers.0', 'layers.1', 'layers.2', 'output'];
// Both passes forced onto the GPU, whatever this adapter's measured crossover says.
const GPU = { stage_paths: { stats: 'gpu', edges: 'gpu' } };

function mlpData(): { model: ReturnType<typeof randomMlp>; data: DataSource } {
  const r = mulberry32(5);
  const x = Float32Array.from({ length: N * SIZES[0]! }, () => 2 * r() - 1);
  return { model: randomMlp(SIZES, 3), data: arraySource(x, N, SIZES[0]!) };
}

/** `data`, except that its `failAt`-th read (1-based) throws. Counts the reads made. */
function failingSource(data: DataSource, failAt: number): DataSource & { reads: number } {
  const src = Object.create(data) as DataSource & { reads: number };
  src.reads = 0;
  src.readRows = (start, count) => {
    if (++src.reads === failAt) return Promise.reject(new Error(`planned failure at read ${failAt}`));
    return data.readRows(start, count);
  };
  return src;
}

describe('builds leave no live GPU buffer', () => {
  const CONFIGS = [
    { basis_formula: 'jacobian', edge_formula: 'squared', degeneracy: true },
    { basis_formula: '(1-0)*alpha', edge_formula: 'functional', integration_method: 'gauss-legendre', n_intervals: 2 },
  ];

  it.each(CONFIGS)('an MLP build ($basis_formula, $edge_formula edges), and the same build failing in its statistics and in its edge pass', async (extra) => {
    const e = await engine();
    const { model, data } = mlpData();
    const config = parseConfig({ node_layers: NODES, batch_size: 64, ...GPU, ...extra });
    const before = await liveBuffers(e);
    const counted = failingSource(data, Infinity);
    const res = await buildInteractionBasis(e, model, counted, config);
    expect(res.edges.size).toBe(NODES.length - 1);
    expect(await liveBuffers(e)).toBe(before);
    // The first reads are the statistics pass's, the last ones the edge pass's.
    const reads = counted.reads;
    expect(reads).toBeGreaterThan(4);
    for (const failAt of [2, reads - 1]) {
      await expect(buildInteractionBasis(e, model, failingSource(data, failAt), config)).rejects.toThrow(`planned failure at read ${failAt}`);
      expect(await liveBuffers(e), `after a failure at read ${failAt} of ${reads}`).toBe(before);
    }
  });

  describe('transformer builds', () => {
    const dirs: string[] = [];
    afterAll(async () => {
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    });
    const EXAMPLE = join(import.meta.dirname, '..', 'examples', 'modadd-transformer');

    it("the example's GPU build, and the same build failing after its first pass", async () => {
      const e = await engine();
      const d = await mkdtemp(join(tmpdir(), 'ibgpu-leaks-'));
      dirs.push(d);
      for (const f of ['weights.safetensors', 'config.json', 'build.json']) await copyFile(join(EXAMPLE, f), join(d, f));
      const before = await liveBuffers(e);
      const { result } = await buildFromConfigFile(e, join(d, 'build.json'));
      expect(result.edges.size).toBeGreaterThan(0);
      expect(await liveBuffers(e)).toBe(before);
      // The logger is called between the passes: a throw there leaves the model's buffers to the build's clean-up.
      let calls = 0;
      const logger = {
        info: (): void => {
          if (++calls === 2) throw new Error('planned failure in the logger');
        },
      };
      await expect(buildFromConfigFile(e, join(d, 'build.json'), { logger })).rejects.toThrow('planned failure');
      expect(await liveBuffers(e)).toBe(before);
    });
  });
});
