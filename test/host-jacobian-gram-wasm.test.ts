// The host degeneracy observer's WebAssembly loops (src/host/wasm/jacobian_gram.wat through
// src/host/jacobian-gram-wasm.ts) against the JS loops of src/host/degeneracy.ts, bit for bit
// (tolerance zero: the same float64 operations in the same order): the kernels alone against
// scalar loops of that order, over shapes of 1, primes and non-multiples of 2/4/8, with zeros and
// −0 among the values; and whole accumulators (Jacobian Grams, the carried product T) with the
// kernel against IBGPU_HOST_WASM=0.

import { afterEach, describe, expect, it } from 'vitest';
import type { Activation } from '../src/model/activations.js';
import type { MlpModel } from '../src/model/mlp.js';
import { forwardRowsHost } from '../src/host/mlp-forward.js';
import { HostDegeneracyAccumulator } from '../src/host/degeneracy.js';
import { jacobianGramInstance } from '../src/host/jacobian-gram-wasm.js';
import { WasmLayout } from '../src/host/wasm/load.js';
import { rng } from './helpers/random.js';
import { randomMlpModel } from './helpers/random-mlp-model.js';

afterEach(() => {
  delete process.env['IBGPU_HOST_WASM'];
});

/** Gaussian-ish values with exact zeros and −0 mixed in. */
function values(n: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => {
    const u = r();
    return u < 0.1 ? 0 : u < 0.2 ? -0 : (r() - 0.5) * 3;
  });
}

function bits(a: Float64Array): string[] {
  const v = new DataView(a.buffer, a.byteOffset, a.byteLength);
  return Array.from({ length: a.length }, (_, i) => v.getBigUint64(i * 8, true).toString(16));
}

describe('jacobian_gram kernels', () => {
  it('gram_upper: M[idx[k], idx[q]] += Σ_o G[o,k]·G[o,q] (k ≤ q), the scalar sums bit for bit', () => {
    let seed = 1;
    for (const n of [1, 2, 3, 5, 10, 17]) {
      for (const m of [0, 1, 2, 3, 4, 5, 7, 8, 9, 13]) {
        for (const h of [m, m + 3]) {
          if (h === 0) continue;
          const S = m + (seed % 3); // stride ≥ m; S = m exercises the read past a row
          const G = values(n * S, seed++);
          const r = rng(seed++);
          // m increasing units out of h
          const units = Array.from({ length: h }, (_, a) => a).filter(() => r() < 0.8);
          while (units.length > m) units.splice(Math.floor(r() * units.length), 1);
          for (let a = 0; units.length < m; a++) if (!units.includes(a)) units.push(a);
          units.sort((a, b) => a - b);
          const M0 = values(h * h, seed++);
          const want = Float64Array.from(M0);
          for (let k = 0; k < m; k++)
            for (let q = k; q < m; q++) {
              let t = 0;
              for (let o = 0; o < n; o++) t += G[o * S + k]! * G[o * S + q]!;
              want[units[k]! * h + units[q]!]! += t;
            }
          const lay = new WasmLayout();
          const oG = lay.region((n * S + 2) * 8);
          const oIdx = lay.region(Math.max(1, m) * 4);
          const oM = lay.region(h * h * 8);
          const ex = jacobianGramInstance(lay)!;
          expect(ex, 'WebAssembly SIMD runs in Node').toBeDefined();
          const buf = ex.memory.buffer;
          new Float64Array(buf, oG, n * S + 2).set(G);
          new Int32Array(buf, oIdx, m).set(units);
          new Float64Array(buf, oM, h * h).set(M0);
          ex.gram_upper(oG, S * 8, n, m, oIdx, oM, h * 8);
          expect(bits(new Float64Array(buf, oM, h * h)), `n=${n} m=${m} h=${h}`).toEqual(bits(want));
        }
      }
    }
  });

  it('rank1_rows: T[a, :] += (sign·Wa[a])·Wb, zero weights skipped, bit for bit', () => {
    let seed = 100;
    for (const rows of [1, 2, 3, 7, 11]) {
      for (const nb of [1, 2, 3, 4, 5, 8, 10, 13]) {
        for (const sign of [1, -1]) {
          const nbp = Math.ceil(nb / 2) * 2;
          const hm = 3;
          const b = seed % hm;
          const Wa = values(rows * hm, seed++);
          const Wb = values(hm * nb, seed++);
          const T0 = values(rows * nb, seed++);
          const want = Float64Array.from(T0);
          for (let a = 0; a < rows; a++) {
            const w = sign * Wa[a * hm + b]!;
            if (w === 0) continue;
            for (let c = 0; c < nb; c++) want[a * nb + c]! += w * Wb[b * nb + c]!;
          }
          const lay = new WasmLayout();
          const oT = lay.region(rows * nbp * 8);
          const oWa = lay.region(rows * hm * 8);
          const oWb = lay.region(hm * nbp * 8);
          const ex = jacobianGramInstance(lay)!;
          const buf = ex.memory.buffer;
          const T = new Float64Array(buf, oT, rows * nbp);
          const wb = new Float64Array(buf, oWb, hm * nbp);
          for (let a = 0; a < rows; a++) T.set(T0.subarray(a * nb, (a + 1) * nb), a * nbp);
          for (let c = 0; c < hm; c++) wb.set(Wb.subarray(c * nb, (c + 1) * nb), c * nbp);
          new Float64Array(buf, oWa, rows * hm).set(Wa);
          ex.rank1_rows(oT, nbp * 8, oWa + b * 8, hm * 8, oWb + b * nbp * 8, nbp * 8, rows, sign);
          const got = new Float64Array(rows * nb);
          for (let a = 0; a < rows; a++) got.set(T.subarray(a * nbp, a * nbp + nb), a * nb);
          expect(bits(got), `rows=${rows} nb=${nb} sign=${sign}`).toEqual(bits(want));
        }
      }
    }
  });

  it('IBGPU_HOST_WASM=0 gives no instance (the JS loops serve)', () => {
    process.env['IBGPU_HOST_WASM'] = '0';
    const lay = new WasmLayout();
    lay.region(64);
    expect(jacobianGramInstance(lay)).toBeUndefined();
  });
});

