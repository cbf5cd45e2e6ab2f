// The same rib reference cases as test/transformer-fixtures.test.ts (tolerances stated there),
// built from the float64 weight file (weights_f64.safetensors).

import { describe, it } from 'vitest';
import { CASES, checkCase } from './helpers/transformer-fixtures.js';

describe('rib reference cases from weights_f64.safetensors (float64 weights)', () => {
  for (const [modelDir, kase] of CASES) {
    it(kase, async () => {
      await checkCase(modelDir, kase, 'weights_f64.safetensors');
    });
  }
});
