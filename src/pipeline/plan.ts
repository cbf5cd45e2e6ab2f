// The dry run of a build (`ibgpu build --plan`) as the build driver (driver.ts) would run it, for
// every kind of model: one entry per section of the compiled ModelProgram, in network order, each
// from the cost model of the specialisation the build takes for that section, plus what belongs to
// no section (the data buffers, the node layers' statistics, the degeneracy report), and one
// formatter for all of them (text; --json prints the plan object itself).
//
// Two kinds of cost model fill a plan. Buffer models (MLP layer sections on the GPU/host pipeline,
// src/ib/plan.ts) give the bytes each stage allocates; flop models (sections run as per-sample
// programs, src/transformer/plan.ts, SPEC-transformers §5.3) give the flops of the forward, M′ and
// edge passes and the host bytes of M′. The formatter prints the parts a plan has.

import type { ModelProgram, SectionProgram } from '../model/program.js';

/** A buffer one stage allocates; bytes are upper bounds (every direction kept). */
export interface PlanItem {
  /** 'degeneracy': SPEC §6's statistics, collected during the statistics pass (config.degeneracy). */
  stage: 'data' | 'stats' | 'degeneracy' | 'bases' | 'edges';
  where: 'gpu' | 'host';
  what: string;
  bytes: number;
}

/** A section's flops on the plan's samples (flop models only); every bound keeps all directions. */
export interface SectionFlops {
  dIn: number;
  dOut: number;
  pIn: number;
  pOut: number;
  /** Forward flops per sample. */
  forward: number;
  /** Cotangents per sample (upper bound P_out·d_out). */
  K: number;
  mPrimeFlops: number;
  edgeFlops: number;
  /** Host float64 bytes of M′ (d_in²). */
  mPrimeBytes: number;
}

/** What every section's plan holds, whatever its cost model. */
export interface SectionCost {
  /** `${from} -> ${to}`. */
  name: string;
  /** How the build computes it (its specialisation): a closed form, the MLP kernels, generic VJPs. */
  path: string;
  /** The buffers its stages allocate, each stage's in the order the build allocates them. */
  items: PlanItem[];
}

/** The cost model of one kind of section: its plan from its program and index. */
export type SectionCostModel<C extends SectionCost> = (sec: SectionProgram, j: number) => C;

/** The buffers of a whole build on the GPU/host pipeline (buffer models). */
export interface BufferPlan {
  /** Rows of this plan (this shard's; `n` is the whole dataset's). */
  rows: number;
  batches: number;
  passes: { stage: string; passes: number }[];
  /** Every buffer, the sections' among them, in the order the stages allocate them. */
  items: PlanItem[];
  /** Peak per stage (sum of that stage's items, plus the data buffers while streaming). */
  peak: Record<string, { gpu: number; host: number }>;
}

/** The statistics pass of a build whose sections run as per-sample programs (flop models). */
export interface FlopPlan {
  /** Forward of every section and the node-layer Grams, on the plan's samples. */
  statsFlops: number;
  /** Host float64 bytes of the node-layer Grams. */
  gramBytes: number;
}

/** The plan of one build: its sections in network order and what belongs to no section. */
export type BuildPlan<C extends SectionCost = SectionCost> = {
  /** Datapoints: the whole dataset's with a buffer plan, the plan's sequences with a flop plan. */
  n: number;
  /** What the staged commands (--stage) run, where the build says. */
  staged?: Record<string, string>;
  sections: C[];
} & (Partial<BufferPlan> & Partial<FlopPlan>);

/** How a build is planned: the specialisation of each section and the rest of the build. */
export interface BuildCostModel<C extends SectionCost> {
  /** The cost model of the specialisation the build takes for section j. */
  section(sec: SectionProgram, j: number): SectionCostModel<C>;
  /** What belongs to no section, given the sections' plans (their items are the build's to place). */
  build(sections: C[]): Omit<BuildPlan<C>, 'sections'>;
}

