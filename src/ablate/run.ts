// Node and edge ablations (rib/ablations.py) on any `SectionRunner`.
//
// Node ablation of node layer j in a basis (C, C⁺) of r directions out of dim: rib's schedule runs
// over n = dim ablated vectors (so bases of different sizes share their x-axis); the first dim − r
// ablated are the ones the basis already dropped, so n ablated keeps min(r, dim − n) directions.
// Nothing ablated evaluates the model unrotated (rib's identity rotation); otherwise section j is
// entered through f ↦ f·C[:, :keep]·C⁺[:keep, :].
//
// Edge ablation of section j (node layer j → j+1, IB bases, E_hat of the build): keep the k
// largest edges (edges from the constant direction free when centred; rib's `_get_edge_mask`) out
// of dim_j·dim_{j+1}; every output direction o is computed from the input directions its mask row
// keeps: out_o = act((f·C_j ∘ m_o)·C_j⁺·W̄)·C_{j+1}[:, o], then rotated back with C⁺_{j+1}.
// Output directions with the same mask row share one pass (rib groups them the same way).

import { edgeMaskF64 } from '../cpu/ablation.js';
import type { Engine } from '../runtime/engine.js';
import type { AblationBasis } from './bases.js';
import type { EvalSet, Scores } from './evaluate.js';
import { makeSchedule, type EvalType, type ScheduleConfig } from './schedule.js';

export interface NodePoint {
  n_ablated: number;
  n_vecs_remaining: number;
  /** Directions actually kept: min(r, n_vecs_remaining). */
  kept: number;
  score: number;
  accuracy: number;
  ce_loss: number;
}

export interface NodeLayerResult {
  node_layer: string;
  dim: number;
  basis_size: number;
  points: NodePoint[];
  /** bisect: the fewest directions that keep the score within the target (rib's dim − lower bound). */
  n_vecs_required?: number;
}

export interface EdgePoint {
  edges_kept: number;
  score: number;
  accuracy: number;
  ce_loss: number;
}

export interface EdgeLayerResult {
  node_layer: string;
  next_node_layer: string;
  total_possible_edges: number;
  /** Edges that the ordering counts (the constant direction's excluded when it is free). */
  countable_edges: number;
  points: EdgePoint[];
  /** Bisect per target difference: edges needed and its mask (out × in, 1 = kept). */
  required: { score_target_difference: number; n_edges_required: number; edge_mask: number[][] }[];
}

const pick = (s: Scores, t: EvalType) => (t === 'accuracy' ? s.accuracy : s.ce_loss);

function rowsOf(a: Float64Array, from: number, count: number, width: number): Float64Array {
  return a.slice(from * width, (from + count) * width);
}

/** First `keep` columns of a dim × r matrix. */
function leadingColumns(C: ArrayLike<number>, dim: number, r: number, keep: number): Float64Array {
  const out = new Float64Array(dim * keep);
  for (let i = 0; i < dim; i++) for (let c = 0; c < keep; c++) out[i * keep + c] = C[i * r + c]!;
  return out;
}

/** Scores with node layer j rotated into `b` keeping `keep` directions (keep = null: unrotated). */
export async function evalNodeAblation(ev: EvalSet, j: number, b: AblationBasis, keep: number | null): Promise<Scores> {
  if (keep === null) return ev.score(j, (bi) => ev.actsAt(j, bi));
  const sec = ev.runner.prepare(
    j,
    keep === 0
      ? { left: new Float64Array(b.dim), k: 1, right: new Float64Array(b.dim) }
      : { left: leadingColumns(b.C, b.dim, b.r, keep), k: keep, right: rowsOf(Float64Array.from(b.Cpinv), 0, keep, b.dim) },
  );
  try {
    return await ev.score(j, (bi) => ev.actsAt(j, bi), sec);
  } finally {
    sec.release();
  }
}

export async function nodeAblation(
  ev: EvalSet,
  j: number,
  b: AblationBasis,
  schedule: ScheduleConfig,
  evalType: EvalType,
  base: Scores,
): Promise<NodeLayerResult> {
  const n = b.dim;
  const truncated = n - b.r;
  const sched = makeSchedule(schedule, n, evalType, pick(base, evalType));
  const points: NodePoint[] = [];
  for (let nAbl = sched.next(); nAbl !== undefined; nAbl = sched.next()) {
    const trunc = Math.max(nAbl - truncated, 0);
    const s = trunc === 0 ? base : await evalNodeAblation(ev, j, b, b.r - trunc);
    points.push({ n_ablated: nAbl, n_vecs_remaining: n - nAbl, kept: b.r - trunc, score: pick(s, evalType), ...s });
    sched.report(pick(s, evalType));
  }
  points.sort((p, q) => q.n_vecs_remaining - p.n_vecs_remaining);
  const out: NodeLayerResult = { node_layer: ev.runner.nodeLayers[j]!, dim: n, basis_size: b.r, points };
  if (sched.keptBound !== undefined) out.n_vecs_required = n - sched.keptBound;
  return out;
}

