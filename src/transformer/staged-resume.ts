// A staged transformer build in one process (`ibgpu build CFG --resume`): the stages of
// staged.ts as one shard each, every file in the work directory, each reused when it verifies
// (same config, model and data; M′ and edge partials from the bases now in the directory). After
// an interruption the build restarts after the last stage whose file is complete (files are
// written to a temporary name and renamed, so an interrupted write leaves nothing under the name).

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IbgpuError } from '../errors.js';
import type { ResultDir } from '../io/atomic.js';
import type { OutputGuardOptions } from '../io/output-guard.js';
import type { IbResult } from '../ib/pipeline.js';
import { writeResults } from '../ib/results.js';
import { reusablePartial, type Partial, type Shard, type Stage } from '../ib/staged.js';
import {
  checkStageFor,
  combineTransformerEdges,
  combineTransformerMprime,
  combineTransformerStats,
  loadTransformerStage,
  runTransformerShard,
  stagePartialPath,
  transformerManifestExtra,
  transformerResultWithoutEdges,
  type DataIdentity,
  type TransformerStage,
  type TransformerStageContext,
  type TransformerStageState,
} from './staged.js';

/**
 * A partial at `path` that this run can reuse: verified, same config hash, rows and data, and
 * (M′ and edges) computed from the bases with checksum `basesChecksum`; else why not.
 */
export async function reusableStagePartial(
  path: string,
  stage: Stage,
  hash: string,
  range: { start: number; end: number },
  id: DataIdentity,
  basesChecksum?: string,
): Promise<{ ok: true; p: Partial } | { ok: false; why: string }> {
  const r = await reusablePartial(path, stage, hash, range, id.n);
  if (!r.ok) return r;
  if (r.p.meta.data !== id.data) return { ok: false, why: `${path} was computed on data '${r.p.meta.data}', this run reads '${id.data}'` };
  if (basesChecksum !== undefined && (JSON.parse(r.p.meta.layout) as { bases_checksum?: string }).bases_checksum !== basesChecksum)
    return { ok: false, why: `${path} was computed from other bases than those in the stage directory` };
  return r;
}

/** Reads a stage directory's two files now, for a result directory that may replace it whole. */
export async function stageDirFiles(stageDir: string): Promise<(d: ResultDir) => Promise<void>> {
  const files = await Promise.all(['stats.safetensors', 'bases.state.safetensors'].map(async (f) => [f, await readFile(join(stageDir, f))] as const));
  return async (d) => {
    for (const [f, bytes] of files) await d.writeFile(f, bytes);
  };
}

export interface ResumeOptions {
  guard?: OutputGuardOptions;
  log?: (m: string) => void;
  /** Called after each stage's file is complete ('stats', 'mprime <layer>', 'edges'), before the next starts. */
  afterStage?: (stage: string) => void | Promise<void>;
}

/** Writes a finished staged build's result directory `out` (with the stage files of `st.dir`). */
export async function writeStagedResult(
  out: string,
  res: IbResult,
  st: TransformerStageState,
  o: { adapter: string; guard?: OutputGuardOptions; edgePaths?: Record<string, string>; extra?: Record<string, unknown> },
): Promise<string> {
  const base = transformerManifestExtra(st, o.edgePaths);
  return writeResults(out, res, {
    adapter: o.adapter,
    data: st.layout.dataset.data,
    configPath: st.configPath,
    extra: { ...base, staged: { ...(base['staged'] as object), ...(o.extra ?? {}) } },
    files: await stageDirFiles(st.dir),
    ...(o.guard ? { guard: o.guard } : {}),
  });
}

/** The whole staged build in one process, resumable; returns the result directory and the result. */
export async function resumeTransformer(
  c: TransformerStageContext,
  work: string,
  out: string,
  o: ResumeOptions = {},
): Promise<{ dir: string; result: IbResult; reused: string[] }> {
  const log = o.log ?? (() => undefined);
  await mkdir(work, { recursive: true });
  const one: Shard = { index: 0, count: 1 };
  const reused: string[] = [];
  let st: TransformerStageState | undefined;
  try {
    st = await loadTransformerStage(work, c.hash);
    checkStageFor(c, st);
    reused.push('stats');
    log(`resume: combined statistics found and verified${st.bases.size > 0 ? `, bases of ${[...st.bases.keys()].join(', ')}` : ''}`);
  } catch (e) {
    st = undefined;
    if (!/ENOENT/.test((e as Error).message)) log(`resume: stage files rejected, rebuilding them: ${(e as Error).message}`);
  }
  // A stage's partial in the work directory: reused when it verifies, else computed and verified.
  const partial = async (stage: TransformerStage, state: TransformerStageState | undefined, what: string, label: string): Promise<Partial> => {
    const path = stagePartialPath(work, stage, one, state);
    const id = stage === 'stats' ? c.statsId : c.dataId;
    const range = { start: 0, end: id.n };
    let r = await reusableStagePartial(path, stage, c.hash, range, id, state?.basesChecksum);
    if (r.ok) {
      reused.push(label);
      log(`resume: ${what} found and verified`);
      return r.p;
    }
    if (r.why !== 'absent') log(`resume: ${r.why}; recomputing ${what}`);
    await runTransformerShard(c, stage, state, one, work);
    r = await reusableStagePartial(path, stage, c.hash, range, id, state?.basesChecksum);
    if (!r.ok)
      throw new IbgpuError(
        'BAD_FILE',
        `${what} just written did not verify: ${r.why}`,
        'the stage directory is on a filesystem that did not keep the file; check it and rerun',
      );
    return r.p;
  };
  if (!st) {
    st = await combineTransformerStats([await partial('stats', undefined, 'the statistics', 'stats')], work);
    await o.afterStage?.('stats');
  }
  while (st.layout.next !== null) {
    const layer: string = st.layout.next;
    st = (await combineTransformerMprime([await partial('mprime', st, `M′ of ${layer}`, `mprime ${layer}`)], st, work)).state;
    await o.afterStage?.(`mprime ${layer}`);
  }
  let res: IbResult;
  let edgePaths: Record<string, string> | undefined;
  if (c.config.calculate_edges) {
    const p = await partial('edges', st, 'the edges', 'edges');
    await o.afterStage?.('edges');
    res = combineTransformerEdges([p], st);
    edgePaths = (JSON.parse(p.meta.layout) as { paths?: Record<string, string> }).paths;
  } else {
    res = transformerResultWithoutEdges(st);
  }
  const dir = await writeStagedResult(out, res, st, {
    adapter: c.adapter,
    ...(o.guard ? { guard: o.guard } : {}),
    ...(edgePaths ? { edgePaths } : {}),
    extra: { work_dir: work, reused },
  });
  return { dir, result: res, reused };
}
