// `ibgpu build [config.json]`: load model and data, build the Interaction Basis, write results.

import type { Backend } from '../gpu/acquire.js';
import { buildInteractionBasis } from '../ib/pipeline.js';
import { buildSummary, writeResults } from '../ib/results.js';
import { Engine } from '../runtime/engine.js';
import { stagePathChoices } from '../runtime/stage-paths.js';
import { checkReplaceableDir } from '../io/output-guard.js';
import { matmulTuning, matmulVariantFor } from '../kernels/matmul.js';
import { chooseGramVariant } from '../kernels/gram.js';
import { isTransformerBuild, transformerBuildCommand } from '../transformer/build.js';
import { buildInputs, defaultResultDir, loadBuildConfig, loadData, loadModel } from '../build/load.js';
import { buildMlpF64 } from '../build/mlp-f64.js';
import { makeProgress } from './progress.js';

export { buildSummary };

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
  const log = (m: string) => {
    if (!quiet) console.error(m);
  };
  const model = await loadModel(config, base);
  const data = await loadData(config, base);
  const engine = await Engine.create({ ...(o.backend ? { backend: o.backend } : {}), profile: o.profile === true });
  try {
    log(`ibgpu build: ${configPath}`);
    // "device": "cpu": the float64 section-program passes (src/build/mlp-f64.ts), no GPU work.
    const cpu = config.device === 'cpu';
    const adapter = cpu ? 'cpu (float64)' : engine.adapterName;
    log(`adapter: ${adapter}`);
    const progress = makeProgress(process.stderr, quiet);
    const t0 = performance.now();
    const logger = {
      info: (m: string) => {
        progress.end();
        log(m);
      },
    };
    const res = cpu ? await buildMlpF64(model, data, config, logger) : await buildInteractionBasis(engine, model, data, config, { logger, progress });
    progress.end();
    const total = performance.now() - t0;
    const gpuProfile = engine.profiling ? await engine.takeProfile() : undefined;
    const dir = await writeResults(out, res, {
      adapter,
      data: data.description,
      configPath,
      extra: {
        total_ms: total,
        counters: engine.counters,
        ...(cpu
          ? { stage_paths: { stats: 'cpu (device: float64 section-program passes)', edges: 'cpu (device: float64 section-program passes)' } }
          : { kernel_choices: kernelChoices(engine), stage_paths: stagePaths(engine) }),
        ...(gpuProfile ? { gpu_profile: summarize(gpuProfile) } : {}),
      },
      guard,
    });
    if (o.json) {
      console.log(JSON.stringify(buildSummary(dir, res, { adapter, data: data.description, configPath, totalMs: total }), null, 2));
    } else if (o.quiet) {
      console.log(dir);
    } else {
      console.log(
        `\nInteraction Basis of ${data.n} datapoints in ${(total / 1000).toFixed(2)} s (${Object.entries(res.timings)
          .map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`)
          .join(', ')})`,
      );
      for (const [name, b] of res.bases) {
        console.log(
          `  ${name.padEnd(10)} dim ${String(b.dim).padStart(4)}  stage 1 keeps ${String(b.k).padStart(4)}  basis ${String(b.r).padStart(4)}${b.Lambda ? `  Λ_max ${Math.max(...b.Lambda).toExponential(3)}` : ''}`,
        );
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
    matmul_choice: t
      ? t.source === 'cache'
        ? `tuning cache (${t.size}^3: ${Object.entries(t.ms)
            .map(([k, ms]) => `${k} ${ms.toFixed(0)} ms`)
            .join(', ')})`
        : 'measured in this run'
      : 'adapter default (no tuning cached: run `ibgpu doctor`)',
    gram: chooseGramVariant(engine),
  };
}

/**
 * Where each stage ran and how that was chosen, for the manifest's `stage_paths` (the same field
 * and form, stage → text, as transformer builds write).
 */
function stagePaths(engine: Engine): Record<string, string> {
  return Object.fromEntries(stagePathChoices(engine).map((c) => [c.stage, `${c.path} (${c.how}: ${c.note})`]));
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
