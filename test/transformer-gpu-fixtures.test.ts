// The GPU passes (src/transformer/gpu-passes.ts) against the float64 passes (passes-f64.ts) on the
// compiled fixture transformers (test/fixtures/synthetic-transformer: modadd-tiny without LN and
// last-position cut, gpt-tiny with LayerNorm and GELU), section by section: centred node
// statistics, M′ with a random Ĉ (or the identity into `output`) at two Gauss–Legendre points,
// and squared edges with a random basis. Compiled by src/model/transformer, so this covers the
// programs the build really runs (node tuples, carried residuals, split LayerNorm).
//
// Tolerance: max |gpu − f64| ≤ 1e-4 · max |f64| per matrix. The GPU works in f32 (forward, VJP and
// per-batch sums, ~1e-6 relative per op over chains of ~20 ops, LayerNorm's 1/σ amplifying by the
// residual scale) with float64 across batches; an error in any index, mask or term is O(1).

import { describe, it } from 'vitest';
import { integrationPoints } from '../src/ib/integration.js';
import { useEngine } from './helpers/gpu.js';
import { fixturePasses, GPU_CASES, randomSectionBases } from './helpers/transformer-fixtures.js';
import { expectNear } from './helpers/close.js';

describe('GPU passes vs float64 passes on the compiled fixture transformers', () => {
  const getEngine = useEngine();
  it.each(GPU_CASES)(
    '%s',
    async (modelDir, kase) => {
      const { l, gpu, cpu } = await fixturePasses(await getEngine(), modelDir, kase);
      try {
        const [gs, cs] = [await gpu.nodeStats(true), await cpu.nodeStats(true)];
        gs.forEach((s, i) => {
          expectNear(s.mean, cs[i]!.mean, `${gpu.model.nodes[i]!.name} mean`);
          expectNear(s.gram, cs[i]!.gram, `${gpu.model.nodes[i]!.name} centred Gram`);
        });
        const pts = integrationPoints('gauss-legendre', 1);
        const nodes = gpu.model.nodes;
        for (let s = 0; s < l.mp.sections.length; s++) {
          const { Chat, rOut, input, where } = randomSectionBases(nodes, s);
          expectNear(await gpu.mPrime(s, Chat, rOut, pts), await cpu.mPrime(s, Chat, rOut, pts), `M′ ${where}`);
          expectNear(await gpu.edges(s, input, Chat, rOut, pts), await cpu.edges(s, input, Chat, rOut, pts), `edges ${where}`);
        }
      } finally {
        gpu.dispose();
      }
    },
    60_000,
  );
});
