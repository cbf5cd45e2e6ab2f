// `ibgpu report <result-dir>`: the degeneracy and modularity summary of a build.
//
// Inputs come from the result directory: degeneracy.json (written by `ibgpu build` when
// config.degeneracy, the default), edges.safetensors and manifest.json. Without a GPU pass:
//   - modules are re-clustered from the stored edges whenever a clustering option is given (or
//     modules.json is missing), and modules.json / graph.json are rewritten atomically;
// with the model and data named by the build's config (paths relative to manifest.config_path):
//   --recompute      reruns the degeneracy statistics on the GPU (e.g. for a degeneracy: false build);
//   --gauss-newton   adds the ground truth: the Gauss–Newton nullity in float64 on the CPU
//                    (small models only), stored in degeneracy.json.

import { dirname, resolve } from 'node:path';
import { IbgpuError } from '../errors.js';
import type { Backend } from '../gpu/acquire.js';
import { parseConfig, type BuildConfig } from '../ib/config.js';
import { planNodes } from '../ib/pipeline.js';
import type { MlpModel } from '../model/mlp.js';
import type { DataSource } from '../ib/data.js';
import { openSafetensors } from '../io/safetensors.js';
import { gaussNewtonNullity, parameterCount } from '../cpu/gauss-newton.js';
import { modularityOptions, parseModularityConfig } from '../report/config.js';
import type { DegeneracyReport } from '../report/degeneracy.js';
import { formatDegeneracy, formatModules } from '../report/format.js';
import { degeneracyFromBuild, type BasisSummary } from '../ib/from-build.js';
import { annotateGraph, EDGE_NORMS, modules, type EdgeNorm, type ModularityOptions } from '../report/modularity.js';
import { readEdges, readResultDir, resultGraphLayers, writeResultJson, type Manifest } from '../report/result-dir.js';

export interface ReportCliOptions {
  gamma?: string;
  norm?: string;
  epsilon?: string;
  quantile?: string;
  seed?: string;
  iterations?: string;
  /** commander's --no-output. */
  output?: boolean;
  /** commander's --no-write. */
  write?: boolean;
  json?: boolean;
  near?: string;
  recompute?: boolean;
  gaussNewton?: boolean;
  gnMaxParams?: string;
  backend?: Backend;
  quiet?: boolean;
}

function num(name: string, v: string | undefined, ok: (x: number) => boolean, what: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x) || !ok(x)) throw new IbgpuError('BAD_CONFIG', `--${name} must be ${what}, got '${v}'`);
  return x;
}

