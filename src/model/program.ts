// The model floor: a section between two node layers as a straight-line program over per-sample
// tensors. rib cuts its flat module list before each node layer; the section's input is the
// previous section's output tuple, and a node layer's activation is that tuple concatenated along
// the feature axis (SPEC-transformers §1.2–1.3). A `SectionProgram` is exactly that closed
// function: `inputs` are the tuple members of node layer ℓ, `outputs` those of node layer ℓ+1.
//
// Every value is, per sample, a row-major [P, width] tensor (P = positions of that value; P = 1 for
// an MLP). Both interpreters run the same program: the float64 host reference
// (src/cpu/program-f64.ts) and the GPU one (f32, batched over samples and cotangent blocks).
// Kernels and references import this file; this file imports nothing of the pipeline.
//
// Conventions (rib's row-vector orientation: y = x·W):
// - Weights are folded (SPEC-transformers §2.3): biases are rows of W that multiply a 1-slot, so no
//   op has a bias. Weights are kept in float64; the GPU uploads f32 copies.
// - `linear` acts per position: y[p] = x[p]·W, W row-major [wIn, wOut].
// - `attention` is rib's AttentionOut core without W_O: per head h, s_{t,u} = q_{h,t}·k_{h,u}/scale,
//   masked to −∞ where u > t (causal) or u ≤ t − window (local attention, when `window` is set),
//   p = softmax_u(s), z_{h,t} = Σ_u p_{t,u} v_{h,u}. q, k are [P, H·dHead] head-major; v and z are
//   [P, H·dV] head-major (dV = dHead + 1 after folding: each head's v ends in its 1-slot).
// - `rotary` rotates the first `rotaryDim` coordinates of each head (NeoX halves,
//   SPEC-transformers §2.5) at the value's own position index t = 0..P−1.
// - `lnVar`: y[p] = [ (1/d) Σ_{k<d} (x[p,k] − mean)² ] (population variance of the first d
//   coordinates, no ε; the trailing 1-slot excluded). Width 1.
// - `lnDiv`: inputs (var [P,1], x [P, d+1]); y[p] = [ (x[p,:d] − mean)/√(var + ε), x[p,d] ].
//   var is an input of its own: ∂y/∂var does not flow into x (rib's split LayerNorm).
// - `act`: elementwise over the whole value (the folded ρ slot maps to act(ρ) = 1).
// - `add`: y = a + b (same shape). `lastPos`: y = x[P−1] (P → 1). `copy`: y = x (rib's IdentitySplit
//   duplicates its input; the VJP sums the cotangents of both uses).
// - `concat`/`slice` along features, per position.
//
// A value may be read by several ops (fan-out); the VJP sums the contributions.

import type { Activation } from './activations.js';

export interface ValueInfo {
  /** Features per position. */
  width: number;
  /** Positions per sample. */
  positions: number;
  /** For reading programs and error messages, e.g. 'attn_in.0/q'. */
  label: string;
}

/**
 * The heads of an attention op: the op itself, its float64 reference (src/cpu/transformer-ops.ts)
 * and its GPU kernels (src/kernels/transformer-attention.ts) all describe them with this one type.
 */
export interface AttentionHeads {
  heads: number;
  dHead: number;
  dV: number;
  /** Scores are q·k / scale. */
  scale: number;
  causal: boolean;
  /** Local attention: only keys with |t − u| < window (absent or 0: unlimited). */
  window?: number;
}

export type Op =
  | { kind: 'linear'; x: number; y: number; W: Float64Array; wIn: number; wOut: number }
  | { kind: 'act'; x: number; y: number; act: Activation }
  | { kind: 'lnVar'; x: number; y: number; d: number }
  | { kind: 'lnDiv'; v: number; x: number; y: number; d: number; eps: number }
  | { kind: 'rotary'; x: number; y: number; heads: number; dHead: number; rotaryDim: number; base: number }
  | ({ kind: 'attention'; q: number; k: number; v: number; y: number } & AttentionHeads)
  | { kind: 'add'; a: number; b: number; y: number }
  | { kind: 'lastPos'; x: number; y: number }
  | { kind: 'copy'; x: number; y: number }
  | { kind: 'concat'; xs: number[]; y: number }
  | { kind: 'slice'; x: number; y: number; from: number; to: number };

/** The value ids an op reads, in its operand order. */
export function opInputs(op: Op): number[] {
  switch (op.kind) {
    case 'lnDiv':
      return [op.v, op.x];
    case 'attention':
      return [op.q, op.k, op.v];
    case 'add':
      return [op.a, op.b];
    case 'concat':
      return op.xs;
    default:
      return [op.x];
  }
}

export interface SectionProgram {
  /** Node layer names at both ends, e.g. 'ln1.0' -> 'ln2.0'. */
  from: string;
  to: string;
  values: ValueInfo[];
  /** Value ids of the input tuple (node layer ℓ), in concatenation order. */
  inputs: number[];
  /** Value ids of the output tuple (node layer ℓ+1), in concatenation order. */
  outputs: number[];
  /** Topologically ordered; each op writes a fresh value id. */
  ops: Op[];
}

/** Width of a node layer (its tuple concatenated) and its positions. */
export function tupleShape(p: SectionProgram, ids: readonly number[]): { width: number; positions: number } {
  let width = 0;
  let positions = -1;
  for (const id of ids) {
    const v = p.values[id]!;
    width += v.width;
    if (positions === -1) positions = v.positions;
    else if (positions !== v.positions) throw new Error(`section ${p.from}->${p.to}: tuple members with different positions`);
  }
  return { width, positions };
}

/**
 * The embedding stage of a transformer (rib's `embed`, `pos_embed`): tokens [P] → the tuple
 * (e, pos), e = WE[tok] and pos = Wpos[0..P−1], both [P, width] and folded (WE gains a 0 column,
 * Wpos a 1 column; rotary models have no Wpos and WE gains a 1 column, so the tuple is (e) alone).
 */
export interface EmbedSpec {
  /** [vocab, width] row-major, folded. */
  WE: Float64Array;
  vocab: number;
  width: number;
  /** [nCtx, width] row-major, folded; absent for rotary models. */
  Wpos?: Float64Array;
  nCtx: number;
}

/**
 * A whole model cut at its node layers: `pre` runs from the embedding tuple (or, for an MLP, from
 * the folded input [x, 1]) to the first node layer and is run but not analysed; `sections[i]` maps
 * node layer i to node layer i+1. `sections[i].to === nodeLayers[i + 1]`.
 */
export interface ModelProgram {
  embed?: EmbedSpec;
  pre: SectionProgram;
  sections: SectionProgram[];
  nodeLayers: string[];
}
