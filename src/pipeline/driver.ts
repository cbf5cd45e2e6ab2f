// The one build driver, for every model kind: statistics → bases from the last node layer
// backwards (each section's basis needs the next node layer's) → edges, over a compiled
// ModelProgram (src/model/program.ts). What differs between sections is a specialisation the build
// chooses per section (SectionSpec): how its basis is built (the MLP's gate-Gram M′ and
// background stage-1 eigensolves, rib's legacy formulas, a transformer's M′ from VJP passes) and
// which edge pass computes its edges (the MLP's carried-Jacobian pass over a run of consecutive
// sections, a transformer pass per section). The driver owns the order of the work: the final
// node layer's rule, the backward recursion, starting the edges of sections whose two bases exist
// while a later basis step waits on asynchronous work, one edge pass at a time, timings, and the
// edges in network order. Results never depend on that order (each pass keeps its own sums).
// Staged builds run its stages on their own: the bases stage (runBases) from the bases a stage
// directory holds, up to the first step whose input a later round of processes computes, and the
// edge stage (runEdges) from stored bases, for an edge shard or an edges-only run.

import type { LayerBasis, NextBasis } from '../ib/basis.js';
import type { ModelProgram } from '../model/program.js';

export interface EdgeMatrix {
  /** [rows, cols] row-major: rows the output node layer's basis directions, cols the input's. */
  data: Float64Array;
  rows: number;
  cols: number;
}

/** How the basis of one section's input node layer is built, from the next node layer's basis. */
export type BasisStep = BasisStepCommon &
  (
    | { build(next: NextBasis): LayerBasis | Promise<LayerBasis>; usesNext?: true }
    | {
        /**
         * The basis does not depend on the next node layer's (PCA; a Jacobian basis from an M′
         * that other processes computed): the driver then need not know the final node layer's width.
         */
        usesNext: false;
        build(): LayerBasis | Promise<LayerBasis>;
      }
  );

interface BasisStepCommon {
  /**
   * The step waits on asynchronous work (a background eigensolve, a data pass on another
   * thread): the driver first starts the edge passes of the sections already based, so that they
   * run meanwhile.
   */
  waits: boolean;
  /**
   * The step's input is computed by another process and is not there yet (a staged build's next
   * M′ round): the bases stage stops before this step (runBases' `pending`).
   */
  pending?: boolean;
}

/** A run of consecutive sections [lo, hi) handed to one edge pass. */
export interface EdgeRun {
  lo: number;
  hi: number;
  /** Every basis built so far, by node layer name (an unrotated final node layer has none). */
  bases: ReadonlyMap<string, LayerBasis>;
  /** For progress displays: 'edges' for the whole network in one pass, else 'edges <from>..<to>'. */
  label: string;
}

/** An edge pass; sections that share one object with `joint` set are computed in one data pass. */
export interface EdgePass {
  joint: boolean;
  /**
   * The bases stage waits for this pass before going on: its work runs on this thread (e.g. a
   * software adapter's dispatches), so running it beside a basis step gains nothing. Its time is
   * booked as edge time, not basis time.
   */
  inline: boolean;
  /** The edges of sections run.lo … run.hi − 1, by section index. */
  run(run: EdgeRun): Promise<Map<number, EdgeMatrix>>;
}

export interface SectionSpec {
  basis: BasisStep;
  /** Absent only where the build computes no edges (calculateEdges false). */
  edges?: EdgePass;
}

export interface GraphPlan {
  /** The final node layer's basis when it is rotated (or kept as an explicit identity), else undefined. */
  finalBasis(): LayerBasis | undefined;
  /** One specialisation per section of the program, in network order. */
  sections: SectionSpec[];
}

export interface GraphBuild<S> {
  program: ModelProgram;
  calculateEdges: boolean;
  /** The statistics pass (one streamed pass over the data for all node layers). */
  statistics(): Promise<S>;
  /** The sections' specialisations, once the statistics are complete (called at the start of the bases stage). */
  plan(stats: S): GraphPlan | Promise<GraphPlan>;
}

export interface GraphTimings {
  /** The statistics pass, wall time. */
  stats: number;
  /** The bases stage, wall time, less the time it waited for inline edge passes. */
  bases: number;
  /** Wall time from the end of the bases stage to the last edge. */
  edgesAfterBases: number;
  /** The edge passes' own times added up, wherever they ran. */
  edgesTotal: number;
}

export interface GraphResult<S> {
  stats: S | undefined;
  /** By node layer name, in the order they were built: the final node layer first, then backwards. */
  bases: Map<string, LayerBasis>;
  /** `${in}->${out}` in network order. */
  edges: Map<string, EdgeMatrix>;
  timings: GraphTimings;
  /** The node layer whose basis step is pending (runBases): no basis from it backwards, no edges of sections before it. */
  pending?: string;
}