/** Clustering options: the build's config.modularity, overridden by the command line. */
function clusterOptions(manifest: Manifest, o: ReportCliOptions): { opts: ModularityOptions; changed: boolean } {
  const base = manifest.config['modularity'] !== undefined ? modularityOptions(parseModularityConfig(manifest.config['modularity'])) : {};
  const opts: ModularityOptions = { ...base };
  let changed = false;
  const set = <K extends keyof ModularityOptions>(k: K, v: ModularityOptions[K] | undefined) => {
    if (v === undefined) return;
    opts[k] = v;
    changed = true;
  };
  set(
    'gamma',
    num('gamma', o.gamma, (x) => x >= 0, 'a number >= 0'),
  );
  set(
    'seed',
    num('seed', o.seed, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer'),
  );
  set(
    'iterations',
    num('iterations', o.iterations, (x) => Number.isInteger(x) && x >= 1, 'a positive integer'),
  );
  set(
    'epsilon',
    num('epsilon', o.epsilon, (x) => x > 0, 'a positive number'),
  );
  set(
    'quantile',
    num('quantile', o.quantile, (x) => x >= 0 && x <= 1, 'a number in [0, 1]'),
  );
  if (o.norm !== undefined) {
    if (!(EDGE_NORMS as readonly string[]).includes(o.norm))
      throw new IbgpuError('BAD_CONFIG', `--norm must be one of ${EDGE_NORMS.join(', ')}, got '${o.norm}'`);
    set('norm', o.norm as EdgeNorm);
  }
  if (o.output === false) set('includeOutput', false);
  if ((opts.epsilon !== undefined || opts.quantile !== undefined) && (opts.norm ?? 'sqrt') !== 'log') {
    if (o.epsilon !== undefined || o.quantile !== undefined) opts.norm = 'log';
  }
  return { opts, changed };
}

/** The directory the build's config paths are relative to. */
function configBase(manifest: Manifest, dir: string): string {
  return manifest.config_path ? dirname(resolve(manifest.config_path)) : resolve(dir);
}

/** Whether the result came from a transformer build (its manifest says so, else its arch file does). */
async function isTransformerResult(manifest: Manifest, dir: string): Promise<boolean> {
  if (manifest['model'] === 'transformer') return true;
  const { isTransformerBuild } = await import('../transformer/build.js');
  return isTransformerBuild(parseConfig(manifest.config), configBase(manifest, dir)).catch(() => false);
}

/** The build's config, model and data, resolved against the config file's directory (MLP results). */
async function loadBuildInputs(manifest: Manifest, dir: string): Promise<{ config: BuildConfig; model: MlpModel; data: DataSource }> {
  const { loadModel, loadData } = await import('../build/load.js');
  const base = configBase(manifest, dir);
  const config = parseConfig(manifest.config);
  return { config, model: await loadModel(config, base), data: await loadData(config, base) };
}

/** `--recompute` on a transformer result: the MLP blocks' report (src/transformer/degeneracy.ts). */
async function recomputeTransformerDegeneracy(dir: string, manifest: Manifest, o: ReportCliOptions, log: (m: string) => void): Promise<DegeneracyReport> {
  const { degeneracyFromFiles } = await import('../transformer/degeneracy-files.js');
  return degeneracyFromFiles(parseConfig(manifest.config), configBase(manifest, dir), { ...(o.backend ? { backend: o.backend } : {}), log });
}

/** Basis summaries from basis.safetensors (k = length of D, M' when stored) and the manifest. */
async function basisSummaries(dir: string, manifest: Manifest): Promise<Map<string, BasisSummary>> {
  const st = await openSafetensors(resolve(dir, 'basis.safetensors'));
  try {
    const out = new Map<string, BasisSummary>();
    for (const [name, l] of Object.entries(manifest.layers)) {
      const D = await st.readF64(`${name}/D`);
      const ge = (await st.readF64(`${name}/gram_eigenvalues`)).data;
      const mp = st.has(`${name}/M_prime`) ? (await st.readF64(`${name}/M_prime`)).data : undefined;
      out.set(name, {
        k: D.shape[0]!,
        r: l.rib_dim,
        dim: l.orig_dim,
        dropped: l.dropped,
        gramEigenvalues: ge,
        centred: l.centred,
        ...(mp ? { Mprime: mp } : {}),
      });
    }
    return out;
  } finally {
    await st.close();
  }
}

async function recomputeDegeneracy(dir: string, manifest: Manifest, o: ReportCliOptions, log: (m: string) => void): Promise<DegeneracyReport> {
  const { config, model, data } = await loadBuildInputs(manifest, dir);
  const plan = planNodes(model, config.node_layers);
  const sections = plan.slice(0, -1).map((p, j) => ({ from: p.name, to: plan[j + 1]!.name, layer: p.act }));
  const bases = await basisSummaries(dir, manifest);
  const { Engine } = await import('../runtime/engine.js');
  const { collectDegeneracyStats } = await import('../ib/degeneracy-gpu.js');
  const { makeProgress } = await import('./progress.js');
  const engine = await Engine.create(o.backend ? { backend: o.backend } : {});
  try {
    log(`degeneracy statistics: ${data.n} datapoints on ${engine.adapterName}`);
    const progress = makeProgress(process.stderr, o.quiet === true);
    const stats = await collectDegeneracyStats(
      engine,
      model,
      data,
      sections.map((s) => s.layer),
      config.batch_size,
      progress,
    );
    progress.end();
    return degeneracyFromBuild(model, config, sections, bases, stats);
  } finally {
    engine.dispose();
  }
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export async function reportCommand(dirArg: string, o: ReportCliOptions): Promise<number> {
  const dir = resolve(dirArg);
  const log = (m: string) => {
    if (!o.quiet) console.error(m);
  };
  const contents = await readResultDir(dir);
  const { manifest } = contents;
  const write = o.write !== false;
  let deg = contents.degeneracy;
  let degChanged = false;
  const transformer = o.recompute || o.gaussNewton ? await isTransformerResult(manifest, dir) : false;
  if (o.gaussNewton && transformer) {
    throw new IbgpuError(
      'BAD_CONFIG',
      '--gauss-newton computes the Gauss–Newton nullity of a whole MLP; for transformer results it is not available',
      'drop --gauss-newton: `ibgpu report DIR --recompute` measures the MLP blocks of a transformer (README "Degeneracy report")',
    );
  }
  if (o.recompute) {
    deg = transformer ? await recomputeTransformerDegeneracy(dir, manifest, o, log) : await recomputeDegeneracy(dir, manifest, o, log);
    degChanged = true;
  }
  if (o.gaussNewton) {
    if (!deg) throw new IbgpuError('BAD_CONFIG', 'the ground truth is stored next to a degeneracy report, and this result has none', 'add --recompute');
    const { model, data } = await loadBuildInputs(manifest, dir);
    const P = parameterCount(model);
    const maxP = num('gn-max-params', o.gnMaxParams, (x) => x >= 1, 'a positive number') ?? 4000;
    if (P > maxP) {
      throw new IbgpuError(
        'LIMIT_EXCEEDED',
        `the Gauss–Newton ground truth needs an f64 ${P}×${P} eigendecomposition (over --gn-max-params ${maxP})`,
        'it is meant for small networks; raise --gn-max-params to force it',
      );
    }
    const { gaussNewtonMethod, gaussNewtonFlops, measureFlopRate, largestGap, CLEAR_GAP } = await import('../cpu/gauss-newton.js');
    const nOut = model.layers[model.layers.length - 1]!.dOut;
    const method = gaussNewtonMethod(P, data.n * nOut);
    const flops = gaussNewtonFlops(model, data.n, method);
    const rate = measureFlopRate();
    log(
      `Gauss–Newton nullity: ${P} parameters, ${data.n} datapoints (float64 ${method === 'svd' ? 'QR + Jacobi SVD of the stacked Jacobian' : 'eigenvalues of JᵀJ'}, CPU, one thread)`,
    );
    log(`  about ${(flops / 1e9).toFixed(1)} GFLOP; estimate ${formatDuration(flops / rate)} at the ${(rate / 1e9).toFixed(2)} GFLOP/s this machine gives now`);
    const { makeProgress } = await import('./progress.js');
    const progress = makeProgress(process.stderr, o.quiet === true || o.json === true);
    const t0 = performance.now();
    const x = await data.readRows(0, data.n);
    const gn = gaussNewtonNullity(model, x, data.n, { method, progress: (st, d, t) => progress(`gn-${st}`, d, t) });
    progress.end();
    log(`  done in ${formatDuration((performance.now() - t0) / 1000)}`);
    const lg = largestGap(gn.singularValues);
    const clear = gn.gapAtCut >= CLEAR_GAP;
    if (!clear) {
      console.error(
        `ibgpu report: warning: the Gauss–Newton spectrum has no clear gap at the cut (σ_r/σ_r+1 = ${gn.gapAtCut.toPrecision(3)} < ${CLEAR_GAP}); the nullity ${gn.nullity} is ill-defined and moves with the tolerance (largest gap ×${Number.isFinite(lg.ratio) ? lg.ratio.toPrecision(3) : '∞'} would give ${gn.params - lg.rank})`,
      );
    }
    deg = {
      ...deg,
      ground_truth: {
        gauss_newton_nullity: gn.nullity,
        rank: gn.rank,
        params: gn.params,
        method: gn.method,
        rtol: gn.rtol,
        gap_at_cut: gn.gapAtCut,
        clear_gap: clear,
        largest_gap: { ratio: lg.ratio, nullity: gn.params - lg.rank },
      },
    };
    degChanged = true;
  }
  if (deg && degChanged && write) await writeResultJson(dir, 'degeneracy.json', deg);

  const { opts, changed } = clusterOptions(manifest, o);
  let mods = contents.modules;
  if (changed || !mods) {
    const edges = await readEdges(dir).catch((e: unknown) => {
      if (mods || !(e instanceof IbgpuError)) throw e;
      return undefined;
    });
    if (edges && edges.length) {
      mods = modules(resultGraphLayers(manifest, edges), edges, opts);
      if (write) {
        await writeResultJson(dir, 'modules.json', mods);
        if (contents.graph) await writeResultJson(dir, 'graph.json', annotateGraph(contents.graph, mods));
      }
    }
  }

  const { readAblations } = await import('../ablate/from-result.js');
  const ablations = await readAblations(dir);
  if (o.json) {
    console.log(
      JSON.stringify(
        {
          result: dir,
          adapter: manifest.adapter,
          dataset_size: manifest.dataset_size,
          node_layers: manifest.config.node_layers,
          timings_ms: manifest['timings_ms'] ?? null,
          degeneracy: deg ?? null,
          modules: mods ?? null,
          ablations: ablations ?? null,
        },
        null,
        2,
      ),
    );
    return 0;
  }
  const near = num('near', o.near, (x) => x >= 0, 'a number >= 0 (a fraction of the datapoints when < 1, else a count)');
  const lines: string[] = [];
  lines.push(`ibgpu report: ${dir}`);
  lines.push(`  ${manifest.dataset_size} datapoints (${manifest.data}); node layers ${manifest.config.node_layers.join(', ')}`);
  lines.push('');
  if (deg) {
    const nearMax = near === undefined ? undefined : near < 1 ? Math.max(1, Math.floor(near * deg.dataset_size)) : Math.floor(near);
    lines.push(formatDegeneracy(deg, nearMax !== undefined ? { nearMax } : {}));
  } else {
    lines.push('Degeneracy: no degeneracy.json (the build ran with "degeneracy": false); add --recompute to measure it now');
  }
  lines.push('');
  lines.push(mods ? formatModules(mods) : 'Modules: no edges in this result (the build ran with "calculate_edges": false)');
  if (ablations) {
    const { formatAblationsFile } = await import('../ablate/format.js');
    lines.push('', formatAblationsFile(ablations));
  }
  console.log(lines.join('\n'));
  return 0;
}
