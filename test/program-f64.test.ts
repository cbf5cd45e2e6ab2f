// The float64 program interpreter (src/cpu/program-f64.ts) against central finite differences on
// random small programs that use every op, plus forward identities the ops must satisfy.
// Tolerance: |VJP − FD| ≤ 1e-6·(1 + |FD|) with step 1e-5 (the FD truncation error is O(h²) ≈ 1e-10
// times third derivatives of order 1; the rounding error ≈ 1e-16/h ≈ 1e-11).

import { describe, expect, it } from 'vitest';
import { embedF64, forwardF64, vjpF64 } from '../src/cpu/program-f64.js';
import type { Activation } from '../src/model/activations.js';
import type { Op, SectionProgram, ValueInfo } from '../src/model/program.js';
import { gaussian, rng } from './helpers/random.js';

function randArr(n: number, g: () => number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = g() * scale;
  return a;
}

class Builder {
  values: ValueInfo[] = [];
  ops: Op[] = [];
  val(width: number, positions: number, label: string): number {
    this.values.push({ width, positions, label });
    return this.values.length - 1;
  }
}

/** Attention-shaped program: x, r → q, k (rotary), v, attention, W_O, residual add, (last pos). */
function attentionProgram(seed: number, P: number, opts: { rotary: boolean; window?: number; last: boolean }): SectionProgram {
  const g = gaussian(rng(seed));
  const b = new Builder();
  const d = 5;
  const H = 2;
  const dh = 4;
  const dV = dh + 1;
  const x = b.val(d + 1, P, 'x');
  const r = b.val(d + 1, P, 'r');
  const q0 = b.val(H * dh, P, 'q0');
  const k0 = b.val(H * dh, P, 'k0');
  const v = b.val(H * dV, P, 'v');
  b.ops.push({ kind: 'linear', x, y: q0, W: randArr((d + 1) * H * dh, g, 0.6), wIn: d + 1, wOut: H * dh });
  b.ops.push({ kind: 'linear', x, y: k0, W: randArr((d + 1) * H * dh, g, 0.6), wIn: d + 1, wOut: H * dh });
  b.ops.push({ kind: 'linear', x, y: v, W: randArr((d + 1) * H * dV, g, 0.6), wIn: d + 1, wOut: H * dV });
  let q = q0;
  let k = k0;
  if (opts.rotary) {
    q = b.val(H * dh, P, 'q');
    k = b.val(H * dh, P, 'k');
    b.ops.push({ kind: 'rotary', x: q0, y: q, heads: H, dHead: dh, rotaryDim: 2, base: 10000 });
    b.ops.push({ kind: 'rotary', x: k0, y: k, heads: H, dHead: dh, rotaryDim: 2, base: 10000 });
  }
  const z = b.val(H * dV, P, 'z');
  b.ops.push({
    kind: 'attention',
    q,
    k,
    v,
    y: z,
    heads: H,
    dHead: dh,
    dV,
    scale: Math.sqrt(dh),
    causal: true,
    ...(opts.window !== undefined ? { window: opts.window } : {}),
  });
  const o = b.val(d + 1, P, 'o');
  b.ops.push({ kind: 'linear', x: z, y: o, W: randArr(H * dV * (d + 1), g, 0.6), wIn: H * dV, wOut: d + 1 });
  const y = b.val(d + 1, P, 'y');
  b.ops.push({ kind: 'add', a: o, b: r, y });
  let out = y;
  if (opts.last) {
    out = b.val(d + 1, 1, 'last');
    b.ops.push({ kind: 'lastPos', x: y, y: out });
  }
  return { from: 'a', to: 'b', values: b.values, inputs: [x, r], outputs: [out], ops: b.ops };
}

