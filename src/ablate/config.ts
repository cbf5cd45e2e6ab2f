// The ablation config: rib's AblationConfig field names (rib/ablations.py), with ibgpu's basis
// names beside rib's ('rib' = 'ib', 'orthogonal' = 'pca'; 'neuron' is ibgpu's), and where the
// labels come from.
//
// { "ablation_type": "rib" | "orthogonal" | "edge" | "ib" | "pca" | "neuron",
//   "schedule": { "schedule_type": "exponential", "ablate_every_vec_cutoff": 10, "exp_base": 2,
//                 "early_stopping_threshold": null, "specific_points": null }
//             | { "schedule_type": "linear", "n_points": 20 }
//             | { "schedule_type": "bisect", "score_target_difference": 0.01, "scaling": "linear", "tolerance": 1 },
//   "ablation_node_layers": ["layers.0", ...], "eval_type": "accuracy" | "ce_loss",
//   "batch_size": 4096, "dataset": { "rows": [start, end] }, "labels": "labels.npy",
//   "score_target_differences": [0.001, 0.01, 0.1] }          (edge bisect: one run per target)
// Fields rib has that do not apply here (exp_name, out_dir, rib_results_path, dtype, seed,
// save_all_edge_masks) are accepted and ignored; anything else is an error.

import { IbgpuError } from '../errors.js';
import type { BasisKind } from './bases.js';
import type { EvalType, ScheduleConfig } from './schedule.js';

export type AblationType = BasisKind | 'edge';
export const ABLATION_TYPES: readonly AblationType[] = ['ib', 'pca', 'neuron', 'edge'];

export interface AblationConfig {
  ablation_type: AblationType;
  schedule: ScheduleConfig;
  ablation_node_layers?: string[];
  eval_type: EvalType;
  batch_size?: number;
  dataset?: { rows?: [number, number] };
  labels?: string;
  score_target_differences?: number[];
}

const RIB_NAMES: Record<string, AblationType> = { rib: 'ib', orthogonal: 'pca', edge: 'edge', ib: 'ib', pca: 'pca', neuron: 'neuron' };
const IGNORED = new Set(['exp_name', 'out_dir', 'rib_results_path', 'dtype', 'seed', 'save_all_edge_masks']);
const KNOWN = new Set(['ablation_type', 'schedule', 'ablation_node_layers', 'eval_type', 'batch_size', 'dataset', 'labels', 'score_target_differences']);

const bad = (m: string, hint?: string) => new IbgpuError('BAD_CONFIG', `ablation config: ${m}`, hint);

export function parseAblationType(s: string): AblationType {
  const t = RIB_NAMES[s];
  if (!t) throw bad(`ablation_type '${s}' is not one of ${Object.keys(RIB_NAMES).join(', ')}`);
  return t;
}

