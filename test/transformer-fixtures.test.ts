// rib's outputs on the synthetic transformers (test/fixtures/synthetic-transformer, README there)
// reproduced by the float64 reference pipeline (src/transformer/pipeline.ts with PassesF64), for
// all six shipped cases, here from the float32 weight file (transformer-fixtures-f64.test.ts: the
// float64 file). Tolerances (the measured worst values in parentheses):
//   kept dimensions equal, per node layer;
//   means ≤ 1e-12 relative to their largest entry;
//   Λ ≤ 1e-8 relative per entry (4e-11; the fixture README's independent re-implementation: 4e-12);
//   C and C⁺ columns/rows equal up to sign within 1e-8 of the column's largest entry (5e-11);
//   edges ≤ 1e-5 relative to the matrix's largest entry (4.5e-7: rib accumulates edges in float32).
// The invariants of SPEC-transformers §9.3: transformer-invariants.test.ts.

import { describe, it } from 'vitest';
import { CASES, checkCase } from './helpers/transformer-fixtures.js';

describe('rib reference cases from weights.safetensors (float32 weights)', () => {
  for (const [modelDir, kase] of CASES) {
    it(kase, async () => {
      await checkCase(modelDir, kase, 'weights.safetensors');
    });
  }
});
