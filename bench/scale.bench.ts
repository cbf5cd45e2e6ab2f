// Scale: N synthetic datapoints through a wide ReLU MLP, streamed from an .npy file on disk, with
// the peak resident memory of the process next to the size of the data. The data are generated
// chunk by chunk into a temporary directory (never held whole); the build then runs as its staged
// steps (src/ib/staged.ts, what `ibgpu build --stage` and `ibgpu combine` run):
//
//   1. statistics: one streamed pass over all N rows (means, Grams, the ReLU co-firing Grams for
//      M'), written as a float64 partial;
//   2. bases: host float64 eigendecompositions, independent of N;
//   3. edges: a streamed pass over the first --edge-n rows (default: all N). The squared-edge
//      integrand is a per-datapoint Jacobian product, O(N · r_out · width · r_in): at width 1024 that
//      is ~10^15 multiply-adds per layer pair for N = 10^6, days on a 2-core software adapter, so
//      there the edge pass runs on a prefix and its time is extrapolated linearly in N (printed as
//      such; the pass is exactly linear in N: same work per batch).
//
//   npx tsx bench/scale.bench.ts [--n 1000000] [--width 1024] [--depth 1] [--batch 4096]
//                                [--edge-n N] [--rss-limit-mib 2048] [--keep DIR]
//
// `--quick`: N = 20,000. Exits 1 if the peak RSS exceeds --rss-limit-mib (default 2048 MiB).

import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/ib/config.js';
import { npyHeaderFor } from '../src/io/npy.js';
import { openDataSource } from '../src/ib/data-files.js';
import type { DataSource } from '../src/ib/data.js';
import type { MlpModel } from '../src/model/mlp.js';
import { combineStats, configHash, readPartial, runEdgesShard, runStatsShard, type StageContext } from '../src/ib/staged.js';
import { formatBytes, formatPlan } from '../src/pipeline/plan.js';
import { planMlp } from '../src/ib/plan.js';
import { Engine } from '../src/runtime/engine.js';
import { printRows, saveRecord, type BenchRow } from './common.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const quick = process.argv.includes('--quick');
const N = arg('n', quick ? 20_000 : 1_000_000);
const W = arg('width', 1024);
const depth = arg('depth', 1);
const edgeN = Math.min(N, arg('edge-n', N));
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
    return t / 2 ** 31 - 1;
  };
}

/** Writes N×W f32 rows in chunks: a few latent factors plus noise, so the Grams have structure. */
async function generate(path: string): Promise<number> {
  const fh = await open(path, 'w');
  try {
    await fh.write(npyHeaderFor('F32', [N, W]));
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
  const layers = widths.slice(0, -1).map((dIn, i): MlpModel['layers'][number] => {
    const dOut = widths[i + 1]!;
    const s = Math.sqrt(2 / dIn);
    return {
      name: `layers.${i}`,
      dIn,
      dOut,
      activation: i < widths.length - 2 ? 'relu' : 'identity',
      W: Float32Array.from({ length: dIn * dOut }, () => r() * s * 1.7),
      b: Float32Array.from({ length: dOut }, () => 0.05 * r()),
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
const mib = (b: number) => formatBytes(b);
const duration = (ms: number) =>
  ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 7_200_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 3_600_000).toFixed(1)} h`;
const peakRss = () => process.resourceUsage().maxRSS * 1024;
try {
  console.log(
    formatPlan(
      planMlp(model, config, { n: data.n, d: data.d, bytesPerRow: data.bytesPerRow }, undefined, { edgeChunkRows: engine.info.isSoftware ? 256 : 32 }),
      `plan (${engine.adapterName})`,
    ),
  );
  const t1 = performance.now();
  const progress = (() => {
    let last = 0;
    return (stage: string, done: number, total: number) => {
      const now = performance.now();
      if (now - last > 30_000 || done === total) {
        last = now;
        console.log(`  ${stage} ${done}/${total} (${((now - t1) / 1000).toFixed(0)} s, rss ${mib(process.memoryUsage().rss)})`);
      }
    };
  })();
  const ctx: StageContext = { engine, model, data, config, configPath: 'bench', hash: configHash(config, model), progress };
  const parts = join(dir, 'parts');
  await mkdir(parts, { recursive: true });

  let t = performance.now();
  await runStatsShard(ctx, { index: 0, count: 1 }, join(parts, 'stats.safetensors'));
  const tStats = performance.now() - t;
  const rssStats = peakRss();
  console.log(`statistics: ${N} rows in ${(tStats / 1000).toFixed(1)} s; peak RSS so far ${mib(rssStats)}`);

  t = performance.now();
  const { bases } = await combineStats(model, [await readPartial(join(parts, 'stats.safetensors'), 'stats')], parts);
  const tBases = performance.now() - t;
  for (const [nm, b] of bases) console.log(`  ${nm}: dim ${b.dim}, kept ${b.r}`);

  // The edge pass over the first edgeN rows: a view of the same streamed source.
  const prefix: DataSource = { ...data, n: edgeN, description: `${data.description}, first ${edgeN} rows`, readRows: (s0, c) => data.readRows(s0, c) };
  t = performance.now();
  await runEdgesShard({ ...ctx, data: prefix }, bases, { index: 0, count: 1 }, join(parts, 'edges.safetensors'));
  const tEdges = performance.now() - t;
  const tEdgesN = (tEdges * N) / edgeN;
  const peak = peakRss();
  const total = tStats + tBases + tEdgesN;
  const extrapolated = edgeN < N;
  console.log(
    `\nN = ${N}, width ${W}, depth ${depth}, batch ${batch}: statistics ${(tStats / 1000).toFixed(1)} s, bases ${(tBases / 1000).toFixed(1)} s, ` +
      `edges ${(tEdges / 1000).toFixed(1)} s on ${edgeN} rows${extrapolated ? ` (≈ ${duration(tEdgesN)} at N, extrapolated)` : ''}`,
  );
  console.log(`data on disk ${mib(bytes)}; peak RSS ${mib(peak)} (after statistics ${mib(rssStats)}; limit ${mib(rssLimit)})`);
  rows.push({
    case: `N=${N} width=${W} depth=${depth} batch=${batch}: statistics pass (npy streamed)`,
    ms: tStats,
    note: `peak RSS ${mib(rssStats)} for ${mib(bytes)} of data`,
  });
  rows.push({ case: `N=${N} width=${W} depth=${depth}: bases (host float64)`, ms: tBases });
  rows.push({
    case: `N=${N} width=${W} depth=${depth}: edge pass${extrapolated ? ` (measured on ${edgeN} rows, extrapolated)` : ''}`,
    ms: tEdgesN,
    note: extrapolated ? `${(tEdges / 1000).toFixed(1)} s for ${edgeN} rows, scaled by N/${edgeN} = ${(N / edgeN).toFixed(1)}` : `peak RSS ${mib(peak)}`,
  });
  rows.push({
    case: `N=${N} width=${W} depth=${depth}: whole build${extrapolated ? ' (edges extrapolated)' : ''}`,
    ms: total,
    note: `peak RSS ${mib(peak)} for ${mib(bytes)} of data (limit ${mib(rssLimit)})`,
  });
  printRows('scale', rows);
  console.log(saveRecord('scale', engine, rows));
  if (peak > rssLimit) {
    console.error(`peak RSS ${mib(peak)} exceeds the limit ${mib(rssLimit)}`);
    process.exitCode = 1;
  }
} finally {
  engine.dispose();
  await data.close();
  if (keepIdx < 0) await rm(dir, { recursive: true, force: true });
}
