// Degeneracy accounting (SPEC §6) for the MLP blocks of a transformer: from per-block statistics
// over the (datapoint, position) rows to the report of src/report/degeneracy.ts.
//
// Block i is W_in (d_model → d_mlp, with b_in), the activation, W_out (d_mlp → d_model, with
// b_out), applied per position. Its two linear maps are the report's two sections:
//   W_in   'mlp_in.i -> mlp_act.i':      input f = [x; 1] (x the MLP input, after ln2), n_out = d_mlp
//          pre-activations p; (a) r_G = rank E[f fᵀ] = 1 + rank Cov(x), (b) r_J = rank E[J_pᵀJ_p],
//          J_p = ∂(model output)/∂p at the row's position, (c) for ReLU the firing patterns with
//          one bit per (datapoint, position), their groups and near pairs, and the σ_S ρ_S classes.
//   W_out  'mlp_out.i -> add_resid2.i':  input [h; 1], h = act(p); n_out = d_model outputs y added
//          to the residual stream; J_y = ∂(model output)/∂y.
// Every average divides by the rows N·P (P the positions the block sees: 1 after rib's add_resid1
// cut), as the transformer build's statistics and M′ do. Both maps are covered, so a block's
// counts are those of the Gauss–Newton matrix of its own parameters (W_in, b_in, W_out, b_out)
// with the rest of the model fixed (checked in test/transformer-degeneracy.test.ts).
//
// Not counted: attention, the embeddings, the unembedding and LayerNorm; the report says so and
// gives no whole-model total (effective counts are of the MLP blocks' own parameters).

import type { Activation } from '../model/activations.js';
import { symEigValuesHost } from '../host/eigh-wasm.js';
import type { SignPatternResult } from '../cpu/sign-patterns.js';
import { degeneracyReport, rankOf, type DegeneracyReport, type DegeneracyScope, type RankRule, type SectionInput } from './degeneracy.js';

/** The statistics of one MLP block over its rows (all averages divided by the row count). */
export interface MlpBlockStats {
  block: number;
  activation: Activation;
  dModel: number;
  dMlp: number;
  rows: number;
  /** Covariance of the MLP input x (d_model × d_model). */
  xCov: Float64Array;
  /** Mean, covariance and raw second moment of h = act(p) (d_mlp, d_mlp²). */
  hMean: Float64Array;
  hCov: Float64Array;
  hGram: Float64Array;
  /** Firing patterns of p (ReLU blocks). */
  patterns?: SignPatternResult;
  /** (1/rows) Σ J_pᵀ J_p (d_mlp × d_mlp). */
  jacobianPre: Float64Array;
  /** (1/rows) Σ J_yᵀ J_y (d_model × d_model), y the block's output before the residual add. */
  jacobianOut: Float64Array;
}

/** Node layer names around block i's two maps (rib's module ids). */
export function mlpBlockNames(i: number): { in: string; pre: string; post: string; out: string } {
  return { in: `mlp_in.${i}`, pre: `mlp_act.${i}`, post: `mlp_out.${i}`, out: `add_resid2.${i}` };
}

/** The two sections (W_in, W_out) of every block, as degeneracyReport reads them. */
export function mlpBlockSectionInputs(blocks: readonly MlpBlockStats[], rule: RankRule): SectionInput[] {
  return blocks.flatMap((b): SectionInput[] => {
    const nm = mlpBlockNames(b.block);
    const rGIn = 1 + rankOf(symEigValuesHost(b.xCov, b.dModel), rule);
    const rGOut = 1 + rankOf(symEigValuesHost(b.hCov, b.dMlp), rule);
    const relu = b.activation === 'relu';
    if (relu && !b.patterns) throw new Error(`mlpBlockSectionInputs: block ${b.block} is ReLU but has no firing patterns`);
    return [
      {
        from: nm.in,
        to: nm.pre,
        layer: b.block,
        activation: b.activation,
        hidden: true,
        d: b.dModel + 1,
        nOut: b.dMlp,
        n: b.rows,
        rG: rGIn,
        rGSource: 'gram',
        jacobianGram: b.jacobianPre,
        ...(relu ? { hiddenStats: { patterns: b.patterns!, actGram: b.hGram, actMean: b.hMean, actCov: b.hCov } } : {}),
      },
      {
        from: nm.post,
        to: nm.out,
        layer: b.block,
        activation: 'identity',
        hidden: false,
        d: b.dMlp + 1,
        nOut: b.dModel,
        n: b.rows,
        rG: rGOut,
        rGSource: 'gram',
        jacobianGram: b.jacobianOut,
      },
    ];
  });
}

