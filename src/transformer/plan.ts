// The flop cost model of `ibgpu build --plan` for builds whose sections run as per-sample programs
// (transformers; MLPs with "device": "cpu"): per section the widths and positions at
// both ends, the flops of each stage from SPEC-transformers §5.3's cost model and the memory the
// host keeps, from the compiled program and the dataset's size alone (no GPU, no pass run).
// Upper bounds: the kept directions r of every node layer are taken as its full width, so K (the
// cotangents per sample) is P_out·d_out; a relative threshold usually keeps far fewer.
//
// Cost model per sample (one sequence), F the section's forward flops:
//   forward               F
//   M′ VJPs               K · (2F + 2·P_out·d_out)        (one VJP per cotangent, SPEC-T §5.3)
//   M′ accumulation       2·K·P_in·d_in²                  (outer products per input position)
//   edges                 K · (2F + 2·P_out·d_out + 2·P_in·r_in·d_in)
// Sections that the build computes in closed form (gpu-attention-closed.ts, gpu-mdash-local.ts,
// gpu-edges-local.ts, linear-only sections) cost less; the plan names them but counts the
// generic cost, so it bounds the work from above. The float64 CPU passes have no closed forms, so
// with "device": "cpu" every section is named generic. The plan itself and its formatter are
// src/pipeline/plan.ts's, shared with the MLP buffer model.

import { cutAtFinal } from '../model/compose.js';
import type { ModelProgram, Op, SectionProgram } from '../model/program.js';
import { tupleShape } from '../model/program.js';
import { singleActSection } from './gpu-mdash-local.js';
import { lastPosAttentionSection } from './gpu-attention-closed.js';
import { planBuild, type BuildCostModel, type BuildPlan, type SectionCost, type SectionCostModel, type SectionFlops } from '../pipeline/plan.js';

/** A section's entry in a flop plan. */
export type SectionPlan = SectionCost & SectionFlops;

/** A plan whose sections all run as per-sample programs. */
export type TransformerPlan = BuildPlan<SectionPlan> & { statsFlops: number; gramBytes: number };

/** Where the passes run: the closed forms and the MLP edge kernels are the GPU passes' alone. */
export interface FlopPlanOptions {
  naiveGradientFlow?: boolean;
  /** 'cpu': the float64 reference passes (passes-f64.ts), generic per-sample VJPs for every section. */
  device?: 'gpu' | 'cpu';
}

/** Forward flops of one op for one sample (multiply-adds count 2). */
function opFlops(p: SectionProgram, op: Op): number {
  const v = p.values;
  switch (op.kind) {
    case 'linear':
      return 2 * v[op.x]!.positions * op.wIn * op.wOut;
    case 'attention': {
      const P = v[op.q]!.positions;
      const pairs = op.causal ? (P * (P + 1)) / 2 : P * P;
      return 2 * pairs * op.heads * (op.dHead + op.dV) + 5 * pairs * op.heads;
    }
    case 'concat':
    case 'slice':
    case 'copy':
    case 'lastPos':
      return 0;
    default: {
      const y = v[op.y]!;
      return 4 * y.positions * y.width;
    }
  }
}

function sectionPath(p: SectionProgram, device: 'gpu' | 'cpu'): string {
  if (device === 'cpu') return 'generic per-sample VJPs (float64, CPU)';
  if (
    p.ops.every((op) => op.kind === 'linear' || op.kind === 'copy' || op.kind === 'concat' || op.kind === 'slice' || op.kind === 'add' || op.kind === 'lastPos')
  ) {
    return 'linear section: M′ and edges once for all samples';
  }
  if (lastPosAttentionSection(p)) return 'closed form of last-position attention (M′ and edges)';
  if (singleActSection(p)) return 'gate-Gram closed form (M′), MLP edge kernels (edges)';
  return 'generic per-sample VJPs';
}

/**
 * SPEC-transformers §5.3's cost model of a transformer section on N sequences. With naive gradient
 * flow, M′ of node layer ℓ runs on the sections ℓ … L−1 composed (cutAtFinal), so its cost is
 * that program's.
 */
export function transformerSectionCost(mp: ModelProgram, n: number, o: FlopPlanOptions): SectionCostModel<SectionPlan> {
  const device = o.device ?? 'gpu';
  const L = mp.sections.length;
  return (sec, l) => {
    const inp = tupleShape(sec, sec.inputs);
    const out = tupleShape(sec, sec.outputs);
    const cost = (p: SectionProgram): { forward: number; K: number; perSample: number } => {
      const o2 = tupleShape(p, p.outputs);
      const forward = p.ops.reduce((a, op) => a + opFlops(p, op), 0);
      const K = o2.positions * o2.width;
      return { forward, K, perSample: K * (2 * forward + 2 * o2.positions * o2.width * o2.width + 2 * inp.positions * inp.width * inp.width) };
    };
    const local = cost(sec);
    const ngf = o.naiveGradientFlow === true && l < L - 1 ? cutAtFinal(mp, l).sections[l]! : undefined;
    const m = ngf ? cost(ngf) : local;
    const name = `${sec.from} -> ${sec.to}`;
    const mPrimeBytes = inp.width * inp.width * 8;
    return {
      name,
      dIn: inp.width,
      dOut: out.width,
      pIn: inp.positions,
      pOut: out.positions,
      forward: local.forward,
      K: local.K,
      mPrimeFlops: n * m.perSample,
      edgeFlops: n * local.perSample,
      mPrimeBytes,
      path: ngf
        ? `M′ by naive gradient flow through ${ngf.from} -> ${ngf.to} (K ≤ ${m.K}): ${sectionPath(ngf, device)}; edges: ${sectionPath(sec, device)}`
        : sectionPath(sec, device),
      items: [{ stage: 'bases', where: 'host', what: `M′ ${name} (${inp.width}×${inp.width} f64)`, bytes: mPrimeBytes }],
    };
  };
}

/**
 * The flop cost model of a build whose sections run as per-sample programs on N samples: every
 * section by SPEC-transformers §5.3, the statistics pass (forward of every section, the Grams).
 */
export function flopCostModel(mp: ModelProgram, n: number, o: FlopPlanOptions = {}): BuildCostModel<SectionPlan> {
  const cost = transformerSectionCost(mp, n, o);
  return {
    section: () => cost,
    build: () => {
      let statsFlops = 0;
      let gramBytes = 0;
      for (const sec of [mp.pre, ...mp.sections]) for (const op of sec.ops) statsFlops += n * opFlops(sec, op);
      // The statistics of each section's input node layer: its Gram.
      for (const sec of mp.sections) {
        const inp = tupleShape(sec, sec.inputs);
        statsFlops += n * 2 * inp.positions * inp.width * inp.width;
        gramBytes += inp.width * inp.width * 8;
      }
      return { n, statsFlops, gramBytes };
    },
  };
}

/** The plan of a compiled transformer (or any section program) on N sequences. */
export function planTransformer(mp: ModelProgram, n: number, o: FlopPlanOptions = {}): TransformerPlan {
  const p = planBuild(mp, flopCostModel(mp, n, o));
  return { ...p, statsFlops: p.statsFlops!, gramBytes: p.gramBytes! };
}
