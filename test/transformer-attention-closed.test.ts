// The closed forms of M′ and of the squared edges for attention sections cut to the last position
// (src/transformer/gpu-attention-closed.ts) against the generic per-sample VJP path and the
// float64 reference (test/helpers/tf-pass-reference.ts): on random programs of the pattern
// (several heads, P = 1..5, causal, windowed and bidirectional attention, tuple inputs and
// outputs) and on the compiled modadd-tiny fixture's ln1.0 → ln2.0 section; that mDashGpu and
// edgesSquaredGpu take the closed form (bit-equal to calling it directly); and the pattern test
// itself (programs with LayerNorm, rotary, no attention or all positions fall back).
//
// Tolerances: closed form vs float64 ≤ 1e-5 · (|ref| + mean|ref|) per entry (the closed form is
// float64 on the host from the f32 rows f·J of the GPU: ~1e-7 relative), ≤ 1e-10 when N ≥ vocab
// (rows from float64 per-(token, position) tables, no f32 anywhere); generic vs float64 ≤ 2e-4 as in
// transformer-gpu-passes.test.ts (an f32 VJP chain).

import { describe, expect, it } from 'vitest';
import { integrationPoints } from '../src/ib/integration.js';
import type { ModelProgram, Op, SectionProgram, ValueInfo } from '../src/model/program.js';
import { edgesAttentionClosed, lastPosAttentionSection, mDashAttentionClosed } from '../src/transformer/gpu-attention-closed.js';
import { edgesSquaredGpu } from '../src/transformer/gpu-edges.js';
import { mDashGpu } from '../src/transformer/gpu-mdash.js';
import { GpuModel } from '../src/transformer/gpu-model.js';
import { sectionGeometry } from '../src/transformer/gpu-section.js';
import { useEngine } from './helpers/gpu.js';
import { gaussian, randomMatrix, rng } from './helpers/random.js';
import { edgesF64, mDashF64 } from './helpers/tf-pass-reference.js';
import { attentionProgram, copyPre, mlpProgram } from './helpers/tf-programs.js';
import { load } from './helpers/transformer-fixtures.js';
import { expectClose } from './helpers/close.js';

interface PatternOpts {
  P: number;
  d: number;
  heads: number;
  dHead: number;
  causal: boolean;
  window?: number;
  /** Output tuple (resid.last, slice of it) instead of one member. */
  tupleOut?: boolean;
}

/** (r, pos) → resid = r + pos; q, k, v linear (v from a concat of both members); attention; W_O; add; lastPos. */
function patternProgram(seed: number, o: PatternOpts): SectionProgram {
  const g = gaussian(rng(seed));
  const values: ValueInfo[] = [];
  const ops: Op[] = [];
  const val = (width: number, positions: number, label: string): number => values.push({ width, positions, label }) - 1;
  const linear = (x: number, wOut: number, label: string): number => {
    const v = values[x]!;
    const y = val(wOut, v.positions, label);
    ops.push({ kind: 'linear', x, y, W: Float64Array.from({ length: v.width * wOut }, () => g() / Math.sqrt(v.width)), wIn: v.width, wOut });
    return y;
  };
  const { P, d, heads: H, dHead } = o;
  const dV = dHead + 1;
  const r0 = val(d, P, 'r');
  const pos = val(d, P, 'pos');
  const r = val(d, P, 'resid');
  ops.push({ kind: 'add', a: r0, b: pos, y: r });
  const q = linear(r, H * dHead, 'q');
  const k = linear(r0, H * dHead, 'k');
  const cat = val(2 * d, P, 'cat');
  ops.push({ kind: 'concat', xs: [r, pos], y: cat });
  const v = linear(cat, H * dV, 'v');
  const z = val(H * dV, P, 'z');
  ops.push({ kind: 'attention', q, k, v, y: z, heads: H, dHead, dV, scale: Math.sqrt(dHead), causal: o.causal, ...(o.window ? { window: o.window } : {}) });
  const ao = linear(z, d, 'attn_out');
  const y = val(d, P, 'resid1');
  ops.push({ kind: 'add', a: ao, b: r, y });
  const last = val(d, 1, 'resid1.last');
  ops.push({ kind: 'lastPos', x: y, y: last });
  const outputs = [last];
  if (o.tupleOut) {
    const sl = val(d - 2, 1, 'slice');
    ops.push({ kind: 'slice', x: last, y: sl, from: 1, to: d - 1 });
    outputs.push(sl);
  }
  return { from: 'n0', to: 'n1', values, inputs: [r0, pos], outputs, ops };
}

const vocab = 11;

