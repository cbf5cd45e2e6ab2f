// Staged and sharded builds on the command line (README: "Large datasets and many machines"):
//
//   ibgpu build cfg.json --plan [--shard i/n]                   dry run: buffers per stage, passes
//   ibgpu build cfg.json --stage stats --shard i/n -o PARTS     partial statistics of shard i
//   ibgpu combine PARTS/stats-*.safetensors -o STAGE            sums them, builds the bases
//   ibgpu build cfg.json --stage edges --bases STAGE --shard i/n -o PARTS
//   ibgpu combine PARTS/edges-*.safetensors --bases STAGE -o RESULT
//   ibgpu build cfg.json --resume -o RESULT                     the same, in one process, resumable
//
// Transformer configs take the same commands plus M′ rounds between the two (stage-transformer.ts).
//
// The shard index may come from the scheduler instead of --shard: --shards n plus
// JOB_COMPLETION_INDEX (Kubernetes indexed Job), SLURM_ARRAY_TASK_ID, OMPI_COMM_WORLD_RANK or PMI_RANK.

import { mkdir, readFile } from 'node:fs/promises';
import type { ResultDir } from '../io/atomic.js';
import { basename, join, resolve } from 'node:path';
import { IbgpuError } from '../errors.js';
import type { BuildConfig } from '../ib/config.js';
import type { DataSource } from '../ib/data.js';
import { planConfig, printablePlan } from '../build/plan.js';
import { writeResults } from '../ib/results.js';
import {
  checkPartials,
  checkShardable,
  combineEdges,
  edgesPartialName,
  combineStats,
  configHash,
  loadStage,
  partialName,
  readPartial,
  resolveShard,
  resultWithoutEdges,
  reusablePartial,
  runEdgesShard,
  runStatsShard,
  shardRange,
  type EdgeSplit,
  type Partial,
  type Shard,
  type StageContext,
} from '../ib/staged.js';
import type { MlpModel } from '../model/mlp.js';
import { Engine } from '../runtime/engine.js';
import { checkOwnedSafetensors, checkReplaceableDir, type OutputGuardOptions } from '../io/output-guard.js';
import { buildSummary } from './build.js';
import { buildInputs, defaultResultDir, loadBuildConfig, loadData, loadModel } from '../build/load.js';
import { makeProgress } from './progress.js';
import { isTransformerBuild } from '../transformer/build.js';
import { isTransformerPartial } from '../transformer/staged.js';
import { combineTransformerCommand, transformerStageCommand } from './stage-transformer.js';
import { printPath, stageLog, type CombineCliOptions, type StageCliOptions } from './stage-options.js';

/** `ibgpu build` with --plan, --stage or --resume. */
export async function stageCommand(configArg: string | undefined, o: StageCliOptions): Promise<number> {
  const loaded = await loadBuildConfig(configArg);
  const { configPath, base, config, name } = loaded;
  const log = stageLog(o);
  // Where the outputs go is checked before anything is loaded or computed (src/io/output-guard.ts).
  const guard: OutputGuardOptions = { what: 'the build result', inputs: buildInputs(loaded) };
  // One plan for every kind of build (src/build/plan.ts), printed by one formatter.
  if (o.plan) {
    console.log(printablePlan(await planConfig(loaded, resolveShard(o.shard, o.shards)), o.json === true));
    return 0;
  }
  if (await isTransformerBuild(config, base)) return transformerStageCommand(loaded, o, guard);
  let out: string | undefined;
  let work: string | undefined;
  if (o.resume) {
    out = await checkReplaceableDir(defaultResultDir(config, base, name, o.out), guard);
    work = await checkReplaceableDir(resolve(o.work ?? `${out}.stages`), { ...guard, what: 'the stage files', flag: '--work' });
  }
  const model = await loadModel(config, base);
  const data = await loadData(config, base);
  try {
    checkShardable(config);
    const hash = configHash(config, model);
    const ctx = { model, data, config, configPath, hash };
    if (o.resume) return await resumeBuild(ctx, work!, out!, o, log, guard);
    if (o.stage !== 'stats' && o.stage !== 'edges') {
      throw new IbgpuError(
        'BAD_CONFIG',
        `--stage must be 'stats' or 'edges' (got ${JSON.stringify(o.stage)})`,
        'bases are built by `ibgpu combine` of the stats partials',
      );
    }
    const shard = resolveShard(o.shard, o.shards);
    const split = (o.split ?? 'data') as EdgeSplit;
    if (split !== 'data' && split !== 'out') throw new IbgpuError('BAD_CONFIG', `--split must be 'data' or 'out' (got ${JSON.stringify(o.split)})`);
    if (split === 'out' && o.stage !== 'edges')
      throw new IbgpuError('BAD_CONFIG', '--split out applies to --stage edges only (statistics are split over the data)');
    const dir = resolve(o.out ?? join(process.cwd(), 'out', `${name}.partials`));
    const path = join(dir, o.stage === 'edges' ? edgesPartialName(shard, split) : partialName(o.stage, shard));
    await checkOwnedSafetensors(path, { what: 'the partial sums' });
    await mkdir(dir, { recursive: true });
    const range = split === 'out' ? { start: 0, end: data.n } : shardRange(data.n, config.batch_size, shard);
    if (!o.force) {
      const r = await reusablePartial(path, o.stage, hash, range, data.n);
      if (r.ok) {
        log(`${path}: complete and verified, nothing to do (--force recomputes)`);
        printPath(path, o.json, { stage: o.stage, shard, reused: true });
        return 0;
      }
      if (r.why !== 'absent') log(`existing ${basename(path)} rejected, recomputing: ${r.why}`);
    }
    let stage: Awaited<ReturnType<typeof loadStage>> | undefined;
    if (o.stage === 'edges') {
      if (!o.bases) throw new IbgpuError('BAD_CONFIG', '--stage edges needs --bases DIR (the output of `ibgpu combine` of the stats partials)');
      stage = await loadStage(resolve(o.bases), hash);
      if (stage.meta.data_n !== data.n)
        throw new IbgpuError('BAD_FILE', `the bases in ${o.bases} were built on ${stage.meta.data_n} datapoints, this data has ${data.n}`);
    }
    const engine = await Engine.create(o.backend ? { backend: o.backend } : {});
    try {
      log(
        `ibgpu build --stage ${o.stage}${split === 'out' ? ' --split out' : ''}: shard ${shard.index}/${shard.count}, rows [${range.start}, ${range.end}) of ${data.n} (${data.description}); adapter ${engine.adapterName}`,
      );
      const progress = makeProgress(process.stderr, o.quiet === true);
      const c: StageContext = { ...ctx, engine, progress };
      if (o.stage === 'stats') await runStatsShard(c, shard, path);
      else await runEdgesShard(c, stage!.bases, shard, path, split);
      progress.end();
    } finally {
      engine.dispose();
    }
    printPath(path, o.json, { stage: o.stage, shard, rows: [range.start, range.end] });
    return 0;
  } finally {
    await data.close?.();
  }
}

