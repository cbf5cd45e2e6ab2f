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

import type { LayerBasis, NextBasis } from '../ib/basis.js';
import type { ModelProgram } from '../model/program.js';

export interface EdgeMatrix {
  /** [rows, cols] row-major: rows the output node layer's basis directions, cols the input's. */
  data: Float64Array;
  rows: number;
  cols: number;
}

/** How the basis of one section's input node layer is built, from the next node layer's basis. */
export interface BasisStep {
  /**
   * The step waits on asynchronous work (a background eigensolve, a data pass on another
   * thread): the driver first starts the edge passes of the sections already based, so that they
   * run meanwhile.
   */
  waits: boolean;
  build(next: NextBasis): LayerBasis | Promise<LayerBasis>;
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
}

/** Width of the final node layer (its tuple concatenated), from the program: its identity basis when unrotated. */
function finalWidth(program: ModelProgram): number {
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
 * Runs a build: `build.statistics()`, then each section's basis from the last backwards, then the
 * edges. With `stored` (the bases of every node layer but an unrotated final one, and each
 * section's edge pass) the statistics and bases stages are skipped and only the edges run.
 */
export async function runGraph<S>(build: GraphBuild<S>, stored?: { bases: Map<string, LayerBasis>; edges: EdgePass[] }): Promise<GraphResult<S>> {
  const clock = () => performance.now();
  const names = build.program.nodeLayers;
  const L = build.program.sections.length;
  const timings: GraphTimings = { stats: 0, bases: 0, edgesAfterBases: 0, edgesTotal: 0 };
  const edgeOut = new Map<number, EdgeMatrix>();
  let passes: (EdgePass | undefined)[] = stored?.edges ?? [];
  const bases = new Map<string, LayerBasis>(stored?.bases ?? []);

  // Edge passes run one at a time (they would only compete for the same device), each started as
  // soon as its sections' bases exist; `chain` is the last one started.
  let chain: Promise<void> = Promise.resolve();
  const started: Promise<void>[] = [];
  let edgesFrom = L; // sections >= edgesFrom have their edge pass started
  const flush = (lo: number): { promise: Promise<void>; inline: boolean } => {
    if (!build.calculateEdges || lo >= edgesFrom) return { promise: Promise.resolve(), inline: false };
    const whole = lo === 0 && edgesFrom === L;
    const label = whole ? 'edges' : `edges ${names[lo]}..${names[edgesFrom]}`;
    let inline = false;
    // The last sections first: they were based first.
    for (const [a, b] of edgeRunsOf(passes, lo, edgesFrom).reverse()) {
      const pass = passes[a];
      if (!pass) throw new Error(`section ${names[a]}->${names[a + 1]} has no edge pass`);
      inline ||= pass.inline;
      const prev = chain;
      const run = (async () => {
        await prev.catch(() => undefined);
        const te = clock();
        const E = await pass.run({ lo: a, hi: b, bases, label });
        timings.edgesTotal += clock() - te;
        for (let j = a; j < b; j++) {
          const e = E.get(j);
          if (!e) throw new Error(`edge pass over sections ${a}..${b - 1} returned no edges for section ${j}`);
          edgeOut.set(j, e);
        }
      })();
      // A failure surfaces where the runs are awaited; until then it must not be unhandled.
      run.catch(() => undefined);
      started.push(run);
      chain = run;
    }
    edgesFrom = lo;
    return { promise: chain, inline };
  };

  let stats: S | undefined;
  try {
    if (!stored) {
      let t0 = clock();
      stats = await build.statistics();
      timings.stats = clock() - t0;

      t0 = clock();
      let inlineMs = 0;
      const plan = await build.plan(stats);
      const specs = plan.sections;
      if (specs.length !== L) throw new Error(`${specs.length} section specialisations for ${L} sections`);
      passes = specs.map((sp) => sp.edges);
      const fb = plan.finalBasis();
      if (fb) bases.set(names[L]!, fb);
      const width = finalWidth(build.program);
      let next: NextBasis = fb ? { C: fb.C, dim: fb.dim, r: fb.r } : { C: undefined, dim: width, r: width };
      for (let j = L - 1; j >= 0; j--) {
        const step = specs[j]!.basis;
        if (step.waits) {
          const f = flush(j + 1);
          if (f.inline) {
            const ti = clock();
            await f.promise;
            inlineMs += clock() - ti;
          }
        }
        const b = await step.build(next);
        bases.set(names[j]!, b);
        next = { C: b.C, dim: b.dim, r: b.r };
      }
      timings.bases = clock() - t0 - inlineMs;
    }
    const t1 = clock();
    flush(0);
    await Promise.all(started);
    timings.edgesAfterBases = clock() - t1;
  } catch (e) {
    await Promise.all(started.map((r) => r.catch(() => undefined)));
    throw e;
  }

  const edges = new Map<string, EdgeMatrix>();
  for (let j = 0; j < L; j++) {
    const e = edgeOut.get(j);
    if (e) edges.set(`${names[j]}->${names[j + 1]}`, e);
  }
  return { stats, bases, edges, timings };
}
