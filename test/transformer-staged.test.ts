// Staged, sharded and resumable transformer builds (src/transformer/staged.ts, staged-resume.ts)
// on the fixture transformers (test/fixtures/synthetic-transformer), against the one-process
// build of the same config:
// - one shard: bases (C, C⁺, Λ, M′) and edges bit for bit, on the float64 passes and on the GPU
//   passes (the same numbers reach the same code);
// - 2 and 3 shards (169 sequences: 84+85 and 56+56+57): the float64 sums regrouped, weights
//   n_s/N: kept dimensions equal, Λ (relative to Λ_0) and edges (relative to each pair's largest)
//   to 1e-12 on the float64 passes (measured 2e-14), to 1e-5 / 1e-4 on the GPU passes (measured
//   1.8e-6: the shards' f32 batches differ from the one-process build's);
// - edges split over output rows (rib's dist_split_over out_dim): the same bits on the float64
//   passes, to 1e-5 on the GPU passes (blocks of other widths; measured: the same bits on llvmpipe);
// - resume after an interrupted build reuses the completed stages and gives the same bits; a
//   truncated stage file is recomputed;
// - parts of another model, missing, duplicate or truncated shards, M′ parts of stale bases and
//   edges before the bases are complete are refused naming the problem.

import { readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBuildConfig } from '../src/build/load.js';
import type { IbResult } from '../src/ib/pipeline.js';
import { readPartial, type Partial, type Shard } from '../src/ib/staged.js';
import { parseSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { toFloat64 } from '../src/io/tensor.js';
import { loadTransformerBuild, runTransformerBuild } from '../src/transformer/build.js';
import { gpuPassesFactory } from '../src/transformer/gpu-passes.js';
import { resumeTransformer } from '../src/transformer/staged-resume.js';
import {
  combineTransformerEdges,
  combineTransformerMprime,
  combineTransformerStats,
  loadTransformerStage,
  runTransformerEdgesShard,
  runTransformerMprimeShard,
  runTransformerStatsShard,
  stagePartialName,
  transformerStageContext,
  type TransformerStageContext,
  STAGED_PATHS,
} from '../src/transformer/staged.js';
import { fixtureWorkspace, MODADD_TINY_BUILD } from './helpers/fixture-workspace.js';
import { useEngine } from './helpers/gpu.js';

const MODADD = {
  ...MODADD_TINY_BUILD,
  basis_formula: 'jacobian',
  truncation_threshold: 1e-10,
  threshold_mode: 'absolute',
  device: 'cpu',
};

describe('staged and sharded transformer builds', () => {
  const engine = useEngine();
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const workspace = (model = 'modadd-tiny'): Promise<string> => fixtureWorkspace(model, dirs, 'ibgpu-tstage-');

  async function setup(d: string, cfg: Record<string, unknown>, name = 'cfg'): Promise<{ c: TransformerStageContext; one: () => Promise<IbResult> }> {
    // The one-process build on the stage paths staged builds take (STAGED_PATHS).
    await writeFile(join(d, `${name}.json`), JSON.stringify({ ...cfg, stage_paths: STAGED_PATHS }));
    const { config, configPath, base } = await loadBuildConfig(join(d, `${name}.json`));
    const tf = await loadTransformerBuild(config, base);
    const gpu = config.device === 'cpu' ? undefined : gpuPassesFactory(await engine(), STAGED_PATHS);
    const c = transformerStageContext(config, configPath, tf, gpu, gpu ? 'gpu' : 'cpu');
    return { c, one: async () => (await runTransformerBuild(config, tf, { base, ...(gpu ? { gpu } : {}) })).result };
  }

  /** Every stage on n shards, each combined in its own directory order; returns the combined result. */
  async function staged(c: TransformerStageContext, d: string, n: number): Promise<{ res: IbResult; stage: string; parts: string }> {
    const parts = join(d, `parts-${n}`);
    const stage = join(d, `stage-${n}`);
    const shards: Shard[] = Array.from({ length: n }, (_, index) => ({ index, count: n }));
    const { mkdir } = await import('node:fs/promises');
    await mkdir(parts, { recursive: true });
    await mkdir(stage, { recursive: true });
    const read = (paths: string[]) => Promise.all(paths.map((p) => readPartial(p)));
    // Shards written in reverse: combine orders them by rows.
    for (const s of [...shards].reverse()) await runTransformerStatsShard(c, s, join(parts, stagePartialName('stats', s)));
    let st = await combineTransformerStats(await read(shards.map((s) => join(parts, stagePartialName('stats', s)))), stage);
    while (st.layout.next !== null) {
      const paths: string[] = [];
      for (const s of shards) paths.push(await runTransformerMprimeShard(c, st, s, parts));
      st = (await combineTransformerMprime(await read(paths), st, stage)).state;
    }
    for (const s of shards) await runTransformerEdgesShard(c, st, s, join(parts, stagePartialName('edges', s)));
    const res = combineTransformerEdges(await read(shards.map((s) => join(parts, stagePartialName('edges', s)))), st);
    return { res, stage, parts };
  }

  /** The edges split over output rows (rib's dist_split_over out_dim) on n shards, from the stage directory `stage`. */
  async function outSplit(c: TransformerStageContext, stage: string, parts: string, n: number): Promise<IbResult> {
    const st = await loadTransformerStage(stage);
    const paths: string[] = [];
    for (let index = n - 1; index >= 0; index--) {
      const path = join(parts, stagePartialName('edges', { index, count: n }, undefined, 'out'));
      await runTransformerEdgesShard(c, st, { index, count: n }, path, 'out');
      paths.push(path);
    }
    return combineTransformerEdges(await Promise.all(paths.map((p) => readPartial(p))), st);
  }

  function expectBitIdentical(a: IbResult, b: IbResult): void {
    expect([...b.bases.keys()]).toEqual([...a.bases.keys()]);
    for (const [name, x] of a.bases) {
      const y = b.bases.get(name)!;
      expect(y.r, `${name} kept`).toBe(x.r);
      for (const f of ['mean', 'gramEigenvalues', 'C', 'Cpinv', 'Lambda', 'Mprime'] as const) expect(y[f], `${name} ${f}`).toEqual(x[f]);
    }
    expect([...b.edges.keys()]).toEqual([...a.edges.keys()]);
    for (const [k, e] of a.edges) expect(b.edges.get(k)!.data, k).toEqual(e.data);
  }

  function expectClose(a: IbResult, b: IbResult, tolLambda: number, tolEdges: number): number {
    let worst = 0;
    for (const [name, x] of a.bases) {
      const y = b.bases.get(name)!;
      expect(y.r, `${name} kept`).toBe(x.r);
      if (x.Lambda) {
        for (let i = 0; i < x.r; i++) {
          const rel = Math.abs(y.Lambda![i]! - x.Lambda[i]!) / Math.abs(x.Lambda[0]!);
          worst = Math.max(worst, rel);
          expect(rel, `${name} Λ_${i}`).toBeLessThan(tolLambda);
        }
      }
    }
    for (const [k, e] of a.edges) {
      const f = b.edges.get(k)!.data;
      const scale = Math.max(...e.data.map(Math.abs));
      const err = Math.max(...e.data.map((v, i) => Math.abs(v - f[i]!))) / scale;
      worst = Math.max(worst, err);
      expect(err, `edges ${k}`).toBeLessThan(tolEdges);
    }
    return worst;
  }

  it('float64 passes: 1 shard = the one-process build bit for bit; 2 and 3 (uneven) shards to float64 rounding', async () => {
    const d = await workspace();
    const { c, one } = await setup(d, MODADD);
    const ref = await one();
    const single = await staged(c, d, 1);
    expectBitIdentical(ref, single.res);
    // Output rows split over 3 shards (unembed → output has 15 rows: 5 each; ln1.0 → ln2.0 fewer): each row is the same sum.
    expectBitIdentical(ref, await outSplit(c, single.stage, single.parts, 3));
    for (const n of [2, 3]) {
      const worst = expectClose(ref, (await staged(c, d, n)).res, 1e-12, 1e-12);
      expect(worst, `${n} shards`).toBeLessThan(1e-12); // measured 2.0e-14 (2), 2.3e-14 (3)
    }
  }, 60_000);

  it('GPU passes: 1 shard = the one-process GPU build bit for bit; 2 shards within the GPU build tolerance', async () => {
    const d = await workspace();
    const { c, one } = await setup(d, { ...MODADD, device: 'gpu', truncation_threshold: 1e-6, threshold_mode: 'relative' });
    const ref = await one();
    const single = await staged(c, d, 1);
    expectBitIdentical(ref, single.res);
    // Output blocks of other widths may tile the f32 kernels differently (on llvmpipe: the same bits).
    expectClose(ref, await outSplit(c, single.stage, single.parts, 2), 1e-12, 1e-5);
    // Shards of the GPU passes run other f32 batches: differences at the f32 noise of the build.
    expectClose(ref, (await staged(c, d, 2)).res, 1e-5, 1e-4); // measured 1.8e-6
  }, 60_000);

  it('GPT-style model (attention over 6 positions, two blocks), GPU passes: 1 shard bit for bit, 3 shards close', async () => {
    const d = await workspace('gpt-tiny');
    const cfg = {
      ...MODADD,
      device: 'gpu',
      node_layers: ['ln1.0', 'ln2.0', 'ln1.1', 'unembed', 'output'],
      last_pos_module_type: null,
      data: { type: 'npy', path: 'inputs.npy', count: 12 },
      truncation_threshold: 1e-6,
      threshold_mode: 'relative',
    };
    const { c, one } = await setup(d, cfg);
    const ref = await one();
    expectBitIdentical(ref, (await staged(c, d, 1)).res);
    expectClose(ref, (await staged(c, d, 3)).res, 1e-4, 1e-3);
  }, 60_000);

  it('basis_formula pca: every basis at the stats combine, no M′ round', async () => {
    const d = await workspace();
    const { c, one } = await setup(d, { ...MODADD, basis_formula: 'pca' });
    const ref = await one();
    const { res, stage } = await staged(c, d, 2);
    expect((await loadTransformerStage(stage)).layout.rounds).toEqual({ stats: '2 shard(s)' });
    expectClose(ref, res, 1e-12, 1e-12);
  });

  it('naive gradient flow and a separate statistics dataset (gram_dataset): 1 shard bit for bit, 2 shards close', async () => {
    const d = await workspace();
    for (const [name, extra] of [
      ['ngf', { naive_gradient_flow: true }],
      ['gram', { gram_dataset: { type: 'npy', path: 'inputs.npy', count: 100 } }],
    ] as const) {
      const { c, one } = await setup(d, { ...MODADD, ...extra }, name);
      const ref = await one();
      const single = await staged(c, join(d, name), 1);
      expectBitIdentical(ref, single.res);
      const stage = await loadTransformerStage(single.stage);
      expect([stage.layout.stats_data.n, stage.layout.dataset.n]).toEqual(name === 'gram' ? [100, 169] : [169, 169]);
      // Two shards sum the statistics in another order: float64 rounding, which the eigensolves and
      // the NGF composition carry into the edges at ~1e-12 of the largest.
      expectClose(ref, (await staged(c, join(d, name), 2)).res, 1e-12, 1e-11);
    }
  }, 60_000);

  it('resume: an interrupted build restarts after its last complete stage and gives the same bits', async () => {
    const d = await workspace();
    const { c, one } = await setup(d, MODADD);
    const ref = await one();
    const work = join(d, 'res.stages');
    const out = join(d, 'res');
    await expect(
      resumeTransformer(c, work, out, {
        afterStage: (s) => {
          if (s === 'mprime ln2.0') throw new Error('interrupted');
        },
      }),
    ).rejects.toThrow('interrupted');
    expect((await readdir(d)).includes('res')).toBe(false); // no result that looks complete
    const logs: string[] = [];
    const r = await resumeTransformer(c, work, out, { log: (m) => logs.push(m) });
    expect(r.reused).toEqual(['stats']);
    expect(logs.join('\n')).toMatch(/bases of ln2\.0, unembed/); // the M′ rounds done before are not rerun
    expectBitIdentical(ref, r.result);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest['model']).toBe('transformer');
    expect((manifest['staged'] as { reused: string[] }).reused).toEqual(['stats']);
    // A truncated edge partial is rejected and recomputed; everything else is reused.
    await truncate(join(work, stagePartialName('edges', { index: 0, count: 1 })), 100);
    const again = await resumeTransformer(c, work, join(d, 'res2'), { log: (m) => logs.push(m) });
    expect(again.reused).toEqual(['stats']);
    expect(logs.at(-1) ?? '').not.toMatch(/edges found/);
    expectBitIdentical(ref, again.result);
    const third = await resumeTransformer(c, work, join(d, 'res3'));
    expect(third.reused).toEqual(['stats', 'edges']);
  }, 60_000);

  it('refuses parts of another model, missing, duplicate and truncated shards, stale M′ parts, edges before the bases', async () => {
    const d = await workspace();
    const { c } = await setup(d, MODADD);
    const parts = join(d, 'parts');
    const stage = join(d, 'stage');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(parts);
    await mkdir(stage);
    const s = (index: number, count = 2): Shard => ({ index, count });
    const p = (f: string): Promise<Partial> => readPartial(join(parts, f));
    for (const i of [0, 1]) await runTransformerStatsShard(c, s(i), join(parts, stagePartialName('stats', s(i))));
    await runTransformerStatsShard(c, s(1, 3), join(parts, stagePartialName('stats', s(1, 3))));
    // Another model: one weight changed.
    const w = parseSafetensors(new Uint8Array(await readFile(join(d, 'weights_f64.safetensors'))));
    const t = await w.readAll();
    const bU = toFloat64(t['unembed.b_U']!);
    bU[0] = bU[0]! + 1e-3;
    await writeSafetensors(join(d, 'other.safetensors'), { ...t, 'unembed.b_U': { ...t['unembed.b_U']!, data: bU } });
    const other = (await setup(d, { ...MODADD, model: 'other.safetensors' }, 'other')).c;
    expect(other.hash).not.toBe(c.hash);
    await runTransformerStatsShard(other, s(1), join(parts, 'other-stats.safetensors'));
    const a = await p(stagePartialName('stats', s(0)));
    const b = await p(stagePartialName('stats', s(1)));
    await expect(combineTransformerStats([a, await p('other-stats.safetensors')], stage)).rejects.toThrow(/another config or model/);
    const { checkPartials } = await import('../src/ib/staged.js');
    expect(() => checkPartials([a], 'stats')).toThrow(/rows \[84, 169\) of 169 are in no partial/);
    expect(() => checkPartials([a, b, b], 'stats')).toThrow(/overlaps a shard before it/);
    expect(() => checkPartials([a, b, b], 'stats')).toThrow(/pass each shard once/);
    await expect(p(stagePartialName('stats', s(1, 3))).then((x) => checkPartials([a, x, b], 'stats'))).rejects.toThrow(/overlaps/);
    await truncate(join(parts, stagePartialName('stats', s(1))), 200);
    await expect(p(stagePartialName('stats', s(1)))).rejects.toThrow(/stats-00001-of-00002\.safetensors/);
    await runTransformerStatsShard(c, s(1), join(parts, stagePartialName('stats', s(1))));
    // M′ parts must come from the bases now in the stage directory, and in order.
    let st = await combineTransformerStats([a, await p(stagePartialName('stats', s(1)))], stage);
    await expect(runTransformerEdgesShard(c, st, s(0), join(parts, 'e.safetensors'))).rejects.toThrow(/not complete: M′ of unembed is next/);
    const m0 = await readPartial(await runTransformerMprimeShard(c, st, s(0), parts));
    const m1 = await readPartial(await runTransformerMprimeShard(c, st, s(1), parts));
    await expect(combineTransformerMprime([m0], st, stage)).rejects.toThrow(/a shard is missing/);
    st = (await combineTransformerMprime([m0, m1], st, stage)).state;
    await expect(combineTransformerMprime([m0, m1], st, stage)).rejects.toThrow(/holds M′ of unembed, whose basis .* has already \(M′ of ln2\.0 is next\)/);
    // M′ of ln2.0 from other bases than the stage directory's (another stats combine's, say): refused by their checksum.
    const fresh = await readPartial(await runTransformerMprimeShard(c, st, s(0), parts));
    const other1 = await readPartial(await runTransformerMprimeShard(c, st, s(1), parts));
    const stale = { ...other1, meta: { ...other1.meta, layout: other1.meta.layout.replace(st.basesChecksum, 'sha256:0') } };
    await expect(combineTransformerMprime([fresh, stale], st, stage)).rejects.toThrow(
      /mprime-ln2\.0-00001-of-00002\.safetensors was computed from other bases than those now in/,
    );
    // The stage directory refuses another config's shards.
    await expect(runTransformerMprimeShard(other, await loadTransformerStage(stage), s(0), parts)).rejects.toThrow(/another config, model or data/);
    await expect(loadTransformerStage(stage, other.hash)).rejects.toThrow(/another config, model or data/);
  }, 60_000);
});
