// The host edge pass's block inputs (src/host/edge-inputs.ts): f̂ = Cᵀ[x; 1] and the integrated
// gates against a plain float64 recomputation (tolerance 1e-12 relative: only the summation order
// differs), and any split of a block's rows between calls (as the worker threads split it) gives
// the same bits as one call over the whole block. The WebAssembly SIMD preparer
// (src/host/edge-inputs-wasm.ts) gives edgeInputRows's bits.
import { describe, expect, it } from 'vitest';
import { edgeInputRows, type EdgeInputPass } from '../src/host/edge-inputs.js';
import { wasmEdgeInputs } from '../src/host/edge-inputs-wasm.js';
import { forwardSampleF64 } from '../src/cpu/mlp-forward.js';
import { actGrad, type Activation } from '../src/model/activations.js';
import { mulberry32 } from '../src/util/mulberry32.js';

function setup(dims: number[], acts: Activation[], r: number[], rows: number, seed: number) {
  const rnd = mulberry32(seed);
  const vals = (n: number, f: () => number) => Float64Array.from({ length: n }, f);
  const layers = dims.slice(1).map((dOut, i) => ({
    dIn: dims[i]!,
    dOut,
    activation: acts[i]!,
    W: vals(dims[i]! * dOut, () => rnd() * 2 - 1),
    b: vals(dOut, () => rnd() - 0.5),
  }));
  const pass: EdgeInputPass = {
    layers,
    upTo: layers.length,
    sections: layers.map((l, li) => ({
      layer: li,
      dim: l.dIn + 1,
      r: r[li]!,
      h: l.dOut,
      act: l.activation,
      C: vals((l.dIn + 1) * r[li]!, () => rnd() - 0.5),
      Q: vals(r[li]! * l.dOut, () => rnd() - 0.5),
    })),
    alphas: Float64Array.from([0.25, 0.75, 1]),
    weights: Float64Array.from([0.5, 0.25, 0.25]),
  };
  const x = Float32Array.from({ length: rows * dims[0]! }, () => (rnd() < 0.4 ? rnd() * 2 - 1 : 0));
  const out = () => pass.sections.map((s) => ({ fhat: new Float64Array(rows * s.r), gates: new Float64Array(rows * s.h) }));
  return { pass, x, out };
}

describe('edgeInputRows', () => {
  for (const [dims, acts, r, rows] of [
    [[13, 7, 5], ['relu', 'gelu'], [6, 3], 17],
    [[1, 1], ['relu'], [1], 1],
    [[9, 4, 3, 2], ['gelu_tanh', 'relu', 'identity'], [5, 4, 1], 31],
  ] as [number[], Activation[], number[], number][]) {
    it(`matches a plain float64 recomputation (${dims.join('-')}, ${rows} rows)`, () => {
      const { pass, x, out } = setup(dims, acts, r, rows, dims.length * 5 + rows);
      const o = out();
      edgeInputRows(pass, { x, out: o, from: 0, to: rows });
      for (let n = 0; n < rows; n++) {
        const fw = forwardSampleF64(pass, x, n);
        pass.sections.forEach((s, si) => {
          const xin = fw.inputs[s.layer]!;
          const d = s.dim - 1;
          for (let j = 0; j < s.r; j++) {
            let f = s.C[d * s.r + j]!;
            for (let i = 0; i < d; i++) f += xin[i]! * s.C[i * s.r + j]!;
            expect(o[si]!.fhat[n * s.r + j]).toBeCloseTo(f, 10);
          }
          for (let h = 0; h < s.h; h++) {
            let p = 0;
            for (let j = 0; j < s.r; j++) p += o[si]!.fhat[n * s.r + j]! * s.Q[j * s.h + h]!;
            let g = 0;
            for (let k = 0; k < pass.alphas.length; k++) g += pass.weights[k]! * actGrad(s.act, pass.alphas[k]! * p);
            expect(Math.abs(o[si]!.gates[n * s.h + h]! - g)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(g)));
          }
        });
      }
    });

    it(`gives the same bits split at any row (${dims.join('-')}, ${rows} rows)`, () => {
      const { pass, x, out } = setup(dims, acts, r, rows, 7 + rows);
      const whole = out();
      edgeInputRows(pass, { x, out: whole, from: 0, to: rows });
      for (const cut of [0, 1, Math.floor(rows / 2), rows - 1, rows]) {
        const parts = out();
        const scratch = { bufs: [] as Float64Array[] };
        edgeInputRows(pass, { x, out: parts, from: 0, to: cut }, scratch);
        edgeInputRows(pass, { x, out: parts, from: cut, to: rows }, scratch);
        parts.forEach((p, si) => {
          expect(Array.from(p.fhat)).toEqual(Array.from(whole[si]!.fhat));
          expect(Array.from(p.gates)).toEqual(Array.from(whole[si]!.gates));
        });
      }
    });
  }
});

describe('wasmEdgeInputs = edgeInputRows, bit for bit', () => {
  /** Indices where a and b differ as float64 bit patterns. */
  const bitDiffs = (a: Float64Array, b: Float64Array): number[] => {
    const out: number[] = [];
    for (let t = 0; t < a.length; t++) if (!Object.is(a[t], b[t])) out.push(t);
    return out;
  };
  for (const [dims, acts, r, rows, upTo] of [
    [[1, 1], ['relu'], [1], 1, 1],
    [[13, 7, 5], ['relu', 'gelu'], [6, 3], 17, 2],
    [[9, 4, 3, 2], ['gelu_tanh', 'relu', 'identity'], [5, 4, 1], 31, 3],
    // Widths past one 8-column block and not multiples of it; the deepest section's layer is
    // upTo itself (its input is the last layer run), as in the MNIST build.
    [[97, 23, 17, 10], ['relu', 'relu', 'identity'], [41, 17, 11], 53, 2],
  ] as [number[], Activation[], number[], number, number][]) {
    it(`${dims.join('-')}, ${rows} rows, sections on layers < ${upTo + 1}`, () => {
      const { pass: full, x, out } = setup(dims, acts, r, rows, 3 * rows + dims[0]!);
      const pass: EdgeInputPass = { ...full, upTo, sections: full.sections.filter((s) => s.layer <= upTo) };
      const outs = () => out().slice(0, pass.sections.length);
      const js = outs();
      edgeInputRows(pass, { x, out: js, from: 0, to: rows });
      const prep = wasmEdgeInputs(pass);
      expect(prep).toBeDefined();
      // Split as the threads split a block, into the same output arrays.
      const w = outs();
      const cut = Math.floor(rows / 3);
      prep!({ x, out: w, from: 0, to: cut });
      prep!({ x, out: w, from: cut, to: rows });
      pass.sections.forEach((_s, si) => {
        expect(bitDiffs(js[si]!.fhat, w[si]!.fhat), `fhat of section ${si}`).toEqual([]);
        expect(bitDiffs(js[si]!.gates, w[si]!.gates), `gates of section ${si}`).toEqual([]);
      });
    });
  }
});
