// `npm run gpu-check`: everything worth knowing the first time ibgpu meets a machine with a real
// GPU, in one command and under 8 minutes: the GPU test files, `ibgpu doctor` (self-checks and
// the measured kernel choices), and the benchmarks (matmul 256-4096, Gram, eigh 1024-4096,
// sign-pattern hashing, the MNIST build, the modular-addition transformer builds: the shipped
// example, and rib's model when ../shared/data/rib-modadd is there). Each step writes a JSON record (the BenchRecord shape of
// bench/common.ts) into the output folder, and gpu-check.json summarises the run: adapter, host,
// steps with their times, what was skipped and why.
//
// Every step has a time budget; a step that would start after the overall deadline is skipped
// (recorded as such), so the command always finishes. On a software adapter the full sizes
// would take hours: there, run `--short` (what CI does, test/gpu-check.test.ts), which runs the
// same steps at small sizes in well under a minute.
//   npx tsx bench/gpu-check.ts [--short] [--out DIR] [--skip-tests]
//   (default DIR: bench/results/<adapter>/gpu-check)

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../src/runtime/engine.js';
import { benchLimits, machineInfo, slug, type BenchRecord, type BenchRow } from './common.js';
import { runMatmulBench } from './matmul.bench.js';
import { runGramBench } from './gram.bench.js';
import { runEighBench } from './eigh.bench.js';
import { runSignPatternsBench } from './sign-patterns.bench.js';
import { runIbMnistBench } from './ib-mnist.bench.js';
import { runIbModaddBench } from './ib-modadd.bench.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');

/** GPU test files: every kernel family and the pipeline on the device (not the CPU-only files). */
export const GPU_TEST_FILES = [
  'test/runtime.test.ts',
  'test/matmul.test.ts',
  'test/gram.test.ts',
  'test/eigh.test.ts',
  'test/sign-patterns.test.ts',
  'test/section-kernels.test.ts',
  'test/load-cost.test.ts',
  'test/ib-fixture.test.ts',
  'test/ib-legacy.test.ts',
  'test/barrier-kernels.test.ts',
  'test/host-edges.test.ts',
  'test/kernels-transformer.test.ts',
  'test/transformer-gpu-program.test.ts',
  'test/transformer-gpu-passes.test.ts',
  'test/transformer-gpu-fixtures.test.ts',
];

export interface GpuCheckOptions {
  short?: boolean;
  out?: string;
  skipTests?: boolean;
  /** Overall deadline in seconds (default 450: 8 minutes less a margin). */
  budgetS?: number;
  log?: (m: string) => void;
}

export interface StepResult {
  step: string;
  status: 'ok' | 'failed' | 'skipped';
  seconds: number;
  file?: string;
  note?: string;
}

export interface GpuCheckSummary {
  adapter: string;
  backend: string;
  isSoftware: boolean;
  short: boolean;
  date: string;
  machine: BenchRecord['machine'];
  totalSeconds: number;
  steps: StepResult[];
}

