// Random SectionPrograms for the GPU transformer tests: small, with odd widths, covering every op
// (including fan-out, lastPos and tuple inputs/outputs), so a GPU interpreter or pass can be
// compared with the float64 interpreter (src/cpu/program-f64.ts).

import type { Activation } from '../../src/model/activations.js';
import type { ModelProgram, Op, SectionProgram, ValueInfo } from '../../src/model/program.js';
import { gaussian, rng } from './random.js';

class Builder {
  values: ValueInfo[] = [];
  ops: Op[] = [];
  constructor(private readonly g: () => number) {}
  val(width: number, positions: number, label: string): number {
    this.values.push({ width, positions, label });
    return this.values.length - 1;
  }
  linear(x: number, wOut: number, scale: number, label: string): number {
    const v = this.values[x]!;
    const y = this.val(wOut, v.positions, label);
    const W = Float64Array.from({ length: v.width * wOut }, () => (this.g() * scale) / Math.sqrt(v.width));
    this.ops.push({ kind: 'linear', x, y, W, wIn: v.width, wOut });
    return y;
  }
}

export interface AttentionProgramOpts {
  P: number;
  d?: number;
  heads?: number;
  dHead?: number;
  rotary?: boolean;
  window?: number;
  /** Output only the last position (rib's last_pos_module_type add_resid1). */
  last?: boolean;
}

/**
 * ln1 → (attention) → ln2-like section: inputs (r, pos) summed, split LayerNorm, q/k/v (rotary
 * optional), causal attention, W_O, residual add, a copy and a slice of the result; outputs
 * (y, var) at all positions or the last one.
 */
export function attentionProgram(seed: number, o: AttentionProgramOpts): SectionProgram {
  const b = new Builder(gaussian(rng(seed)));
  const P = o.P;
  const d = o.d ?? 6;
  const H = o.heads ?? 2;
  const dh = o.dHead ?? 4;
  const dV = dh + 1;
  const r0 = b.val(d + 1, P, 'r');
  const pos = b.val(d + 1, P, 'pos');
  const r = b.val(d + 1, P, 'resid');
  b.ops.push({ kind: 'add', a: r0, b: pos, y: r });
  const v0 = b.val(1, P, 'var');
  b.ops.push({ kind: 'lnVar', x: r, y: v0, d });
  const xh = b.val(d + 1, P, 'xhat');
  b.ops.push({ kind: 'lnDiv', v: v0, x: r, y: xh, d, eps: 1e-5 });
  let q = b.linear(xh, H * dh, 1, 'q0');
  let k = b.linear(xh, H * dh, 1, 'k0');
  const v = b.linear(xh, H * dV, 1, 'v');
  if (o.rotary) {
    const q1 = b.val(H * dh, P, 'q');
    const k1 = b.val(H * dh, P, 'k');
    b.ops.push({ kind: 'rotary', x: q, y: q1, heads: H, dHead: dh, rotaryDim: dh, base: 10000 });
    b.ops.push({ kind: 'rotary', x: k, y: k1, heads: H, dHead: dh, rotaryDim: dh, base: 10000 });
    q = q1;
    k = k1;
  }
  const z = b.val(H * dV, P, 'z');
  b.ops.push({ kind: 'attention', q, k, v, y: z, heads: H, dHead: dh, dV, scale: Math.sqrt(dh), causal: true, ...(o.window ? { window: o.window } : {}) });
  const ao = b.linear(z, d + 1, 1, 'attn_out');
  const y = b.val(d + 1, P, 'resid1');
  b.ops.push({ kind: 'add', a: ao, b: r, y });
  const c = b.val(d + 1, P, 'copy');
  b.ops.push({ kind: 'copy', x: y, y: c });
  const s = b.val(d, P, 'slice');
  b.ops.push({ kind: 'slice', x: c, y: s, from: 0, to: d });
  const cat = b.val(2 * d + 1, P, 'cat');
  b.ops.push({ kind: 'concat', xs: [s, y], y: cat });
  let outs = [cat, v0];
  if (o.last) {
    outs = outs.map((id) => {
      const w = b.values[id]!.width;
      const l = b.val(w, 1, `${b.values[id]!.label}.last`);
      b.ops.push({ kind: 'lastPos', x: id, y: l });
      return l;
    });
  }
  return { from: 'ln1', to: 'ln2', values: b.values, inputs: [r0, pos], outputs: outs, ops: b.ops };
}

/** Position-local MLP section with a carried residual: (x̂, r) → r + W_out act(W_in x̂). */
export function mlpProgram(seed: number, P: number, act: Activation, d = 7, m = 11): SectionProgram {
  const b = new Builder(gaussian(rng(seed)));
  const xh = b.val(d + 1, P, 'mlp_in');
  const r = b.val(d + 1, P, 'resid');
  const pre = b.linear(xh, m + 1, 1.5, 'pre');
  const a = b.val(m + 1, P, 'act');
  b.ops.push({ kind: 'act', x: pre, y: a, act });
  const o = b.linear(a, d + 1, 1, 'mlp_out');
  const y = b.val(d + 1, P, 'resid2');
  b.ops.push({ kind: 'add', a: o, b: r, y });
  return { from: 'mlp_in', to: 'ln1', values: b.values, inputs: [xh, r], outputs: [y], ops: b.ops };
}

