// Sign-pattern hashing throughput: GPU (SignPatternAccumulator) against the integer CPU
// reference (src/cpu/sign-patterns.ts), for N datapoints × d neurons of pre-activations.
//
// Cases per shape:
//   full   pack + hash + firing counts + co-firing matrix (d²/2 · N/32 word popcounts), result()
//          included (readback and float64 assembly); GPU from a resident buffer;
//   hash   pack + hash + firing counts only (cofire: false);
// plus, for the largest shape, the full GPU job from host memory (upload included) and the
// other packing variants the adapter has (ballot needs subgroups). Throughput is printed in M datapoint·neurons per second; "x vs CPU"
// is CPU time / GPU time for the same case.
//
//   npx tsx bench/sign-patterns.bench.ts [--quick]

import { fireCountCpu, hashPatternsCpu, packSignsCpu, signPatternsCpu } from '../src/cpu/sign-patterns.js';
import { chooseSignPackVariant, SignPatternAccumulator, type SignPackVariant } from '../src/kernels/sign-patterns.js';
import { Engine } from '../src/runtime/engine.js';
import { printRows, saveRecord, timeCase, type BenchRow } from './common.js';
import { mulberry32 } from '../src/util/mulberry32.js';

const SUITE = 'sign-patterns';

/** Values in [-1, 1) from a fixed seed, with a few structured columns (dead, copies). */
function randomPre(n: number, d: number, seed: number): Float32Array {
  const out = new Float32Array(n * d);
  const rand = mulberry32(seed);
  for (let i = 0; i < out.length; i++) out[i] = 2 * rand() - 1;
  if (d >= 4) {
    for (let r = 0; r < n; r++) {
      out[r * d + 1] = -1; // dead
      out[r * d + 3] = 2 * out[r * d]!; // synchronised with neuron 0
    }
  }
  return out;
}

function throughput(n: number, d: number, ms: number): string {
  return `${((n * d) / ms / 1e3).toFixed(1)} M elem/s`;
}

export async function runSignPatternsBench(engine?: Engine, opts: { quick?: boolean; save?: boolean; shapes?: [number, number][] } = {}): Promise<BenchRow[]> {
  const own = engine === undefined;
  const e = engine ?? (await Engine.create());
  const quick = opts.quick ?? false;
  const shapes: [number, number][] =
    opts.shapes ??
    (quick
      ? [
          [4096, 128],
          [10000, 256],
        ]
      : [
          [4096, 128],
          [10000, 256],
          [60000, 1024],
        ]);
  const chosen = chooseSignPackVariant(e);
  // Every other packing the adapter can run, timed on the largest shape (hash only).
  const others = (['loop', 'atomic', 'ballot'] as SignPackVariant[]).filter((v) => v !== chosen && (v !== 'ballot' || e.features.has('subgroups')));
  const rows: BenchRow[] = [];
  try {
    for (const [n, d] of shapes) {
      const largest = n === shapes[shapes.length - 1]![0];
      const x = randomPre(n, d, n + d);
      const cpuFull = await timeCase(`cpu full ${n}x${d}`, () => signPatternsCpu(x, n, d), { minSamples: 2, maxTime: 1 });
      rows.push({ case: `cpu full ${n}x${d}`, ms: cpuFull, note: throughput(n, d, cpuFull) });
      const cpuHash = await timeCase(
        `cpu hash ${n}x${d}`,
        () => {
          const w = packSignsCpu(x, n, d);
          hashPatternsCpu(w, d, n);
          fireCountCpu(w, d, n);
        },
        { minSamples: 2, maxTime: 1 },
      );
      rows.push({ case: `cpu hash ${n}x${d}`, ms: cpuHash, note: throughput(n, d, cpuHash) });

      const buf = e.upload(x, 'bench.pre');
      const gpuCases: { name: string; cofire: boolean; variant: SignPackVariant; host?: boolean; cpuMs: number }[] = [
        { name: 'full', cofire: true, variant: chosen, cpuMs: cpuFull },
        { name: 'hash', cofire: false, variant: chosen, cpuMs: cpuHash },
      ];
      if (largest) {
        gpuCases.push({ name: 'full from host', cofire: true, variant: chosen, host: true, cpuMs: cpuFull });
        for (const variant of others) gpuCases.push({ name: 'hash', cofire: false, variant, cpuMs: cpuHash });
      }
      for (const c of gpuCases) {
        const job = async (): Promise<void> => {
          const acc = new SignPatternAccumulator(e, d, { cofire: c.cofire, variant: c.variant });
          if (c.host) acc.addHost(x, n);
          else acc.addBatch(buf, n);
          await acc.result();
          acc.dispose();
        };
        await job(); // compile and warm the pool outside the timing
        const ms = await timeCase(`gpu ${c.name} ${c.variant} ${n}x${d}`, job, { minSamples: 3, maxTime: 2 });
        rows.push({
          case: `gpu ${c.name} ${n}x${d}${c.variant === chosen ? '' : ` (${c.variant})`}`,
          ms,
          speedupVsCpu: c.cpuMs / ms,
          note: `${throughput(n, d, ms)}; packing ${c.variant}${c.variant === chosen ? ' (chosen)' : ''}`,
        });
      }
      e.release(buf);
    }
    printRows(`${SUITE} on ${e.adapterName}${quick ? ' (quick)' : ''}`, rows);
    for (const r of rows) {
      if (r.speedupVsCpu !== undefined) console.log(`  ${r.case.padEnd(34)} GPU/CPU speed ratio ${r.speedupVsCpu.toFixed(2)}x  (${r.note})`);
    }
    if (opts.save ?? !quick) console.log(`saved ${saveRecord(SUITE, e, rows)}`);
    return rows;
  } finally {
    if (own) e.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runSignPatternsBench(undefined, { quick: process.argv.includes('--quick') });
}