/** The staged pipeline in one process; every stage's file is reused when it verifies. */
async function resumeBuild(
  ctx: { model: MlpModel; data: DataSource; config: BuildConfig; configPath: string; hash: string },
  work: string,
  out: string,
  o: StageCliOptions,
  log: (m: string) => void,
  guard: OutputGuardOptions,
): Promise<number> {
  await mkdir(work, { recursive: true });
  const one: Shard = { index: 0, count: 1 };
  const all = { start: 0, end: ctx.data.n };
  let engine: Engine | undefined;
  const getEngine = async () => (engine ??= await Engine.create(o.backend ? { backend: o.backend } : {}));
  const progress = makeProgress(process.stderr, o.quiet === true || o.json === true);
  try {
    const statsPath = join(work, partialName('stats', one));
    let r = await reusablePartial(statsPath, 'stats', ctx.hash, all, ctx.data.n);
    let stage: Awaited<ReturnType<typeof loadStage>> | undefined;
    try {
      stage = await loadStage(work, ctx.hash);
      log('resume: combined statistics and bases found and verified');
    } catch (e) {
      if (!/ENOENT/.test((e as Error).message)) log(`resume: stage files rejected, rebuilding them: ${(e as Error).message}`);
    }
    if (!stage) {
      if (!r.ok) {
        if (r.why !== 'absent') log(`resume: ${r.why}; recomputing the statistics`);
        await runStatsShard({ ...ctx, engine: await getEngine(), progress }, one, statsPath);
        r = await reusablePartial(statsPath, 'stats', ctx.hash, all, ctx.data.n);
        if (!r.ok) throw new IbgpuError('BAD_FILE', `the statistics just written do not verify: ${r.why}`);
      } else {
        log('resume: statistics found and verified');
      }
      await combineStats(ctx.model, [r.p], work);
      stage = await loadStage(work, ctx.hash);
    }
    let res;
    let adapter = stage.meta.adapter;
    if (ctx.config.calculate_edges) {
      const edgesPath = join(work, partialName('edges', one));
      let e = await reusablePartial(edgesPath, 'edges', ctx.hash, all, ctx.data.n);
      if (!e.ok) {
        if (e.why !== 'absent') log(`resume: ${e.why}; recomputing the edges`);
        const eng = await getEngine();
        adapter = eng.adapterName;
        await runEdgesShard({ ...ctx, engine: eng, progress }, stage.bases, one, edgesPath);
        e = await reusablePartial(edgesPath, 'edges', ctx.hash, all, ctx.data.n);
        if (!e.ok) throw new IbgpuError('BAD_FILE', `the edges just written do not verify: ${e.why}`);
      } else {
        log('resume: edges found and verified');
      }
      res = combineEdges([e.p], stage);
    } else {
      res = resultWithoutEdges(ctx.config, stage);
    }
    progress.end();
    const dir = await writeResults(out, res, {
      adapter,
      data: ctx.data.description,
      configPath: ctx.configPath,
      extra: { staged: { work_dir: work, config_hash: ctx.hash } },
      files: await stageFiles(work),
      guard,
    });
    if (o.json) console.log(JSON.stringify(buildSummary(dir, res, { adapter, data: ctx.data.description, configPath: ctx.configPath }), null, 2));
    else console.log(o.quiet ? dir : `results: ${dir}`);
    return 0;
  } finally {
    engine?.dispose();
  }
}

