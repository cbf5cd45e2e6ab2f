// Staged and sharded transformer builds on the command line (README "Large datasets and many
// machines"); the stages and files are src/transformer/staged.ts's:
//
//   ibgpu build cfg.json --plan [--shard i/n]                   (src/build/plan.ts, as for MLPs)
//   ibgpu build cfg.json --stage stats --shard i/n -o PARTS
//   ibgpu combine PARTS/stats-*.safetensors -o STAGE
//   ibgpu build cfg.json --stage mprime --bases STAGE --shard i/n -o PARTS      (one round per
//   ibgpu combine PARTS/mprime-<layer>-*.safetensors --bases STAGE -o STAGE     node layer, backwards)
//   ibgpu build cfg.json --stage edges --bases STAGE --shard i/n -o PARTS
//   ibgpu combine PARTS/edges-*.safetensors --bases STAGE -o RESULT
//   (or --stage edges --split out: every shard reads all sequences for a block of output rows)
//   ibgpu build cfg.json --resume -o RESULT

import { mkdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { IbgpuError } from '../errors.js';
import type { BuildConfig } from '../ib/config.js';
import { buildSummary } from '../ib/results.js';
import { resolveShard, type EdgeSplit, type Partial } from '../ib/staged.js';
import type { LoadedConfig } from '../build/load.js';
import { checkOwnedSafetensors, checkReplaceableDir, type OutputGuardOptions } from '../io/output-guard.js';
import { Engine } from '../runtime/engine.js';
import { loadTransformerBuild, workflowInputs } from '../transformer/build.js';
import { gpuPassesFactory } from '../transformer/gpu-passes.js';
import {
  checkTransformerShardable,
  combineTransformerEdges,
  combineTransformerMprime,
  combineTransformerStats,
  loadTransformerStage,
  runTransformerShard,
  sequenceRange,
  stagePartialPath,
  transformerResultWithoutEdges,
  transformerStageContext,
  type TransformerStageContext,
  type TransformerStageState,
  STAGED_PATHS,
} from '../transformer/staged.js';
import { resumeTransformer, reusableStagePartial, writeStagedResult } from '../transformer/staged-resume.js';
import { checkPartials } from '../ib/staged.js';
import { printPath, stageLog, type CombineCliOptions, type StageCliOptions } from './stage-options.js';

/** `ibgpu build` of a transformer config with --plan, --stage or --resume. */
export async function transformerStageCommand(loaded: LoadedConfig, o: StageCliOptions, guard: OutputGuardOptions): Promise<number> {
  const { configPath, base, config, name } = loaded;
  const log = stageLog(o);
  const inputs = [...(guard.inputs ?? []), ...workflowInputs(config, base)];
  guard = { ...guard, inputs };
  const shard = o.resume ? { index: 0, count: 1 } : resolveShard(o.shard, o.shards);
  checkTransformerShardable(config, shard);
  const split = (o.split ?? 'data') as EdgeSplit;
  if (split !== 'data' && split !== 'out') throw new IbgpuError('BAD_CONFIG', `--split must be 'data' or 'out' (got ${JSON.stringify(o.split)})`);
  if (split === 'out' && (o.resume || o.stage !== 'edges'))
    throw new IbgpuError('BAD_CONFIG', '--split out applies to --stage edges only (statistics and M′ are split over the data)');
  let out: string | undefined;
  let work: string | undefined;
  if (o.resume) {
    out = await checkReplaceableDir(resolve(o.out ?? (config.out_dir ? resolve(base, config.out_dir) : join(process.cwd(), 'out', name))), guard);
    work = await checkReplaceableDir(resolve(o.work ?? `${out}.stages`), { ...guard, what: 'the stage files', flag: '--work' });
  } else if (o.stage !== 'stats' && o.stage !== 'mprime' && o.stage !== 'edges') {
    throw new IbgpuError(
      'BAD_CONFIG',
      `--stage must be 'stats', 'mprime' or 'edges' for a transformer config (got ${JSON.stringify(o.stage)})`,
      'bases are built by `ibgpu combine` of the stats and M′ partials',
    );
  }
  const tf = await loadTransformerBuild(config, base);
  const cpu = config.device === 'cpu';
  const engine = cpu ? undefined : await Engine.create(o.backend ? { backend: o.backend } : {});
  try {
    const adapter = engine ? engine.adapterName : 'cpu (float64 reference)';
    const c: TransformerStageContext = {
      ...transformerStageContext(config, configPath, tf, engine ? gpuPassesFactory(engine, STAGED_PATHS) : undefined, adapter),
      log,
    };
    if (o.resume) {
      log(`ibgpu build --resume: ${configPath}; stage files in ${work}; passes on ${adapter}`);
      const t0 = performance.now();
      const { dir, result } = await resumeTransformer(c, work!, out!, { guard, log });
      if (o.json)
        console.log(JSON.stringify(buildSummary(dir, result, { adapter, data: c.dataId.data, configPath, totalMs: performance.now() - t0 }), null, 2));
      else console.log(o.quiet ? dir : `results: ${dir}`);
      return 0;
    }
    const stage = o.stage as 'stats' | 'mprime' | 'edges';
    const dir = resolve(o.out ?? join(process.cwd(), 'out', `${name}.partials`));
    let st: TransformerStageState | undefined;
    if (stage !== 'stats') {
      if (!o.bases) throw new IbgpuError('BAD_CONFIG', `--stage ${stage} needs --bases DIR (the stage directory \`ibgpu combine\` writes)`);
      st = await loadTransformerStage(resolve(o.bases), c.hash);
    }
    const id = stage === 'stats' ? c.statsId : c.dataId;
    const range = split === 'out' ? { start: 0, end: id.n } : sequenceRange(id.n, shard);
    const layer = st?.layout.next ?? undefined;
    if (stage === 'mprime' && layer === undefined)
      throw new IbgpuError('BAD_CONFIG', `every basis in ${o.bases} is built already: there is no M′ pass left`, `run --stage edges --bases ${o.bases}`);
    const path = stagePartialPath(dir, stage, shard, st, split);
    await checkOwnedSafetensors(path, { what: 'the partial sums' });
    await mkdir(dir, { recursive: true });
    if (!o.force) {
      const r = await reusableStagePartial(path, stage, c.hash, range, id, st?.basesChecksum);
      if (r.ok) {
        log(`${path}: complete and verified, nothing to do (--force recomputes)`);
        printPath(path, o.json, { stage, shard, reused: true });
        return 0;
      }
      if (r.why !== 'absent') log(`existing ${basename(path)} rejected, recomputing: ${r.why}`);
    }
    log(
      `ibgpu build --stage ${stage}${layer ? ` (M′ of ${layer})` : ''}${split === 'out' ? ' --split out' : ''}: shard ${shard.index}/${shard.count}, sequences [${range.start}, ${range.end}) of ${id.n} (${id.data}); passes on ${adapter}`,
    );
    await runTransformerShard(c, stage, st, shard, dir, split);
    printPath(path, o.json, { stage, ...(layer ? { layer } : {}), shard, rows: [range.start, range.end] });
    return 0;
  } finally {
    engine?.dispose();
  }
}

/** `ibgpu combine` of transformer partials (stats, mprime or edges), after the guard checked -o. */
export async function combineTransformerCommand(parts: Partial[], o: CombineCliOptions, guard: OutputGuardOptions): Promise<number> {
  const log = stageLog(o);
  const stage = parts[0]!.meta.stage;
  const out = resolve(o.out);
  const t0 = performance.now();
  if (stage === 'stats') {
    const sorted = checkPartials(parts, 'stats');
    await mkdir(out, { recursive: true });
    const st = await combineTransformerStats(sorted, out);
    log(`combined ${sorted.length} stats partials (${sorted[0]!.meta.data_n} sequences) in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    return finishBases(st, out, o, guard, log, sorted.length);
  }
  const basesDir = resolve(o.bases ?? out);
  const st = await loadTransformerStage(basesDir);
  if (stage === 'mprime') {
    if (out !== basesDir) await mkdir(out, { recursive: true });
    const { state, basis } = await combineTransformerMprime(parts, st, out);
    log(`combined ${parts.length} M′ partials of ${basis.name}: dim ${basis.dim}, stage 1 keeps ${basis.k}, basis ${basis.r}`);
    return finishBases(state, out, o, guard, log, parts.length);
  }
  if (stage !== 'edges') throw new IbgpuError('BAD_FILE', `${parts[0]!.path} is a '${stage}' file; combine takes stats, mprime or edges partials`);
  const res = combineTransformerEdges(parts, st);
  const edgePaths = (JSON.parse(parts[0]!.meta.layout) as { paths?: Record<string, string> }).paths;
  const dir = await writeStagedResult(out, res, st, {
    adapter: parts[0]!.meta.adapter,
    guard,
    ...(edgePaths ? { edgePaths } : {}),
    extra: { edge_shards: parts.length },
  });
  log(`combined ${parts.length} edge partials (${res.n} sequences)`);
  if (o.json)
    console.log(JSON.stringify(buildSummary(dir, res, { adapter: parts[0]!.meta.adapter, data: st.layout.dataset.data, configPath: st.configPath }), null, 2));
  else console.log(dir);
  return 0;
}

/** After a stats or M′ combine: say what comes next; with every basis built and no edges wanted, write the result. */
async function finishBases(
  st: TransformerStageState,
  out: string,
  o: CombineCliOptions,
  guard: OutputGuardOptions,
  log: (m: string) => void,
  shards: number,
): Promise<number> {
  const config: BuildConfig = st.config;
  if (st.layout.next === null && !config.calculate_edges) {
    await writeStagedResult(out, transformerResultWithoutEdges(st), st, { adapter: st.adapter, guard });
    log('every basis is built (calculate_edges: false): the result is complete');
  } else if (st.layout.next !== null) {
    log(
      `next: ibgpu build ${st.configPath} --stage mprime --bases ${out} --shard i/n (M′ of ${st.layout.next}), then combine its partials --bases ${out} -o ${out}`,
    );
  } else {
    log(`next: ibgpu build ${st.configPath} --stage edges --bases ${out} --shard i/n, then combine its partials --bases ${out} -o RESULT`);
  }
  printPath(out, o.json, {
    stage: st.layout.next === null ? 'bases' : 'mprime',
    next: st.layout.next,
    shards,
    layers: Object.fromEntries([...st.bases].map(([k, b]) => [k, { dim: b.dim, stage1_kept: b.k, rib_dim: b.r }])),
  });
  return 0;
}
