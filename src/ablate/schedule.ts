// Ablation schedules, as rib defines them (rib/ablations.py): which numbers of ablated vectors
// (or edges) to evaluate, in which order, and when to stop.
//
// - exponential: every count from 0 up to `ablate_every_vec_cutoff`, then steps growing as
//   exp_base^x, then all of them (rib's ExponentialSchedule; cutoff null = every count);
// - linear: `n_points` evenly spaced counts from n to 0 (np.linspace, truncated to integers);
// - bisect: the largest number ablated that keeps the score within `score_target_difference` of
//   the unablated one, to within `tolerance` (rib's BisectSchedule, linear or logarithmic midpoint).
// Static schedules run from few ablated to many and stop once the score moved more than
// `early_stopping_threshold` from the first (unablated) score.

import { IbgpuError } from '../errors.js';

export type EvalType = 'accuracy' | 'ce_loss';

export interface ExponentialScheduleConfig {
  schedule_type: 'exponential';
  early_stopping_threshold?: number | null;
  specific_points?: number[] | null;
  ablate_every_vec_cutoff?: number | null;
  exp_base?: number;
}

export interface LinearScheduleConfig {
  schedule_type: 'linear';
  early_stopping_threshold?: number | null;
  specific_points?: number[] | null;
  n_points: number;
}

export interface BisectScheduleConfig {
  schedule_type: 'bisect';
  score_target_difference: number;
  scaling?: 'linear' | 'logarithmic';
  tolerance?: number;
}

export type ScheduleConfig = ExponentialScheduleConfig | LinearScheduleConfig | BisectScheduleConfig;

/** A schedule yields counts of ablated vectors; `report(score)` is called after each evaluation. */
export interface Schedule {
  next(): number | undefined;
  report(score: number): void;
  /** bisect: the largest count known to keep the score (rib's `_lower_bound`); else undefined. */
  readonly keptBound?: number;
}

/** Counts ablated, in rib's order (0 first), before early stopping. */
export function staticAblationCounts(cfg: ExponentialScheduleConfig | LinearScheduleConfig, n: number): number[] {
  let remaining: number[];
  if (cfg.schedule_type === 'linear') {
    const p = cfg.n_points;
    if (!Number.isInteger(p) || p < 2 || p > n + 1) {
      throw new IbgpuError('BAD_CONFIG', `schedule.n_points = ${p} must be an integer in [2, ${n + 1}] for ${n} vectors`);
    }
    // np.linspace(n, 0, p): start + i·step, the last point exactly 0.
    const step = -n / (p - 1);
    remaining = Array.from({ length: p }, (_, i) => (i === p - 1 ? 0 : Math.trunc(n + i * step)));
  } else {
    const cutoff = cfg.ablate_every_vec_cutoff ?? null;
    const base = cfg.exp_base ?? 2;
    if (cutoff === null) {
      remaining = Array.from({ length: n + 1 }, (_, i) => n - i);
    } else {
      if (!Number.isInteger(cutoff) || cutoff < 0 || cutoff >= n) {
        throw new IbgpuError('BAD_CONFIG', `schedule.ablate_every_vec_cutoff = ${cutoff} must be an integer in [0, ${n - 1}] for ${n} vectors`);
      }
      if (!(base > 1)) throw new IbgpuError('BAD_CONFIG', `schedule.exp_base = ${base} must be > 1`);
      // rib's lists are of numbers ABLATED, read backwards as "remaining" in its docstring examples;
      // the arithmetic is the same, so we mirror it literally.
      const every: number[] = [];
      for (let v = n; v > n - cutoff - 1; v--) every.push(v);
      const expo: number[] = [];
      let prev = every[every.length - 1]!;
      for (let x = 0; x < n; x++) {
        const v = Math.trunc(prev - base ** x);
        if (v > 0) {
          expo.push(v);
          prev = v;
        } else {
          expo.push(0);
          break;
        }
      }
      remaining = [...every, ...expo];
    }
  }
  // rib builds the schedule as "vectors ablated" descending from n (its first element n, last 0)
  // and iterates it reversed: 0 ablated first.
  let sched = remaining;
  if (cfg.specific_points) {
    const extra = cfg.specific_points.filter((x) => x <= n).map((x) => n - x);
    sched = [...new Set([...sched, ...extra])].sort((a, b) => b - a);
  }
  return [...sched].reverse();
}

class StaticSchedule implements Schedule {
  private i = 0;
  private base: number | undefined;
  private stop = false;
  constructor(
    private readonly counts: number[],
    private readonly threshold: number | null,
  ) {}
  next(): number | undefined {
    if (this.stop || this.i >= this.counts.length) return undefined;
    return this.counts[this.i++];
  }
  report(score: number): void {
    if (this.threshold === null) return;
    this.base ??= score;
    if (Math.abs(score - this.base) > this.threshold) this.stop = true;
  }
}

class BisectSchedule implements Schedule {
  private upper: number;
  private lower = 0;
  private last = -1;
  private readonly tol: number;
  private readonly log: boolean;
  constructor(
    private readonly cfg: BisectScheduleConfig,
    n: number,
    private readonly evalType: EvalType,
    private readonly baseScore: number,
  ) {
    if (n < 1) throw new IbgpuError('BAD_CONFIG', 'bisect needs at least one vector or edge to ablate');
    this.upper = n;
    this.tol = cfg.tolerance ?? 1;
    this.log = (cfg.scaling ?? 'linear') === 'logarithmic';
    if (!Number.isInteger(this.tol) || this.tol < 1) throw new IbgpuError('BAD_CONFIG', `schedule.tolerance = ${this.tol} must be an integer >= 1`);
  }
  get keptBound(): number {
    return this.lower;
  }
  next(): number | undefined {
    if (this.upper - this.lower <= this.tol) return undefined;
    let p = this.log ? Math.trunc(Math.exp((Math.log(this.upper) + Math.log(this.lower + 1e-9)) / 2)) : Math.floor((this.upper + this.lower) / 2);
    if (p === this.lower) p += 1;
    if (p === this.upper) p -= 1;
    if (p === this.last) throw new Error('bisect schedule stuck: report() was not called');
    this.last = p;
    return p;
  }
  report(score: number): void {
    const d = this.cfg.score_target_difference;
    const good = this.evalType === 'ce_loss' ? score <= this.baseScore + d : score >= this.baseScore - d;
    if (good) this.lower = this.last;
    else this.upper = this.last;
  }
}

/** The schedule over `n` vectors or edges; bisect compares against `baseScore`. */
export function makeSchedule(cfg: ScheduleConfig, n: number, evalType: EvalType, baseScore: number): Schedule {
  if (cfg.schedule_type === 'bisect') return new BisectSchedule(cfg, n, evalType, baseScore);
  return new StaticSchedule(staticAblationCounts(cfg, n), cfg.early_stopping_threshold ?? null);
}
