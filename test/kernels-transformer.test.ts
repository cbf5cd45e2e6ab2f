// The transformer kernels (shaders/tf_*.wgsl) against their float64 references
// (src/cpu/transformer-ops.ts) on random inputs with sizes 1, primes and non-multiples of the
// workgroup sizes; VJPs over K-blocks of cotangents (rows [b, k, p]).
//
// Tolerance: every output element must satisfy |gpu − ref| ≤ TOL · (|ref| + mean|ref|) with
// TOL = 2e-5 (≈ 300 f32 ulp). The kernels do O(d) or O(P·dHead) f32 operations per output with
// inputs of order 1, so their error is a few 1e-7 relative; an indexing, masking or broadcast
// mistake is an error of the order of the entries themselves. Gathers and column copies must be
// exact (alpha = 1).

import { describe, expect, it } from 'vitest';
import type { Activation } from '../src/model/activations.js';
import {
  actF64,
  actVjpF64,
  edgeSquareF64,
  attentionF64,
  attentionVjpF64,
  gatherF64,
  lnDivF64,
  lnDivVjpF64,
  lnVarF64,
  lnVarVjpF64,
  rotaryF64,
  type AttentionDims,
} from '../src/cpu/transformer-ops.js';
import { attentionForward, attentionProbFloats, attentionVjp } from '../src/kernels/transformer-attention.js';
import { actForward, actVjp, copyColumns, gatherPositions, gatherTokens, rotary, uploadRotaryTable } from '../src/kernels/transformer-elementwise.js';
import { edgeSquare } from '../src/kernels/transformer-edges.js';
import { lnDiv, lnDivVjp, lnVar, lnVarVjp } from '../src/kernels/transformer-ln.js';
import type { Engine } from '../src/runtime/engine.js';
import { useEngine } from './helpers/gpu.js';
import { randomF32, rng } from './helpers/random.js';
import { expectClose as expectCloseTo } from './helpers/close.js';

const TOL = 2e-5;

/** Kernel outputs may sit in padded buffers: the first ref.length values are compared. */
function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, what: string, tol = TOL): void {
  expect(got.length, `${what}: length`).toBeGreaterThanOrEqual(ref.length);
  expectCloseTo(Array.prototype.slice.call(got, 0, ref.length) as number[], ref, what, tol);
}

async function run(engine: Engine, out: GPUBuffer, n: number): Promise<Float32Array> {
  return engine.readF32(out, n);
}

