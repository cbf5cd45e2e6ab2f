// Symmetric eigendecomposition: GPU f32 block Jacobi (eighGpu), GPU + float64 refinement (eigh)
// and the float64 CPU solver (symEig, Householder + QL), on random symmetric matrices.
// GFLOP/s use the nominal count 9n³ for a full eigendecomposition with vectors (the same count
// for every row, so the rates compare like the times). GPU times include upload, all sweeps
// and the readback of the eigenvectors (what a caller waits for).
//   npx tsx bench/eigh.bench.ts [--quick]

import { eigh } from '../src/host/eig-refine.js';
import { symEig } from '../src/cpu/eigh.js';
import { eighGpu } from '../src/kernels/eigh.js';
import { Engine } from '../src/runtime/engine.js';
import { printRows, saveRecord, timeCase, type BenchRow } from './common.js';
import { mulberry32 } from '../src/util/mulberry32.js';

/** A case runs only when one run is predicted (n³ from the last measured size) under this. */
const BUDGET_MS = 60_000;

function randomSymmetric(n: number, seed: number): Float64Array {
  const a = new Float64Array(n * n);
  const rand = mulberry32(seed);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = rand() - 0.5;
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  }
  return a;
}

interface Tracker {
  n: number;
  ms: number;
}

/** Times fn (benny, several runs) while cheap, a single run when slow, or skips it. */
async function measure(name: string, n: number, last: Tracker | undefined, fn: () => unknown): Promise<{ ms: number; note?: string }> {
  const predicted = last ? last.ms * (n / last.n) ** 3 : 0;
  if (predicted > BUDGET_MS) {
    return { ms: NaN, note: `skipped: predicted ${(predicted / 1000).toFixed(0)} s on this adapter (> ${BUDGET_MS / 1000} s)` };
  }
  if (predicted > 2000) {
    const t0 = performance.now();
    await fn();
    return { ms: performance.now() - t0, note: 'single run' };
  }
  return { ms: await timeCase(name, fn, { minSamples: 1, maxTime: 1 }) };
}

export async function runEighBench(engine: Engine, opts: { quick?: boolean; sizes?: number[] } = {}): Promise<BenchRow[]> {
  const sizes = opts.sizes ?? (opts.quick ? [128, 256] : [128, 256, 512, 1024, 2048]);
  const rows: BenchRow[] = [];
  let lastCpu: Tracker | undefined;
  let lastGpu: Tracker | undefined;
  let lastRef: Tracker | undefined;
  await eighGpu(engine, randomSymmetric(40, 1), 40); // compile the pipelines outside the timings
  for (const n of sizes) {
    const flops = 9 * n ** 3;
    const a = randomSymmetric(n, n);
    const cpu = await measure(`symEig ${n}`, n, lastCpu, () => symEig(a, n));
    if (!Number.isNaN(cpu.ms)) lastCpu = { n, ms: cpu.ms };
    rows.push({ case: `cpu symEig f64 n=${n}`, ms: cpu.ms, flops, gflops: flops / cpu.ms / 1e6, note: cpu.note });

    let sweeps = 0;
    const gpu = await measure(`eighGpu ${n}`, n, lastGpu, async () => {
      sweeps = (await eighGpu(engine, a, n)).sweeps;
    });
    if (!Number.isNaN(gpu.ms)) lastGpu = { n, ms: gpu.ms };
    rows.push({
      case: `gpu eighGpu f32 n=${n}`,
      ms: gpu.ms,
      flops,
      gflops: flops / gpu.ms / 1e6,
      speedupVsCpu: cpu.ms / gpu.ms,
      note: [gpu.note, Number.isNaN(gpu.ms) ? undefined : `${sweeps} sweeps`].filter(Boolean).join('; ') || undefined,
    });

    let iterations = 0;
    const ref = await measure(`eigh ${n}`, n, lastRef ?? (lastGpu && lastCpu ? { n: lastGpu.n, ms: lastGpu.ms + 2 * lastCpu.ms } : undefined), async () => {
      iterations = (await eigh(engine, a, n, { solver: 'gpu' })).iterations;
    });
    if (!Number.isNaN(ref.ms)) lastRef = { n, ms: ref.ms };
    rows.push({
      case: `gpu+refine eigh f64 n=${n}`,
      ms: ref.ms,
      flops,
      gflops: flops / ref.ms / 1e6,
      speedupVsCpu: cpu.ms / ref.ms,
      note: [ref.note, Number.isNaN(ref.ms) ? undefined : `${iterations} refinement steps (CPU f64)`].filter(Boolean).join('; ') || undefined,
    });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const engine = await Engine.create();
  try {
    console.log(`adapter: ${engine.adapterName}`);
    const rows = await runEighBench(engine, { quick });
    printRows('eigh (GFLOP/s at a nominal 9n³; x vs CPU = CPU symEig ms / this ms)', rows);
    console.log(`saved ${saveRecord(quick ? 'eigh-quick' : 'eigh', engine, rows)}`);
  } finally {
    engine.dispose();
  }
}
