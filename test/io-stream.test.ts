// Streamed data sources (no GPU): safetensors row reads, .npy sources, data indices over shard
// files, weight_map model indices, shard ranges and shard resolution from the environment.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDataSource, openWeights } from '../src/ib/data-files.js';
import { resolveShard, shardRange } from '../src/ib/staged.js';
import { planMlp } from '../src/ib/plan.js';
import { parseConfig } from '../src/ib/config.js';
import { openSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { writeNpy } from '../src/io/npy.js';
import { IbgpuError } from '../src/errors.js';
import { randomF32 } from './helpers/random.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ibgpu-stream-'));
  dirs.push(d);
  return d;
}

describe('streamed data sources', () => {
  it('safetensors readRows reads exactly the requested rows, in any dtype', async () => {
    const d = await tmp();
    const x = randomF32(37 * 5, 1);
    const x64 = Float64Array.from(x, (v) => v * 3);
    await writeSafetensors(join(d, 'a.safetensors'), {
      X: { dtype: 'F32', shape: [37, 5], data: x },
      Y: { dtype: 'F64', shape: [37, 5], data: x64 },
    });
    const f = await openSafetensors(join(d, 'a.safetensors'));
    try {
      for (const [s, c] of [
        [0, 37],
        [3, 1],
        [36, 1],
        [10, 0],
        [5, 17],
      ] as const) {
        const r = await f.readRows('X', s, c);
        expect(r.shape).toEqual([c, 5]);
        expect(Array.from(r.data as Float32Array)).toEqual(Array.from(x.subarray(s * 5, (s + c) * 5)));
        const r64 = await f.readRows('Y', s, c);
        expect(Array.from(r64.data as Float64Array)).toEqual(Array.from(x64.subarray(s * 5, (s + c) * 5)));
      }
      await expect(f.readRows('X', 30, 8)).rejects.toThrow(/outside its 37 rows/);
    } finally {
      await f.close();
    }
  });

  it('a data index stitches .npy and safetensors shards; reads across shard boundaries equal the concatenation', async () => {
    const d = await tmp();
    const n = 53;
    const dim = 7;
    const x = randomF32(n * dim, 2);
    await writeNpy(join(d, 'p0.npy'), { dtype: 'F32', shape: [20, dim], data: x.slice(0, 20 * dim) });
    await writeSafetensors(join(d, 'p1.safetensors'), { data: { dtype: 'F32', shape: [25, dim], data: x.slice(20 * dim, 45 * dim) } });
    await writeNpy(join(d, 'p2.npy'), { dtype: 'F64', shape: [8, dim], data: Float64Array.from(x.slice(45 * dim)) });
    await writeFile(
      join(d, 'idx.json'),
      JSON.stringify({
        format: 'ibgpu-data-index',
        features: dim,
        shards: [
          { path: 'p0.npy', rows: 20 },
          { path: 'p1.safetensors', key: 'data', rows: 25 },
          { path: 'p2.npy', rows: 8 },
        ],
      }),
    );
    const src = await openDataSource({ type: 'index', path: 'idx.json' }, d);
    try {
      expect(src.n).toBe(n);
      expect(src.d).toBe(dim);
      for (const [s, c] of [
        [0, 53],
        [0, 20],
        [19, 2],
        [18, 30],
        [44, 9],
        [52, 1],
        [7, 13],
      ] as const) {
        const r = await src.readRows(s, c);
        expect(Array.from(r)).toEqual(Array.from(x.subarray(s * dim, (s + c) * dim)));
      }
    } finally {
      await src.close();
    }
    // A row count that disagrees with the shard (a shard replaced or cut) is refused.
    await writeFile(join(d, 'bad.json'), JSON.stringify({ format: 'ibgpu-data-index', shards: [{ path: 'p0.npy', rows: 21 }] }));
    await expect(openDataSource({ type: 'index', path: 'bad.json' }, d)).rejects.toThrow(/p0.npy has 20 rows, the index says 21/);
    await writeFile(join(d, 'bad2.json'), JSON.stringify({ shards: [] }));
    await expect(openDataSource({ type: 'index', path: 'bad2.json' }, d)).rejects.toThrow(IbgpuError);
  });

  it('.npy sources stream rows and reject non-finite values by row', async () => {
    const d = await tmp();
    const x = randomF32(40 * 3, 3);
    x[3 * 31 + 1] = NaN;
    await writeNpy(join(d, 'x.npy'), { dtype: 'F32', shape: [40, 3], data: x });
    const src = await openDataSource({ type: 'npy', path: 'x.npy', count: 35 }, d);
    try {
      expect(src.n).toBe(35);
      expect(Array.from(await src.readRows(2, 5))).toEqual(Array.from(x.subarray(6, 21)));
      await expect(src.readRows(30, 5)).rejects.toThrow(/row 31 holds NaN/);
      await expect(src.readRows(34, 2)).rejects.toThrow(/outside the 35 datapoints/);
    } finally {
      await src.close();
    }
  });

  it('weights from a model.safetensors.index.json weight_map equal the single file', async () => {
    const d = await tmp();
    const a = randomF32(12, 4);
    const b = randomF32(3, 5);
    await writeSafetensors(join(d, 'model-00001-of-00002.safetensors'), { 'l.W': { dtype: 'F32', shape: [4, 3], data: a } });
    await writeSafetensors(join(d, 'model-00002-of-00002.safetensors'), { 'l.b': { dtype: 'F32', shape: [3], data: b } });
    await writeFile(
      join(d, 'model.safetensors.index.json'),
      JSON.stringify({
        metadata: { total_size: 60 },
        weight_map: { 'l.W': 'model-00001-of-00002.safetensors', 'l.b': 'model-00002-of-00002.safetensors' },
      }),
    );
    const w = await openWeights(join(d, 'model.safetensors.index.json'));
    try {
      expect(Array.from((await w.get('l.W')).data)).toEqual(Array.from(a));
      expect((await w.get('l.W')).shape).toEqual([4, 3]);
      expect(Array.from((await w.get('l.b')).data)).toEqual(Array.from(b));
      await expect(w.get('l.c')).rejects.toThrow(/weight_map has no tensor 'l.c'/);
    } finally {
      await w.close();
    }
  });
});

