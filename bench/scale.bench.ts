// Scale: N synthetic datapoints through a wide ReLU MLP, streamed from an .npy file on disk, with
// the peak resident memory of the process next to the size of the data. The data are generated
// chunk by chunk into a temporary directory (never held whole), then `ibgpu build`'s pipeline runs
// on a streamed .npy source (src/ib/data-files.ts).
//
//   npx tsx bench/scale.bench.ts [--n 1000000] [--width 1024] [--depth 2] [--batch 4096]
//                                [--rss-limit-mib 2048] [--keep DIR]
//
// The default N = 10^6 at width 1024 is 4 GiB of f32 input and ~10^13 flops of Grams per pass:
// hours on the 2-core software adapter (llvmpipe). `--quick` runs N = 20,000 at width 1024 and
// extrapolates the streamed passes linearly in N (the bases stage does not depend on N).
// Exits 1 if the peak RSS exceeds --rss-limit-mib (default 2048 MiB: batch + model + d² statistics).

import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/ib/config.js';
import { openDataSource } from '../src/ib/data-files.js';
import type { MlpModel } from '../src/ib/model.js';
import { buildInteractionBasis } from '../src/ib/pipeline.js';
import { formatBytes, formatPlan, planBuild } from '../src/ib/plan.js';
import { Engine } from '../src/runtime/engine.js';
import { printRows, saveRecord, type BenchRow } from './common.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const quick = process.argv.includes('--quick');
const N = arg('n', quick ? 20_000 : 1_000_000);
const W = arg('width', 1024);
const depth = arg('depth', 2);
const batch = arg('batch', 4096);
const rssLimit = arg('rss-limit-mib', 2048) * 2 ** 20;
const keepIdx = process.argv.indexOf('--keep');

/** Deterministic xorshift128+ → uniform in [-1, 1). */
function rng(seed: number): () => number {
  let a = seed >>> 0 || 1;
  let b = 0x9e3779b9;
  return () => {
    let t = a ^ (a << 11);
    a = b;
    b = b ^ (b >>> 19) ^ (t ^ (t >>> 8));
    t = b >>> 0;
    return (t / 2 ** 31) - 1;
  };
}

/** The .npy header numpy writes for a C-order little-endian f32 array of `shape`. */
function npyHeaderF32(shape: number[]): Uint8Array {
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  dict += ' '.repeat(Math.max(0, 21 - String(shape[0]).length));
  const pad = 64 - ((10 + dict.length + 1) % 64);
  const text = `${dict}${' '.repeat(pad)}\n`;
  const out = new Uint8Array(10 + text.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, text.length, true);
  for (let k = 0; k < text.length; k++) out[10 + k] = text.charCodeAt(k);
  return out;
}

/** Writes N×W f32 rows in chunks: a few latent factors plus noise, so the Grams have structure. */
async function generate(path: string): Promise<number> {
  const fh = await open(path, 'w');
  try {
    await fh.write(npyHeaderF32([N, W]));
    const r = rng(1);
    const k = 16;
    const basis = Float32Array.from({ length: k * W }, () => r());
    const chunk = 8192;
    const buf = new Float32Array(chunk * W);
    for (let s = 0; s < N; s += chunk) {
      const rows = Math.min(chunk, N - s);
      for (let i = 0; i < rows; i++) {
        const z = Array.from({ length: k }, () => r());
        for (let j = 0; j < W; j++) {
          let v = 0.1 * r();
          for (let q = 0; q < k; q++) v += z[q]! * basis[q * W + j]!;
          buf[i * W + j] = v;
        }
      }
      await fh.write(new Uint8Array(buf.buffer, 0, rows * W * 4));
    }
  } finally {
    await fh.close();
  }
  return N * W * 4;
}

