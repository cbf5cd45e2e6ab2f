// The dry run of a build (`ibgpu build --plan`) as the build driver (driver.ts) would run it: one
// entry per section of the compiled ModelProgram, in network order, each from the cost model of
// the specialisation the build takes for that section. MLP layer sections (src/ib/plan.ts): the
// buffers of the gate-Gram M′ statistics, the basis and the carried-Jacobian edge pass;
// transformer sections (src/transformer/plan.ts): SPEC-transformers §5.3's flops of the forward,
// M′ and edge passes and the host bytes of M′. What belongs to no section (the data buffers, the
// node layers' statistics, the degeneracy report) stays with the build's own plan.

import type { ModelProgram, SectionProgram } from '../model/program.js';

/** A buffer one stage allocates; bytes are upper bounds (every direction kept). */
export interface PlanItem {
  /** 'degeneracy': SPEC §6's statistics, collected during the statistics pass (config.degeneracy). */
  stage: 'data' | 'stats' | 'degeneracy' | 'bases' | 'edges';
  where: 'gpu' | 'host';
  what: string;
  bytes: number;
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

/** Every section's plan, in network order, from the cost model `modelOf` chooses for it. */
export function planSections<C extends SectionCost>(program: ModelProgram, modelOf: (sec: SectionProgram, j: number) => SectionCostModel<C>): C[] {
  return program.sections.map((sec, j) => modelOf(sec, j)(sec, j));
}

/** The items of `stage` over every section, in network order. */
export function sectionItems(sections: readonly SectionCost[], stage: PlanItem['stage']): PlanItem[] {
  return sections.flatMap((s) => s.items.filter((i) => i.stage === stage));
}
