// Invariants of SPEC-transformers §9.3 shown by the float64 pipeline on the fixture models:
//   7  the identity check (1/(N·P_in)) Σ_n Σ_{t,s} J̃_{t,s}ᵀ J̃_{t,s} = I on directions with
//      Λ > 1e-6·Λ_max, J̃ = ∂f̂^{ℓ+1}/∂f̂^ℓ by central finite differences (independent of the VJPs;
//      tolerance 1e-5, the FD error with step 1e-4);
//  11  linear last section: Σ_i E_ij = Λ_j for unembed → output (edges pass vs M′ pass; 1e-9);
//   9  centring: f̂_0 is the same constant at every sample and position, the other directions have
//      zero mean over (n, p) (1e-9 relative to their RMS);
//   8  causality: ∂out_t/∂in_s = 0 for s > t exactly, and positions do not see later ones (a
//      sequence cut to 3 tokens gives the first 3 positions' activations bit for bit);
//  10  LN-variance isolation: at ln1_out, coordinate 0 (the variance) is read only by the var
//      direction (and the constant one, C⁺[0] = c·μ), which reads nothing else (≤ 1e-12).

import { beforeAll, describe, expect, it } from 'vitest';
import { forwardF64, vjpSampleF64 } from '../src/cpu/program-f64.js';
import type { IbResult } from '../src/ib/pipeline.js';
import { compileTransformer } from '../src/model/transformer/compile.js';
import { nodeActivationsF64 } from '../src/transformer/forward-f64.js';
import { splitParts } from '../src/transformer/forward-f64.js';
import { PassesF64 } from '../src/transformer/passes-f64.js';
import { buildTransformer } from '../src/transformer/pipeline.js';
import { load, type Loaded } from './helpers/transformer-fixtures.js';

let modadd: { loaded: Loaded; res: IbResult; passes: PassesF64 };
let gpt: { loaded: Loaded; res: IbResult; passes: PassesF64 };

beforeAll(async () => {
  {
    const loaded = await load('modadd-tiny', 'modadd-tiny_f64_jacobian', 'weights_f64.safetensors');
    const passes = new PassesF64(loaded.mp, loaded.tokens, loaded.n, loaded.P);
    modadd = { loaded, passes, res: await buildTransformer(passes, loaded.mp, loaded.config) };
  }
  {
    // gpt-tiny with an LN-division node and an attention section, on its first 64 sequences.
    const base = await load('gpt-tiny', 'gpt-tiny_f64_jacobian', 'weights_f64.safetensors');
    const nodes = ['ln1.1', 'ln1_out.1', 'attn_in.1', 'ln2.1', 'unembed', 'output'];
    const config = { ...base.config, node_layers: nodes };
    const mp = compileTransformer(base.model, nodes, { positions: base.P });
    const n = 64;
    const loaded: Loaded = { ...base, mp, config, n, tokens: base.tokens.slice(0, n * base.P) };
    const passes = new PassesF64(mp, loaded.tokens, n, loaded.P);
    gpt = { loaded, passes, res: await buildTransformer(passes, mp, config) };
  }
});

