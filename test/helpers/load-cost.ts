// One run of the load_cost microbenchmark kernel against its float64 reference, on any engine:
// test/load-cost.test.ts runs it on the file's engine in every mode, test/barrier-kernels.test.ts
// on SwiftShader (whose interleaved invocations expose a missing workgroup barrier).

import { LOAD_COST_TABLE, loadCostF64, type LoadCostCase } from '../../src/cpu/load-cost.js';
import { loadCost } from '../../src/kernels/load-cost.js';
import type { Engine } from '../../src/runtime/engine.js';

// Tolerance: each FMA step a <- a*v + c with |v| <= 0.5, |a| <= 0.5 adds at most one rounding of
// 2^-24 * 0.5 and contracts earlier errors by |v| <= 0.5, so each of the 8 accumulators is within
// 2^-24 of its float64 value (2x for a non-fused mul+add); the final sum of 8 values adds 8
// roundings of at most 4 * 2^-24. 64 * 2^-24 (3.8e-6) covers all of it.
export const LOAD_COST_TOL = 64 * 2 ** -24;

/** Runs case c on `data` (its first LOAD_COST_TABLE vec4s are the table): max |out − reference|, Infinity for a NaN. */
export async function loadCostWorstError(e: Engine, c: LoadCostCase, data: Float32Array): Promise<number> {
  const buf = e.upload(data, 'load-cost-data');
  const out = e.alloc(c.workgroups * c.wg * 4, 'load-cost-out');
  loadCost(e, buf, data.subarray(0, LOAD_COST_TABLE * 4), out, c);
  const got = await e.readF32(out, c.workgroups * c.wg);
  e.release(buf, out);
  const ref = loadCostF64(data, c);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i]! - ref[i]!);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}
