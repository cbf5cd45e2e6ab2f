// ibgpu and rib (the Python reference, ApolloResearch/rib) on the same job, side by side in one
// run on this machine: rib's MNIST MLP build (rib's weights, the 10,000 digits, float64 in rib,
// jacobian basis, centred, squared edges, gradient integration, batch 1000, truncation 1e-10)
// timed by ../shared/tools/rib-baseline/time_mnist.sh, and the same job through ibgpu:
//   - one-shot: `node bin/ibgpu.js build <config>` as a fresh process (start-up, kernel
//     compilation, data loading and writing the results included), wall time and the build
//     time from its manifest;
//   - warm: the same build again in one process after a warm-up build (compiled kernels).
// The record carries both times, their ratios, the CPU model and the load average before each
// run (other work on the machine skews both sides: compare only rows of one record).
// rib must be installed first (../shared/tools/rib-baseline/README.md; RIB_DIR points at the
// folder given to setup.sh, default ../shared/tools/rib-baseline/.rib-ref). Without rib the
// suite says so and records nothing.
//   npx tsx bench/vs-rib.bench.ts
// Jobs: rib's MNIST MLP and rib's modular-addition transformer (time_modadd.sh on rib's side).

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBuildConfig, loadData, loadModel } from '../src/build/load.js';
import { buildInteractionBasis } from '../src/ib/pipeline.js';
import { Engine } from '../src/runtime/engine.js';
import { isTransformerBuild, loadTransformerBuild, runTransformerBuild } from '../src/transformer/build.js';
import { gpuPassesFactory } from '../src/transformer/gpu-passes.js';
import { printRows, RIB_JOB_BUILD, RIB_MNIST_BUILD, saveRecord, type BenchRow } from './common.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const shared = resolve(repo, '..', 'shared');
const baseline = process.env['RIB_BASELINE'] ?? join(shared, 'tools', 'rib-baseline');
const ribDir = process.env['RIB_DIR'] ?? join(baseline, '.rib-ref');

interface Job {
  name: string;
  /** rib's timing script and the regex of its build-time line. */
  ribScript: string;
  ribBuildLine: RegExp;
  /** The ibgpu config for the same job (paths absolute). */
  config: () => Record<string, unknown> | undefined;
}

const JOBS: Job[] = [
  {
    name: 'mnist',
    ribScript: 'time_mnist.sh',
    ribBuildLine: /rib mnist f64 jacobian centred: ([\d.]+) s/,
    config: () => {
      const weights = join(shared, 'data', 'rib-mnist-mlp', 'weights.safetensors');
      if (!existsSync(weights)) return undefined;
      return {
        ...RIB_MNIST_BUILD,
        model: weights,
        arch: join(repo, 'examples', 'mnist-mlp', 'arch.json'),
        data: { type: 'mnist', count: 10000 },
        degeneracy: false,
      };
    },
  },
  {
    // rib's modular_arithmetic.yaml job (time_modadd.sh's default case), rib's absolute τ = 1e-15
    // included: where the statistics take the host float64 path (software adapters) that τ means
    // what it means in rib, and the result is rib's within the fidelity targets (README: `ibgpu
    // compare`). On f32 GPU statistics rib's τ keeps noise directions; use a relative τ there.
    name: 'modadd',
    ribScript: 'time_modadd.sh',
    ribBuildLine: /rib modadd \S+: ([\d.]+) s/,
    config: () => {
      const dir = join(shared, 'data', 'rib-modadd');
      if (!existsSync(join(dir, 'weights.safetensors'))) return undefined;
      return {
        node_layers: ['ln1.0', 'ln2.0', 'unembed', 'output'],
        model: join(dir, 'weights.safetensors'),
        arch: join(dir, 'config.json'),
        last_pos_module_type: 'add_resid1',
        dataset: { type: 'modular_arithmetic', modulus: 113, fn_name: 'add', frac_train: 0.3, seed: 0, return_set: 'train' },
        ...RIB_JOB_BUILD,
        truncation_threshold: 1e-15,
        threshold_mode: 'absolute',
      };
    },
  },
];

const load = (): number => Math.round(os.loadavg()[0]! * 100) / 100;

function runRib(job: Job): { buildS: number; wallS: number; text: string; loadBefore: number } {
  const loadBefore = load();
  const t0 = performance.now();
  const r = spawnSync('bash', [join(baseline, job.ribScript), ribDir], { encoding: 'utf8', env: { ...process.env, TQDM_DISABLE: '1' } });
  const wallS = (performance.now() - t0) / 1000;
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const m = job.ribBuildLine.exec(text);
  if (r.status !== 0 || !m) throw new Error(`rib ${job.name} failed (exit ${r.status}):\n${text.slice(-2000)}`);
  return { buildS: Number(m[1]), wallS, text, loadBefore };
}