/** LN/MLP-shaped program: lnVar, lnDiv, copy, concat, slice, linear, act; passes r through too. */
function lnMlpProgram(seed: number, P: number, activation: Activation): SectionProgram {
  const g = gaussian(rng(seed));
  const b = new Builder();
  const d = 6;
  const m = 7;
  const r = b.val(d + 1, P, 'r');
  const v0 = b.val(1, P, 'var');
  b.ops.push({ kind: 'lnVar', x: r, y: v0, d });
  const xh = b.val(d + 1, P, 'xhat');
  b.ops.push({ kind: 'lnDiv', v: v0, x: r, y: xh, d, eps: 1e-5 });
  const c = b.val(d + 1, P, 'copy');
  b.ops.push({ kind: 'copy', x: xh, y: c });
  const cat = b.val(2 * d + 2, P, 'cat');
  b.ops.push({ kind: 'concat', xs: [xh, c], y: cat });
  const s = b.val(d + 1, P, 'slice');
  b.ops.push({ kind: 'slice', x: cat, y: s, from: 2, to: d + 3 });
  const pre = b.val(m, P, 'pre');
  b.ops.push({ kind: 'linear', x: s, y: pre, W: randArr((d + 1) * m, g, 0.8), wIn: d + 1, wOut: m });
  const post = b.val(m, P, 'post');
  b.ops.push({ kind: 'act', x: pre, y: post, act: activation });
  return { from: 'c', to: 'd', values: b.values, inputs: [r], outputs: [post, v0, r], ops: b.ops };
}

/** Central-difference check of vjpF64 on every input coordinate of every sample. */
function checkVjp(p: SectionProgram, n: number, seed: number): number {
  const g = gaussian(rng(seed));
  const inputs = p.inputs.map((id) => randArr(n * p.values[id]!.width * p.values[id]!.positions, g));
  const K = 3;
  const outSize = p.outputs.map((id) => p.values[id]!.width * p.values[id]!.positions);
  const cot = outSize.map((s) => randArr(n * K * s, g));
  const vals = forwardF64(p, inputs, n);
  const vj = vjpF64(p, vals, cot, n, K);
  const h = 1e-5;
  let worst = 0;
  p.inputs.forEach((_, j) => {
    const inSize = inputs[j]!.length / n;
    for (let idx = 0; idx < inputs[j]!.length; idx++) {
      const plus = inputs.map((a) => Float64Array.from(a));
      const minus = inputs.map((a) => Float64Array.from(a));
      plus[j]![idx]! += h;
      minus[j]![idx]! -= h;
      const vp = forwardF64(p, plus, n);
      const vm = forwardF64(p, minus, n);
      const sample = Math.floor(idx / inSize);
      const within = idx % inSize;
      for (let k = 0; k < K; k++) {
        let fd = 0;
        p.outputs.forEach((id, o) => {
          const s = outSize[o]!;
          for (let i = 0; i < s; i++) {
            const dy = (vp[id]![sample * s + i]! - vm[id]![sample * s + i]!) / (2 * h);
            fd += cot[o]![(sample * K + k) * s + i]! * dy;
          }
        });
        const got = vj[j]![(sample * K + k) * inSize + within]!;
        const err = Math.abs(got - fd) / (1 + Math.abs(fd));
        worst = Math.max(worst, err);
      }
    }
  });
  return worst;
}

describe('forwardF64 / vjpF64 against finite differences', () => {
  for (const P of [1, 3, 5]) {
    it(`attention with rotary, P=${P}`, () => {
      expect(checkVjp(attentionProgram(10 + P, P, { rotary: true, last: false }), 2, 1)).toBeLessThan(1e-6);
    });
    it(`attention with last-position cut and a local window, P=${P}`, () => {
      expect(checkVjp(attentionProgram(20 + P, P, { rotary: false, window: 2, last: true }), 2, 2)).toBeLessThan(1e-6);
    });
  }
  for (const a of ['relu', 'gelu', 'gelu_tanh', 'identity'] as Activation[]) {
    it(`LN variance/division, copy, concat, slice, linear, ${a}`, () => {
      expect(checkVjp(lnMlpProgram(30, 3, a), 2, 3)).toBeLessThan(1e-6);
    });
  }
});

