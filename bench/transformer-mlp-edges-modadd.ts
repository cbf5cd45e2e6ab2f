// Squared edges of rib's modular-addition model's MLP section (ln2.0 → unembed: copy, W_in, ReLU,
// W_out, residual add) on the GPU two ways, one after the other in one process: the per-sample VJP
// path (`generic: true`, src/transformer/gpu-edges.ts) and the MLP edge kernels
// (src/transformer/gpu-edges-local.ts), with their largest difference. Random bases of the widths
// a build keeps (64 directions on both sides, as bench/transformer-gpu-modadd.ts). The model and
// data live outside the repository: pass their folder (default ../shared/data/rib-modadd beside the repository).
// Usage: tsx bench/transformer-mlp-edges-modadd.ts [dir] [--no-generic]. Writes nothing.

import os from 'node:os';
import { integrationPoints } from '../src/ib/integration.js';
import { Engine } from '../src/runtime/engine.js';
import { edgesSquaredGpu } from '../src/transformer/gpu-edges.js';
import { GpuModel } from '../src/transformer/gpu-model.js';
import { DEFAULT_MODADD_DIR, loadModadd, randomBasis } from './modadd-data.js';

const args = process.argv.slice(2);
const dir = args.find((a) => !a.startsWith('--')) ?? DEFAULT_MODADD_DIR;
const withGeneric = !args.includes('--no-generic');

async function main(): Promise<void> {
  const { mp, tokens, n, P } = await loadModadd(dir);
  const engine = await Engine.create();
  const gm = new GpuModel(engine, mp, P);
  const s = 1;
  const dIn = gm.nodes[s]!.width;
  const dOut = gm.nodes[s + 1]!.width;
  const rIn = Math.min(dIn, 64);
  const rOut = Math.min(dOut, 64);
  const opts = {
    C: randomBasis(dIn, rIn, 12),
    Cpinv: randomBasis(rIn, dIn, 14),
    rIn,
    Chat: randomBasis(dOut, rOut, 8),
    rOut,
    points: integrationPoints('gradient', 0),
  };
  const load = (): string =>
    os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  console.log(
    `adapter ${engine.adapterName}; ${os.cpus().length} cores; N ${n}, P ${P}; section ${gm.nodes[s]!.name}->${gm.nodes[s + 1]!.name}, ${gm.nodes[s]!.positions} position(s), d_in ${dIn}, r_in ${rIn}, r_out ${rOut}`,
  );
  const time = async (label: string, generic: boolean): Promise<Float64Array> => {
    await engine.sync();
    const l0 = load();
    const t0 = performance.now();
    const E = await edgesSquaredGpu(engine, gm, s, tokens, n, { ...opts, generic });
    console.log(`${label.padEnd(28)} ${(performance.now() - t0).toFixed(0).padStart(7)} ms   (load before ${l0}, after ${load()})`);
    return E;
  };
  await time('MLP edge kernels (warm-up)', false);
  const local = await time('MLP edge kernels', false);
  if (withGeneric) {
    const generic = await time('per-sample VJPs', true);
    let scale = 0;
    let worst = 0;
    for (let i = 0; i < generic.length; i++) scale = Math.max(scale, Math.abs(generic[i]!));
    for (let i = 0; i < generic.length; i++) worst = Math.max(worst, Math.abs(local[i]! - generic[i]!));
    console.log(`max |kernels − VJPs| / max |VJPs| = ${(worst / scale).toExponential(2)}`);
  }
  gm.dispose();
  engine.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
