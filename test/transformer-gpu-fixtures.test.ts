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
import { GpuPasses } from '../src/transformer/gpu-passes.js';
import { PassesF64 } from '../src/transformer/passes-f64.js';
import { useEngine } from './helpers/gpu.js';
import { gaussian, rng } from './helpers/random.js';
import { load } from './helpers/transformer-fixtures.js';
import { expectNear } from './helpers/close.js';

function randomMatrix(rows: number, cols: number, seed: number): Float64Array {
  const g = gaussian(rng(seed));
  return Float64Array.from({ length: rows * cols }, () => g() / Math.sqrt(rows));
}

describe('GPU passes vs float64 passes on the compiled fixture transformers', () => {
  const getEngine = useEngine();
  it.each([['modadd-tiny', 'modadd-tiny_f64_jacobian'], ['gpt-tiny', 'gpt-tiny_f64_jacobian']])('%s', async (modelDir, kase) => {
    const engine = await getEngine();
    const l = await load(modelDir, kase, 'weights.safetensors');
    const n = Math.min(l.n, 48);
    const tokens = l.tokens.slice(0, n * l.P);
    const gpu = new GpuPasses(engine, l.mp, tokens, n, l.P);
    const cpu = new PassesF64(l.mp, tokens, n, l.P);
    try {
      const [gs, cs] = [await gpu.nodeStats(true), await cpu.nodeStats(true)];
      gs.forEach((s, i) => {
        expectNear(s.mean, cs[i]!.mean, `${gpu.model.nodes[i]!.name} mean`);
        expectNear(s.gram, cs[i]!.gram, `${gpu.model.nodes[i]!.name} centred Gram`);
      });
      const pts = integrationPoints('gauss-legendre', 1);
      const nodes = gpu.model.nodes;
      for (let s = 0; s < l.mp.sections.length; s++) {
        const out = nodes[s + 1]!;
        const identity = out.name === 'output';
        const rOut = identity ? out.width : Math.min(out.width, 6);
        const Chat = identity ? undefined : randomMatrix(out.width, rOut, 100 + s);
        const where = `${nodes[s]!.name}->${out.name}`;
        expectNear(await gpu.mPrime(s, Chat, rOut, pts), await cpu.mPrime(s, Chat, rOut, pts), `M′ ${where}`);
        const rIn = Math.min(nodes[s]!.width, 5);
        const input = { C: randomMatrix(nodes[s]!.width, rIn, 200 + s), Cpinv: randomMatrix(rIn, nodes[s]!.width, 300 + s), rIn };
        expectNear(await gpu.edges(s, input, Chat, rOut, pts), await cpu.edges(s, input, Chat, rOut, pts), `edges ${where}`);
      }
    } finally {
      gpu.dispose();
    }
  }, 60_000);
});