/** Width of the final node layer (its tuple concatenated), from the program: its identity basis when unrotated. */
export function finalWidthOf(program: ModelProgram): number {
  const last = program.sections[program.sections.length - 1]!;
  return last.outputs.reduce((a, id) => a + last.values[id]!.width, 0);
}

/** Splits sections [lo, hi) into the runs their edge passes take: joint passes over maximal stretches. */
function edgeRunsOf(passes: readonly (EdgePass | undefined)[], lo: number, hi: number): [number, number][] {
  const runs: [number, number][] = [];
  let a = lo;
  while (a < hi) {
    let b = a + 1;
    const pass = passes[a]!;
    if (pass?.joint) while (b < hi && passes[b] === pass) b++;
    runs.push([a, b]);
    a = b;
  }
  return runs;
}

/**
 * The edge stage's schedule: edge passes run one at a time (they would only compete for the same
 * device), each started as soon as its sections' bases exist, the last sections first.
 */
class EdgeSchedule {
  private chain: Promise<void> = Promise.resolve();
  private readonly started: Promise<void>[] = [];
  private readonly out = new Map<number, EdgeMatrix>();
  /** Sections >= from have their edge pass started. */
  private from: number;
  passes: readonly (EdgePass | undefined)[] = [];
  edgesTotal = 0;

  constructor(
    private readonly names: readonly string[],
    private readonly bases: ReadonlyMap<string, LayerBasis>,
    private readonly enabled: boolean,
  ) {
    this.from = names.length - 1;
  }

  /** Starts the passes of sections [lo, from); `inline` when one of them keeps this thread busy. */
  flush(lo: number): { promise: Promise<void>; inline: boolean } {
    const { names } = this;
    const L = names.length - 1;
    if (!this.enabled || lo >= this.from) return { promise: Promise.resolve(), inline: false };
    const whole = lo === 0 && this.from === L;
    const label = whole ? 'edges' : `edges ${names[lo]}..${names[this.from]}`;
    let inline = false;
    // The last sections first: they were based first.
    for (const [a, b] of edgeRunsOf(this.passes, lo, this.from).reverse()) {
      const pass = this.passes[a];
      if (!pass) throw new Error(`section ${names[a]}->${names[a + 1]} has no edge pass`);
      inline ||= pass.inline;
      const prev = this.chain;
      const run = (async () => {
        await prev.catch(() => undefined);
        const te = performance.now();
        const E = await pass.run({ lo: a, hi: b, bases: this.bases, label });
        this.edgesTotal += performance.now() - te;
        for (let j = a; j < b; j++) {
          const e = E.get(j);
          if (!e) throw new Error(`edge pass over sections ${a}..${b - 1} returned no edges for section ${j}`);
          this.out.set(j, e);
        }
      })();
      // A failure surfaces where the runs are awaited; until then it must not be unhandled.
      run.catch(() => undefined);
      this.started.push(run);
      this.chain = run;
    }
    this.from = lo;
    return { promise: this.chain, inline };
  }

  /** Every started pass, settled (a failure thrown). */
  async all(): Promise<void> {
    await Promise.all(this.started);
  }

  /** After a failure elsewhere: waits for the started passes without throwing theirs. */
  async settle(): Promise<void> {
    await Promise.all(this.started.map((r) => r.catch(() => undefined)));
  }

  /** `${in}->${out}` in network order. */
  edges(): Map<string, EdgeMatrix> {
    const edges = new Map<string, EdgeMatrix>();
    for (let j = 0; j < this.names.length - 1; j++) {
      const e = this.out.get(j);
      if (e) edges.set(`${this.names[j]}->${this.names[j + 1]}`, e);
    }
    return edges;
  }
}

/** The bases stage of a build, on its own or inside runGraph. */
export interface BasesRun {
  /** The node layers in network order (section j joins node layers j and j + 1). */
  nodeLayers: readonly string[];
  /**
   * Width of the final node layer: the last section's next basis when that layer is unrotated.
   * Asked only when a step that uses it is built from it.
   */
  finalWidth: () => number;
  plan: GraphPlan;
  /**
   * Bases built earlier (a staged build's stage directory), the final node layer's included when it
   * has one: kept as they are, and their steps not run; the recursion goes on from the first
   * node layer without one.
   */
  stored?: ReadonlyMap<string, LayerBasis>;
  /** The map the bases go into as they are built (runGraph's edge passes read it meanwhile); else a new one. */
  into?: Map<string, LayerBasis>;
  /**
   * Before a step that waits: the first section whose two bases exist (runGraph starts their
   * edges); a promise it returns is awaited before the step (an inline edge pass).
   */
  beforeWait?: (lo: number) => Promise<void> | undefined;
}

export interface BasesResult {
  /** By node layer name: the stored ones, then those built, in the order they were built (backwards). */
  bases: Map<string, LayerBasis>;
  /**
   * The node layer whose step is pending (its input is computed by another process, as a staged
   * build's next M′ round): the stage stopped there; it and the node layers before it have no basis.
   */
  pending?: string;
  /** The first section whose two bases exist: 0 unless a step is pending. */
  basedFrom: number;
}

