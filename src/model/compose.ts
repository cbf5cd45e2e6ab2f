// Composition of consecutive section programs into one (rib's naive gradient flow).
//
// rib's `naive_gradient_flow` builds the basis of node layer ℓ from the Jacobian of the whole
// remaining network, from ℓ to the final node layer: it reruns its build with the two node layers
// [ℓ, final], so the model is cut only there. Since a SectionProgram is a closed straight-line
// function of its input tuple (program.ts), that cut is the composition of the sections ℓ … L−1:
// each section's input tuple is bound to the previous section's output tuple, member by member,
// and the ops are concatenated with their value ids renumbered. The interpreters and passes then
// run the composed program like any other section.

import type { ModelProgram, Op, SectionProgram, ValueInfo } from './program.js';

function remap(op: Op, id: (v: number) => number): Op {
  switch (op.kind) {
    case 'linear':
    case 'act':
    case 'lnVar':
    case 'rotary':
    case 'lastPos':
    case 'copy':
    case 'slice':
      return { ...op, x: id(op.x), y: id(op.y) };
    case 'lnDiv':
      return { ...op, v: id(op.v), x: id(op.x), y: id(op.y) };
    case 'attention':
      return { ...op, q: id(op.q), k: id(op.k), v: id(op.v), y: id(op.y) };
    case 'add':
      return { ...op, a: id(op.a), b: id(op.b), y: id(op.y) };
    case 'concat':
      return { ...op, xs: op.xs.map(id), y: id(op.y) };
  }
}

/**
 * One program computing sections[0] then sections[1] … : inputs of the first, outputs of the last.
 * Each section's inputs must match the previous section's outputs in number, widths and positions
 * (as the compiler's consecutive sections do). Weights are shared, not copied.
 */
export function composeSections(sections: readonly SectionProgram[]): SectionProgram {
  if (sections.length === 0) throw new Error('composeSections: no sections');
  if (sections.length === 1) return sections[0]!;
  const values: ValueInfo[] = [];
  const ops: Op[] = [];
  let inputs: number[] = [];
  let carried: number[] | undefined; // the previous section's outputs, as ids of the composed program
  for (const sec of sections) {
    const map = new Int32Array(sec.values.length).fill(-1);
    if (carried) {
      if (sec.inputs.length !== carried.length) {
        throw new Error(`composeSections: ${sec.from}->${sec.to} takes ${sec.inputs.length} inputs but the previous section gives ${carried.length}`);
      }
      sec.inputs.forEach((v, i) => {
        const a = sec.values[v]!;
        const b = values[carried![i]!]!;
        if (a.width !== b.width || a.positions !== b.positions) {
          throw new Error(
            `composeSections: ${sec.from}->${sec.to} input ${i} is [${a.positions}, ${a.width}] but the previous section gives [${b.positions}, ${b.width}]`,
          );
        }
        map[v] = carried![i]!;
      });
    }
    sec.values.forEach((v, i) => {
      if (map[i] === -1) {
        map[i] = values.length;
        values.push({ ...v });
      }
    });
    const id = (v: number): number => map[v]!;
    if (!carried) inputs = sec.inputs.map(id);
    for (const op of sec.ops) ops.push(remap(op, id));
    carried = sec.outputs.map(id);
  }
  return { from: sections[0]!.from, to: sections[sections.length - 1]!.to, values, inputs, outputs: carried!, ops };
}

/**
 * The model cut only at node layers 0 … ℓ and the final one: sections 0 … ℓ−1 unchanged, then
 * sections ℓ … L−1 composed into one. Section ℓ of the result maps node layer ℓ to the final node
 * layer, which is what rib's naive gradient flow differentiates for node layer ℓ.
 */
export function cutAtFinal(mp: ModelProgram, l: number): ModelProgram {
  const L = mp.nodeLayers.length - 1;
  if (!(l >= 0 && l < L)) throw new Error(`cutAtFinal: node layer ${l} is not before the final one (${L})`);
  return {
    ...mp,
    sections: [...mp.sections.slice(0, l), composeSections(mp.sections.slice(l))],
    nodeLayers: [...mp.nodeLayers.slice(0, l + 1), mp.nodeLayers[L]!],
  };
}