function accumulate(model: MlpModel, layers: number[], x: Float32Array, n: number, batch: number) {
  const d = model.layers[0]!.dIn;
  const acc = new HostDegeneracyAccumulator(model, layers);
  for (let s = 0; s < n; s += batch) {
    const rows = Math.min(batch, n - s);
    acc.addBatch(forwardRowsHost(model, x.subarray(s * d, (s + rows) * d), rows), rows);
  }
  return acc.result();
}

describe('host degeneracy observer with the WebAssembly loops', () => {
  const cases: { widths: number[]; acts: Activation[]; layers: number[]; zeros: boolean }[] = [
    // the carried product (linear output above a ReLU layer) with closed form and Grams below it
    { widths: [9, 13, 11, 7, 5], acts: ['relu', 'relu', 'relu', 'identity'], layers: [0, 1, 2, 3], zeros: true },
    { widths: [6, 17, 1, 3], acts: ['relu', 'relu', 'identity'], layers: [0, 1, 2], zeros: false },
    { widths: [5, 8, 3, 1], acts: ['relu', 'relu', 'identity'], layers: [0, 2], zeros: true },
    // the dense backward (no linear output), odd widths, an output of one unit
    { widths: [7, 11, 1, 9, 4], acts: ['relu', 'gelu', 'relu', 'relu'], layers: [0, 1, 2, 3], zeros: true },
    { widths: [4, 1, 1], acts: ['relu', 'identity'], layers: [0, 1], zeros: false },
    { widths: [12, 29, 10], acts: ['relu', 'identity'], layers: [0, 1], zeros: true },
  ];
  for (const [ci, c] of cases.entries()) {
    it(`equals IBGPU_HOST_WASM=0 bit for bit: widths ${c.widths.join('-')}, layers ${c.layers.join(',')}`, () => {
      const n = 301 + 97 * ci;
      const d = c.widths[0]!;
      const r = rng(50 + ci);
      const x = Float32Array.from({ length: n * d }, () => (r() < 0.6 ? Math.fround(r() * 2 - 0.4) : 0));
      const model = randomMlpModel(c.widths, c.acts, 7 + ci, c.zeros);
      const wasm = accumulate(model, c.layers, x, n, 263);
      process.env['IBGPU_HOST_WASM'] = '0';
      const js = accumulate(model, c.layers, x, n, 263);
      delete process.env['IBGPU_HOST_WASM'];
      expect([...wasm.jacobianGram.keys()].sort()).toEqual([...js.jacobianGram.keys()].sort());
      for (const [i, M] of js.jacobianGram) {
        expect(
          M.some((v) => v !== 0),
          `layer ${i} has a non-zero Jacobian Gram`,
        ).toBe(true);
        expect(bits(wasm.jacobianGram.get(i)!), `layer ${i}`).toEqual(bits(M));
      }
    });
  }
});
