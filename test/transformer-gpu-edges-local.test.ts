// Squared edges of position-local single-activation sections on the MLP edge kernels
// (src/transformer/gpu-edges-local.ts, dispatched by edgesSquaredGpu) against the per-sample VJP
// path (`generic: true`) and the float64 references (test/helpers/tf-pass-reference.ts,
// src/transformer/passes-f64.ts): random small MLP sections (ReLU on the carried-Jacobian kernel,
// GELU / tanh-GELU / identity on the per-row one; a carried residual, a linear residual and no
// residual, so every factorisation of the always-on block is used), the compiled fixture
// transformers, and sections outside the pattern (which must take the generic path).
//
// Tolerances: random sections |gpu − ref| ≤ 2e-4 · (|ref| + mean|ref|) per entry, as the other GPU
// pass tests (f32 forward, f32 J̃ sums over ≤ 30 hidden units, float64 across rows); the fixtures
// max |gpu − f64| ≤ 1e-4 · max |f64| per matrix, as test/transformer-gpu-fixtures.test.ts. A wrong
// index, gate, α or residual term is O(1).

import { describe, expect, it } from 'vitest';
import type { Activation } from '../src/model/activations.js';
import { integrationPoints } from '../src/ib/integration.js';
import type { ModelProgram, Op, SectionProgram, ValueInfo } from '../src/model/program.js';
import { localEdgeFactors } from '../src/transformer/gpu-edges-local.js';
import { edgesSquaredGpu } from '../src/transformer/gpu-edges.js';
import { singleActSection } from '../src/transformer/gpu-mdash-local.js';
import { GpuModel } from '../src/transformer/gpu-model.js';
import { sectionGeometry } from '../src/transformer/gpu-section.js';
import { useEngine } from './helpers/gpu.js';
import { gaussian, randomMatrix, rng } from './helpers/random.js';
import { edgesF64 } from './helpers/tf-pass-reference.js';
import { attentionProgram, headProgram, mlpProgram, oneSectionModel } from './helpers/tf-programs.js';
import { fixturePasses, GPU_CASES, randomSectionBases } from './helpers/transformer-fixtures.js';
import { expectClose, expectNear } from './helpers/close.js';

const d = 6;
const P = 4;
const vocab = 11;
const N = 7;
const tokens = Array.from({ length: N * P }, (_, i) => (i * 7 + 3) % vocab);

/** Embedding (e, pos) of width d + 1 → `section` (whose inputs are two [P, d + 1] members). */
function modelOf(section: SectionProgram): ModelProgram {
  return oneSectionModel(section, { d, P, vocab });
}

/**
 * (a, b) → [W_o act(W_i a) + W_r b, slice of W_i a]: a linear (not identity) residual, and the
 * act's input also read on a path around the act. Or, with `residual` false, W_o act(W_i a) only.
 */
function mlpVariant(seed: number, act: Activation, wOut: number, m: number, residual: boolean): SectionProgram {
  const g = gaussian(rng(seed));
  const values: ValueInfo[] = [];
  const ops: Op[] = [];
  const val = (width: number, label: string): number => values.push({ width, positions: P, label }) - 1;
  const linear = (x: number, out: number, label: string): number => {
    const wIn = values[x]!.width;
    const y = val(out, label);
    ops.push({ kind: 'linear', x, y, W: Float64Array.from({ length: wIn * out }, () => (1.5 * g()) / Math.sqrt(wIn)), wIn, wOut: out });
    return y;
  };
  const a = val(d + 1, 'a');
  const b = val(d + 1, 'b');
  const x = linear(a, m, 'pre');
  const y = val(m, 'act');
  ops.push({ kind: 'act', x, y, act });
  const o = linear(y, wOut, 'out');
  if (!residual) return { from: 'a', to: 'o', values, inputs: [a, b], outputs: [o], ops };
  const rb = linear(b, wOut, 'resid');
  const sum = val(wOut, 'sum');
  ops.push({ kind: 'add', a: o, b: rb, y: sum });
  const sl = val(2, 'slice');
  ops.push({ kind: 'slice', x, y: sl, from: 1, to: 3 });
  const cat = val(wOut + 2, 'cat');
  ops.push({ kind: 'concat', xs: [sum, sl], y: cat });
  return { from: 'a', to: 'o', values, inputs: [a, b], outputs: [cat], ops };
}

/**
 * The act at the section's edges (node layers `mlp_act` / `mlp_out`): (x, r) → (act(x), r), the
 * act reading an input directly and writing an output directly, r passed through.
 */
function actOnly(act: Activation): SectionProgram {
  const values: ValueInfo[] = [
    { width: d + 1, positions: P, label: 'x' },
    { width: d + 1, positions: P, label: 'r' },
    { width: d + 1, positions: P, label: 'act' },
    { width: d + 1, positions: P, label: 'r_out' },
  ];
  const ops: Op[] = [
    { kind: 'act', x: 0, y: 2, act },
    { kind: 'copy', x: 1, y: 3 },
  ];
  return { from: 'mlp_act', to: 'mlp_out', values, inputs: [0, 1], outputs: [2, 3], ops };
}