/** Q = (1/(N·P_in)) Σ_n Σ_s J̃ᵀJ̃ for section s by central differences in f̂ coordinates. */
function identityMatrix(run: typeof modadd, s: number): { Q: Float64Array; r: number } {
  const { loaded, res, passes } = run;
  const sec = loaded.mp.sections[s]!;
  const names = loaded.mp.nodeLayers;
  const bin = res.bases.get(names[s]!)!;
  const bout = res.bases.get(names[s + 1]!);
  const acts = passes.activations()[s]!;
  const n = loaded.n;
  const Pin = acts.positions;
  const widths = sec.inputs.map((id) => sec.values[id]!.width);
  const D = acts.width;
  const outW = sec.outputs.reduce((a, id) => a + sec.values[id]!.width, 0);
  const Pout = sec.values[sec.outputs[0]!]!.positions;
  const rOut = bout ? bout.r : outW;
  const fhatOut = (x: Float64Array): Float64Array => {
    const vals = forwardF64(sec, splitParts(x, widths, n, Pin), n);
    const out = new Float64Array(n * Pout * rOut);
    let off = 0;
    for (const id of sec.outputs) {
      const w = sec.values[id]!.width;
      const v = vals[id]!;
      for (let row = 0; row < n * Pout; row++) {
        for (let a = 0; a < w; a++) {
          const y = v[row * w + a]!;
          if (!bout) out[row * rOut + off + a] = y;
          else for (let i = 0; i < rOut; i++) out[row * rOut + i]! += y * bout.C[(off + a) * rOut + i]!;
        }
      }
      off += w;
    }
    return out;
  };
  const r = bin.r;
  const h = 1e-4;
  // cols[s][j] = ∂f̂'/∂f̂_{s,j} for every sample: [n, Pout·rOut]
  const Q = new Float64Array(r * r);
  for (let sp = 0; sp < Pin; sp++) {
    const cols: Float64Array[] = [];
    for (let j = 0; j < r; j++) {
      const plus = Float64Array.from(acts.data);
      const minus = Float64Array.from(acts.data);
      for (let b = 0; b < n; b++) {
        for (let a = 0; a < D; a++) {
          plus[(b * Pin + sp) * D + a]! += h * bin.Cpinv[j * D + a]!;
          minus[(b * Pin + sp) * D + a]! -= h * bin.Cpinv[j * D + a]!;
        }
      }
      const fp = fhatOut(plus);
      const fm = fhatOut(minus);
      cols.push(fp.map((v, i) => (v - fm[i]!) / (2 * h)));
    }
    for (let j = 0; j < r; j++)
      for (let k = 0; k < r; k++) {
        let acc = 0;
        for (let i = 0; i < cols[j]!.length; i++) acc += cols[j]![i]! * cols[k]![i]!;
        Q[j * r + k]! += acc / (n * Pin);
      }
  }
  return { Q, r };
}

function checkIdentity(run: typeof modadd, s: number, masked: number): number {
  const { Q, r } = identityMatrix(run, s);
  const lam = run.res.bases.get(run.loaded.mp.nodeLayers[s]!)!.Lambda!;
  const lmax = Math.max(...lam);
  const good = Array.from({ length: r }, (_, i) => i).filter((i) => i >= masked && lam[i]! > 1e-6 * lmax);
  expect(good.length).toBeGreaterThan(3);
  let worst = 0;
  for (const i of good) for (const j of good) worst = Math.max(worst, Math.abs(Q[i * r + j]! - (i === j ? 1 : 0)));
  return worst;
}