function runIbgpuOneShot(configFile: string, out: string): { wallS: number; buildS: number; stages: string; loadBefore: number } {
  const loadBefore = load();
  const t0 = performance.now();
  const r = spawnSync('node', [join(repo, 'bin', 'ibgpu.js'), 'build', configFile, '-o', out, '--quiet'], { encoding: 'utf8' });
  const wallS = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`ibgpu build failed (exit ${r.status}):\n${(r.stderr ?? '').slice(-2000)}`);
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as {
    total_ms: number;
    timings_ms: Record<string, number>;
    kernel_choices?: { matmul?: string; matmul_choice?: string };
  };
  const stages = Object.entries(manifest.timings_ms)
    .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`)
    .join(', ');
  const kc = manifest.kernel_choices;
  return { wallS, buildS: manifest.total_ms / 1000, stages: `${stages}${kc?.matmul ? `; matmul ${kc.matmul} (${kc.matmul_choice})` : ''}`, loadBefore };
}

async function runIbgpuWarm(configFile: string, reps: number): Promise<{ ms: number[]; loadBefore: number }> {
  const { config, base } = await loadBuildConfig(configFile);
  const engine = await Engine.create();
  try {
    let build: () => Promise<unknown>;
    let close = async (): Promise<void> => {};
    if (await isTransformerBuild(config, base)) {
      const loaded = await loadTransformerBuild(config, base);
      build = () => runTransformerBuild(config, loaded, { gpu: gpuPassesFactory(engine, config.stage_paths) });
    } else {
      const model = await loadModel(config, base);
      const data = await loadData(config, base);
      build = () => buildInteractionBasis(engine, model, data, config);
      close = async () => {
        await data.close?.();
      };
    }
    try {
      await build(); // warm-up: compiles kernels
      const loadBefore = load();
      const ms: number[] = [];
      for (let i = 0; i < reps; i++) {
        const t0 = performance.now();
        await build();
        ms.push(performance.now() - t0);
      }
      return { ms, loadBefore };
    } finally {
      await close();
    }
  } finally {
    engine.dispose();
  }
}

export async function runVsRib(): Promise<BenchRow[] | undefined> {
  if (!existsSync(join(ribDir, 'venv', 'bin', 'python'))) {
    console.log(`rib is not installed in ${ribDir}: see ${join(baseline, 'README.md')} (set RIB_DIR to the folder given to setup.sh); nothing recorded`);
    return undefined;
  }
  // The one-shot build runs the compiled CLI: build dist/ from the current sources first.
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: repo, stdio: 'inherit' });
  const rows: BenchRow[] = [];
  const tmp = mkdtempSync(join(os.tmpdir(), 'ibgpu-vs-rib-'));
  try {
    // VS_RIB_JOBS=mnist,modadd picks jobs (default: all).
    const only = process.env['VS_RIB_JOBS']?.split(',').map((j) => j.trim());
    for (const job of JOBS.filter((j) => !only || only.includes(j.name))) {
      const cfg = job.config();
      if (!cfg) {
        rows.push({ case: `${job.name}: skipped`, ms: NaN, note: 'job inputs not found under ../shared/data' });
        continue;
      }
      const configFile = join(tmp, `${job.name}.json`);
      writeFileSync(configFile, JSON.stringify(cfg, null, 2));
      // Order: ibgpu one-shot, rib, ibgpu warm: the two sides alternate, so a change in the
      // machine's load shows up as a difference between the two ibgpu measurements.
      const one = runIbgpuOneShot(configFile, join(tmp, `${job.name}-out`));
      const rib = runRib(job);
      const reps = Number(process.env['VS_RIB_REPS'] ?? 3);
      const warm = await runIbgpuWarm(configFile, reps);
      const warmMs = [...warm.ms].sort((a, b) => a - b)[Math.floor((warm.ms.length - 1) / 2)]!;
      rows.push({
        case: `${job.name}: rib build (rib_build only)`,
        ms: rib.buildS * 1000,
        note: `load before ${rib.loadBefore}; ${/CPU[^\n]*/.exec(rib.text)?.[0] ?? ''}`,
      });
      rows.push({ case: `${job.name}: rib whole process`, ms: rib.wallS * 1000, note: 'python start-up, imports, data loading, checks' });
      const x = (ribS: number, ms: number): number => (ribS * 1000) / ms;
      rows.push({
        case: `${job.name}: ibgpu build one-shot, whole process`,
        ms: one.wallS * 1000,
        speedupVsCpu: x(rib.wallS, one.wallS * 1000),
        note: `x = rib whole process / this; load before ${one.loadBefore}`,
      });
      rows.push({
        case: `${job.name}: ibgpu build one-shot, build only`,
        ms: one.buildS * 1000,
        speedupVsCpu: x(rib.buildS, one.buildS * 1000),
        note: `x = rib build / this; ${one.stages}`,
      });
      rows.push({
        case: `${job.name}: ibgpu build warm (median of ${warm.ms.length})`,
        ms: warmMs,
        speedupVsCpu: x(rib.buildS, warmMs),
        note: `x = rib build / this; builds ${warm.ms.map((t) => t.toFixed(0)).join('/')} ms; load before ${warm.loadBefore}`,
      });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runVsRib();
  if (rows) {
    printRows('side by side with rib (x = rib time / ibgpu time)', rows);
    const e = await Engine.create();
    try {
      console.log(`saved ${saveRecord('vs-rib', e, rows)}`);
    } finally {
      e.dispose();
    }
  }
}
