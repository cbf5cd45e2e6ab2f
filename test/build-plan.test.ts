// `ibgpu build --plan` of every kind of build through one plan (src/build/plan.ts, src/pipeline/plan.ts):
// the specialisation each section is planned with follows what the build runs, "device" included.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planConfig, printablePlan } from '../src/build/plan.js';
import type { LoadedConfig } from '../src/build/load.js';
import { parseConfig } from '../src/ib/config.js';

const examples = join(import.meta.dirname, '..', 'examples');

async function loaded(example: string, extra: Record<string, unknown>): Promise<LoadedConfig> {
  const base = join(examples, example);
  const raw = JSON.parse(await readFile(join(base, 'build.json'), 'utf8')) as Record<string, unknown>;
  return { configPath: join(base, 'build.json'), base, config: parseConfig({ ...raw, ...extra }), name: example };
}

const whole = { index: 0, count: 1 };

describe('one plan for every build', () => {
  it('plans an MLP on the GPU/host pipeline with its buffers, a "device": "cpu" MLP with the generic VJP flops it runs', async () => {
    const gpu = await planConfig(await loaded('mnist-mlp', {}), whole);
    expect(gpu.plan.sections.map((s) => s.path)).toEqual([
      'gate-Gram M′ (co-firing counts), carried-Jacobian squared edges',
      'gate-Gram M′ (co-firing counts), carried-Jacobian squared edges',
      'gate-Gram M′, per-row squared edges',
    ]);
    expect(printablePlan(gpu, false)).toMatch(/^datapoints: 10000; 5 batches per pass$/m);
    expect(gpu.plan.statsFlops).toBeUndefined();

    const cpu = await planConfig(await loaded('mnist-mlp', { device: 'cpu', degeneracy: false }), whole);
    const text = printablePlan(cpu, false);
    // buildMlpF64 runs the compiled section programs through the float64 passes: no MLP kernels,
    // no streamed batches, every section generic.
    expect(cpu.plan.items).toBeUndefined();
    expect(text).not.toMatch(/batches per pass|gate-Gram|carried-Jacobian|peak/);
    expect(cpu.plan.sections.map((s) => s.path)).toEqual(cpu.plan.sections.map(() => 'generic per-sample VJPs (float64, CPU)'));
    expect(cpu.plan.sections.map((s) => s.name)).toEqual(gpu.plan.sections.map((s) => s.name));
    // Folded widths [x, 1]: 785 -> 101 -> 101 -> 10, one position; K ≤ d_out cotangents per sample.
    const flops = cpu.plan.sections as unknown as { dIn: number; dOut: number; K: number; mPrimeFlops: number }[];
    expect(flops.map((s) => [s.dIn, s.dOut, s.K])).toEqual([
      [785, 101, 101],
      [101, 101, 101],
      [101, 10, 10],
    ]);
    expect(text).toMatch(/^statistics: [\d.]+ GFLOP/m);
    expect(text).toMatch(/^total ≤ [\d.]+ TFLOP/m);
    expect(text).not.toMatch(/closed forms cost less/); // every section runs the generic VJPs
    // What the float64 passes refuse, the plan refuses too (the shipped config collects the degeneracy report).
    await expect(planConfig(await loaded('mnist-mlp', { device: 'cpu' }), whole)).rejects.toThrow(/degeneracy report is not available with "device": "cpu"/);
    // A shard runs through the staged commands, which take the GPU/host pipeline whatever the device.
    const shard = await planConfig(await loaded('mnist-mlp', { device: 'cpu' }), { index: 1, count: 3 });
    expect(shard.plan.rows).toBe(4096);
    expect(shard.plan.sections.map((s) => s.path)).toEqual(gpu.plan.sections.map((s) => s.path));
  });

  it('names no closed form for a "device": "cpu" transformer, and keeps the JSON fields of the GPU plan', async () => {
    const gpu = await planConfig(await loaded('modadd-transformer', {}), whole);
    const cpu = await planConfig(await loaded('modadd-transformer', { device: 'cpu' }), whole);
    expect(gpu.plan.sections.map((s) => s.path)).toEqual([
      'closed form of last-position attention (M′ and edges)',
      'gate-Gram closed form (M′), MLP edge kernels (edges)',
      'linear section: M′ and edges once for all samples',
    ]);
    expect(cpu.plan.sections.map((s) => s.path)).toEqual(gpu.plan.sections.map(() => 'generic per-sample VJPs (float64, CPU)'));
    expect(printablePlan(cpu, false)).not.toMatch(/closed form of|gate-Gram closed form|linear section/);
    const json = JSON.parse(printablePlan(gpu, true)) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(['config', 'data', 'positions', 'shard', 'sequences', 'staged', 'n', 'statsFlops', 'gramBytes', 'sections']);
  });
});