describe('forward identities', () => {
  it('lnVar and lnDiv give zero mean and (var/(var+eps)) second moment over the first d coordinates', () => {
    const p = lnMlpProgram(1, 4, 'relu');
    const g = gaussian(rng(5));
    const x = randArr(2 * 4 * 7, g, 3);
    const vals = forwardF64(p, [x], 2);
    const xh = vals[2]!;
    const v = vals[1]!;
    for (let r = 0; r < 8; r++) {
      let s = 0;
      let s2 = 0;
      for (let c = 0; c < 6; c++) {
        s += xh[r * 7 + c]!;
        s2 += xh[r * 7 + c]! ** 2;
      }
      expect(Math.abs(s)).toBeLessThan(1e-12);
      expect(Math.abs(s2 / 6 - v[r]! / (v[r]! + 1e-5))).toBeLessThan(1e-12);
      expect(xh[r * 7 + 6]).toBe(x[r * 7 + 6]); // the 1-slot passes through
    }
  });

  it('attention at position 0 returns v_0 (only itself is visible); probabilities sum to 1', () => {
    const p = attentionProgram(3, 3, { rotary: true, last: false });
    const g = gaussian(rng(6));
    const x = randArr(3 * 6, g);
    const r = randArr(3 * 6, g);
    const vals = forwardF64(p, [x, r], 1);
    const v = vals[4]!;
    const z = vals.find((_, i) => p.values[i]!.label === 'z')!;
    for (let c = 0; c < 10; c++) expect(Math.abs(z[c]! - v[c]!)).toBeLessThan(1e-15);
    // With v = all ones in a head's slot, z is 1 there: use the folded 1-slot construction.
    const ones = new Float64Array(3 * 10).fill(1);
    const q = vals[5]!;
    const k = vals[6]!;
    const op = p.ops.find((o) => o.kind === 'attention')!;
    const one: SectionProgram = {
      from: 'q',
      to: 'z',
      values: [p.values[5]!, p.values[6]!, p.values[4]!, p.values[op.y]!],
      inputs: [0, 1, 2],
      outputs: [3],
      ops: [{ ...op, q: 0, k: 1, v: 2, y: 3 }],
    };
    const zz = forwardF64(one, [q, k, ones], 1)[3]!;
    for (const e of zz) expect(Math.abs(e - 1)).toBeLessThan(1e-15);
  });

  it('rotary keeps the norm of each rotated pair and is the identity at position 0', () => {
    const b = new Builder();
    const x = b.val(8, 4, 'x');
    const y = b.val(8, 4, 'y');
    const p: SectionProgram = {
      from: 'a',
      to: 'b',
      values: b.values,
      inputs: [x],
      outputs: [y],
      ops: [{ kind: 'rotary', x, y, heads: 2, dHead: 4, rotaryDim: 4, base: 10000 }],
    };
    const g = gaussian(rng(7));
    const xin = randArr(32, g);
    const out = forwardF64(p, [xin], 1)[y]!;
    for (let c = 0; c < 8; c++) expect(out[c]).toBeCloseTo(xin[c]!, 15);
    for (let t = 1; t < 4; t++) {
      for (let h = 0; h < 2; h++) {
        for (let j = 0; j < 2; j++) {
          const o = t * 8 + h * 4;
          const a = xin[o + j]! ** 2 + xin[o + j + 2]! ** 2;
          const bb = out[o + j]! ** 2 + out[o + j + 2]! ** 2;
          expect(Math.abs(a - bb)).toBeLessThan(1e-13);
        }
      }
    }
  });

  it('integration scales the whole input tuple', () => {
    const p = lnMlpProgram(2, 2, 'identity');
    const x = randArr(2 * 7, gaussian(rng(8)));
    const a = forwardF64(p, [x], 1, 0.5);
    const b = forwardF64(p, [x.map((e) => e * 0.5)], 1);
    a.forEach((arr, i) => arr.forEach((e, j) => expect(e).toBe(b[i]![j])));
  });

  it('embedF64 gathers rows and rejects bad tokens and long sequences', () => {
    const WE = Float64Array.from({ length: 4 * 3 }, (_, i) => i);
    const Wpos = Float64Array.from({ length: 2 * 3 }, (_, i) => 100 + i);
    const spec = { WE, vocab: 4, width: 3, Wpos, nCtx: 2 };
    const [e, pos] = embedF64(spec, [3, 0, 1, 2], 2, 2);
    expect(Array.from(e!)).toEqual([9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(pos!)).toEqual([100, 101, 102, 103, 104, 105, 100, 101, 102, 103, 104, 105]);
    expect(() => embedF64(spec, [4, 0], 1, 2)).toThrow(/token id 4/);
    expect(() => embedF64(spec, [0, 0, 0], 1, 3)).toThrow(/n_ctx 2/);
  });
});