/** Scores with section j's edges masked (mask: rOut × rIn, row-major, 1 = kept). */
export async function evalEdgeAblation(engine: Engine, ev: EvalSet, j: number, bin: AblationBasis, bout: AblationBasis, mask: Uint8Array): Promise<Scores> {
  const rIn = bin.r;
  const rOut = bout.r;
  const wOut = ev.runner.width(j + 1);
  // Output directions grouped by their mask row.
  const groups = new Map<string, number[]>();
  for (let o = 0; o < rOut; o++) {
    const key = Array.from(mask.subarray(o * rIn, (o + 1) * rIn)).join('');
    const g = groups.get(key);
    if (g) g.push(o);
    else groups.set(key, [o]);
  }
  const Cpinv = cpinvOf(bin);
  return engine.withScope(async (scope) => {
    const Cin = scope.upload(Float32Array.from(bin.C), 'ablate.Cin');
    const inRib = Array.from({ length: ev.batchCount }, (_, bi) => {
      const z = scope.alloc(ev.rowsOf(bi) * rIn * 4, 'ablate.inRib');
      ev.linear(ev.actsAt(j, bi), Cin, z, ev.rowsOf(bi), bin.dim, rIn, false);
      return z;
    });
    // Output directions accumulate here (rows × rOut), then rotate back with C⁺_{j+1} once.
    const acc = Array.from({ length: ev.batchCount }, (_, bi) => scope.alloc(ev.rowsOf(bi) * rOut * 4, 'ablate.edgeOutRib'));
    const CoutPinv = scope.upload(Float32Array.from(bout.Cpinv), 'ablate.CoutPinv');
    let first = true;
    for (const outs of groups.values()) {
      const o0 = outs[0]!;
      // The group's output directions: B = C_{j+1} with the other columns zeroed (wOut × rOut).
      const B = new Float64Array(wOut * rOut);
      for (const o of outs) for (let h = 0; h < wOut; h++) B[h * rOut + o] = bout.C[h * rOut + o]!;
      const group = scope.scope();
      const Bgpu = group.upload(Float32Array.from(B), 'ablate.edgeBack');
      // (z ∘ m)·C⁺ as one map: diag(m)·C⁺.
      const sec = ev.runner.prepare(j, { k: rIn, right: Cpinv, rowMask: mask.subarray(o0 * rIn, (o0 + 1) * rIn) });
      try {
        for (let bi = 0; bi < ev.batchCount; bi++) {
          const y = group.adopt(sec.run(inRib[bi]!, ev.rowsOf(bi)));
          ev.linear(y, Bgpu, acc[bi]!, ev.rowsOf(bi), wOut, rOut, !first);
          group.release(y); // one batch's section output at a time
        }
      } finally {
        sec.release();
        group.close();
      }
      first = false;
    }
    // score() releases the buffers this returns once their batch is scored.
    return ev.score(j + 1, (bi) =>
      engine.withScope((s) => {
        const z = s.alloc(ev.rowsOf(bi) * wOut * 4, 'ablate.edgeOut');
        ev.linear(acc[bi]!, CoutPinv, z, ev.rowsOf(bi), rOut, wOut, false);
        return s.keep(z);
      }),
    );
  });
}

// One Float64Array per basis, so the runner's cached C⁺·W̄ is found again for every mask row.
const cpinvCache = new WeakMap<AblationBasis, Float64Array>();
function cpinvOf(b: AblationBasis): Float64Array {
  let c = cpinvCache.get(b);
  if (!c) {
    c = b.Cpinv instanceof Float64Array ? b.Cpinv : Float64Array.from(b.Cpinv);
    cpinvCache.set(b, c);
  }
  return c;
}

export interface EdgeAblationOptions {
  /** Bisect targets; each gives one `required` entry. Static schedules ignore them. */
  targets?: number[];
}

export async function edgeAblation(
  engine: Engine,
  ev: EvalSet,
  j: number,
  bin: AblationBasis,
  bout: AblationBasis,
  E: ArrayLike<number>,
  schedule: ScheduleConfig,
  evalType: EvalType,
  base: Scores,
  keepConst: boolean,
  opts: EdgeAblationOptions = {},
): Promise<EdgeLayerResult> {
  const total = bin.dim * bout.dim;
  const countable = bout.r * (bin.r - (keepConst ? 1 : 0));
  const cache = new Map<number, Scores>();
  const maskOf = (kept: number) => edgeMaskF64(E, bout.r, bin.r, kept, keepConst);
  const scoreOf = async (kept: number): Promise<Scores> => {
    const clamped = Math.min(kept, countable + 1); // every count above `countable` keeps all edges
    let s = cache.get(clamped);
    if (!s) {
      const m = maskOf(clamped);
      s = m.every((v) => v === 1) ? base : await evalEdgeAblation(engine, ev, j, bin, bout, m);
      cache.set(clamped, s);
    }
    return s;
  };
  const points: EdgePoint[] = [];
  const required: EdgeLayerResult['required'] = [];
  const targets = schedule.schedule_type === 'bisect' ? (opts.targets ?? [schedule.score_target_difference]) : [undefined];
  for (const target of targets) {
    const cfg: ScheduleConfig = target === undefined ? schedule : { ...schedule, schedule_type: 'bisect', score_target_difference: target };
    const sched = makeSchedule(cfg, total, evalType, pick(base, evalType));
    for (let nAbl = sched.next(); nAbl !== undefined; nAbl = sched.next()) {
      const s = await scoreOf(total - nAbl);
      if (!points.some((p) => p.edges_kept === Math.min(total - nAbl, countable))) {
        points.push({ edges_kept: Math.min(total - nAbl, countable), score: pick(s, evalType), ...s });
      }
      sched.report(pick(s, evalType));
    }
    if (target !== undefined && sched.keptBound !== undefined) {
      const need = Math.min(total - sched.keptBound, countable);
      const m = maskOf(need);
      const rows: number[][] = [];
      for (let o = 0; o < bout.r; o++) rows.push(Array.from(m.subarray(o * bin.r, (o + 1) * bin.r)));
      required.push({ score_target_difference: target, n_edges_required: need, edge_mask: rows });
    }
  }
  points.sort((p, q) => q.edges_kept - p.edges_kept);
  return {
    node_layer: ev.runner.nodeLayers[j]!,
    next_node_layer: ev.runner.nodeLayers[j + 1]!,
    total_possible_edges: total,
    countable_edges: countable,
    points,
    required,
  };
}
