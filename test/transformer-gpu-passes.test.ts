// The GPU transformer passes (src/transformer/gpu-stats.ts, gpu-mdash.ts, gpu-edges.ts) against
// float64 references built on the float64 interpreter (test/helpers/tf-pass-reference.ts), on a
// small random model: embedding → copy → attention section (every op) → readout section, with
// and without the last-position cut. Batches of 3 samples over N = 7 and K-blocks of 4 force
// remainders in both loops.
//
// Tolerances (f32 on the GPU, float64 across batches): node sums and Grams |gpu − ref| ≤ 1e-5 ·
// (|ref| + mean|ref|) (f32 forward ~1e-6, f32 sums of ≤ 21 rows); M′ and edges ≤ 2e-4 · (|ref| +
// mean|ref|) (an f32 forward and VJP chain of ~15 ops, then f32 products; M′ entries near zero are
// measured against the mean entry).

import { describe, expect, it } from 'vitest';
import { integrationPoints } from '../src/ib/integration.js';
import type { ModelProgram } from '../src/model/program.js';
import { edgesSquaredGpu } from '../src/transformer/gpu-edges.js';
import { mDashGpu } from '../src/transformer/gpu-mdash.js';
import { GpuModel } from '../src/transformer/gpu-model.js';
import { GpuPasses } from '../src/transformer/gpu-passes.js';
import { centredNodeStatsGpu, nodeStatsGpu } from '../src/transformer/gpu-stats.js';
import { PassesF64 } from '../src/transformer/passes-f64.js';
import { useEngine } from './helpers/gpu.js';
import { randomMatrix } from './helpers/random.js';
import { concatRows, edgesF64, mDashF64, nodeTuplesF64 } from './helpers/tf-pass-reference.js';
import { attentionHeadModel, mlpProgram, oneSectionModel } from './helpers/tf-programs.js';
import { expectClose } from './helpers/close.js';

const d = 6;
const P = 4;
const vocab = 11;

function testModel(last: boolean, linearTail = false): ModelProgram {
  return attentionHeadModel({ d, P, vocab, last, linearTail });
}

const N = 7;
const tokens = Array.from({ length: N * P }, (_, i) => (i * 7 + 3) % vocab);

