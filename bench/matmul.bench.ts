// Square f32 matmul per kernel variant against the float64 CPU reference (src/cpu/matmul.ts).
// GPU cases time record + submit + wait (engine.sync), with operands resident on the device.
//   npx tsx bench/matmul.bench.ts [--quick]

import { matmulF64 } from '../src/cpu/matmul.js';
import { chooseMatmulVariant, matmul, matmulTuning, MATMUL_VARIANTS, type MatmulVariantName } from '../src/kernels/matmul.js';
import { Engine } from '../src/runtime/engine.js';
import { benchLimits, printRows, saveRecord, timeCase, type BenchRow } from './common.js';
import { mulberry32 } from '../src/util/mulberry32.js';

const CPU_BUDGET_MS = 30_000; // the CPU reference runs at a size only if one run is predicted under this

function randomData(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  const rand = mulberry32(seed);
  for (let i = 0; i < n; i++) out[i] = rand() - 0.5;
  return out;
}

export async function runMatmulBench(
  engine: Engine,
  opts: { quick?: boolean; sizes?: number[]; cpuBudgetMs?: number; variants?: MatmulVariantName[] } = {},
): Promise<BenchRow[]> {
  const sizes = opts.sizes ?? (opts.quick ? [256, 512] : [256, 512, 1024, 2048]);
  const cpuBudget = opts.cpuBudgetMs ?? CPU_BUDGET_MS;
  const chosen = await chooseMatmulVariant(engine);
  const rows: BenchRow[] = [];
  let lastCpu: { n: number; ms: number } | undefined;
  for (const n of sizes) {
    const flops = 2 * n ** 3;
    const a = randomData(n * n, n);
    const b = randomData(n * n, n + 1);
    const shape = { m: n, n, k: n };

    // CPU f64 reference: measured up to 1024; beyond, only when an n^3 extrapolation of the
    // last measured size stays under the budget (one timed run, no repeats).
    let cpuMs: number | undefined;
    const predicted = lastCpu ? lastCpu.ms * (n / lastCpu.n) ** 3 : 0;
    if (n <= 1024 && cpuBudget >= CPU_BUDGET_MS) {
      cpuMs = await timeCase(`cpu f64 ${n}`, () => matmulF64(a, b, shape), { minSamples: 1, maxTime: n <= 512 ? 1 : 0.1 });
    } else if (predicted < cpuBudget) {
      const t0 = performance.now();
      matmulF64(a, b, shape);
      cpuMs = performance.now() - t0;
    }
    if (cpuMs !== undefined) {
      lastCpu = { n, ms: cpuMs };
      rows.push({ case: `cpu f64 ${n}^3`, ms: cpuMs, flops, gflops: flops / cpuMs / 1e6, note: n > 1024 ? 'single run' : undefined });
    } else {
      rows.push({
        case: `cpu f64 ${n}^3`,
        ms: NaN,
        flops,
        note: cpuBudget === 0 ? 'not run (--no-cpu)' : `skipped: predicted ${(predicted / 1000).toFixed(0)} s`,
      });
    }

    const ba = engine.upload(a, 'bench-a');
    const bb = engine.upload(b, 'bench-b');
    const bc = engine.alloc(n * n * 4, 'bench-c');
    for (const variant of opts.variants ?? MATMUL_VARIANTS) {
      matmul(engine, ba, bb, bc, shape, { variant }); // compile + warm up
      await engine.sync();
      const ms = await timeCase(
        `${variant} ${n}`,
        async () => {
          matmul(engine, ba, bb, bc, shape, { variant });
          await engine.sync();
        },
        { minSamples: 3, maxTime: n >= 2048 ? 1 : 2 },
      );
      rows.push({
        case: `${variant} ${n}^3`,
        ms,
        flops,
        gflops: flops / ms / 1e6,
        speedupVsCpu: cpuMs !== undefined ? cpuMs / ms : undefined,
        note: variant === chosen ? 'tuned choice' : undefined,
      });
    }
    engine.release(ba, bb, bc);
  }
  const t = matmulTuning(engine);
  if (t) {
    const detail = Object.entries(t.ms)
      .map(([v, ms]) => `${v} ${ms.toFixed(1)} ms`)
      .join(', ');
    rows.push({ case: `autotune ${t.size}^3`, ms: t.ms[t.variant]!, note: `chose ${t.variant} (${detail})` });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // --sizes 2048 --variants tiled128,panel128 [--no-cpu] [--once]: a subset, saved as matmul-subset.
  const quick = process.argv.includes('--quick');
  const arg = (name: string): string | undefined => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
  const sizes = arg('--sizes')?.split(',').map(Number);
  const variants = arg('--variants')?.split(',') as MatmulVariantName[] | undefined;
  if (process.argv.includes('--once')) Object.assign(benchLimits, { minSamples: 1, maxTime: 0.01 }); // one timed run per case
  const engine = await Engine.create();
  try {
    console.log(`adapter: ${engine.adapterName}`);
    const rows = await runMatmulBench(engine, { quick, sizes, variants, cpuBudgetMs: process.argv.includes('--no-cpu') ? 0 : undefined });
    printRows('matmul (x vs CPU = CPU f64 ms / GPU ms)', rows);
    console.log(`saved ${saveRecord(sizes || variants ? 'matmul-subset' : quick ? 'matmul-quick' : 'matmul', engine, rows)}`);
  } finally {
    engine.dispose();
  }
}