/**
 * Carries a stage directory's combined statistics and bases into a result directory. The bytes
 * are read first: the result directory may replace the stage directory whole (combine -o DIR).
 */
async function stageFiles(stageDir: string): Promise<(d: ResultDir) => Promise<void>> {
  const files = await Promise.all(['stats.safetensors', 'bases.state.safetensors'].map(async (f) => [f, await readFile(join(stageDir, f))] as const));
  return async (d) => {
    for (const [f, bytes] of files) await d.writeFile(f, bytes);
  };
}

/** `ibgpu combine <partials...> -o DIR`: stats partials -> bases; edge partials -> the result. */
export async function combineCommand(files: string[], o: CombineCliOptions): Promise<number> {
  const log = stageLog(o);
  if (files.length === 0) throw new IbgpuError('BAD_CONFIG', 'no partial files given');
  // The partials are this command's inputs: the output directory may not replace them.
  const guard: OutputGuardOptions = { what: 'the combined result', inputs: files.map((f) => resolve(f)) };
  await checkReplaceableDir(o.out, guard);
  const parts: Partial[] = [];
  for (const f of files) parts.push(await readPartial(resolve(f)));
  if (isTransformerPartial(parts[0]!)) return combineTransformerCommand(parts, o, guard);
  const stageName = parts[0]!.meta.stage;
  if (stageName !== 'stats' && stageName !== 'edges')
    throw new IbgpuError('BAD_FILE', `${parts[0]!.path} is a '${stageName}' file; combine takes stats or edges partials`);
  // Stats and data-split edges tile the rows; output-split edges are checked by combineEdges.
  const outSplit = stageName === 'edges' && (JSON.parse(parts[0]!.meta.layout) as { split?: string }).split === 'out';
  const sorted = outSplit ? parts : checkPartials(parts, stageName);
  const meta = sorted[0]!.meta;
  const out = resolve(o.out);
  const config = JSON.parse(meta.config) as BuildConfig;
  if (stageName === 'stats') {
    // The bases need the model: from the config the shards ran (or --config), checked by hash.
    const configPath = resolve(o.config ?? meta.config_path);
    const { config: cfgFile, base } = await loadBuildConfig(configPath);
    const model = await loadModel(cfgFile, base);
    const hash = configHash(cfgFile, model);
    if (hash !== meta.config_hash) {
      throw new IbgpuError(
        'BAD_FILE',
        `${configPath} (or its model) is not the one the partials were built with (hash ${hash} ≠ ${meta.config_hash})`,
        'pass --config with the config the shards ran',
      );
    }
    await checkReplaceableDir(out, { ...guard, inputs: [...guard.inputs!, configPath, ...buildInputs({ configPath, base, config: cfgFile, name: '' })] });
    await mkdir(out, { recursive: true });
    const t0 = performance.now();
    const { bases } = await combineStats(model, sorted, out);
    log(`combined ${sorted.length} stats partials (${meta.data_n} datapoints) in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    for (const [nm, b] of bases) log(`  basis ${nm}: dim ${b.dim}, stage 1 keeps ${b.k}, kept ${b.r}`);
    if (!config.calculate_edges) {
      const stage = await loadStage(out, meta.config_hash);
      await writeResults(out, resultWithoutEdges(config, stage), {
        adapter: meta.adapter,
        data: meta.data,
        configPath: meta.config_path,
        extra: { staged: { config_hash: meta.config_hash, shards: sorted.length } },
        files: await stageFiles(out),
        guard,
      });
    }
    printPath(out, o.json, {
      stage: 'stats',
      datapoints: Number(meta.data_n),
      layers: Object.fromEntries([...bases].map(([k, b]) => [k, { dim: b.dim, stage1_kept: b.k, rib_dim: b.r }])),
    });
    return 0;
  }
  const basesDir = resolve(o.bases ?? out);
  const stage = await loadStage(basesDir, meta.config_hash);
  const res = combineEdges(sorted, stage);
  const dir = await writeResults(out, res, {
    adapter: meta.adapter,
    data: meta.data,
    configPath: meta.config_path,
    extra: { staged: { config_hash: meta.config_hash, edge_shards: sorted.length, stats_shards: stage.meta.shard } },
    files: await stageFiles(basesDir),
    guard,
  });
  log(`combined ${sorted.length} edge partials (${meta.data_n} datapoints)`);
  if (o.json) console.log(JSON.stringify(buildSummary(dir, res, { adapter: meta.adapter, data: meta.data, configPath: meta.config_path }), null, 2));
  else console.log(dir);
  return 0;
}