export function parseSchedule(raw: unknown): ScheduleConfig {
  if (typeof raw !== 'object' || raw === null) throw bad('schedule must be an object with a schedule_type');
  const r = raw as Record<string, unknown>;
  const num = (k: string, ok: (v: number) => boolean, what: string): number | undefined => {
    const v = r[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !ok(v)) throw bad(`schedule.${k} must be ${what}, got ${JSON.stringify(v)}`);
    return v;
  };
  const allowed: Record<string, string[]> = {
    exponential: ['schedule_type', 'early_stopping_threshold', 'specific_points', 'ablate_every_vec_cutoff', 'exp_base'],
    linear: ['schedule_type', 'early_stopping_threshold', 'specific_points', 'n_points'],
    bisect: ['schedule_type', 'score_target_difference', 'scaling', 'tolerance'],
  };
  const type = r['schedule_type'];
  if (typeof type !== 'string' || !allowed[type]) throw bad(`schedule.schedule_type must be exponential, linear or bisect, got ${JSON.stringify(type)}`);
  for (const k of Object.keys(r))
    if (!allowed[type].includes(k)) throw bad(`schedule.${k} is not a field of a ${type} schedule`, `fields: ${allowed[type].join(', ')}`);
  const early = num('early_stopping_threshold', (v) => v >= 0, 'a number >= 0');
  const sp = r['specific_points'];
  if (sp !== undefined && sp !== null && !(Array.isArray(sp) && sp.every((v) => Number.isInteger(v) && v >= 0)))
    throw bad('schedule.specific_points must be a list of non-negative integers');
  const common = { ...(early !== undefined ? { early_stopping_threshold: early } : {}), ...(Array.isArray(sp) ? { specific_points: sp as number[] } : {}) };
  if (type === 'exponential') {
    const cutoff = num('ablate_every_vec_cutoff', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
    const base = num('exp_base', (v) => v > 1, 'a number > 1');
    return { schedule_type: 'exponential', ...common, ablate_every_vec_cutoff: cutoff ?? null, ...(base !== undefined ? { exp_base: base } : {}) };
  }
  if (type === 'linear') {
    const p = num('n_points', (v) => Number.isInteger(v) && v >= 2, 'an integer >= 2');
    if (p === undefined) throw bad('a linear schedule needs n_points');
    return { schedule_type: 'linear', ...common, n_points: p };
  }
  const d = num('score_target_difference', (v) => v >= 0, 'a number >= 0');
  if (d === undefined) throw bad('a bisect schedule needs score_target_difference');
  const scaling = r['scaling'] ?? 'linear';
  if (scaling !== 'linear' && scaling !== 'logarithmic') throw bad(`schedule.scaling must be linear or logarithmic`);
  const tol = num('tolerance', (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  return { schedule_type: 'bisect', score_target_difference: d, scaling, ...(tol !== undefined ? { tolerance: tol } : {}) };
}

export function parseAblationConfig(raw: unknown): AblationConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('must be a JSON object');
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!KNOWN.has(k) && !IGNORED.has(k)) throw bad(`unknown field '${k}'`, `fields: ${[...KNOWN].join(', ')}`);
  }
  const type = parseAblationType(String(r['ablation_type'] ?? ''));
  const evalType = r['eval_type'] ?? 'accuracy';
  if (evalType !== 'accuracy' && evalType !== 'ce_loss') throw bad(`eval_type must be accuracy or ce_loss, got ${JSON.stringify(evalType)}`);
  const layers = r['ablation_node_layers'];
  if (layers !== undefined && !(Array.isArray(layers) && layers.every((l) => typeof l === 'string')))
    throw bad('ablation_node_layers must be a list of node layer names');
  const bs = r['batch_size'];
  if (bs !== undefined && !(Number.isInteger(bs) && (bs as number) >= 1)) throw bad('batch_size must be a positive integer');
  const ds = r['dataset'] as Record<string, unknown> | undefined;
  let rows: [number, number] | undefined;
  if (ds !== undefined && ds !== null) {
    const rr = ds['rows'];
    if (rr !== undefined) {
      if (!(Array.isArray(rr) && rr.length === 2 && rr.every((v) => Number.isInteger(v) && v >= 0) && (rr[0] as number) < (rr[1] as number))) {
        throw bad('dataset.rows must be [start, end) with 0 <= start < end');
      }
      rows = [rr[0] as number, rr[1] as number];
    }
  }
  const labels = r['labels'];
  if (labels !== undefined && typeof labels !== 'string') throw bad('labels must be the path of an .npy file of class indices');
  const targets = r['score_target_differences'];
  if (targets !== undefined && !(Array.isArray(targets) && targets.length > 0 && targets.every((v) => typeof v === 'number' && v >= 0))) {
    throw bad('score_target_differences must be a non-empty list of numbers >= 0');
  }
  return {
    ablation_type: type,
    schedule: parseSchedule(r['schedule'] ?? { schedule_type: 'exponential', ablate_every_vec_cutoff: 10, exp_base: 2 }),
    eval_type: evalType,
    ...(layers ? { ablation_node_layers: layers } : {}),
    ...(bs !== undefined ? { batch_size: bs as number } : {}),
    ...(rows ? { dataset: { rows } } : {}),
    ...(labels !== undefined ? { labels } : {}),
    ...(targets ? { score_target_differences: targets as number[] } : {}),
  };
}