describe('transformer kernels vs float64', () => {
  const getEngine = useEngine();

  it('embedding gather: tokens and positions (exact)', async () => {
    const engine = await getEngine();
    for (const [B, P, vocab, width] of [
      [1, 1, 1, 1],
      [7, 3, 113, 129],
      [3, 11, 5, 17],
    ] as const) {
      const rand = rng(B * 31 + P);
      const tok = Uint32Array.from({ length: B * P }, () => Math.floor(rand() * vocab));
      const WE = randomF32(vocab * width, 1 + B);
      const Wpos = randomF32(P * width, 2 + B);
      const tb = engine.upload(tok);
      const we = engine.upload(WE);
      const wp = engine.upload(Wpos);
      const e = engine.alloc(B * P * width * 4);
      const pos = engine.alloc(B * P * width * 4);
      gatherTokens(engine, tb, we, e, B * P, width);
      gatherPositions(engine, wp, pos, B * P, width, P);
      expect(Array.from(await run(engine, e, B * P * width))).toEqual(Array.from(gatherF64(WE, width, (r) => tok[r]!, B * P)));
      expect(Array.from(await run(engine, pos, B * P * width))).toEqual(Array.from(gatherF64(Wpos, width, (r) => r % P, B * P)));
      engine.release(tb, we, wp, e, pos);
    }
  });

  it('column copies: concat, slice, lastPos and its scatter, scaled accumulate', async () => {
    const engine = await getEngine();
    const B = 5;
    const P = 3;
    const wa = 7;
    const wb = 2;
    const a = randomF32(B * P * wa, 11);
    const b = randomF32(B * P * wb, 12);
    const ba = engine.upload(a);
    const bb = engine.upload(b);
    const cat = engine.alloc(B * P * (wa + wb) * 4);
    copyColumns(engine, { src: { buf: ba, ld: wa }, dst: { buf: cat, ld: wa + wb }, groups: 1, per: B * P, width: wa });
    copyColumns(engine, { src: { buf: bb, ld: wb }, dst: { buf: cat, ld: wa + wb, col0: wa }, groups: 1, per: B * P, width: wb });
    const got = await run(engine, cat, B * P * (wa + wb));
    for (let r = 0; r < B * P; r++) {
      for (let c = 0; c < wa; c++) expect(got[r * (wa + wb) + c]).toBe(a[r * wa + c]);
      for (let c = 0; c < wb; c++) expect(got[r * (wa + wb) + wa + c]).toBe(b[r * wb + c]);
    }
    // slice columns [3, 8) of the last position of each sample, scaled by 0.5 and accumulated
    const last = engine.alloc(B * 5 * 4);
    engine.clear(last);
    copyColumns(engine, {
      src: { buf: cat, ld: wa + wb, col0: 3, stride: P, row0: P - 1 },
      dst: { buf: last, ld: 5, stride: 1 },
      groups: B,
      per: 1,
      width: 5,
      alpha: 0.5,
      accumulate: true,
    });
    const gl = await run(engine, last, B * 5);
    for (let s = 0; s < B; s++) for (let c = 0; c < 5; c++) expect(gl[s * 5 + c]).toBe(0.5 * got[(s * P + P - 1) * (wa + wb) + 3 + c]!);
    // scatter back (lastPos VJP) into a cleared [B·P, 5]
    const sc = engine.alloc(B * P * 5 * 4);
    engine.clear(sc);
    copyColumns(engine, { src: { buf: last, ld: 5, stride: 1 }, dst: { buf: sc, ld: 5, stride: P, row0: P - 1 }, groups: B, per: 1, width: 5 });
    const gs = await run(engine, sc, B * P * 5);
    for (let r = 0; r < B * P; r++) for (let c = 0; c < 5; c++) expect(gs[r * 5 + c]).toBe(r % P === P - 1 ? gl[Math.floor(r / P) * 5 + c] : 0);
    engine.release(ba, bb, cat, last, sc);
  });

  const acts: Activation[] = ['relu', 'identity', 'gelu', 'gelu_tanh'];
  it.each(acts)('activation %s: forward and K-block VJP', async (a) => {
    const engine = await getEngine();
    const B = 4;
    const K = 3;
    const P = 5;
    const w = 37;
    const x = randomF32(B * P * w, 21, 2);
    const dy = randomF32(B * K * P * w, 22);
    const bx = engine.upload(x);
    const bdy = engine.upload(dy);
    const y = engine.alloc(x.byteLength);
    const dx = engine.alloc(dy.byteLength);
    actForward(engine, bx, y, x.length, a);
    actVjp(engine, bx, bdy, dx, { B, K, P }, w, a);
    // gelu's erf is Abramowitz–Stegun 7.1.26 in f32 (|err| < 1.5e-7 absolute).
    expectClose(await run(engine, y, x.length), actF64(x, a), `${a} forward`);
    expectClose(await run(engine, dx, dy.length), actVjpF64(x, dy, B, K, P, w, a), `${a} VJP`);
    engine.release(bx, bdy, y, dx);
  });

  it.each([
    [1, 1, 1, 2],
    [6, 3, 2, 16],
    [3, 7, 1, 129],
  ])('split LayerNorm B=%i K=%i P=%i d=%i: lnVar, lnDiv and their VJPs', async (B, K, P, d) => {
    const engine = await getEngine();
    const w = d + 1;
    const x = randomF32(B * P * w, 31 + d, 3);
    for (let r = 0; r < B * P; r++) x[r * w + d] = 1; // the 1-slot
    const bx = engine.upload(x);
    const v = engine.alloc(B * P * 4);
    lnVar(engine, bx, v, B * P, w, d);
    const vGot = await run(engine, v, B * P);
    const vRef = lnVarF64(x, B * P, w, d);
    expectClose(vGot, vRef, 'lnVar');
    const eps = 1e-5;
    const y = engine.alloc(x.byteLength);
    lnDiv(engine, v, bx, y, B * P, d, eps);
    // lnDiv's reference takes the GPU's variance (its own input), so only lnDiv's error is tested.
    expectClose(await run(engine, y, x.length), lnDivF64(vGot, x, B * P, d, eps), 'lnDiv');
    const dyVar = randomF32(B * K * P, 33);
    const dy = randomF32(B * K * P * w, 34);
    const bdyVar = engine.upload(dyVar);
    const bdy = engine.upload(dy);
    const dxv = engine.alloc(dy.byteLength);
    const dxd = engine.alloc(dy.byteLength);
    const dvar = engine.alloc(B * K * P * 4);
    lnVarVjp(engine, bx, bdyVar, dxv, { B, K, P }, w, d);
    lnDivVjp(engine, v, bx, bdy, dxd, dvar, { B, K, P }, d, eps);
    expectClose(await run(engine, dxv, dy.length), lnVarVjpF64(x, dyVar, B, K, P, w, d), 'lnVar VJP');
    const ref = lnDivVjpF64(vGot, x, dy, B, K, P, d, eps);
    expectClose(await run(engine, dxd, dy.length), ref.dx, 'lnDiv VJP dx');
    expectClose(await run(engine, dvar, B * K * P), ref.dvar, 'lnDiv VJP dvar');
    engine.release(bx, v, y, bdyVar, bdy, dxv, dxd, dvar);
  });

  it.each([
    [1, 1, 2, 2],
    [3, 5, 2, 8],
    [2, 7, 3, 6],
  ])('rotary B=%i P=%i heads=%i dHead=%i: forward and transposed', async (B, P, heads, dHead) => {
    const engine = await getEngine();
    for (const rotaryDim of [2, dHead]) {
      const r = { heads, dHead, rotaryDim, base: 10000 };
      const rows = B * P;
      const x = randomF32(rows * heads * dHead, 41 + rotaryDim);
      const bx = engine.upload(x);
      const table = uploadRotaryTable(engine, r, P);
      const y = engine.alloc(x.byteLength);
      const yt = engine.alloc(x.byteLength);
      rotary(engine, bx, table, y, rows, P, r, false);
      rotary(engine, bx, table, yt, rows, P, r, true);
      expectClose(await run(engine, y, x.length), rotaryF64(x, rows, P, heads, dHead, rotaryDim, 10000, false), 'rotary');
      expectClose(await run(engine, yt, x.length), rotaryF64(x, rows, P, heads, dHead, rotaryDim, 10000, true), 'rotary transposed');
      engine.release(bx, table, y, yt);
    }
  });

  const attCases: [string, AttentionDims, number][] = [
    ['one position', { B: 2, P: 1, heads: 1, dHead: 1, dV: 2, scale: 1, causal: true }, 1],
    ['modadd-like', { B: 3, P: 3, heads: 4, dHead: 8, dV: 9, scale: Math.sqrt(8), causal: true }, 5],
    ['window 2, primes', { B: 2, P: 7, heads: 3, dHead: 5, dV: 6, scale: 2.2, causal: true, window: 2 }, 3],
    ['non-causal', { B: 1, P: 5, heads: 2, dHead: 3, dV: 4, scale: 1.5, causal: false }, 2],
  ];
  it.each(attCases)('attention %s: forward (probs, z) and K-block VJP', async (_name, a, K) => {
    const engine = await getEngine();
    const { B, P, heads: H, dHead, dV } = a;
    const q = randomF32(B * P * H * dHead, 51, 2);
    const k = randomF32(B * P * H * dHead, 52, 2);
    const v = randomF32(B * P * H * dV, 53);
    const dz = randomF32(B * K * P * H * dV, 54);
    const [bq, bk, bv, bdz] = [q, k, v, dz].map((t) => engine.upload(t)) as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
    const z = engine.alloc(v.byteLength);
    const probs = engine.alloc(attentionProbFloats(a) * 4);
    const shape = { ...a };
    attentionForward(engine, bq, bk, bv, z, probs, shape);
    const ref = attentionF64(q, k, v, a);
    expectClose(await run(engine, z, v.length), ref.z, 'z');
    expectClose(await run(engine, probs, ref.probs.length), ref.probs, 'probs');
    const dq = engine.alloc(B * K * P * H * dHead * 4);
    const dk = engine.alloc(B * K * P * H * dHead * 4);
    const dv = engine.alloc(dz.byteLength);
    const ds = engine.alloc(attentionProbFloats(a) * K * 4);
    attentionVjp(engine, { q: bq, k: bk, v: bv, probs, dz: bdz, dq, dk, dv, ds, K }, shape);
    const g = attentionVjpF64(q, k, v, dz, K, a);
    expectClose(await run(engine, dq, g.dq.length), g.dq, 'dq');
    expectClose(await run(engine, dk, g.dk.length), g.dk, 'dk');
    expectClose(await run(engine, dv, g.dv.length), g.dv, 'dv');
    engine.release(bq, bk, bv, bdz, z, probs, dq, dk, dv, ds);
  });

  it.each([
    [1, 1, 1, 1],
    [5, 7, 3, 13],
    [17, 2, 1, 65],
  ])('edge square-and-sum B=%i K=%i P=%i r=%i', async (B, K, P, r) => {
    const engine = await getEngine();
    const h = randomF32(B * K * P * r, 61);
    const u = randomF32(B * P * r, 62);
    const bh = engine.upload(h);
    const bu = engine.upload(u);
    const out = engine.alloc(K * r * 4);
    edgeSquare(engine, bh, bu, out, B, K, P, r);
    // Sums of squares: the relative error is ≤ (B + P + 1)·2^-24 of Σ of the (non-negative) terms.
    expectClose(await run(engine, out, K * r), edgeSquareF64(h, u, B, K, P, r), 'edges');
    edgeSquare(engine, bh, bu, out, B, K, P, r, true); // the first sample's block shared by all
    expectClose(await run(engine, out, K * r), edgeSquareF64(h, u, B, K, P, r, true), 'edges, shared h');
    engine.release(bh, bu, out);
  });
});