function modelOf(sec: SectionProgram, P: number, d: number, seed: number): ModelProgram {
  const g = gaussian(rng(seed));
  return {
    embed: {
      WE: Float64Array.from({ length: vocab * d }, () => g()),
      vocab,
      width: d,
      Wpos: Float64Array.from({ length: P * d }, () => 0.5 * g()),
      nCtx: P,
    },
    pre: copyPre(d, P),
    sections: [sec],
    nodeLayers: ['n0', 'n1'],
  };
}

describe('closed-form M′ and edges of last-position attention sections', () => {
  const getEngine = useEngine();

  const cases: [string, PatternOpts][] = [
    ['P=1, 1 head', { P: 1, d: 5, heads: 1, dHead: 3, causal: true }],
    ['P=2, 3 heads', { P: 2, d: 7, heads: 3, dHead: 2, causal: true }],
    ['P=3, 2 heads, tuple output', { P: 3, d: 6, heads: 2, dHead: 4, causal: true, tupleOut: true }],
    ['P=4, 3 heads, window 2', { P: 4, d: 5, heads: 3, dHead: 3, causal: true, window: 2 }],
    ['P=5, 2 heads, bidirectional', { P: 5, d: 6, heads: 2, dHead: 3, causal: false }],
  ];

  it.each(cases)('%s: M′ and edges, closed form = generic = float64', async (_name, o) => {
    const engine = await getEngine();
    const sec = patternProgram(17 + o.P, o);
    expect(lastPosAttentionSection(sec)).toBeDefined();
    const mp = modelOf(sec, o.P, o.d, 3 + o.P);
    const model = new GpuModel(engine, mp, o.P);
    const N = 7;
    const tokens = Array.from({ length: N * o.P }, (_, i) => (i * 7 + 3) % vocab);
    const dOut = model.nodes[1]!.width;
    const rOut = Math.min(dOut, 4);
    const Chat = randomMatrix(dOut, rOut, 5);
    try {
      for (const pts of [integrationPoints('gradient', 0), integrationPoints('trapezoidal', 0)]) {
        const ref = mDashF64(mp, 0, tokens, N, o.P, Chat, rOut, pts);
        const closed = await mDashGpu(engine, model, 0, tokens, N, { Chat, rOut, points: pts, batch: 3 });
        const generic = await mDashGpu(engine, model, 0, tokens, N, { Chat, rOut, points: pts, batch: 3, kBlock: 3, generic: true });
        expectClose(closed, ref, 'closed form', 1e-5);
        expectClose(generic, ref, 'generic', 2e-4);
        // mDashGpu dispatched to the closed form (the same numbers, bit for bit).
        const att = lastPosAttentionSection(sec)!;
        const run = { engine, model, s: 0, tokens, N, g: sectionGeometry(model, 0, Chat, rOut) };
        const direct = await mDashAttentionClosed(run, { Chat, rOut, points: pts, batch: 3 }, att);
        expect(Array.from(closed)).toEqual(Array.from(direct));
      }
      // Unrotated output (Ĉ = identity).
      const pts = integrationPoints('gradient', 0);
      const ref = mDashF64(mp, 0, tokens, N, o.P, undefined, dOut, pts);
      expectClose(await mDashGpu(engine, model, 0, tokens, N, { points: pts, batch: 4 }), ref, 'closed form, identity Ĉ', 1e-5);
      // Squared edges at the projected point, with a random (non-orthogonal) basis of the input.
      const dIn = model.nodes[0]!.width;
      const rIn = Math.min(dIn, 5);
      const C = randomMatrix(dIn, rIn, 21);
      const Cpinv = randomMatrix(rIn, dIn, 22);
      for (const q of [pts, integrationPoints('trapezoidal', 0)]) {
        const eRef = edgesF64(mp, 0, tokens, N, o.P, C, Cpinv, rIn, Chat, rOut, q);
        const eClosed = await edgesSquaredGpu(engine, model, 0, tokens, N, { C, Cpinv, rIn, Chat, rOut, points: q, batch: 3 });
        const eGeneric = await edgesSquaredGpu(engine, model, 0, tokens, N, { C, Cpinv, rIn, Chat, rOut, points: q, batch: 3, kBlock: 3, generic: true });
        expectClose(eClosed, eRef, 'edges, closed form', 1e-5);
        expectClose(eGeneric, eRef, 'edges, generic', 2e-4);
        const eOpts = { C, Cpinv, rIn, Chat, rOut, points: q, batch: 3 };
        const run = { engine, model, s: 0, tokens, N, g: sectionGeometry(model, 0, Chat, rOut) };
        const eDirect = await edgesAttentionClosed(run, eOpts, lastPosAttentionSection(sec)!);
        expect(Array.from(eClosed)).toEqual(Array.from(eDirect));
      }
    } finally {
      model.dispose();
    }
  });

  it.each(cases)('%s, N ≥ vocab: closed forms from per-(token, position) float64 tables = float64 to 1e-10', async (_name, o) => {
    const engine = await getEngine();
    const sec = patternProgram(17 + o.P, o);
    const mp = modelOf(sec, o.P, o.d, 3 + o.P);
    const model = new GpuModel(engine, mp, o.P);
    const N = 2 * vocab + 1;
    const tokens = Array.from({ length: N * o.P }, (_, i) => (i * 5 + 2) % vocab);
    const dOut = model.nodes[1]!.width;
    const rOut = Math.min(dOut, 4);
    const Chat = randomMatrix(dOut, rOut, 5);
    const pts = integrationPoints('gradient', 0);
    const dIn = model.nodes[0]!.width;
    const rIn = Math.min(dIn, 5);
    const C = randomMatrix(dIn, rIn, 21);
    const Cpinv = randomMatrix(rIn, dIn, 22);
    try {
      expectClose(
        await mDashGpu(engine, model, 0, tokens, N, { Chat, rOut, points: pts, batch: 5 }),
        mDashF64(mp, 0, tokens, N, o.P, Chat, rOut, pts),
        'M′',
        1e-10,
      );
      expectClose(
        await edgesSquaredGpu(engine, model, 0, tokens, N, { C, Cpinv, rIn, Chat, rOut, points: pts, batch: 5 }),
        edgesF64(mp, 0, tokens, N, o.P, C, Cpinv, rIn, Chat, rOut, pts),
        'edges',
        1e-10,
      );
    } finally {
      model.dispose();
    }
  });

  it('modadd-tiny ln1.0 → ln2.0: closed form = generic = float64', async () => {
    const engine = await getEngine();
    const l = await load('modadd-tiny', 'modadd-tiny_f64_jacobian', 'weights.safetensors');
    const s = l.mp.sections.findIndex((x) => x.from === 'ln1.0');
    expect(s).toBeGreaterThanOrEqual(0);
    expect(lastPosAttentionSection(l.mp.sections[s]!)).toBeDefined();
    const n = Math.min(l.n, 40);
    const tokens = l.tokens.slice(0, n * l.P);
    const model = new GpuModel(engine, l.mp, l.P);
    try {
      const out = model.nodes[s + 1]!;
      const rOut = Math.min(out.width, 9);
      const Chat = randomMatrix(out.width, rOut, 77);
      const pts = integrationPoints('gradient', 0);
      const ref = mDashF64(l.mp, s, tokens, n, l.P, Chat, rOut, pts);
      const closed = await mDashGpu(engine, model, s, tokens, n, { Chat, rOut, points: pts, batch: 16 });
      const generic = await mDashGpu(engine, model, s, tokens, n, { Chat, rOut, points: pts, batch: 16, generic: true });
      expectClose(closed, ref, 'closed form', 1e-5);
      expectClose(generic, ref, 'generic', 2e-4);
      const dIn = model.nodes[s]!.width;
      const rIn = Math.min(dIn, 11);
      const C = randomMatrix(dIn, rIn, 78);
      const Cpinv = randomMatrix(rIn, dIn, 79);
      const eRef = edgesF64(l.mp, s, tokens, n, l.P, C, Cpinv, rIn, Chat, rOut, pts);
      expectClose(await edgesSquaredGpu(engine, model, s, tokens, n, { C, Cpinv, rIn, Chat, rOut, points: pts, batch: 16 }), eRef, 'edges, closed form', 1e-5);
      expectClose(
        await edgesSquaredGpu(engine, model, s, tokens, n, { C, Cpinv, rIn, Chat, rOut, points: pts, batch: 16, generic: true }),
        eRef,
        'edges, generic',
        2e-4,
      );
    } finally {
      model.dispose();
    }
  });

  it('other sections fall back to the generic path', () => {
    expect(lastPosAttentionSection(attentionProgram(3, { P: 4, last: true }))).toBeUndefined(); // LayerNorm inside
    expect(lastPosAttentionSection(mlpProgram(6, 4, 'gelu'))).toBeUndefined(); // no attention
    const all = patternProgram(5, { P: 3, d: 5, heads: 2, dHead: 2, causal: true });
    // Without the last-position cut (outputs at every position).
    const lastOp = all.ops.findIndex((op) => op.kind === 'lastPos');
    const noCut = {
      ...all,
      outputs: [all.ops[lastOp]!.kind === 'lastPos' ? all.ops[lastOp].x : -1],
      ops: all.ops.slice(0, lastOp),
    };
    expect(lastPosAttentionSection(noCut)).toBeUndefined();
    expect(lastPosAttentionSection(attentionProgram(4, { P: 3, rotary: true, last: true }))).toBeUndefined();
  });
});
