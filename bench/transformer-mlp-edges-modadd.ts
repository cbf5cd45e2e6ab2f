// Squared edges of rib's modular-addition model's MLP section (ln2.0 → unembed: copy, W_in, ReLU,
// W_out, residual add) on the GPU two ways, one after the other in one process: the per-sample VJP
// path (`generic: true`, src/transformer/gpu-edges.ts) and the MLP edge kernels
// (src/transformer/gpu-edges-local.ts), with their largest difference. Random bases of the widths
// a build keeps (64 directions on both sides, as bench/transformer-gpu-modadd.ts). The model and
// data live outside the repository: pass their folder (default /work/shared/data/rib-modadd).
// Usage: tsx bench/transformer-mlp-edges-modadd.ts [dir] [--no-generic]. Writes nothing.

import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { integrationPoints } from '../src/ib/integration.js';
import { loadNpy } from '../src/io/npy.js';
import { compileTransformer } from '../src/model/transformer/compile.js';
import { parseTransformerConfig } from '../src/model/transformer/config.js';
import { loadTransformer } from '../src/model/transformer/weights.js';
import { Engine } from '../src/runtime/engine.js';
import { edgesSquaredGpu } from '../src/transformer/gpu-edges.js';
import { GpuModel } from '../src/transformer/gpu-model.js';

const args = process.argv.slice(2);
const dir = args.find((a) => !a.startsWith('--')) ?? '/work/shared/data/rib-modadd';
const withGeneric = !args.includes('--no-generic');

function randomBasis(rows: number, cols: number, seed: number): Float64Array {
  let s = seed >>> 0;
  return Float64Array.from({ length: rows * cols }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) / Math.sqrt(rows);
  });
}

async function main(): Promise<void> {
  const config = parseTransformerConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), 'modadd config');
  const model = await loadTransformer(join(dir, 'weights.safetensors'), config);
  const inputs = await loadNpy(join(dir, 'inputs.npy'));
  const n = inputs.shape[0]!;
  const P = inputs.shape[1]!;
  const tokens = Int32Array.from(inputs.data as BigInt64Array, (v) => Number(v));
  const mp = compileTransformer(model, ['ln1.0', 'ln2.0', 'unembed', 'output'], { positions: P, lastPosModuleType: 'add_resid1' });
  const engine = await Engine.create();
  const gm = new GpuModel(engine, mp, P);
  const s = 1;
  const dIn = gm.nodes[s]!.width;
  const dOut = gm.nodes[s + 1]!.width;
  const rIn = Math.min(dIn, 64);
  const rOut = Math.min(dOut, 64);
  const opts = { C: randomBasis(dIn, rIn, 12), Cpinv: randomBasis(rIn, dIn, 14), rIn, Chat: randomBasis(dOut, rOut, 8), rOut, points: integrationPoints('gradient', 0) };
  const load = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`adapter ${engine.adapterName}; ${os.cpus().length} cores; N ${n}, P ${P}; section ${gm.nodes[s]!.name}->${gm.nodes[s + 1]!.name}, ${gm.nodes[s]!.positions} position(s), d_in ${dIn}, r_in ${rIn}, r_out ${rOut}`);
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