/** Readout section: concat the input tuple, linear, activation, optionally the last position only. */
export function headProgram(seed: number, widths: readonly number[], P: number, wOut: number, last: boolean): SectionProgram {
  const b = new Builder(gaussian(rng(seed)));
  const ins = widths.map((w, j) => b.val(w, P, `in${j}`));
  const W = widths.reduce((a, c) => a + c, 0);
  const cat = b.val(W, P, 'cat');
  b.ops.push({ kind: 'concat', xs: ins, y: cat });
  const pre = b.linear(cat, wOut, 1.5, 'pre');
  let y = b.val(wOut, P, 'act');
  b.ops.push({ kind: 'act', x: pre, y, act: 'gelu' });
  if (last) {
    const l = b.val(wOut, 1, 'last');
    b.ops.push({ kind: 'lastPos', x: y, y: l });
    y = l;
  }
  return { from: 'mid', to: 'out', values: b.values, inputs: ins, outputs: [y], ops: b.ops };
}

/** Embedding tuple (e, pos) → the same tuple through copies (the `pre` of a test model). */
export function copyPre(width: number, P: number): SectionProgram {
  const values = [
    { width, positions: P, label: 'embed' },
    { width, positions: P, label: 'pos_embed' },
    { width, positions: P, label: 'e' },
    { width, positions: P, label: 'pos' },
  ];
  return {
    from: 'input',
    to: 'n0',
    values,
    inputs: [0, 1],
    outputs: [2, 3],
    ops: [
      { kind: 'copy', x: 0, y: 2 },
      { kind: 'copy', x: 1, y: 3 },
    ],
  };
}

/** Linear-only readout (rib's unembed → output): concat, one linear map. Sample-independent VJP. */
export function linearProgram(seed: number, widths: readonly number[], P: number, wOut: number): SectionProgram {
  const b = new Builder(gaussian(rng(seed)));
  const ins = widths.map((w, j) => b.val(w, P, `in${j}`));
  const cat = b.val(
    widths.reduce((a, c) => a + c, 0),
    P,
    'cat',
  );
  b.ops.push({ kind: 'concat', xs: ins, y: cat });
  const y = b.linear(cat, wOut, 1, 'logits');
  return { from: 'unembed', to: 'output', values: b.values, inputs: ins, outputs: [y], ops: b.ops };
}

/**
 * A small random transformer for the pass tests: embedding (width d + 1, the last unit the
 * constant 1) → copy → attention section (every op; `last`: cut to the last position) →
 * readout (headProgram, or a linear one with `linearTail`), node layers n0, n1, n2.
 */
/**
 * A test model's embedding (e, pos) of width d + 1, whose last column is the folded constant (0 in
 * WE, 1 in Wpos, so e + pos has it 1), and the `pre` that copies it to node layer n0.
 */
export function testEmbedding(d: number, P: number, vocab: number, seed: number): Pick<ModelProgram, 'embed' | 'pre'> {
  const g = gaussian(rng(seed));
  const W = d + 1;
  const WE = Float64Array.from({ length: vocab * W }, (_, i) => (i % W === d ? 0 : g()));
  const Wpos = Float64Array.from({ length: P * W }, (_, i) => (i % W === d ? 1 : 0.5 * g()));
  return { embed: { WE, vocab, width: W, Wpos, nCtx: P }, pre: copyPre(W, P) };
}

/** testEmbedding (seed 5) → `section` (whose inputs are the two [P, d + 1] members): node layers n0, n1. */
export function oneSectionModel(section: SectionProgram, o: { d: number; P: number; vocab: number; seed?: number }): ModelProgram {
  return {
    ...testEmbedding(o.d, o.P, o.vocab, o.seed ?? 5),
    sections: [{ ...section, from: 'n0', to: 'n1' }],
    nodeLayers: ['n0', 'n1'],
  };
}

export function attentionHeadModel(o: { d: number; P: number; vocab: number; last: boolean; linearTail?: boolean }): ModelProgram {
  const { d, P, vocab, last } = o;
  const embedding = testEmbedding(d, P, vocab, 7);
  const attn = attentionProgram(3, { P, d, last });
  const widths = attn.outputs.map((id) => attn.values[id]!.width);
  const Pmid = last ? 1 : P;
  return {
    ...embedding,
    sections: [
      { ...attn, from: 'n0', to: 'n1' },
      { ...(o.linearTail ? linearProgram(4, widths, Pmid, 9) : headProgram(4, widths, Pmid, 9, false)), from: 'n1', to: 'n2' },
    ],
    nodeLayers: ['n0', 'n1', 'n2'],
  };
}