/** The plan of any build: every section's entry from its specialisation, then the build's own part. */
export function planBuild<C extends SectionCost>(program: ModelProgram, model: BuildCostModel<C>): BuildPlan<C> {
  const sections = program.sections.map((sec, j) => model.section(sec, j)(sec, j));
  return { ...model.build(sections), sections };
}

/** The items of `stage` over every section, in network order. */
export function sectionItems(sections: readonly SectionCost[], stage: PlanItem['stage']): PlanItem[] {
  return sections.flatMap((s) => s.items.filter((i) => i.stage === stage));
}

function hasFlops(s: SectionCost): s is SectionCost & SectionFlops {
  return typeof (s as Partial<SectionFlops>).mPrimeFlops === 'number';
}

export function formatBytes(b: number): string {
  if (b < 1024) return `${b} B`;
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = b / 1024;
  let k = 0;
  while (v >= 1024 && k < u.length - 1) {
    v /= 1024;
    k++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${u[k]}`;
}

function flops(f: number): string {
  return f >= 1e12 ? `${(f / 1e12).toFixed(2)} TFLOP` : f >= 1e9 ? `${(f / 1e9).toFixed(2)} GFLOP` : `${(f / 1e6).toFixed(2)} MFLOP`;
}

/** Host bytes of the flop lines (one decimal, KiB or MiB, as printed since the first flop plans). */
function kib(b: number): string {
  return b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`;
}

/** The text of any plan: the header, then the parts it has (buffers per stage, flops per section), then what the stages run. */
export function formatPlan(p: BuildPlan, header: string): string {
  const lines = [header];
  if (p.items && p.passes && p.peak && p.rows !== undefined) {
    lines.push(`datapoints: ${p.n}${p.rows !== p.n ? ` (this shard: ${p.rows})` : ''}; ${p.batches} batches per pass`);
    lines.push(`passes over the data: ${p.passes.map((x) => `${x.stage} ×${x.passes}`).join(', ')} (${p.passes.reduce((a, x) => a + x.passes, 0)} in all)`);
    for (const st of ['data', 'stats', 'degeneracy', 'bases', 'edges'] as const) {
      const its = p.items.filter((i) => i.stage === st);
      if (its.length === 0) continue;
      lines.push(`${st}:`);
      for (const i of its) lines.push(`  ${i.where.padEnd(4)} ${formatBytes(i.bytes).padStart(10)}  ${i.what}`);
      const pk = p.peak[st];
      if (pk) lines.push(`  peak (with data buffers and weights while streaming): GPU ${formatBytes(pk.gpu)}, host ${formatBytes(pk.host)}`);
    }
  }
  if (p.statsFlops !== undefined && p.gramBytes !== undefined) {
    lines.push(`statistics: ${flops(p.statsFlops)} (forward of every section and the node-layer Grams), host Grams ${kib(p.gramBytes)} f64`);
    const flopSections = p.sections.filter(hasFlops);
    for (const s of flopSections) {
      lines.push(
        `${s.name}: d ${s.dIn} -> ${s.dOut}, positions ${s.pIn} -> ${s.pOut}, forward ${flops(s.forward)}/sample; K ≤ ${s.K} cotangents/sample; ` +
          `M′ ≤ ${flops(s.mPrimeFlops)} (host ${kib(s.mPrimeBytes)} f64), edges ≤ ${flops(s.edgeFlops)}; ${s.path}`,
      );
    }
    const total = p.statsFlops + flopSections.reduce((a, s) => a + s.mPrimeFlops + s.edgeFlops, 0);
    // Only a plan where some section takes a closed form can say those cost less (a float64
    // "device": "cpu" build runs generic VJPs everywhere).
    const closed = flopSections.some((s) => !s.path.startsWith('generic'));
    lines.push(`total ≤ ${flops(total)} (upper bounds: every direction kept, generic VJP cost${closed ? '; closed forms cost less' : ''})`);
  }
  if (p.staged)
    lines.push(
      `staged (--stage): ${Object.entries(p.staged)
        .map(([k, v]) => `${k}: ${v}`)
        .join('; ')}`,
    );
  return lines.join('\n');
}