/** What a transformer report does not count (README "Degeneracy report", transformers). */
export const TRANSFORMER_NOT_COUNTED = [
  'attention (W_Q, W_K, W_V, W_O and their biases): e.g. the GL(d_head) symmetries W_Q A, W_K A⁻ᵀ and W_V B, B⁻¹ W_O per head are not counted',
  'the token and position embeddings W_E, W_pos',
  'the unembedding W_U, b_U',
  "LayerNorm (its weights are folded into the following linear maps; LayerNorm's own scale invariance is not counted)",
  'directions that move parameters of several blocks (or a block and attention) together: each block is counted with the rest of the model fixed',
];

export const TRANSFORMER_PROVENANCE: Record<string, string> = {
  transformer_rows:
    'transformer MLP blocks: one row per (datapoint, position) the block sees; Grams, E[J_pᵀJ_p] and firing patterns average over the N·P rows (SPEC §6.5: "one bit per (datapoint, position) for sequence models")',
  transformer_jacobian:
    "J_p = ∂(model output at rib's output positions)/∂p at the row's position, summed over the output positions and logits (identity cotangents): E[J_pᵀJ_p] is the M′ of the section p → output with the final layer unrotated",
  transformer_scope:
    "counts cover each block's W_in, b_in, W_out, b_out with the rest of the model fixed; attention, embeddings, unembedding and LayerNorm are not analysed, so no whole-model effective count is given (effective_* = covered_params − free)",
};

export interface TransformerReportMeta extends Omit<DegeneracyScope, 'model' | 'counted' | 'not_counted'> {
  /** Every parameter of the model as loaded (LayerNorm weights folded). */
  rawParams: number;
  nLayers: number;
}

/** The degeneracy report of a transformer's MLP blocks. */
export function mlpBlocksReport(blocks: readonly MlpBlockStats[], rule: RankRule, meta: TransformerReportMeta): DegeneracyReport {
  const { rawParams, nLayers, ...scope } = meta;
  const rep = degeneracyReport(mlpBlockSectionInputs(blocks, rule), rule, { rawParams });
  const t = rep.totals;
  const act = blocks[0]?.activation;
  const notes = [
    `transformer: the ${nLayers} MLP block(s) are counted (${t.covered_params} of the model's ${rawParams} parameters), per (datapoint, position) row: ${meta.sequences} sequences × ${meta.positions} position(s) = ${meta.rows} rows`,
    'not counted: ' + TRANSFORMER_NOT_COUNTED.join('; '),
    `effective counts are of the MLP blocks' own ${t.covered_params} parameters (covered − free); no whole-model estimate is given`,
  ];
  if (act !== undefined && act !== 'relu') notes.push(`${meta.act_fn} blocks: (a) and (b) only; no rescaling or synchronisation symmetry (c) is counted`);
  return {
    ...rep,
    totals: { ...t, effective_spec: t.covered_params - t.free_spec, effective_corrected: t.covered_params - t.free_corrected, effective_scope: 'mlp_blocks' },
    provenance: { ...rep.provenance, ...TRANSFORMER_PROVENANCE },
    notes,
    scope: {
      model: 'transformer',
      counted: "each MLP block's W_in, b_in (section mlp_in.i -> mlp_act.i) and W_out, b_out (section mlp_out.i -> add_resid2.i)",
      not_counted: TRANSFORMER_NOT_COUNTED,
      ...scope,
    },
  };
}
