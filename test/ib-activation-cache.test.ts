// The edge pass's activation cache (src/ib/activation-cache.ts): the statistics pass's hidden
// activations, copied aside and handed back by row range, give bit-identical edges to the
// recomputed forward pass, for both edge formulas; a cache over its budget is not made. With the
// statistics on the host the cache holds the float64 activations rounded to f32: the edges then
// agree with the recomputed ones to f32 rounding (≤ 1e-5 of the largest edge), not bit for bit.

import { describe, expect, it } from 'vitest';
import { ActivationCache } from '../src/ib/activation-cache.js';
import { parseConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import { buildInteractionBasis } from '../src/ib/pipeline.js';
import { randomMlp } from '../src/ib/self-check.js';
import { useEngine } from './helpers/gpu.js';
import { genericData } from './helpers/ib.js';

const engine = useEngine();

describe('activation cache', () => {
  it('hands back exactly the rows stored, and is not made over its budget', async () => {
    const e = await engine();
    const dims = (a: number) => [5, 7, 3][a]!;
    expect(ActivationCache.plan(e, [0], dims, 0, 100)).toBeUndefined(); // the input is never cached
    expect(ActivationCache.plan(e, [1, 2], dims, 0, 100, 100 * (7 + 3) * 4 - 1)).toBeUndefined();
    const c = ActivationCache.plan(e, [1, 2, 1], dims, 10, 110, 100 * (7 + 3) * 4)!;
    expect(c.acts.sort()).toEqual([1, 2]);
    // Two "forward results" of 60 and 40 rows stored at their offsets.
    const host = [0, 1, 2].map((a) => Float32Array.from({ length: 100 * dims(a) }, (_, i) => a * 1000 + i));
    for (const [start, rows] of [
      [10, 60],
      [70, 40],
    ] as const) {
      const acts = host.map((h, a) => e.upload(h.subarray((start - 10) * dims(a), (start - 10 + rows) * dims(a))));
      c.store({ acts, gates: [], scratch: [] }, start, rows);
      e.release(...acts);
    }
    for (const a of [1, 2]) {
      await e.withScope(async (s) => {
        const b = c.load(s, a, 47, 31);
        expect(Array.from(await e.readF32(b, 31 * dims(a)))).toEqual(Array.from(host[a]!.subarray(37 * dims(a), 68 * dims(a))));
      });
    }
    expect(() => e.withScope((s) => c.load(s, 1, 100, 11))).toThrow(/outside \[10, 110\)/);
    c.dispose();
  });

  it.each([{ edge_formula: 'squared' }, { edge_formula: 'functional', integration_method: 'gauss-legendre', n_intervals: 2 }])(
    '$edge_formula edges are bit-identical with and without it',
    async (formula) => {
      const e = await engine();
      const model = randomMlp([9, 17, 13, 5], 7);
      const n = 613;
      const data = arraySource(genericData(n, 9, 8), n, 9);
      // The cache serves the GPU edge pass (the host pass runs its own float64 forward pass); the
      // GPU statistics pass fills it bit for bit.
      const config = parseConfig({
        node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'],
        batch_size: 200,
        stage_paths: { stats: 'gpu', edges: 'gpu' },
        ...formula,
      });
      const d0 = e.counters.dispatches;
      const cached = await buildInteractionBasis(e, model, data, config);
      const d1 = e.counters.dispatches;
      const fresh = await buildInteractionBasis(e, model, data, config, { activationCacheBytes: 0 });
      // The cached build skips the edge pass's forward dispatches (matmul + epilogue per layer and batch).
      expect(d1 - d0).toBeLessThan(e.counters.dispatches - d1);
      expect([...cached.edges.keys()]).toEqual(['layers.0->layers.1', 'layers.1->layers.2', 'layers.2->output']);
      for (const [k, v] of fresh.edges) expect(Array.from(cached.edges.get(k)!.data), k).toEqual(Array.from(v.data));
    },
  );

  it('is filled from the host statistics pass for a GPU edge pass (edges within f32 rounding of a recomputation)', async () => {
    const e = await engine();
    const model = randomMlp([9, 17, 13, 5], 7);
    const n = 613;
    const data = arraySource(genericData(n, 9, 8), n, 9);
    const config = parseConfig({ node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'], batch_size: 200, stage_paths: { stats: 'host', edges: 'gpu' } });
    const d0 = e.counters.dispatches;
    const cached = await buildInteractionBasis(e, model, data, config);
    const d1 = e.counters.dispatches;
    const fresh = await buildInteractionBasis(e, model, data, config, { activationCacheBytes: 0 });
    expect(d1 - d0).toBeLessThan(e.counters.dispatches - d1);
    for (const [k, v] of fresh.edges) {
      const c = cached.edges.get(k)!.data;
      let max = 0;
      let diff = 0;
      for (let i = 0; i < c.length; i++) {
        max = Math.max(max, Math.abs(v.data[i]!));
        diff = Math.max(diff, Math.abs(c[i]! - v.data[i]!));
      }
      expect(diff, k).toBeLessThanOrEqual(1e-5 * max);
    }
  });
});
