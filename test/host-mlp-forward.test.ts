// The host batch forward (src/host/mlp-forward.ts) against the float64 per-sample reference:
// equal bit for bit (skipping zero inputs adds exact zeros), on sparse and dense rows.
import { describe, expect, it } from 'vitest';
import { forwardRowsHost } from '../src/host/mlp-forward.js';
import { forwardSampleF64 } from '../src/cpu/mlp-forward.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import type { Activation } from '../src/model/activations.js';

function model(dims: number[], acts: Activation[], seed: number) {
  const rnd = mulberry32(seed);
  return {
    layers: dims.slice(1).map((dOut, i) => ({
      dIn: dims[i]!,
      dOut,
      activation: acts[i]!,
      W: Float32Array.from({ length: dims[i]! * dOut }, () => rnd() * 2 - 1),
      b: Float32Array.from({ length: dOut }, () => rnd() - 0.5),
    })),
  };
}

describe('forwardRowsHost', () => {
  for (const [dims, acts, density] of [
    [[13, 7, 5, 3], ['relu', 'relu', 'identity'], 0.2],
    [[1, 1], ['gelu'], 1],
    [[31, 17, 2], ['gelu_tanh', 'relu'], 0.7],
  ] as [number[], Activation[], number][]) {
    it(`equals the per-sample float64 forward (${dims.join('-')}, density ${density})`, () => {
      const m = model(dims, acts, dims.length * 7 + dims[0]!);
      const rnd = mulberry32(99);
      const rows = 23;
      const x = Float32Array.from({ length: rows * dims[0]! }, () => (rnd() < density ? rnd() * 4 - 2 : 0));
      const f = forwardRowsHost(m, x, rows);
      for (let r = 0; r < rows; r++) {
        const ref = forwardSampleF64(m, x, r);
        for (let li = 0; li < m.layers.length; li++) {
          const d = m.layers[li]!.dOut;
          expect(Array.from(f.pres[li]!.subarray(r * d, (r + 1) * d))).toEqual(Array.from(ref.pres[li]!));
        }
        const dl = dims[dims.length - 1]!;
        expect(Array.from(f.acts[m.layers.length]!.subarray(r * dl, (r + 1) * dl))).toEqual(Array.from(ref.output));
      }
    });
  }

  it('stops after upTo layers and rejects short input', () => {
    const m = model([4, 3, 2], ['relu', 'relu'], 5);
    const f = forwardRowsHost(m, new Float32Array(8), 2, 1);
    expect(f.pres.length).toBe(1);
    expect(f.acts.length).toBe(2);
    expect(() => forwardRowsHost(m, new Float32Array(7), 2)).toThrow(/expected rows\*d/);
    expect(() => forwardRowsHost(m, new Float32Array(8), 2, 3)).toThrow(/upTo/);
  });

  it('gives the same values through reused scratch buffers, whatever the previous call left there', () => {
    const m = model([11, 7, 5], ['relu', 'gelu'], 3);
    const rnd = mulberry32(17);
    const scratch = { bufs: [] as Float64Array[] };
    // A larger batch first (the buffers then hold its values), then smaller and larger ones.
    for (const rows of [13, 1, 5, 29]) {
      const x = Float32Array.from({ length: rows * 11 }, () => (rnd() < 0.5 ? rnd() * 4 - 2 : 0));
      const fresh = forwardRowsHost(m, x, rows);
      const reused = forwardRowsHost(m, x, rows, undefined, undefined, scratch);
      for (let a = 0; a < fresh.acts.length; a++) expect(Array.from(reused.acts[a]!)).toEqual(Array.from(fresh.acts[a]!));
      for (let l = 0; l < fresh.pres.length; l++) expect(Array.from(reused.pres[l]!)).toEqual(Array.from(fresh.pres[l]!));
    }
  });
});
