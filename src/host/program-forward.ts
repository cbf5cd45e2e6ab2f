// The float64 forward pass of a section program (src/model/program.ts) over a batch, as the
// interpreter computes it (src/cpu/program-f64.ts forwardF64: the reference) but with every linear
// op run once over the rows of all samples, X [n·P, w_in] · W, by mulRows (WebAssembly SIMD
// row sums where it runs, else the JS loop) instead of sample by sample in scalar JS. Each entry
// is summed over the input index in increasing order from +0 with the zero inputs skipped, as the
// interpreter's linear op sums it, so every value is the same bits (test/host-program-forward.test.ts).
// The other ops (attention, LayerNorm, activations, copies) are the interpreter's own, per sample:
// they are a small part of the work wherever the linear maps are the model.

import { forwardInputs, forwardOpF64, type ProgramValues } from '../cpu/program-f64.js';
import type { Op, SectionProgram } from '../model/program.js';
import { mulRows } from './mul-rows.js';

/** forwardF64(program, inputs, nSamples, alpha), bit for bit, with the linear ops batched over the samples. */
export function forwardRowsF64(program: SectionProgram, inputs: readonly Float64Array[], nSamples: number, alpha = 1): ProgramValues {
  const vals = forwardInputs(program, inputs, nSamples, alpha);
  runOpsRows(program, program.ops, vals, nSamples);
  return vals;
}

/**
 * Runs `ops` (some of program's ops, in program order) over a batch of nSamples: each op's output
 * into `vals` from the values there (its inputs must be present), as forwardRowsF64 does.
 */
export function runOpsRows(program: SectionProgram, ops: readonly Op[], vals: ProgramValues, nSamples: number): void {
  for (const op of ops) {
    if (op.kind !== 'linear') {
      vals[op.y] = forwardOpF64(program, op, vals, nSamples);
      continue;
    }
    // Values are [n, P, w] row-major: the n·P rows of x follow one another, so the batch is one product.
    const rows = nSamples * program.values[op.y]!.positions;
    vals[op.y] = mulRows(vals[op.x]!, rows, op.wIn, op.W, op.wOut);
  }
}