/**
 * The bases stage: the final node layer's rule, then each section's basis step from the last
 * backwards, each from the next node layer's basis, until every node layer has one or a step is
 * pending.
 */
export async function runBases(o: BasesRun): Promise<BasesResult> {
  const names = o.nodeLayers;
  const L = names.length - 1;
  const specs = o.plan.sections;
  if (specs.length !== L) throw new Error(`${specs.length} section specialisations for ${L} sections`);
  const bases = o.into ?? new Map<string, LayerBasis>();
  for (const [k, b] of o.stored ?? []) bases.set(k, b);
  if (!bases.has(names[L]!)) {
    const fb = o.plan.finalBasis();
    if (fb) bases.set(names[L]!, fb);
  }
  const fb = bases.get(names[L]!);
  let next: NextBasis | undefined = fb ? { C: fb.C, dim: fb.dim, r: fb.r } : undefined;
  for (let j = L - 1; j >= 0; j--) {
    const kept = bases.get(names[j]!);
    if (kept) {
      next = { C: kept.C, dim: kept.dim, r: kept.r };
      continue;
    }
    const step = specs[j]!.basis;
    if (step.pending) return { bases, pending: names[j]!, basedFrom: j + 1 };
    if (step.waits) {
      // Awaited only when it returns a promise, so that a step that need not wait starts in this
      // same turn (its synchronous part before that of the edge passes just started).
      const w = o.beforeWait?.(j + 1);
      if (w) await w;
    }
    let b: LayerBasis;
    if (step.usesNext === false) b = await step.build();
    else {
      if (!next) {
        const width = o.finalWidth();
        next = { C: undefined, dim: width, r: width };
      }
      b = await step.build(next);
    }
    bases.set(names[j]!, b);
    next = { C: b.C, dim: b.dim, r: b.r };
  }
  return { bases, basedFrom: 0 };
}

/**
 * Runs a build: `build.statistics()`, then each section's basis from the last backwards, then the
 * edges. With `stored` (the bases of every node layer but an unrotated final one, and each
 * section's edge pass) the statistics and bases stages are skipped and only the edges run.
 */
export async function runGraph<S>(build: GraphBuild<S>, stored?: { bases: Map<string, LayerBasis>; edges: EdgePass[] }): Promise<GraphResult<S>> {
  if (stored) return { stats: undefined, ...(await runEdges(build.program, stored.bases, stored.edges, build.calculateEdges)) };
  const clock = () => performance.now();
  const names = build.program.nodeLayers;
  const timings: GraphTimings = { stats: 0, bases: 0, edgesAfterBases: 0, edgesTotal: 0 };
  const bases = new Map<string, LayerBasis>();
  const schedule = new EdgeSchedule(names, bases, build.calculateEdges);

  let stats: S | undefined;
  try {
    let t0 = clock();
    stats = await build.statistics();
    timings.stats = clock() - t0;

    t0 = clock();
    let inlineMs = 0;
    const plan = await build.plan(stats);
    schedule.passes = plan.sections.map((sp) => sp.edges);
    const r = await runBases({
      nodeLayers: names,
      finalWidth: () => finalWidthOf(build.program),
      plan,
      into: bases,
      // A step that waits on asynchronous work: the sections already based get their edges meanwhile.
      beforeWait: (lo) => {
        const f = schedule.flush(lo);
        if (!f.inline) return undefined;
        const ti = clock();
        return f.promise.then(() => {
          inlineMs += clock() - ti;
        });
      },
    });
    timings.bases = clock() - t0 - inlineMs;
    const t1 = clock();
    schedule.flush(r.basedFrom);
    await schedule.all();
    timings.edgesAfterBases = clock() - t1;
    timings.edgesTotal = schedule.edgesTotal;
    return { stats, bases, edges: schedule.edges(), timings, ...(r.pending !== undefined ? { pending: r.pending } : {}) };
  } catch (e) {
    await schedule.settle();
    throw e;
  }
}

/**
 * The edge stage alone, from stored bases (every node layer's but an unrotated final one's) and
 * each section's edge pass: an edges-only run, a staged build's edge shard.
 */
export async function runEdges(
  program: ModelProgram,
  bases: Map<string, LayerBasis>,
  edges: readonly EdgePass[],
  calculateEdges = true,
): Promise<Omit<GraphResult<never>, 'stats'>> {
  const schedule = new EdgeSchedule(program.nodeLayers, bases, calculateEdges);
  schedule.passes = edges;
  const t1 = performance.now();
  try {
    schedule.flush(0);
    await schedule.all();
  } catch (e) {
    await schedule.settle();
    throw e;
  }
  const edgesAfterBases = performance.now() - t1;
  return { bases, edges: schedule.edges(), timings: { stats: 0, bases: 0, edgesAfterBases, edgesTotal: schedule.edgesTotal } };
}