describe('shards', () => {
  it('shard ranges are whole batches that tile the dataset', () => {
    for (const [n, b, k] of [
      [2048, 256, 3],
      [1000, 64, 7],
      [5, 10, 3],
      [1, 1, 1],
      [10007, 128, 16],
    ] as const) {
      let pos = 0;
      for (let i = 0; i < k; i++) {
        const r = shardRange(n, b, { index: i, count: k });
        expect(r.start).toBe(pos);
        expect(r.start % b).toBe(0);
        expect(r.end === n || r.end % b === 0).toBe(true);
        pos = r.end;
      }
      expect(pos).toBe(n);
    }
  });

  it('the shard comes from --shard, or --shards plus the scheduler index', () => {
    expect(resolveShard('2/5', undefined, {})).toEqual({ index: 2, count: 5 });
    expect(resolveShard(undefined, undefined, {})).toEqual({ index: 0, count: 1 });
    expect(resolveShard(undefined, '4', { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(resolveShard(undefined, '8', { SLURM_ARRAY_TASK_ID: '7' })).toEqual({ index: 7, count: 8 });
    expect(resolveShard(undefined, undefined, { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2' })).toEqual({ index: 1, count: 2 });
    expect(resolveShard(undefined, '3', { PMI_RANK: '0' })).toEqual({ index: 0, count: 3 });
    expect(() => resolveShard('5/5', undefined, {})).toThrow(/out of range/);
    expect(() => resolveShard('1-3', undefined, {})).toThrow(/i\/n/);
    expect(() => resolveShard(undefined, '4', {})).toThrow(/no shard index/);
    expect(() => resolveShard('1/4', '3', {})).toThrow(/disagree/);
  });

  it('the plan counts passes and sizes buffers from the widths', () => {
    const layer = (name: string, dIn: number, dOut: number) => ({
      name,
      dIn,
      dOut,
      W: new Float32Array(dIn * dOut),
      b: new Float32Array(dOut),
      activation: 'relu' as const,
    });
    const model = { layers: [layer('layers.0', 1024, 1024), layer('layers.1', 1024, 10)] };
    const cfg = parseConfig({ node_layers: ['layers.0', 'layers.1', 'output'], batch_size: 4096 });
    const p = planMlp(model, cfg, { n: 1_000_000, d: 1024 });
    expect(p.batches).toBe(245);
    expect(p.passes).toEqual([
      { stage: 'stats', passes: 1 },
      { stage: 'edges', passes: 1 },
    ]);
    const gram = p.items.find((i) => i.what.startsWith('Gram partial layers.1'))!;
    expect(gram.bytes).toBe(1024 * 1024 * 4);
    expect(p.items.find((i) => i.what.startsWith('input batch'))!.bytes).toBe(4096 * 1024 * 4);
    const shard = planMlp(model, cfg, { n: 1_000_000, d: 1024 }, shardRange(1_000_000, 4096, { index: 3, count: 4 }));
    expect(shard.batches).toBe(62);
    // Too many rows for the edge pass's activation cache: none planned.
    expect(p.items.some((i) => i.what.startsWith('activation cache'))).toBe(false);
    // ReLU sections plan the carried-Jacobian kernel's host lists.
    expect(p.items.find((i) => i.what.includes('layers.0->layers.1: gates read back'))!.bytes).toBe(4096 * 1025 * 12);
    // One entry per section of the compiled program, from the MLP layer cost model; its buffers
    // are the plan's gate, basis and edge items.
    expect(p.sections.map((s) => [s.name, s.path])).toEqual([
      ['layers.0 -> layers.1', 'gate-Gram M′ (co-firing counts), carried-Jacobian squared edges'],
      ['layers.1 -> output', 'gate-Gram M′ (co-firing counts), carried-Jacobian squared edges'],
    ]);
    const own = p.sections.flatMap((s) => s.items);
    for (const st of ['stats', 'bases', 'edges'])
      expect(p.items.filter((i) => i.stage === st && (st !== 'stats' || i.what.includes('gate')))).toEqual(own.filter((i) => i.stage === st));
    const svd = planMlp(model, parseConfig({ node_layers: ['layers.0', 'layers.1', 'output'], basis_formula: 'svd', calculate_edges: false }), {
      n: 100,
      d: 1024,
    });
    expect(svd.sections.map((s) => s.path)).toEqual(['svd basis', 'svd basis']);
    expect(svd.sections[1]!.items).toEqual([{ stage: 'bases', where: 'host', what: 'basis layers.1 (≈8 matrices 1025×1025 f64)', bytes: 8 * 1025 * 1025 * 8 }]);
  });

  it('plans the activation cache for whole builds that fit it, never for shards', () => {
    const layer = (name: string, dIn: number, dOut: number, activation: 'relu' | 'identity') => ({
      name,
      dIn,
      dOut,
      W: new Float32Array(dIn * dOut),
      b: new Float32Array(dOut),
      activation,
    });
    const model = { layers: [layer('layers.0', 784, 100, 'relu'), layer('layers.1', 100, 100, 'relu'), layer('layers.2', 100, 10, 'identity')] };
    const cfg = parseConfig({ node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'], batch_size: 2048 });
    const whole = planMlp(model, cfg, { n: 10_000, d: 784 });
    const cache = whole.items.find((i) => i.what.startsWith('activation cache'))!;
    expect(cache.bytes).toBe(10_000 * (100 + 100) * 4);
    expect(whole.peak['edges']!.gpu).toBeGreaterThan(cache.bytes);
    const shard = planMlp(model, cfg, { n: 10_000, d: 784 }, shardRange(10_000, 2048, { index: 0, count: 2 }));
    expect(shard.items.some((i) => i.what.startsWith('activation cache'))).toBe(false);
  });
});
