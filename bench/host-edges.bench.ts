// The MNIST build's edge stage on each path: the GPU pass (edges_squared_delta on the adapter) and
// the host float64 pass (src/host/edges.ts) on 1 and 2 threads, with rib's weights when
// ../shared/data/rib-mnist-mlp is present (else the shipped example), 10k digits, batch 1000,
// rib_compat, centred jacobian basis (the vs-rib 'mnist' job). Each build is warm (one warm-up
// build first), the paths interleaved so that a busy host slows each alike. Prints the stage
// times, the largest difference between the paths' E relative to each matrix's maximum, and the
// host pass's rank-1 updates per row. Prints only; records nothing.
//   npx tsx bench/host-edges.bench.ts [--reps 3]

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMnistDigits } from '../src/data/mnist.js';
import { parseConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import { modelFromTensors, parseArch, type MlpModel } from '../src/model/mlp.js';
import { buildInteractionBasis, edgePairOf, planNodes, type IbResult } from '../src/ib/pipeline.js';
import { computeEdgesHost } from '../src/host/edges.js';
import { integrationPoints } from '../src/ib/integration.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { Engine } from '../src/runtime/engine.js';
import { loadavg } from 'node:os';
import { RIB_MNIST_BUILD } from './common.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');

async function loadModel(path: string): Promise<MlpModel> {
  const arch = parseArch({
    type: 'mlp',
    weight_layout: 'in_out',
    layers: [0, 1, 2].map((i) => ({ name: `layers.${i}`, in: [784, 100, 100][i], out: [100, 100, 10][i], activation: i < 2 ? 'relu' : 'identity' })),
  });
  const st = await openSafetensors(path);
  try {
    return await modelFromTensors(arch, (n) => st.readF32(n));
  } finally {
    await st.close();
  }
}

function maxRelDiff(a: IbResult, b: IbResult): number {
  let worst = 0;
  for (const [k, e] of a.edges) {
    const f = b.edges.get(k)!.data;
    let m = 0;
    let d = 0;
    for (let t = 0; t < e.data.length; t++) {
      m = Math.max(m, Math.abs(e.data[t]!));
      d = Math.max(d, Math.abs(e.data[t]! - f[t]!));
    }
    worst = Math.max(worst, m > 0 ? d / m : d);
  }
  return worst;
}

const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 3;
const ribWeights = resolve(repo, '..', 'shared', 'data', 'rib-mnist-mlp', 'weights.safetensors');
const modelPath = existsSync(ribWeights) ? ribWeights : join(repo, 'examples', 'mnist-mlp', 'model.safetensors');
const model = await loadModel(modelPath);
const digits = await loadMnistDigits({ count: 10000 });
const data = arraySource(digits.images, digits.n, 784);
const base = RIB_MNIST_BUILD;
const engine = await Engine.create();
console.log(
  `model ${modelPath}; adapter ${engine.adapterName}; load average ${loadavg()
    .map((v) => v.toFixed(2))
    .join(' ')}`,
);
try {
  const cases: { label: string; path: 'gpu' | 'host'; threads?: number }[] = [
    { label: 'gpu', path: 'gpu' },
    { label: 'host 1 thread', path: 'host', threads: 1 },
    { label: 'host 2 threads', path: 'host', threads: 2 },
  ];
  const results = new Map<string, IbResult>();
  const runs = new Map<string, Record<string, number>[]>(cases.map((c) => [c.label, []]));
  const configOf = (c: (typeof cases)[number]) => parseConfig({ ...base, stage_paths: { edges: c.path } });
  const optsOf = (c: (typeof cases)[number]) => (c.threads !== undefined ? { edgeThreads: c.threads } : {});
  for (const c of cases) await buildInteractionBasis(engine, model, data, configOf(c), optsOf(c)); // warm-up
  // Interleaved, so that a busy host slows every path alike.
  for (let i = 0; i < reps; i++) {
    for (const c of cases) {
      const r = await buildInteractionBasis(engine, model, data, configOf(c), optsOf(c));
      runs.get(c.label)!.push(r.timings);
      results.set(c.label, r);
    }
  }
  for (const c of cases) {
    const t = runs.get(c.label)!;
    const med = (k: string): number => t.map((x) => x[k] ?? 0).sort((a, b) => a - b)[Math.floor(t.length / 2)]!;
    console.log(
      `${c.label.padEnd(16)} stats ${med('stats').toFixed(0)} ms, basis ${med('basis').toFixed(0)} ms, edges ${med('edges').toFixed(0)} ms (median of ${reps}; edges ${t.map((x) => (x['edges'] ?? 0).toFixed(0)).join(', ')})`,
    );
  }
  console.log(
    `load average after: ${loadavg()
      .map((v) => v.toFixed(2))
      .join(' ')}`,
  );
  console.log(`E: host vs gpu, max |ΔE| / max |E| per pair, worst: ${maxRelDiff(results.get('gpu')!, results.get('host 1 thread')!).toExponential(2)}`);
  console.log(`E: host 1 vs 2 threads: ${maxRelDiff(results.get('host 1 thread')!, results.get('host 2 threads')!)}`);
  // Rank-1 updates per row of the host pass (sign-pattern order within each batch).
  const r = results.get('host 1 thread')!;
  const plan = planNodes(model, base.node_layers);
  const pairs = plan.slice(0, -1).map((_p, j) => edgePairOf(model, plan, j, r.bases, 'jacobian'));
  const counts = new Map<string, { rows: number; updates: number }>();
  await computeEdgesHost(model, data, pairs, 1000, integrationPoints('gradient', 0), undefined, { threads: 1, counts });
  for (const [k, v] of counts) console.log(`${k}: ${(v.updates / v.rows).toFixed(1)} rank-1 updates per row`);
} finally {
  engine.dispose();
}