function randomMlp(): MlpModel {
  const r = rng(7);
  const widths = [W, ...Array.from({ length: depth }, () => W), 10];
  const layers = widths.slice(0, -1).map((dIn, i) => {
    const dOut = widths[i + 1]!;
    const s = Math.sqrt(2 / dIn);
    return {
      name: `layers.${i}`, dIn, dOut, activation: (i < widths.length - 2 ? 'relu' : 'identity') as 'relu' | 'identity',
      W: Float32Array.from({ length: dIn * dOut }, () => r() * s * 1.7), b: Float32Array.from({ length: dOut }, () => 0.05 * r()),
    };
  });
  return { layers };
}

const dir = keepIdx > 0 ? process.argv[keepIdx + 1]! : await mkdtemp(join(tmpdir(), 'ibgpu-scale-bench-'));
await mkdir(dir, { recursive: true });
const path = join(dir, `x-${N}x${W}.npy`);
const t0 = performance.now();
const bytes = await generate(path);
const tGen = performance.now() - t0;
console.log(`generated ${path}: ${formatBytes(bytes)} in ${(tGen / 1000).toFixed(1)} s`);

const model = randomMlp();
const nodeLayers = [...model.layers.map((l) => l.name), 'output'];
const config = parseConfig({ node_layers: nodeLayers, batch_size: batch });
const data = await openDataSource({ type: 'npy', path }, dir);
const engine = await Engine.create();
const rows: BenchRow[] = [];
try {
  console.log(formatPlan(planBuild(model, config, { n: data.n, d: data.d, bytesPerRow: data.bytesPerRow }, undefined, { edgeChunkRows: engine.info.isSoftware ? 256 : 32 }), `plan (${engine.adapterName})`));
  const rssBefore = process.memoryUsage().rss;
  const t1 = performance.now();
  const res = await buildInteractionBasis(engine, model, data, config, {
    logger: { info: (m) => console.log(m) },
    progress: (() => {
      let last = 0;
      return (stage: string, done: number, total: number) => {
        const now = performance.now();
        if (now - last > 10_000 || done === total) { last = now; console.log(`  ${stage} ${done}/${total} (${((now - t1) / 1000).toFixed(0)} s, rss ${formatBytes(process.memoryUsage().rss)})`); }
      };
    })(),
  });
  const total = performance.now() - t1;
  const peak = process.resourceUsage().maxRSS * 1024;
  const streamed = (res.timings['stats'] ?? 0) + (res.timings['edges'] ?? 0);
  const extrapolated = quick ? (streamed * 1_000_000) / N + (res.timings['basis'] ?? 0) : undefined;
  console.log(`\nN = ${N}, width ${W}, depth ${depth}, batch ${batch}: ${(total / 1000).toFixed(1)} s (${Object.entries(res.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')})`);
  console.log(`data on disk ${formatBytes(bytes)}; RSS before the build ${formatBytes(rssBefore)}; peak RSS ${formatBytes(peak)} (limit ${formatBytes(rssLimit)})`);
  for (const [nm, b] of res.bases) console.log(`  ${nm}: dim ${b.dim}, kept ${b.r}`);
  if (extrapolated !== undefined) console.log(`extrapolated to N = 10^6 (streamed passes linear in N): ${(extrapolated / 1000 / 60).toFixed(1)} min`);
  rows.push({
    case: `N=${N} width=${W} depth=${depth} batch=${batch} (npy streamed)`, ms: total,
    note: `peak RSS ${formatBytes(peak)} for ${formatBytes(bytes)} of data; ${Object.entries(res.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')}${extrapolated !== undefined ? `; ≈${(extrapolated / 60000).toFixed(0)} min at N=10^6 (extrapolated)` : ''}`,
  });
  printRows('scale', rows);
  console.log(saveRecord('scale', engine, rows));
  if (peak > rssLimit) {
    console.error(`peak RSS ${formatBytes(peak)} exceeds the limit ${formatBytes(rssLimit)}`);
    process.exitCode = 1;
  }
} finally {
  engine.dispose();
  await data.close();
  if (keepIdx < 0) await rm(dir, { recursive: true, force: true });
}