export async function gpuCheck(opts: GpuCheckOptions = {}): Promise<GpuCheckSummary> {
  const short = opts.short ?? false;
  const log = opts.log ?? ((m: string) => console.error(m));
  const t0 = performance.now();
  const deadline = (opts.budgetS ?? 450) * 1000;
  if (short) Object.assign(benchLimits, { maxTime: 0.05, minSamples: 1 });
  const engine = await Engine.create();
  const out = resolve(opts.out ?? join(here, 'results', slug(engine.adapterName), 'gpu-check'));
  mkdirSync(out, { recursive: true });
  const steps: StepResult[] = [];
  const save = (suite: string, rows: BenchRow[]): string => {
    const rec: BenchRecord = { suite, date: new Date().toISOString(), adapter: engine.adapterName, backend: engine.info.backend, machine: machineInfo(), rows };
    const file = join(out, `${suite}.json`);
    writeFileSync(file, JSON.stringify(rec, null, 2) + '\n');
    return file;
  };
  const step = async (name: string, run: () => Promise<{ file?: string; note?: string; ok?: boolean }>): Promise<void> => {
    const left = deadline - (performance.now() - t0);
    if (left <= 0) {
      steps.push({ step: name, status: 'skipped', seconds: 0, note: 'overall time budget used up' });
      log(`gpu-check: ${name}: skipped (time budget)`);
      return;
    }
    const s0 = performance.now();
    log(`gpu-check: ${name} ...`);
    try {
      const r = await run();
      steps.push({ step: name, status: r.ok === false ? 'failed' : 'ok', seconds: (performance.now() - s0) / 1000, file: r.file, note: r.note });
    } catch (e) {
      steps.push({ step: name, status: 'failed', seconds: (performance.now() - s0) / 1000, note: (e as Error).message.split('\n')[0] });
    }
    log(`gpu-check: ${name}: ${steps[steps.length - 1]!.status} in ${steps[steps.length - 1]!.seconds.toFixed(1)} s`);
  };

  try {
    if (!opts.skipTests) {
      await step('tests', async () => {
        // Short mode: one quick GPU test (kernel vs float64 reference) proves the wiring.
        const files = short ? ['test/load-cost.test.ts'] : GPU_TEST_FILES;
        const args = ['vitest', 'run', ...files, ...(short ? ['-t', 'rejects step counts'] : [])];
        const left = Math.max(10, (deadline - (performance.now() - t0)) / 1000);
        const r = spawnSync('npx', args, { cwd: repo, encoding: 'utf8', timeout: Math.min(short ? 60 : 240, left) * 1000, env: process.env });
        const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
        // eslint-disable-next-line no-control-regex -- strips the ANSI colour codes vitest writes
        const summary = /Tests\s+(.*)/.exec(text.replace(/\x1b\[[0-9;]*m/g, ''))?.[1]?.trim() ?? (r.error ? r.error.message : 'no summary');
        const file = join(out, 'tests.log');
        writeFileSync(file, text);
        return { ok: r.status === 0, file, note: `${files.length} file(s): ${summary}` };
      });
    }
    await step('doctor', async () => {
      const { doctorReport } = await import('../src/cli/doctor.js');
      const report = await doctorReport(engine);
      const file = join(out, 'doctor.json');
      writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
      const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
      return {
        ok: failed.length === 0,
        file,
        note: failed.length ? `failed: ${failed.join(', ')}` : `all ${report.checks.length} self-checks pass; matmul ${report.variants.matmul}`,
      };
    });
    await step('matmul', async () => ({
      file: save('matmul', await runMatmulBench(engine, { sizes: short ? [64, 128] : [256, 512, 1024, 2048, 4096], cpuBudgetMs: short ? 0 : 20_000 })),
    }));
    await step('gram', async () => ({
      file: save(
        'gram',
        await runGramBench(engine, {
          shapes: short
            ? [[256, 64]]
            : [
                [16384, 512],
                [4096, 2048],
              ],
        }),
      ),
    }));
    await step('eigh', async () => ({ file: save('eigh', await runEighBench(engine, { sizes: short ? [32] : [1024, 2048, 4096] })) }));
    await step('sign-patterns', async () => ({
      file: save(
        'sign-patterns',
        await runSignPatternsBench(engine, {
          shapes: short
            ? [[512, 64]]
            : [
                [10000, 256],
                [60000, 1024],
              ],
          save: false,
        }),
      ),
    }));
    await step('ib-mnist', async () => ({
      file: save('ib-mnist', await runIbMnistBench(engine, short ? { digits: 300, reps: 1, save: false, exampleOnly: true } : { reps: 3, save: false })),
    }));
    // The shipped transformer example, and rib's modular-addition model when it is beside the
    // repository (../shared/data/rib-modadd; not shipped): the build the GPU target is set for.
    await step('modadd', async () => {
      const rows = await runIbModaddBench(engine, { example: true, ribModel: !short, save: false });
      return { file: save('ib-modadd', rows), note: rows.map((r) => `${r.case}: ${(r.ms / 1000).toFixed(2)} s`).join('; ') };
    });
  } finally {
    engine.dispose();
  }
  const summary: GpuCheckSummary = {
    adapter: engine.adapterName,
    backend: engine.info.backend,
    isSoftware: engine.info.isSoftware,
    short,
    date: new Date().toISOString(),
    machine: machineInfo(),
    totalSeconds: (performance.now() - t0) / 1000,
    steps,
  };
  writeFileSync(join(out, 'gpu-check.json'), JSON.stringify(summary, null, 2) + '\n');
  log(`gpu-check: ${summary.totalSeconds.toFixed(0)} s on ${summary.adapter}; records in ${out}`);
  return summary;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const s = await gpuCheck({ short: process.argv.includes('--short'), out: arg('--out'), skipTests: process.argv.includes('--skip-tests') });
  if (s.isSoftware && !s.short) console.error('gpu-check: this is a software adapter; the full sizes are meant for a real GPU (use --short here)');
  process.exitCode = s.steps.some((x) => x.status === 'failed') ? 1 : 0;
}
