// The staged transformer build through the real command line, every step a process of its own
// (README "Large datasets and many machines"), on the modular-addition fixture with the float64
// passes and node layers ln2.0, unembed (one M′ round: ln2.0's; unembed, the final node layer,
// keeps the identity basis):
//   --plan --shard; stats shards -> combine -> mprime shards -> combine -> edges shards -> combine
// gives the one-process `ibgpu build` result to float64 rounding (1e-12), a finished shard is not
// recomputed, a missing shard makes combine fail naming the gap, and --resume reproduces the
// one-process result bit for bit.

import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSafetensors } from '../src/io/safetensors.js';
import { toFloat64 } from '../src/io/tensor.js';
import { runIbgpu, type CliRun } from './helpers/cli.js';

const FIX = join(import.meta.dirname, 'fixtures', 'synthetic-transformer', 'modadd-tiny');

describe('ibgpu build --stage / combine / --resume for a transformer config', () => {
  let d = '';
  afterAll(async () => {
    if (d) await rm(d, { recursive: true, force: true });
  });

  const ok = (r: CliRun): string => {
    expect(r.code, r.err).toBe(0);
    return r.out.trim();
  };

  async function tensors(dir: string, file: string): Promise<Record<string, Float64Array>> {
    const t = await loadSafetensors(join(dir, file));
    return Object.fromEntries(Object.entries(t.tensors).map(([k, v]) => [k, toFloat64(v)]));
  }

  it('shards, combines and resumes', async () => {
    d = await mkdtemp(join(tmpdir(), 'ibgpu-tstage-cli-'));
    for (const f of ['weights_f64.safetensors', 'config.json', 'inputs.npy']) await copyFile(join(FIX, f), join(d, f));
    const cfg = {
      model: 'weights_f64.safetensors',
      arch: 'config.json',
      data: { type: 'npy', path: 'inputs.npy' },
      node_layers: ['ln2.0', 'unembed'],
      last_pos_module_type: 'add_resid1',
      truncation_threshold: 1e-10,
      threshold_mode: 'absolute',
      device: 'cpu',
    };
    await writeFile(join(d, 'cfg.json'), JSON.stringify(cfg));
    const run = (...args: string[]) => runIbgpu(d, args);
    const [one, plan] = await Promise.all([run('build', 'cfg.json', '-o', 'one', '--quiet'), run('build', 'cfg.json', '--plan', '--shard', '1/3')]);
    ok(one);
    expect(ok(plan)).toMatch(/shard 1\/3: sequences \[56, 112\) of 169/);
    expect(plan.out).toMatch(/mprime: 1 rounds, one per node layer, in this order: ln2\.0/);

    const both = (...args: string[]) => Promise.all([0, 1].map((i) => run('build', 'cfg.json', ...args, '--shard', `${i}/2`, '-o', 'parts', '--quiet')));
    const stats = (await both('--stage', 'stats')).map(ok);
    expect(stats.map((p) => p.replace(/.*\//, ''))).toEqual(['stats-00000-of-00002.safetensors', 'stats-00001-of-00002.safetensors']);
    // A missing shard: combine names the rows no partial covers.
    const missing = await run('combine', stats[0]!, '-o', 'stage');
    expect(missing.code).not.toBe(0);
    expect(missing.err).toMatch(/rows \[84, 169\) of 169 are in no partial/);
    const c1 = await run('combine', ...stats, '-o', 'stage');
    ok(c1);
    expect(c1.err).toMatch(/--stage mprime --bases .*\(M′ of ln2\.0\)/);
    const mp = (await both('--stage', 'mprime', '--bases', 'stage')).map(ok);
    expect(mp[1]).toMatch(/mprime-ln2\.0-00001-of-00002\.safetensors$/);
    const c2 = await run('combine', ...mp, '--bases', 'stage', '-o', 'stage');
    ok(c2);
    expect(c2.err).toMatch(/--stage edges --bases/);
    const edges = (await both('--stage', 'edges', '--bases', 'stage')).map(ok);
    // A shard whose file is complete and verifies is not recomputed.
    const again = await run('build', 'cfg.json', '--stage', 'edges', '--bases', 'stage', '--shard', '1/2', '-o', 'parts');
    expect(again.err).toMatch(/complete and verified, nothing to do/);
    const [c3, resume] = await Promise.all([
      run('combine', ...edges, '--bases', 'stage', '-o', 'result'),
      run('build', 'cfg.json', '--resume', '-o', 'res', '--quiet'),
    ]);
    ok(c3);
    ok(resume);

    const ref = await tensors(join(d, 'one'), 'basis.safetensors');
    const refE = await tensors(join(d, 'one'), 'edges.safetensors');
    const sharded = await tensors(join(d, 'result'), 'basis.safetensors');
    const shardedE = await tensors(join(d, 'result'), 'edges.safetensors');
    expect(Object.keys(sharded).sort()).toEqual(Object.keys(ref).sort());
    const lam = ref['ln2.0/Lambda']!;
    const relErr = (a: Float64Array, b: Float64Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!))) / Math.max(...a.map(Math.abs));
    expect(relErr(lam, sharded['ln2.0/Lambda']!)).toBeLessThan(1e-12);
    for (const k of Object.keys(refE)) expect(relErr(refE[k]!, shardedE[k]!), k).toBeLessThan(1e-12);
    // One process, resumable: the same bits as `ibgpu build`.
    const resumed = await tensors(join(d, 'res'), 'basis.safetensors');
    for (const k of Object.keys(ref)) expect(resumed[k], k).toEqual(ref[k]);
    const resumedE = await tensors(join(d, 'res'), 'edges.safetensors');
    for (const k of Object.keys(refE)) expect(resumedE[k], k).toEqual(refE[k]);
  }, 60_000);
});