describe('GPU transformer passes vs float64', () => {
  const getEngine = useEngine();

  it('node statistics: sums, raw and shifted Grams at every node layer', async () => {
    const engine = await getEngine();
    const mp = testModel(false);
    const model = new GpuModel(engine, mp, P);
    const ref = nodeTuplesF64(mp, tokens, N, P);
    const first = await nodeStatsGpu(engine, model, tokens, N, { batch: 3 });
    const shifts = first.map((s) => s.sum.map((v) => v / s.rows));
    const second = await nodeStatsGpu(engine, model, tokens, N, { batch: 3, shifts, nodes: [0, 1, 2] });
    // The cached two-pass form must give the same shifted Grams (and sums) with or without its cache.
    for (const cacheBytes of [0, undefined]) {
      const cached = await centredNodeStatsGpu(engine, model, tokens, N, { batch: 3, cacheBytes, shiftFor: (sum, rows) => sum.map((v) => v / rows) });
      cached.forEach((c, i) => {
        expect(Array.from(c.shift)).toEqual(Array.from(second[i]!.shift));
        expectClose(c.sum, first[i]!.sum, `cached sum ${i}`, 1e-12);
        expectClose(c.gram!, second[i]!.gram!, `cached Gram ${i}`, 1e-12);
      });
    }
    first.forEach((s, i) => {
      const L = model.nodes[i]!;
      const x = concatRows(ref[i]!, L.widths, N * L.positions);
      const rows = N * L.positions;
      const sum = new Float64Array(L.width);
      const raw = new Float64Array(L.width * L.width);
      const cen = new Float64Array(L.width * L.width);
      const sh = second[i]!.shift;
      for (let r = 0; r < rows; r++) {
        for (let a = 0; a < L.width; a++) {
          sum[a]! += x[r * L.width + a]!;
          for (let b = 0; b < L.width; b++) {
            raw[a * L.width + b]! += x[r * L.width + a]! * x[r * L.width + b]!;
            cen[a * L.width + b]! += (x[r * L.width + a]! - sh[a]!) * (x[r * L.width + b]! - sh[b]!);
          }
        }
      }
      expect(s.rows).toBe(rows);
      expectClose(s.sum, sum, `${L.name} sum`, 1e-5);
      expectClose(s.gram!, raw, `${L.name} raw Gram`, 1e-5);
      expectClose(second[i]!.gram!, cen, `${L.name} shifted Gram`, 1e-5);
    });
    model.dispose();
  });

  it.each([3, undefined])('node activations kept by the statistics pass (batch %s) feed forwardTo: same rows as running the model', async (batch) => {
    const engine = await getEngine();
    const mp = testModel(true);
    const model = new GpuModel(engine, mp, P);
    const fresh: Float32Array[][] = [];
    for (let node = 0; node < model.nodes.length; node++) {
      const L = model.nodes[node]!;
      const parts = model.forwardTo(tokens, 2, 4, node);
      fresh.push(await Promise.all(parts.map((b, j) => engine.readF32(b, 4 * L.positions * L.widths[j]!))));
      engine.release(...parts);
    }
    await centredNodeStatsGpu(engine, model, tokens, N, { batch, keepInModel: true, shiftFor: (sum, rows) => sum.map((v) => v / rows) });
    expect(model.keptBytes()).toBeGreaterThan(0);
    for (let node = 0; node < model.nodes.length; node++) {
      const L = model.nodes[node]!;
      const parts = model.forwardTo(tokens, 2, 4, node);
      const got = await Promise.all(parts.map((b, j) => engine.readF32(b, 4 * L.positions * L.widths[j]!)));
      engine.release(...parts);
      got.forEach((g, j) => expect(Array.from(g)).toEqual(Array.from(fresh[node]![j]!)));
    }
    // Other tokens (another array) never read the kept rows.
    const other = tokens.slice(0, 2 * P).map((t) => (t + 1) % vocab);
    const parts = model.forwardTo(other, 0, 2, 1);
    const ref = concatRows(nodeTuplesF64(mp, other, 2, P)[1]!, model.nodes[1]!.widths, 2 * model.nodes[1]!.positions);
    const got = concatRows(
      await Promise.all(parts.map(async (b, j) => Float64Array.from(await engine.readF32(b, 2 * model.nodes[1]!.positions * model.nodes[1]!.widths[j]!)))),
      model.nodes[1]!.widths,
      2 * model.nodes[1]!.positions,
    );
    engine.release(...parts);
    expectClose(got, ref, 'other tokens', 1e-5);
    model.dispose();
  });

  it.each([false, true])('M′ of both sections (last position %s), two Gauss–Legendre points', async (last) => {
    const engine = await getEngine();
    const mp = testModel(last);
    const model = new GpuModel(engine, mp, P);
    const pts = integrationPoints('gauss-legendre', 1);
    const dOut0 = model.nodes[1]!.width;
    const Chat = randomMatrix(dOut0, 5, 9);
    const m0 = await mDashGpu(engine, model, 0, tokens, N, { Chat, rOut: 5, points: pts, batch: 3, kBlock: 4 });
    expectClose(m0, mDashF64(mp, 0, tokens, N, P, Chat, 5, pts), 'M′ attention section', 2e-4);
    const m1 = await mDashGpu(engine, model, 1, tokens, N, { points: integrationPoints('gradient', 0), batch: 3, kBlock: 4 });
    expectClose(m1, mDashF64(mp, 1, tokens, N, P, undefined, model.nodes[2]!.width, integrationPoints('gradient', 0)), 'M′ readout section', 2e-4);
    model.dispose();
  });

  it.each([false, true])('M′ of a linear-only section (last position %s): float64 closed form = shared-gradient GPU path = float64', async (last) => {
    const engine = await getEngine();
    const mp = testModel(last, true);
    const model = new GpuModel(engine, mp, P);
    const pts = integrationPoints('gauss-legendre', 1);
    const ref = mDashF64(mp, 1, tokens, N, P, undefined, model.nodes[2]!.width, pts);
    const closed = await mDashGpu(engine, model, 1, tokens, N, { points: pts, batch: 3, kBlock: 4 });
    expectClose(closed, ref, 'M′ linear section, closed form', 1e-10);
    const generic = await mDashGpu(engine, model, 1, tokens, N, { points: pts, batch: 3, kBlock: 4, generic: true });
    expectClose(generic, ref, 'M′ linear section, GPU', 2e-4);
    model.dispose();
  });

  it.each([false, true])('squared edges of a linear-only section (last position %s): second-moment closed form and the shared-VJP GPU path', async (last) => {
    const engine = await getEngine();
    const mp = testModel(last, true);
    const model = new GpuModel(engine, mp, P);
    const pts = integrationPoints('gauss-legendre', 1);
    const dIn = model.nodes[1]!.width;
    const C = randomMatrix(dIn, 7, 31);
    const Cpinv = randomMatrix(7, dIn, 32);
    const ref = edgesF64(mp, 1, tokens, N, P, C, Cpinv, 7, undefined, model.nodes[2]!.width, pts);
    const E = await edgesSquaredGpu(engine, model, 1, tokens, N, { C, Cpinv, rIn: 7, points: pts, batch: 3, kBlock: 4 });
    expectClose(E, ref, 'edges, GPU', 2e-4);
    // The input node layer's second moment in float64, as GpuPasses passes it from its statistics.
    const tuple = nodeTuplesF64(mp, tokens, N, P)[1]!;
    const rows = N * model.nodes[1]!.positions;
    const f = concatRows(tuple, model.nodes[1]!.widths, rows);
    const S = new Float64Array(dIn * dIn);
    for (let n = 0; n < rows; n++) for (let x = 0; x < dIn; x++) for (let y = 0; y < dIn; y++) S[x * dIn + y]! += (f[n * dIn + x]! * f[n * dIn + y]!) / rows;
    const closed = await edgesSquaredGpu(engine, model, 1, tokens, N, { C, Cpinv, rIn: 7, points: pts, secondMoment: S });
    expectClose(closed, ref, 'edges, closed form', 1e-10);
    model.dispose();
  });

  it.each(['gelu', 'relu'] as const)('M′ of a position-local %s section: gate-Gram closed form = per-sample VJPs = float64', async (act) => {
    const engine = await getEngine();
    const mp = oneSectionModel(mlpProgram(6, P, act, d, 13), { d, P, vocab });
    const model = new GpuModel(engine, mp, P);
    const pts = integrationPoints('gauss-legendre', 1);
    const Chat = randomMatrix(d + 1, 5, 41);
    const ref = mDashF64(mp, 0, tokens, N, P, Chat, 5, pts);
    const closed = await mDashGpu(engine, model, 0, tokens, N, { Chat, rOut: 5, points: pts, batch: 3 });
    const generic = await mDashGpu(engine, model, 0, tokens, N, { Chat, rOut: 5, points: pts, batch: 3, kBlock: 4, generic: true });
    expectClose(closed, ref, 'closed form', 2e-4);
    expectClose(generic, ref, 'generic', 2e-4);
    if (act === 'relu') {
      // One integration point: binary gates, co-firing counts from the sign-pattern kernels.
      const grad = integrationPoints('gradient', 0);
      const ref1 = mDashF64(mp, 0, tokens, N, P, Chat, 5, grad);
      expectClose(await mDashGpu(engine, model, 0, tokens, N, { Chat, rOut: 5, points: grad, batch: 3 }), ref1, 'co-firing closed form', 2e-4);
      expectClose(await mDashGpu(engine, model, 0, tokens, N, { Chat, rOut: 5, points: grad, batch: 3, generic: true }), ref1, 'generic, one point', 2e-4);
    }
    model.dispose();
  });

  it('squared edges of the attention section at the projected point', async () => {
    const engine = await getEngine();
    const mp = testModel(true);
    const model = new GpuModel(engine, mp, P);
    const pts = integrationPoints('gauss-legendre', 1);
    const dIn = model.nodes[0]!.width;
    const rIn = 9;
    const C = randomMatrix(dIn, rIn, 11);
    const Cpinv = randomMatrix(rIn, dIn, 12);
    const Chat = randomMatrix(model.nodes[1]!.width, 5, 13);
    const E = await edgesSquaredGpu(engine, model, 0, tokens, N, { C, Cpinv, rIn, Chat, rOut: 5, points: pts, batch: 3, kBlock: 4 });
    expectClose(E, edgesF64(mp, 0, tokens, N, P, C, Cpinv, rIn, Chat, 5, pts), 'edges', 2e-4);
    model.dispose();
  });

  it('GpuPasses with N ≥ vocab: node layer 0 statistics from the token table (float64, 1e-12), the rest on the GPU', async () => {
    const engine = await getEngine();
    const mp = testModel(true);
    const N2 = 2 * vocab;
    const tok = Int32Array.from({ length: N2 * P }, (_, i) => (i * 7 + 2) % vocab);
    const gpu = new GpuPasses(engine, mp, tok, N2, P, { stats: 'gpu', edges: 'gpu' });
    const cpu = new PassesF64(mp, tok, N2, P);
    for (const centred of [true, false]) {
      const [g, c] = [await gpu.nodeStats(centred), await cpu.nodeStats(centred)];
      expect(g.length).toBe(c.length);
      g.forEach((s, i) => {
        expect([s.dim, s.positions]).toEqual([c[i]!.dim, c[i]!.positions]);
        expectClose(s.mean, c[i]!.mean, `mean ${i}`, i === 0 ? 1e-12 : 1e-5);
        expectClose(s.gram, c[i]!.gram, `${centred ? 'centred' : 'raw'} Gram ${i}`, i === 0 ? 1e-12 : 1e-5);
      });
    }
    expect(gpu.stagePaths()['stats n0']).toMatch(/table/);
    gpu.dispose();
  });

  it('GpuPasses agrees with the float64 passes (centred and raw statistics, M′, edges)', async () => {
    const engine = await getEngine();
    const mp = testModel(true);
    const tok = Int32Array.from(tokens);
    const gpu = new GpuPasses(engine, mp, tok, N, P, { stats: 'gpu', edges: 'gpu' });
    const cpu = new PassesF64(mp, tok, N, P);
    for (const centred of [true, false]) {
      const [g, c] = [await gpu.nodeStats(centred), await cpu.nodeStats(centred)];
      expect(g.length).toBe(c.length);
      g.forEach((s, i) => {
        expect([s.dim, s.positions]).toEqual([c[i]!.dim, c[i]!.positions]);
        expectClose(s.mean, c[i]!.mean, `mean ${i}`, 1e-5);
        expectClose(s.gram, c[i]!.gram, `${centred ? 'centred' : 'raw'} Gram ${i}`, 1e-5);
      });
    }
    const pts = integrationPoints('gauss-legendre', 1);
    const Chat = randomMatrix(gpu.model.nodes[1]!.width, 5, 21);
    expectClose(await gpu.mPrime(0, Chat, 5, pts), await cpu.mPrime(0, Chat, 5, pts), 'M′', 2e-4);
    const input = { C: randomMatrix(gpu.model.nodes[0]!.width, 8, 22), Cpinv: randomMatrix(8, gpu.model.nodes[0]!.width, 23), rIn: 8 };
    expectClose(await gpu.edges(0, input, Chat, 5, pts), await cpu.edges(0, input, Chat, 5, pts), 'edges', 2e-4);
    gpu.dispose();
  });
});
