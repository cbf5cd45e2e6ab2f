// What one memory load costs against one FMA on this adapter (shaders/load_cost.wgsl):
// register-only FMAs vs one storage load per loop step (vec4 or scalar; per-invocation strided,
// coalesced, one uniform address, or from workgroup memory after a barrier) vs K FMAs per loaded
// value. 64 workgroups x 256 invocations, up to 4096 steps, as in the measurement that first
// showed the effect. The cases are interleaved over several rounds and each row is the median,
// so a busy machine slows all cases alike instead of skewing one.
//   npx tsx bench/load-cost.bench.ts [--quick] [--rounds N]

import { LOAD_COST_MODES, LOAD_COST_TABLE, type LoadCostCase, type LoadCostMode } from '../src/cpu/load-cost.js';
import { loadCost, loadCostData, loadCostFlops, maxLoadCostSteps } from '../src/kernels/load-cost.js';
import { Engine } from '../src/runtime/engine.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuId, printRows, saveRecord, type BenchRow } from './common.js';

/**
 * Runs bench/host-probe/lane-insert.c (compiled with the system gcc into a temporary folder):
 * the nanoseconds per element of llvmpipe's load pattern on this CPU. Undefined without gcc.
 */
export function laneInsertProbe(): { spillInsertNs: number; registerInsertNs: number; ratio: number } | undefined {
  const src = join(dirname(fileURLToPath(import.meta.url)), 'host-probe', 'lane-insert.c');
  const dir = mkdtempSync(join(os.tmpdir(), 'ibgpu-probe-'));
  try {
    const exe = join(dir, 'lane-insert');
    execFileSync('gcc', ['-O2', '-mavx2', '-o', exe, src], { stdio: 'pipe' });
    return JSON.parse(execFileSync(exe, { encoding: 'utf8' })) as { spillInsertNs: number; registerInsertNs: number; ratio: number };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface LoadCostBenchOptions {
  quick?: boolean;
  rounds?: number;
  /** Target steps per invocation (capped by the loop budget for large K). */
  steps?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function loadCostCases(opts: LoadCostBenchOptions = {}): LoadCostCase[] {
  const ks = opts.quick ? [1, 16] : [1, 4, 16, 32];
  const modes: readonly LoadCostMode[] = opts.quick ? ['reg', 'coalesced', 'uniform', 'ubo'] : LOAD_COST_MODES;
  const cases: LoadCostCase[] = [];
  for (const scalar of [false, true]) {
    for (const mode of modes) {
      for (const k of ks) {
        cases.push({ mode, scalar, k, steps: Math.min(opts.steps ?? 4096, maxLoadCostSteps(k)), workgroups: 64, wg: 256 });
      }
    }
  }
  return cases;
}

export async function runLoadCostBench(engine: Engine, opts: LoadCostBenchOptions = {}): Promise<BenchRow[]> {
  const cases = loadCostCases(opts);
  const rounds = opts.rounds ?? (opts.quick ? 2 : 3);
  const host = loadCostData(1);
  const table = host.subarray(0, LOAD_COST_TABLE * 4);
  const data = engine.upload(host, 'load-cost-data');
  const out = engine.alloc(64 * 256 * 4, 'load-cost-out');
  for (const c of cases) loadCost(engine, data, table, out, c); // compile every variant first
  await engine.sync();
  const times: number[][] = cases.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < cases.length; i++) {
      const t0 = performance.now();
      loadCost(engine, data, table, out, cases[i]!);
      await engine.sync();
      times[i]!.push(performance.now() - t0);
    }
  }
  engine.release(data, out);
  return cases.map((c, i) => {
    const ms = median(times[i]!);
    const flops = loadCostFlops(c);
    const perStepNs = (ms * 1e6) / (c.workgroups * c.wg * c.steps);
    return {
      case: `${c.scalar ? 'scalar' : 'vec4'} ${c.mode} K=${c.k}`,
      ms,
      flops,
      gflops: flops / ms / 1e6,
      note: `${c.steps} steps; ${perStepNs.toFixed(2)} ns per step per invocation; ${rounds} rounds, times ${times[i]!.map((t) => t.toFixed(0)).join('/')} ms`,
    };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const ri = process.argv.indexOf('--rounds');
  const rounds = ri > 0 ? Number(process.argv[ri + 1]) : undefined;
  const engine = await Engine.create();
  try {
    console.log(`adapter: ${engine.adapterName}`);
    const rows = await runLoadCostBench(engine, { quick, rounds });
    const probe = laneInsertProbe();
    rows.push(
      probe
        ? {
            case: 'host probe: lane insert through the stack',
            ms: NaN,
            note: `${probe.spillInsertNs.toFixed(2)} ns per element (in registers: ${probe.registerInsertNs.toFixed(2)} ns, ${probe.ratio.toFixed(1)}x); bench/host-probe/lane-insert.c`,
          }
        : { case: 'host probe: lane insert through the stack', ms: NaN, note: 'not run: no gcc' },
    );
    printRows('load cost (GFLOP/s counts the FMAs; a step is one obtained value + K FMAs)', rows);
    // One record per host kind: the CPU is part of the suite name, so hosts do not overwrite each other.
    const id = cpuId();
    const suite = `load-cost${id ? `-f${id.family}m${id.model}` : ''}${quick ? '-quick' : ''}`;
    console.log(`saved ${saveRecord(suite, engine, rows)}`);
  } finally {
    engine.dispose();
  }
}