describe('SPEC-transformers §9.3 invariants (float64 path)', () => {
  it('7: identity check on an attention section (modadd-tiny ln1.0 → ln2.0, P_in 3 → P_out 1)', () => {
    const w = checkIdentity(modadd, 0, 1);
    console.log(`identity check, modadd-tiny ln1.0->ln2.0: max |Q − I| = ${w.toExponential(2)}`);
    expect(w).toBeLessThan(1e-5);
  });

  it('7: identity check on LN and attention sections with 6 positions (gpt-tiny)', () => {
    for (const [s, masked] of [
      [0, 1],
      [1, 2],
      [2, 1],
    ] as const) {
      const w = checkIdentity(gpt, s, masked);
      console.log(`identity check, gpt-tiny section ${s}: max |Q − I| = ${w.toExponential(2)}`);
      expect(w).toBeLessThan(1e-5);
    }
  });

  it('11: linear last section: Σ_i E_ij = Λ_j at unembed (both models)', () => {
    for (const run of [modadd, gpt]) {
      const E = run.res.edges.get('unembed->output')!;
      const lam = run.res.bases.get('unembed')!.Lambda!;
      for (let j = 1; j < E.cols; j++) {
        let s = 0;
        for (let i = 0; i < E.rows; i++) s += E.data[i * E.cols + j]!;
        expect(Math.abs(s - lam[j]!) / lam[j]!).toBeLessThan(1e-9);
      }
    }
  });

  it('9: centring: f̂_0 constant, other directions zero-mean over samples and positions', () => {
    for (const run of [modadd, gpt]) {
      const acts = run.passes.activations();
      run.loaded.mp.nodeLayers.forEach((name, l) => {
        const b = run.res.bases.get(name);
        if (!b || name === 'output') return;
        const a = acts[l]!;
        const rows = a.data.length / a.width;
        const mean = new Float64Array(b.r);
        const sq = new Float64Array(b.r);
        let f0min = Infinity;
        let f0max = -Infinity;
        for (let row = 0; row < rows; row++) {
          for (let c = 0; c < b.r; c++) {
            let v = 0;
            for (let k = 0; k < a.width; k++) v += a.data[row * a.width + k]! * b.C[k * b.r + c]!;
            mean[c]! += v / rows;
            sq[c]! += (v * v) / rows;
            if (c === 0) {
              f0min = Math.min(f0min, v);
              f0max = Math.max(f0max, v);
            }
          }
        }
        expect((f0max - f0min) / Math.abs(f0max), `${name} f̂_0`).toBeLessThan(1e-12);
        for (let c = 1; c < b.r; c++) expect(Math.abs(mean[c]!) / Math.sqrt(sq[c]!), `${name} direction ${c}`).toBeLessThan(1e-9);
      });
    }
  });

  it('8: causality: no gradient from an output position to a later input position', () => {
    const sec = gpt.loaded.mp.sections[2]!; // attn_in.1 → ln2.1
    const acts = gpt.passes.activations()[2]!;
    const P = acts.positions;
    const widths = sec.inputs.map((id) => sec.values[id]!.width);
    const vals = forwardF64(
      sec,
      acts.parts.map((p, j) => p.subarray(0, 2 * P * widths[j]!)),
      2,
    );
    const outW = sec.values[sec.outputs[0]!]!.width;
    for (let t = 0; t < P; t++) {
      const cot = new Float64Array(outW * P);
      for (let a = 0; a < outW; a++) cot[t * outW + a] = 1 + a;
      const g = vjpSampleF64(sec, vals, 1, [cot], 1);
      let later = 0;
      let earlier = 0;
      g.forEach((gi, j) => {
        for (let s = 0; s < P; s++)
          for (let a = 0; a < widths[j]!; a++) {
            const v = Math.abs(gi[s * widths[j]! + a]!);
            if (s > t) later = Math.max(later, v);
            else earlier = Math.max(earlier, v);
          }
      });
      expect(later).toBe(0);
      expect(earlier).toBeGreaterThan(0);
    }
    // A sequence cut after 3 tokens: the first 3 positions of every node layer are unchanged.
    const m = gpt.loaded.model;
    const nodes = gpt.loaded.config.node_layers;
    const full = nodeActivationsF64(compileTransformer(m, nodes, { positions: 6 }), gpt.loaded.tokens.slice(0, 12), 2, 6);
    const cutTok = Int32Array.from([...gpt.loaded.tokens.slice(0, 3), ...gpt.loaded.tokens.slice(6, 9)]);
    const cut = nodeActivationsF64(compileTransformer(m, nodes, { positions: 3 }), cutTok, 2, 3);
    full.forEach((a, l) => {
      const b = cut[l]!;
      for (let smp = 0; smp < 2; smp++)
        for (let t = 0; t < 3; t++)
          for (let k = 0; k < a.width; k++) {
            expect(b.data[(smp * 3 + t) * a.width + k]).toBe(a.data[(smp * 6 + t) * a.width + k]);
          }
    });
  });

  it('10: LN-variance isolation at ln1_out.1', () => {
    const b = gpt.res.bases.get('ln1_out.1')!;
    const D = b.dim;
    // [const, var, rest]: only var (and the constant direction, C⁺[0] = c·μ) read coordinate 0;
    // the var direction reads nothing else; no direction but var has a C column entry at 0.
    for (let row = 2; row < b.r; row++) expect(Math.abs(b.Cpinv[row * D]!), `C⁺[${row}, 0]`).toBeLessThan(1e-12);
    expect(Math.abs(b.Cpinv[1 * D]!)).toBeGreaterThan(0);
    for (let k = 1; k < D; k++) expect(Math.abs(b.Cpinv[1 * D + k]!)).toBeLessThan(1e-12);
    for (let c = 0; c < b.r; c++) if (c !== 1) expect(Math.abs(b.C[c]!), `C[0, ${c}]`).toBeLessThan(1e-12);
  });
});
