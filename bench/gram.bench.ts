// Gram accumulation throughput: GPU (both accumulation modes) against the float64 CPU reference.
// GFLOP/s counts d²·rows per batch, the flops a symmetric Gram actually needs (half a GEMM).
//
//   npx tsx bench/gram.bench.ts [--quick]

import { gramF64 } from '../src/cpu/gram.js';
import { chooseGramVariant, GramAccumulator, type GramMode, type GramVariant } from '../src/kernels/gram.js';
import { Engine } from '../src/runtime/engine.js';
import { printRows, saveRecord, timeCase, type BenchRow } from './common.js';
import { mulberry32 } from '../src/util/mulberry32.js';

const SUITE = 'gram';

/** Uniform values in [-1, 1) from a fixed seed (the data only needs to be non-trivial). */
function randomRows(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => 2 * rand() - 1);
}

export async function runGramBench(engine: Engine, opts: { quick?: boolean; shapes?: [number, number][] } = {}): Promise<BenchRow[]> {
  const shapes: [number, number][] =
    opts.shapes ??
    (opts.quick
      ? [
          [2048, 256],
          [512, 1024],
        ]
      : [
          [16384, 512],
          [4096, 2048],
        ]);
  const chosen = chooseGramVariant(engine);
  const other: GramVariant = chosen === 'reg' ? 'tiled' : 'reg';
  const rows: BenchRow[] = [];
  for (const [n, d] of shapes) {
    const flops = d * d * n;
    const x = randomRows(n * d, n + d);
    const buf = engine.upload(x, 'bench.x');
    const cpuMs = await timeCase(`cpu f64 ${n}x${d}`, () => gramF64(x, n, d), { minSamples: 2, maxTime: 1 });
    rows.push({ case: `cpu gramF64 ${n}x${d}`, ms: cpuMs, flops, gflops: flops / cpuMs / 1e6 });
    const gpuCases: [GramMode, GramVariant][] = [
      ['host-f64', chosen],
      ['gpu-f32', chosen],
    ];
    if (n === shapes[0]![0]) gpuCases.push(['gpu-f32', other]);
    for (const [mode, variant] of gpuCases) {
      // One batch from a resident GPU buffer, including the readback(s) and the f64 result.
      const job = async (): Promise<void> => {
        const g = new GramAccumulator(engine, d, { mode, variant });
        await g.addBatch(buf, n);
        await g.result();
        g.dispose();
      };
      await job(); // compile and warm the pool outside the timing
      const ms = await timeCase(`gpu ${mode} ${variant} ${n}x${d}`, job, { minSamples: 3, maxTime: 2 });
      rows.push({
        case: `gpu ${mode} ${n}x${d}`,
        ms,
        flops,
        gflops: flops / ms / 1e6,
        speedupVsCpu: cpuMs / ms,
        note: `variant ${variant}${variant === chosen ? ' (chosen)' : ''}`,
      });
    }
    engine.release(buf);
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const engine = await Engine.create();
  try {
    const rows = await runGramBench(engine, { quick });
    printRows(`${SUITE} on ${engine.adapterName}${quick ? ' (quick)' : ''}`, rows);
    if (!quick) console.log(`saved ${saveRecord(SUITE, engine, rows)}`);
  } finally {
    engine.dispose();
  }
}
