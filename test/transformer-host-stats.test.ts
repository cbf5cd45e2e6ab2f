// The transformer passes' host path (src/transformer/host-stats.ts; stage_paths stats/edges =
// host) against the float64 reference passes (passes-f64.ts) on random one-layer transformers of
// rib's modular-addition shape (no LayerNorm, node layers ln1.0, ln2.0, unembed, output, last
// position after add_resid1), with small vocabularies so that node layer 0 has a token table
// (N ≥ vocab): node statistics (centred and raw), M′ and squared edges of the MLP section from
// the host rows (ReLU at one point: co-firing counts; GELU and two Gauss–Legendre points: the
// gate Gram), M′ and edges of the attention section (table form of the closed-form sums). Shapes
// with primes, one head, 1-wide heads' neighbours, P = 3 and 4.
//
// Tolerances: everything here is float64 and the same function summed in another order, so
// 1e-12 of each matrix's largest entry (1e-10 for the attention closed forms, whose softmax and
// VJP chain differ from the reference's in more places). The GPU path stays reachable with
// stage_paths.stats = 'gpu' (checked by the recorded path).

import { describe, expect, it } from 'vitest';
import { integrationPoints } from '../src/ib/integration.js';
import { compileTransformer } from '../src/model/transformer/compile.js';
import { randomTransformer, transformerConfig } from '../src/model/transformer/random.js';
import { GpuPasses } from '../src/transformer/gpu-passes.js';
import { PassesF64 } from '../src/transformer/passes-f64.js';
import { useEngine } from './helpers/gpu.js';
import { randomMatrix, rng } from './helpers/random.js';
import { expectNear } from './helpers/close.js';

interface Case {
  d: number;
  heads: number;
  dHead: number;
  dMlp: number;
  vocab: number;
  P: number;
  act: 'relu' | 'gelu';
  N: number;
}

const CASES: Case[] = [
  { d: 13, heads: 2, dHead: 5, dMlp: 23, vocab: 7, P: 3, act: 'relu', N: 41 },
  { d: 8, heads: 1, dHead: 3, dMlp: 11, vocab: 5, P: 4, act: 'gelu', N: 17 },
  { d: 16, heads: 3, dHead: 4, dMlp: 31, vocab: 11, P: 3, act: 'relu', N: 67 },
];

function setup(c: Case, seed: number) {
  const cfg = transformerConfig({ d_model: c.d, n_heads: c.heads, d_head: c.dHead, d_mlp: c.dMlp, d_vocab: c.vocab, n_ctx: c.P, n_layers: 1, act_fn: c.act });
  const model = randomTransformer(cfg, seed);
  const mp = compileTransformer(model, ['ln1.0', 'ln2.0', 'unembed', 'output'], { positions: c.P, lastPosModuleType: 'add_resid1' });
  const rand = rng(seed + 1);
  const tokens = Int32Array.from({ length: c.N * c.P }, () => Math.floor(rand() * c.vocab));
  return { mp, tokens };
}

function tol(rel: number) {
  return (got: Float64Array, want: Float64Array, what: string) => expectNear(got, want, what, rel);
}

describe('transformer host statistics path', () => {
  const getEngine = useEngine();

  it.each(CASES.map((c, i) => [i, c] as const))('case %i: statistics, MLP M′ and edges, attention M′ and edges = float64 passes', async (i, c) => {
    const engine = await getEngine();
    const { mp, tokens } = setup(c, 300 + i);
    const host = new GpuPasses(engine, mp, tokens, c.N, c.P, { stats: 'host', edges: 'host' });
    const ref = new PassesF64(mp, tokens, c.N, c.P);
    try {
      for (const centred of [true, false]) {
        const [h, r] = [await host.nodeStats(centred), await ref.nodeStats(centred)];
        expect(h.length).toBe(r.length);
        h.forEach((s, k) => {
          expect([s.dim, s.positions]).toEqual([r[k]!.dim, r[k]!.positions]);
          tol(1e-12)(s.mean, r[k]!.mean, `node ${k} mean`);
          tol(1e-12)(s.gram, r[k]!.gram, `node ${k} ${centred ? 'centred' : 'raw'} Gram`);
        });
      }
      const paths = host.stagePaths();
      expect(paths['stats ln2.0']).toMatch(/host float64 forward/);
      expect(paths['stats unembed']).toMatch(/host float64 forward/);
      const nodes = host.model.nodes;
      for (const pts of [integrationPoints('gradient', 0), integrationPoints('gauss-legendre', 2)]) {
        // MLP section ln2.0 → unembed, a random Ĉ of unembed and basis of ln2.0.
        const rOut = 5,
          rIn = 4;
        const Chat = randomMatrix(nodes[2]!.width, rOut, 11 + i);
        const input = { C: randomMatrix(nodes[1]!.width, rIn, 12 + i), Cpinv: randomMatrix(rIn, nodes[1]!.width, 13 + i), rIn };
        tol(1e-12)(await host.mPrime(1, Chat, rOut, pts), await ref.mPrime(1, Chat, rOut, pts), `M′ ln2.0→unembed (${pts.alphas.length} points)`);
        tol(1e-12)(
          await host.edges(1, input, Chat, rOut, pts),
          await ref.edges(1, input, Chat, rOut, pts),
          `edges ln2.0→unembed (${pts.alphas.length} points)`,
        );
      }
      expect(host.stagePaths()['m_prime ln2.0->unembed']).toMatch(/host statistics pass/);
      expect(host.stagePaths()['edges ln2.0->unembed']).toMatch(/on the host/);
      // Attention section ln1.0 → ln2.0 at one point: the table form of the closed-form sums.
      const pts = integrationPoints('gradient', 0);
      const Chat = randomMatrix(nodes[1]!.width, 3, 21 + i);
      const input = { C: randomMatrix(nodes[0]!.width, 6, 22 + i), Cpinv: randomMatrix(6, nodes[0]!.width, 23 + i), rIn: 6 };
      tol(1e-10)(await host.mPrime(0, Chat, 3, pts), await ref.mPrime(0, Chat, 3, pts), 'M′ ln1.0→ln2.0');
      tol(1e-10)(await host.edges(0, input, Chat, 3, pts), await ref.edges(0, input, Chat, 3, pts), 'edges ln1.0→ln2.0');
      expect(host.stagePaths()['m_prime ln1.0->ln2.0']).toMatch(/sums per distinct row/);
    } finally {
      host.dispose();
    }
  });

  it("stage_paths.stats = 'gpu' keeps the GPU statistics pass", async () => {
    const engine = await getEngine();
    const c = CASES[0]!;
    const { mp, tokens } = setup(c, 400);
    const gpu = new GpuPasses(engine, mp, tokens, c.N, c.P, { stats: 'gpu' });
    try {
      await gpu.nodeStats(true);
      expect(gpu.stagePaths()['stats ln2.0']).toBeUndefined();
      expect(gpu.stagePaths()['stats ln1.0']).toMatch(/table/);
    } finally {
      gpu.dispose();
    }
  });
});
