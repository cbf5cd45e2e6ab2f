// Runs a ModelProgram in float64 and returns its node-layer activations (each the section's
// input tuple concatenated along features, SPEC-transformers §1.3).

import { embedF64, forwardF64 } from '../cpu/program-f64.js';
import type { ModelProgram, SectionProgram } from '../model/program.js';

export interface NodeActs {
  name: string;
  width: number;
  positions: number;
  /** [n, P, width] */
  data: Float64Array;
  /** The tuple members, each [n, P, w_j] (the section inputs). */
  parts: Float64Array[];
}

/** Concatenates tuple members [n, P, w_j] into [n, P, Σw]. */
export function concatParts(parts: readonly Float64Array[], widths: readonly number[], n: number, P: number): Float64Array {
  const W = widths.reduce((a, b) => a + b, 0);
  const out = new Float64Array(n * P * W);
  let off = 0;
  parts.forEach((a, j) => {
    const w = widths[j]!;
    for (let r = 0; r < n * P; r++) for (let k = 0; k < w; k++) out[r * W + off + k] = a[r * w + k]!;
    off += w;
  });
  return out;
}

/** Splits [n, P, Σw] back into tuple members. */
export function splitParts(x: Float64Array, widths: readonly number[], n: number, P: number): Float64Array[] {
  const W = widths.reduce((a, b) => a + b, 0);
  let off = 0;
  return widths.map((w) => {
    const a = new Float64Array(n * P * w);
    for (let r = 0; r < n * P; r++) for (let k = 0; k < w; k++) a[r * w + k] = x[r * W + off + k]!;
    off += w;
    return a;
  });
}

export function tupleWidths(p: SectionProgram, ids: readonly number[]): number[] {
  return ids.map((id) => p.values[id]!.width);
}

/**
 * The input tuple of the model's `pre` section: for a model with an embedding, `input` holds token
 * ids [n, P]; for one without (an MLP, src/model/mlp-program.ts), the folded rows [n, P, width]
 * of `pre`'s single input value.
 */
export function embedTuple(mp: ModelProgram, input: ArrayLike<number>, n: number, P: number): Float64Array[] {
  if (mp.embed) return embedF64(mp.embed, input, n, P);
  if (mp.pre.inputs.length !== 1) throw new Error(`embedTuple: a model without an embedding takes one input value, not ${mp.pre.inputs.length}`);
  const v = mp.pre.values[mp.pre.inputs[0]!]!;
  if (v.positions !== P || input.length !== n * P * v.width) {
    throw new Error(`embedTuple: ${input.length} input values for ${n} samples of [${v.positions}, ${v.width}] (P = ${P})`);
  }
  return [Float64Array.from(input)];
}

/** A node layer's tuple members without their concatenation (nodeTuplesF64). */
export type NodeTuple = Omit<NodeActs, 'data'>;

/**
 * Node-layer activations of every node layer (and `output` when it ends the list) for the input
 * (tokens [n, P], or folded rows for a model without an embedding: embedTuple): pre runs first,
 * then each section on the previous one's output tuple. `forward` runs a section over the batch:
 * the interpreter (the reference), or a batched twin with its bits (src/host/program-forward.ts).
 */
export function nodeActivationsF64(mp: ModelProgram, input: ArrayLike<number>, n: number, P: number, forward: typeof forwardF64 = forwardF64): NodeActs[] {
  return nodeTuplesF64(mp, input, n, P, forward).map(({ widths, ...t }) => ({ ...t, data: concatParts(t.parts, widths, n, t.positions) }));
}

/**
 * nodeActivationsF64's node layers as their tuple members only (no concatenated copy), with the
 * members' widths; `last`: only node layers 0..last (the later sections are not run).
 */
export function nodeTuplesF64(
  mp: ModelProgram,
  input: ArrayLike<number>,
  n: number,
  P: number,
  forward: typeof forwardF64 = forwardF64,
  last = mp.sections.length,
): (NodeTuple & { widths: number[] })[] {
  let tuple = embedTuple(mp, input, n, P);
  const run = (sec: SectionProgram, inputs: Float64Array[]): Float64Array[] => {
    const vals = forward(sec, inputs, n);
    return sec.outputs.map((id) => vals[id]!);
  };
  tuple = run(mp.pre, tuple);
  const out: (NodeTuple & { widths: number[] })[] = [];
  const record = (name: string, sec: SectionProgram, ids: number[], parts: Float64Array[]): void => {
    const widths = tupleWidths(sec, ids);
    const Pn = sec.values[ids[0]!]!.positions;
    out.push({ name, width: widths.reduce((a, b) => a + b, 0), positions: Pn, parts, widths });
  };
  record(mp.nodeLayers[0]!, mp.pre, mp.pre.outputs, tuple);
  for (const sec of mp.sections.slice(0, last)) {
    tuple = run(sec, tuple);
    record(sec.to, sec, sec.outputs, tuple);
  }
  return out;
}