describe('squared edges of position-local MLP sections on the MLP edge kernels', () => {
  const getEngine = useEngine();

  // [label, section, rOut (undefined: identity Ĉ), rIn, expected always-on units]
  const cases: [string, () => SectionProgram, number | undefined, number, number][] = [
    ['relu, carried residual, Ĉ 5 wide', () => mlpProgram(6, P, 'relu', d, 13), 5, 9, 5],
    ['gelu, carried residual, identity Ĉ', () => mlpProgram(6, P, 'gelu', d, 13), undefined, 11, 7],
    ['gelu_tanh, linear residual and a path around the act, Ĉ 9 wide', () => mlpVariant(8, 'gelu_tanh', 23, 17, true), 9, 3, 3],
    ['relu, linear residual, identity Ĉ (25 wide)', () => mlpVariant(9, 'relu', 23, 10, true), undefined, 14, 14],
    ['identity act, no residual', () => mlpVariant(10, 'identity', 5, 7, false), 4, 6, 0],
    ['relu on an input, to an output, a pass-through member', () => actOnly('relu'), 6, 8, 6],
    ['gelu on an input, to an output, identity Ĉ', () => actOnly('gelu'), undefined, 14, 14],
  ];

  it.each(cases)('%s: = per-sample VJPs = float64', async (_label, make, rOut, rIn, extra) => {
    const engine = await getEngine();
    const mp = modelOf(make());
    const model = new GpuModel(engine, mp, P);
    try {
      const act = singleActSection(mp.sections[0]!);
      expect(act).toBeDefined();
      const dOut = model.nodes[1]!.width;
      const dIn = model.nodes[0]!.width;
      const Chat = rOut === undefined ? undefined : randomMatrix(dOut, rOut, 41);
      const ro = rOut ?? dOut;
      const C = randomMatrix(dIn, rIn, 11);
      const Cpinv = randomMatrix(rIn, dIn, 12);
      const fac = localEdgeFactors(mp.sections[0]!, act!, sectionGeometry(model, 0, Chat, rOut), Chat, Cpinv, rIn, 1);
      expect(fac.extra).toBe(extra);
      for (const pts of [integrationPoints('gradient', 0), integrationPoints('gauss-legendre', 2)]) {
        const opts = { C, Cpinv, rIn, Chat, rOut, points: pts, batch: 3 };
        const local = await edgesSquaredGpu(engine, model, 0, tokens, N, opts);
        const generic = await edgesSquaredGpu(engine, model, 0, tokens, N, { ...opts, kBlock: 4, generic: true });
        const ref = edgesF64(mp, 0, tokens, N, P, C, Cpinv, rIn, Chat, ro, pts);
        const where = `${pts.alphas.length} point(s)`;
        expectClose(local, ref, `local vs float64, ${where}`, 2e-4);
        expectClose(local, generic, `local vs generic, ${where}`, 2e-4);
      }
    } finally {
      model.dispose();
    }
  });

  it('sections outside the pattern (attention, LayerNorm, last position, two acts) take the generic path', async () => {
    const engine = await getEngine();
    const attn = attentionProgram(3, { P, d });
    const head = headProgram(4, [d + 1, d + 1], P, 9, true);
    expect(singleActSection(attn)).toBeUndefined();
    expect(singleActSection(head)).toBeUndefined();
    // Two acts in one position-local section: outside the single-gate form.
    const two = mlpProgram(6, P, 'relu', d, 13);
    const y2 = two.values.push({ width: d + 1, positions: P, label: 'act2' }) - 1;
    two.ops.push({ kind: 'act', x: two.outputs[0]!, y: y2, act: 'gelu' });
    two.outputs = [y2];
    expect(singleActSection(two)).toBeUndefined();
    const pts = integrationPoints('gauss-legendre', 1);
    for (const [name, sec] of [
      ['attention', attn],
      ['two acts', two],
    ] as const) {
      const mp = modelOf(sec);
      const model = new GpuModel(engine, mp, P);
      try {
        const dIn = model.nodes[0]!.width;
        const C = randomMatrix(dIn, 5, 21);
        const Cpinv = randomMatrix(5, dIn, 22);
        const Chat = randomMatrix(model.nodes[1]!.width, 4, 23);
        const E = await edgesSquaredGpu(engine, model, 0, tokens, N, { C, Cpinv, rIn: 5, Chat, rOut: 4, points: pts, batch: 3, kBlock: 4 });
        expectClose(E, edgesF64(mp, 0, tokens, N, P, C, Cpinv, 5, Chat, 4, pts), `${name} edges`, 2e-4);
      } finally {
        model.dispose();
      }
    }
  });

  it.each(GPU_CASES)('fixture %s: every section = generic = float64 passes', async (modelDir, kase) => {
    const engine = await getEngine();
    const { l, n, tokens, gpu, cpu } = await fixturePasses(engine, modelDir, kase);
    try {
      const nodes = gpu.model.nodes;
      const pts = integrationPoints('gauss-legendre', 1);
      let matched = 0;
      for (let s = 0; s < l.mp.sections.length; s++) {
        const sec = l.mp.sections[s]!;
        const out = nodes[s + 1]!;
        const local = singleActSection(sec) !== undefined && nodes[s]!.positions === out.positions;
        if (!local) continue;
        matched++;
        const { Chat, rOut, input, where } = randomSectionBases(nodes, s);
        const got = await gpu.edges(s, input, Chat, rOut, pts);
        const generic = await edgesSquaredGpu(engine, gpu.model, s, tokens, n, { ...input, Chat, rOut, points: pts, generic: true });
        const ref = await cpu.edges(s, input, Chat, rOut, pts);
        expectNear(got, ref, `edges ${where} vs float64`);
        expectNear(got, generic, `edges ${where} vs generic`);
      }
      // modadd-tiny's ln2.0 → unembed is an MLP block without LayerNorm (ReLU); gpt-tiny's MLP
      // sections start with a LayerNorm, so none qualifies (test/transformer-gpu-fixtures.test.ts
      // covers them on the generic path).
      expect(matched).toBe(modelDir === 'modadd-tiny' ? 1 : 0);
    } finally {
      gpu.dispose();
    }
  });
});
