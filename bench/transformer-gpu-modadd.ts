// Per-pass wall-clock times of the GPU transformer passes on rib's modular-addition model
// (d 128, 4 heads × 32, d_mlp 512, 3 positions, 3830 samples; node layers ln1.0, ln2.0, unembed,
// output, last position after add_resid1), with the float64 CPU passes as the reference for
// both time and agreement. The model and data live outside the repository: pass their folder
// (default ../shared/data/rib-modadd beside the repository). Usage: tsx bench/transformer-gpu-modadd.ts [dir] [--no-f64]
// Prints the times and the largest relative differences; writes nothing.

import os from 'node:os';
import { integrationPoints } from '../src/ib/integration.js';
import { Engine } from '../src/runtime/engine.js';
import { GpuPasses } from '../src/transformer/gpu-passes.js';
import { PassesF64 } from '../src/transformer/passes-f64.js';
import type { TransformerPasses } from '../src/transformer/passes.js';
import { DEFAULT_MODADD_DIR, loadModadd, randomBasis } from './modadd-data.js';

const args = process.argv.slice(2);
const dir = args.find((a) => !a.startsWith('--')) ?? DEFAULT_MODADD_DIR;
const withF64 = !args.includes('--no-f64');

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (scale || 1));
  return worst;
}

async function main(): Promise<void> {
  const { mp, tokens, n, P } = await loadModadd(dir);
  const pts = integrationPoints('gradient', 0);
  const engine = await Engine.create();
  console.log(
    `adapter ${engine.adapterName}; ${os.cpus().length} cores, load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; N ${n}, P ${P}`,
  );
  const gpu = new GpuPasses(engine, mp, tokens, n, P, { stats: 'gpu', edges: 'gpu' });
  const cpu = withF64 ? new PassesF64(mp, tokens, n, P) : undefined;
  const dims = gpu.model.nodes.map((L) => L.width);
  // Kept directions of the next node layer: a random Ĉ with the widths a build keeps (≈ d/2 + 1).
  const rOut = dims.map((w) => Math.min(w, 64));
  const time = async <T>(label: string, f: (p: TransformerPasses) => Promise<T>): Promise<[T, T | undefined]> => {
    await engine.sync();
    let t0 = performance.now();
    const g = await f(gpu);
    const tg = performance.now() - t0;
    let c: T | undefined;
    let tc = NaN;
    if (cpu) {
      t0 = performance.now();
      c = await f(cpu);
      tc = performance.now() - t0;
    }
    console.log(
      `${label.padEnd(34)} gpu ${tg.toFixed(0).padStart(7)} ms   f64 cpu ${Number.isNaN(tc) ? '-' : tc.toFixed(0).padStart(7)} ms${cpu ? `   ×${(tc / tg).toFixed(1)}` : ''}`,
    );
    return [g, c];
  };
  const [sg, sc] = await time('node stats (centred)', (p) => p.nodeStats(true));
  if (sc)
    sg.forEach((s, i) =>
      console.log(
        `  ${gpu.model.nodes[i]!.name}: mean ${relDiff(s.mean, sc[i]!.mean).toExponential(2)}, Gram ${relDiff(s.gram, sc[i]!.gram).toExponential(2)} (max-relative)`,
      ),
    );
  for (let s = 0; s < mp.sections.length; s++) {
    const last = s + 1 === mp.sections.length && gpu.model.nodes[s + 1]!.name === 'output';
    const Chat = last ? undefined : randomBasis(dims[s + 1]!, rOut[s + 1]!, 7 + s);
    const r = last ? dims[s + 1]! : rOut[s + 1]!;
    const [mg, mc] = await time(`M′ ${gpu.model.nodes[s]!.name}->${gpu.model.nodes[s + 1]!.name} (K ${gpu.model.nodes[s + 1]!.positions * r})`, (p) =>
      p.mPrime(s, Chat, r, pts),
    );
    if (mc) console.log(`  max-relative difference ${relDiff(mg, mc).toExponential(2)}`);
    const rIn = rOut[s]!;
    const C = randomBasis(dims[s]!, rIn, 11 + s);
    const Cpinv = randomBasis(rIn, dims[s]!, 13 + s);
    const [eg, ec] = await time(`edges ${gpu.model.nodes[s]!.name}->${gpu.model.nodes[s + 1]!.name}`, (p) => p.edges(s, { C, Cpinv, rIn }, Chat, r, pts));
    if (ec) console.log(`  max-relative difference ${relDiff(eg, ec).toExponential(2)}`);
  }
  gpu.dispose();
  engine.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
