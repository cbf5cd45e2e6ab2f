// Sharded and resumable builds, process by process: stats shards -> combine -> edge shards ->
// combine, each an `ibgpu` process of its own, equal the single-process build; corrupted or
// missing partials are refused; an interrupted `--resume` build restarts from its last stage.
//
// Tolerance: shards are whole batches and share the Gram shift (the dataset's first batch mean),
// so every per-batch f32 GPU partial is the one the single-process build computes; only the
// float64 host sums are re-associated at shard boundaries. We require max|a − b| ≤ 1e-12·max|a|
// per tensor (basis matrices, eigenvalues, edges). On this fixture the sums of f32 partials are
// exact in float64 and the results come out bit-identical, but that is not guaranteed in general.
// The host statistics path sums float64 values, whose re-association at shard boundaries costs
// ~1e-16 relative in the statistics; through the eigensolves that is ≤ 1e-10 relative in the
// bases (measured 1.2e-12 in C): its shard test holds the bases to 1e-10.

import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { loadSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { writeNpy } from '../src/io/npy.js';
import { toFloat64 } from '../src/io/tensor.js';
import { loadData, loadModel } from '../src/build/load.js';
import { parseConfig } from '../src/ib/config.js';
import { buildInteractionBasis, type IbResult } from '../src/ib/pipeline.js';
import {
  checkPartials,
  combineEdges,
  combineStats,
  configHash,
  loadStage,
  readPartial,
  runEdgesShard,
  runStatsShard,
  type StageContext,
} from '../src/ib/staged.js';
import { useEngine } from './helpers/gpu.js';
import { columnErrUpToSign, maxAbs, transpose } from './helpers/ib.js';

/** max |a − b| / max |b|. */
function relDiff(a: Float64Array, b: Float64Array): number {
  let mx = 0;
  let diff = 0;
  for (let i = 0; i < b.length; i++) {
    mx = Math.max(mx, Math.abs(b[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return mx > 0 ? diff / mx : diff;
}

const ROOT = resolve(import.meta.dirname, '..');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'synthetic-mlp');

/** Runs `ibgpu ...args` from the sources in a separate Node process. */
function ibgpu(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const script = "import { runCli } from './src/cli/main.ts'; process.exitCode = await runCli(['node', 'ibgpu', ...process.argv.slice(1)]);";
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (c) => {
      out += c;
    });
    p.stderr.on('data', (c) => {
      err += c;
    });
    p.on('error', rej);
    p.on('close', (code) => res({ code: code ?? -1, out, err }));
  });
}

async function ok(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await ibgpu(args, env);
  if (r.code !== 0) throw new Error(`ibgpu ${args.join(' ')} exited ${r.code}:\n${r.err}`);
  return r.err;
}

async function expectSame(refDir: string, dir: string): Promise<number> {
  let worst = 0;
  for (const f of ['basis.safetensors', 'edges.safetensors']) {
    const a = (await loadSafetensors(join(refDir, f))).tensors;
    const b = (await loadSafetensors(join(dir, f))).tensors;
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    for (const k of Object.keys(a)) {
      expect(b[k]!.shape, `${f}:${k}`).toEqual(a[k]!.shape); // same kept dimensions
      const rel = relDiff(toFloat64(b[k]!), toFloat64(a[k]!));
      expect(rel, `${f}:${k}`).toBeLessThanOrEqual(1e-12);
      worst = Math.max(worst, rel);
    }
  }
  return worst;
}

/** The statistics pass as `count` dataset shards written in `dir`, combined there (a stage). */
async function statsInShards(ctx: StageContext, dir: string, count: number): ReturnType<typeof combineStats> {
  await mkdir(dir, { recursive: true });
  const paths = Array.from({ length: count }, (_, i) => join(dir, `stats-${i}.safetensors`));
  for (let i = 0; i < count; i++) await runStatsShard(ctx, { index: i, count }, paths[i]!);
  return combineStats(ctx.model, checkPartials(await Promise.all(paths.map((p) => readPartial(p, 'stats'))), 'stats'), dir);
}

describe('sharded builds across processes', () => {
  const engine = useEngine();
  let d = '';
  let cfg = '';
  let ref = '';

  /**
   * The fixture's build config with `overrides`, its model and data loaded in this process, and
   * the single-process build that shards of it must reproduce, for `check`; the data source is
   * closed afterwards.
   */
  async function inProcess(overrides: Record<string, unknown>, check: (ctx: StageContext, want: IbResult) => Promise<void>): Promise<void> {
    const config = parseConfig({ ...JSON.parse(await readFile(cfg, 'utf8')), ...overrides });
    const model = await loadModel(config, d);
    const data = await loadData(config, d);
    const e = await engine();
    try {
      const want = await buildInteractionBasis(e, model, data, config);
      await check({ engine: e, model, data, config, configPath: cfg, hash: configHash(config, model) }, want);
    } finally {
      await data.close?.();
    }
  }
  beforeAll(async () => {
    d = await mkdtemp(join(tmpdir(), 'ibgpu-scale-'));
    await copyFile(join(FIXTURE, 'weights.safetensors'), join(d, 'weights.safetensors'));
    // The fixture's 2048 inputs as a data index over a .npy and a safetensors shard whose
    // boundary (row 700) falls inside a batch: reads are stitched from both files.
    const X = (await loadSafetensors(join(FIXTURE, 'inputs.safetensors'))).tensors['X']!;
    const x = X.data as Float32Array;
    const n = X.shape[0]!;
    const f = X.shape[1]!;
    await writeNpy(join(d, 'part-0.npy'), { dtype: 'F32', shape: [700, f], data: x.slice(0, 700 * f) });
    await writeSafetensors(join(d, 'part-1.safetensors'), { X: { dtype: 'F32', shape: [n - 700, f], data: x.slice(700 * f) } });
    await writeFile(
      join(d, 'data.index.json'),
      JSON.stringify({
        format: 'ibgpu-data-index',
        features: f,
        shards: [
          { path: 'part-0.npy', rows: 700 },
          { path: 'part-1.safetensors', rows: n - 700 },
        ],
      }),
    );
    await copyFile(join(FIXTURE, 'arch.json'), join(d, 'arch.json'));
    cfg = join(d, 'build.json');
    await writeFile(
      cfg,
      JSON.stringify({
        node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'],
        model: 'weights.safetensors',
        arch: 'arch.json',
        data: { type: 'index', path: 'data.index.json' },
        batch_size: 256,
        // The GPU statistics path, whose f32 batch partials make the tolerance above hold exactly
        // (the host path's float64 partials are checked below, with a tolerance of their own).
        stage_paths: { stats: 'gpu' },
      }),
    );
    ref = join(d, 'ref');
    const r = await buildFromConfigFile(await engine(), cfg, { out: ref });
    expect(r.result.n).toBe(2048);
    expect(r.result.bases.get('layers.0')!.r).toBe(15); // the fixture's kept dimensions
  }, 60_000);
  afterAll(async () => {
    if (d) await rm(d, { recursive: true, force: true });
  });

  it('stats shards -> combine -> edge shards -> combine equals the single-process build', async () => {
    const parts = join(d, 'parts');
    const stage = join(d, 'stage');
    const res = join(d, 'res');
    // Three stats shards in parallel; one takes its index from a Kubernetes indexed Job's variable.
    await Promise.all([
      ok(['build', cfg, '--stage', 'stats', '--shard', '0/3', '-o', parts, '--quiet']),
      ok(['build', cfg, '--stage', 'stats', '--shards', '3', '-o', parts, '--quiet'], { JOB_COMPLETION_INDEX: '1' }),
    ]);
    await ok(['build', cfg, '--stage', 'stats', '--shard', '2/3', '-o', parts, '--quiet']);
    const statsParts = [2, 0, 1].map((i) => join(parts, `stats-0000${i}-of-00003.safetensors`)); // any order: combine sorts by rows
    await ok(['combine', ...statsParts, '-o', stage]);
    expect(existsSync(join(stage, 'bases.state.safetensors'))).toBe(true);
    await Promise.all([
      ok(['build', cfg, '--stage', 'edges', '--bases', stage, '--shard', '0/2', '-o', parts, '--quiet']),
      ok(['build', cfg, '--stage', 'edges', '--bases', stage, '--shards', '2', '-o', parts, '--quiet'], { SLURM_ARRAY_TASK_ID: '1' }),
    ]);
    const edgeParts = [0, 1].map((i) => join(parts, `edges-0000${i}-of-00002.safetensors`));
    await ok(['combine', ...edgeParts, '--bases', stage, '-o', res]);
    const worst = await expectSame(ref, res);
    expect(worst).toBeLessThanOrEqual(1e-12);
    const m = JSON.parse(await readFile(join(res, 'manifest.json'), 'utf8'));
    const mref = JSON.parse(await readFile(join(ref, 'manifest.json'), 'utf8'));
    expect(m.dataset_size).toBe(2048);
    for (const l of Object.keys(mref.layers)) expect(m.layers[l].rib_dim).toBe(mref.layers[l].rib_dim);

    // Edges split over the output rows of every pair (SPEC §5.5): combine concatenates the blocks.
    const outRes = join(d, 'res-out');
    await Promise.all(
      [0, 1].map((i) => ok(['build', cfg, '--stage', 'edges', '--split', 'out', '--bases', stage, '--shard', `${i}/2`, '-o', parts, '--quiet'])),
    );
    const outParts = [0, 1].map((i) => join(parts, `edges-out-0000${i}-of-00002.safetensors`));
    await ok(['combine', ...outParts, '--bases', stage, '-o', outRes]);
    await expectSame(ref, outRes);
    const missing = await ibgpu(['combine', outParts[1]!, '--bases', stage, '-o', join(d, 'bad')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/output rows \[0, \d+\) of layers\.\d->\S+ are in no partial/);

    // A rerun of a finished shard verifies its file and does nothing.
    const again = await ok(['build', cfg, '--stage', 'stats', '--shard', '1/3', '-o', parts]);
    expect(again).toMatch(/complete and verified, nothing to do/);

    // Corrupted, truncated, missing and duplicated partials are refused; nothing is written.
    const bad = join(d, 'bad');
    const bytes = await readFile(edgeParts[1]!);
    const flipped = Uint8Array.from(bytes);
    flipped[flipped.length - 3]! ^= 0x10;
    await writeFile(join(d, 'flipped.safetensors'), flipped);
    await writeFile(join(d, 'cut.safetensors'), bytes.subarray(0, bytes.length - 100));
    const r1 = await ibgpu(['combine', edgeParts[0]!, join(d, 'flipped.safetensors'), '--bases', stage, '-o', bad]);
    expect(r1.code).toBe(2);
    expect(r1.err).toMatch(/checksum mismatch.*corrupted/);
    const r2 = await ibgpu(['combine', edgeParts[0]!, join(d, 'cut.safetensors'), '--bases', stage, '-o', bad]);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/truncated/);
    const r3 = await ibgpu(['combine', statsParts[0]!, statsParts[1]!, '-o', bad]);
    expect(r3.code).toBe(2);
    expect(r3.err).toMatch(/rows \[\d+, \d+\) of 2048 are in no partial/);
    const r4 = await ibgpu(['combine', ...edgeParts, edgeParts[1]!, '--bases', stage, '-o', bad]);
    expect(r4.code).toBe(2);
    expect(r4.err).toMatch(/overlaps/);
    expect(existsSync(bad)).toBe(false);
  }, 120_000);

  it('functional edges shard over the data and over output rows like squared edges (in process)', async () => {
    await inProcess({ edge_formula: 'functional', integration_method: 'gauss-legendre', n_intervals: 3 }, async (ctx, want) => {
      const dir = join(d, 'functional');
      await statsInShards(ctx, dir, 3);
      const stage = await loadStage(dir, ctx.hash);
      for (const split of ['data', 'out'] as const) {
        const paths = [0, 1].map((i) => join(dir, `edges-${split}-${i}.safetensors`));
        for (let i = 0; i < 2; i++) await runEdgesShard(ctx, stage.bases, { index: i, count: 2 }, paths[i]!, split);
        const got = combineEdges(await Promise.all(paths.map((p) => readPartial(p, 'edges'))), stage);
        expect([...got.edges.keys()].sort()).toEqual([...want.edges.keys()].sort());
        for (const [k, w] of want.edges) {
          const g = got.edges.get(k)!;
          expect([g.rows, g.cols], `${split} ${k}`).toEqual([w.rows, w.cols]);
          expect(maxAbs(w.data), `${split} ${k}`).toBeGreaterThan(0);
          expect(relDiff(g.data, w.data), `${split} ${k}`).toBeLessThanOrEqual(1e-12);
        }
      }
    });
  }, 120_000);

  it('squared edges shard like the whole build on either edge path, from one stage (in process)', async () => {
    const raw = JSON.parse(await readFile(cfg, 'utf8')) as Record<string, unknown>;
    const e = await engine();
    const base = parseConfig(raw);
    const model = await loadModel(base, d);
    const data = await loadData(base, d);
    const ctxOf = (path: 'gpu' | 'host'): StageContext => {
      const config = parseConfig({ ...raw, stage_paths: { edges: path } });
      return { engine: e, model, data, config, configPath: cfg, hash: configHash(config, model) };
    };
    try {
      // Where a stage runs is not part of what it computes: one stage serves both paths.
      expect(ctxOf('gpu').hash).toBe(ctxOf('host').hash);
      const dir = join(d, 'paths');
      await statsInShards(ctxOf('gpu'), dir, 2);
      const stage = await loadStage(dir, ctxOf('gpu').hash);
      const wants = new Map<string, IbResult>();
      for (const path of ['gpu', 'host'] as const) {
        const ctx = ctxOf(path);
        const want = await buildInteractionBasis(e, model, data, ctx.config);
        wants.set(path, want);
        const paths = [0, 1].map((i) => join(dir, `edges-${path}-${i}.safetensors`));
        for (let i = 0; i < 2; i++) await runEdgesShard(ctx, stage.bases, { index: i, count: 2 }, paths[i]!);
        const got = combineEdges(await Promise.all(paths.map((p) => readPartial(p, 'edges'))), stage);
        for (const [k, w] of want.edges) expect(relDiff(got.edges.get(k)!.data, w.data), `${path} ${k}`).toBeLessThanOrEqual(1e-12);
      }
      // The two paths agree within the GPU pass's f32 tolerance.
      for (const [k, w] of wants.get('gpu')!.edges) expect(relDiff(wants.get('host')!.edges.get(k)!.data, w.data), k).toBeLessThan(1e-5);
    } finally {
      await data.close?.();
    }
  }, 120_000);

  it('--resume restarts an interrupted build from its last completed stage and rejects damaged stage files', async () => {
    const out = join(d, 'resumed');
    const work = `${out}.stages`;
    const first = await ok(['build', cfg, '--resume', '-o', out]);
    expect(first).not.toMatch(/found and verified/);
    await expectSame(ref, out);
    // Interrupted during the edge pass: the edge partial is missing, everything before is kept.
    await rm(join(work, 'edges-00000-of-00001.safetensors'));
    await rm(out, { recursive: true });
    const second = await ok(['build', cfg, '--resume', '-o', out]);
    expect(second).toMatch(/combined statistics and bases found and verified/);
    expect(second).toMatch(/edges: 2048\/2048/);
    expect(second).not.toMatch(/stats: \d+\/2048/);
    await expectSame(ref, out);
    // A damaged stage file is detected by its checksum and rebuilt.
    const p = join(work, 'bases.state.safetensors');
    const b = Uint8Array.from(await readFile(p));
    b[b.length - 9]! ^= 0x01;
    await writeFile(p, b);
    const third = await ok(['build', cfg, '--resume', '-o', out]);
    expect(third).toMatch(/stage files rejected.*checksum mismatch/s);
    expect(third).toMatch(/statistics found and verified/);
    await expectSame(ref, out);
  }, 90_000);

  it('host statistics shards (float64) combine to the single-process host build', async () => {
    await inProcess({ stage_paths: { stats: 'host' }, calculate_edges: false }, async (ctx, want) => {
      const got = await statsInShards(ctx, join(d, 'host-stats'), 3);
      for (const [name, w] of want.bases) {
        const g = got.bases.get(name)!;
        expect(g.r, name).toBe(w.r);
        // A column of C (row of C⁺) may come out with the other sign: a basis direction's sign is
        // arbitrary, and the re-associated sums can tip the eigensolver's choice.
        expect(columnErrUpToSign(g.C, w.C, w.dim, w.r), `${name} C`).toBeLessThanOrEqual(1e-10);
        expect(columnErrUpToSign(transpose(g.Cpinv, w.r, w.dim), transpose(w.Cpinv, w.r, w.dim), w.dim, w.r), `${name} C⁺`).toBeLessThanOrEqual(1e-10);
        for (const f of ['Lambda', 'gramEigenvalues'] as const) {
          expect(maxAbs(w[f]!), `${name} ${f}`).toBeGreaterThan(0);
          expect(relDiff(g[f]!, w[f]!), `${name} ${f}`).toBeLessThanOrEqual(1e-10);
        }
      }
    });
  }, 60_000);
});
