// The host kernels of the transformer degeneracy report against the float64 references they
// replace, bit for bit: the batched program forward (src/host/program-forward.ts) and the
// token-table node rows (src/transformer/forward-rows.ts) against the interpreter
// (src/cpu/program-f64.ts forwardF64, forward-f64.ts nodeTuplesF64); the symmetric Gram panels
// (gramProductHost) against matmulF64; the WebAssembly eigenvalues (symEigValuesHost) against
// symEigValues; firstUnits against FiringBits of fewer units; the M′ block on a ReLU's input
// (GpuPasses.reluInputMPrime) against the block of the whole M′ of the gate closed form.
// Tolerance: none (every comparison is of the same bits), except the sign of zero entries in the
// M′ block (its comment says why).

import { describe, expect, it } from 'vitest';
import { forwardF64 } from '../src/cpu/program-f64.js';
import { matmulF64 } from '../src/cpu/matmul.js';
import { symEigValues } from '../src/cpu/eigh.js';
import { symEigValuesHost } from '../src/host/eigh-wasm.js';
import { gramProductHost } from '../src/host/matmul.js';
import { forwardRowsF64 } from '../src/host/program-forward.js';
import { FiringBits, firstUnits } from '../src/host/row-moments.js';
import { integrationPoints } from '../src/ib/integration.js';
import { cutAtFinal } from '../src/model/compose.js';
import type { ModelProgram } from '../src/model/program.js';
import { compileTransformer } from '../src/model/transformer/compile.js';
import type { TransformerConfig } from '../src/model/transformer/config.js';
import { randomTransformer, transformerConfig } from '../src/model/transformer/random.js';
import { degeneracyProgram } from '../src/transformer/degeneracy.js';
import { embedTuple, nodeTuplesF64 } from '../src/transformer/forward-f64.js';
import { RowsForward } from '../src/transformer/forward-rows.js';
import { GpuPasses } from '../src/transformer/gpu-passes.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { useEngine } from './helpers/gpu.js';
import { randomF64 } from './helpers/random.js';

function tokens(n: number, P: number, vocab: number, seed: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length: n * P }, () => Math.floor(r() * vocab));
}

function model(over: Partial<TransformerConfig>, seed: number) {
  return randomTransformer(transformerConfig({ d_model: 6, n_heads: 2, d_head: 3, d_mlp: 11, d_vocab: 7, n_ctx: 5, n_layers: 2, ...over }), seed);
}

function expectSameBits(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  expect(a.length, what).toBe(b.length);
  let bad = -1;
  for (let i = 0; i < a.length && bad < 0; i++) if (!Object.is(a[i], b[i])) bad = i;
  expect(bad, `${what}: first differing entry ${bad} (${a[bad]} vs ${b[bad]})`).toBe(-1);
}

const CASES: { name: string; over: Partial<TransformerConfig>; nodes: string[]; lastPos: 'add_resid1' | null }[] = [
  { name: 'ReLU, no LayerNorm, add_resid1 cut', over: {}, nodes: ['ln1.0', 'ln2.0', 'ln1.1', 'unembed', 'output'], lastPos: 'add_resid1' },
  { name: 'GELU, LayerNorm, every position', over: { act_fn: 'gelu', normalization_type: 'LN' }, nodes: ['ln2.0', 'mlp_out.1', 'output'], lastPos: null },
  {
    name: 'rotary, LNPre',
    over: { positional_embedding_type: 'rotary', rotary_dim: 2, normalization_type: 'LNPre' },
    nodes: ['ln1.1', 'unembed'],
    lastPos: null,
  },
];

describe('batched float64 program forward (forwardRowsF64) and token-table rows (RowsForward)', () => {
  for (const c of CASES) {
    it(`equal the interpreter bit for bit: ${c.name}`, () => {
      const m = model(c.over, 3);
      const P = 4;
      const mp = compileTransformer(m, c.nodes, { positions: P, lastPosModuleType: c.lastPos });
      // n = 1 (no table: n ≤ vocab), 5 (no table), 23 (table: n > vocab 7).
      for (const n of [1, 5, 23]) {
        const tok = tokens(n, P, 7, n);
        // Every section through both forwards, with α = 1 and α = 0.7.
        let tuple = embedTuple(mp, tok, n, P);
        for (const sec of [mp.pre, ...mp.sections]) {
          for (const alpha of [1, 0.7]) {
            const ref = forwardF64(sec, tuple, n, alpha);
            const got = forwardRowsF64(sec, tuple, n, alpha);
            ref.forEach((v, id) => expectSameBits(got[id]!, v, `n ${n}, ${sec.from}->${sec.to}, α ${alpha}, ${sec.values[id]!.label}`));
          }
          const vals = forwardF64(sec, tuple, n);
          tuple = sec.outputs.map((id) => vals[id]!);
        }
        const ref = nodeTuplesF64(mp, tok, n, P);
        const rows = new RowsForward(mp, P, n);
        expect(rows.tabled).toBe(n > 7);
        const got = rows.tuples(tok, n);
        expect(got.map((t) => [t.name, t.width, t.positions, t.widths])).toEqual(ref.map((t) => [t.name, t.width, t.positions, t.widths]));
        got.forEach((t, i) => t.parts.forEach((p, j) => expectSameBits(p, ref[i]!.parts[j]!, `n ${n}, node layer ${t.name}, member ${j}`)));
        // Only the node layers up to the second: a prefix, the same bits.
        const head = rows.tuples(tok, n, 1);
        expect(head.map((t) => t.name)).toEqual(ref.slice(0, 2).map((t) => t.name));
        head.forEach((t, i) => t.parts.forEach((p, j) => expectSameBits(p, ref[i]!.parts[j]!, `n ${n}, first two node layers, ${t.name}`)));
      }
    });
  }

  it('a table made for more sequences serves chunks of any size, and rejects tokens outside the vocabulary as embedF64 does', () => {
    const m = model({}, 5);
    const P = 3;
    const mp = degeneracyProgram(m, P, 'add_resid1');
    const rows = new RowsForward(mp, P, 100);
    expect(rows.tabled).toBe(true);
    // add_resid1 cuts to the last position: W_O and the residual add run there alone.
    expect(rows.lastOnlyValues).toEqual(['attn_out.0/o', 'add_resid1.0/r']);
    for (const n of [1, 2, 9]) {
      const tok = tokens(n, P, 7, 40 + n);
      const ref = nodeTuplesF64(mp, tok, n, P);
      rows.tuples(tok, n).forEach((t, i) => t.parts.forEach((p, j) => expectSameBits(p, ref[i]!.parts[j]!, `chunk of ${n}, ${t.name}`)));
    }
    const bad = Int32Array.from([0, 1, 7]);
    expect(() => nodeTuplesF64(mp, bad, 1, P)).toThrow(/outside the vocabulary 0\.\.6/);
    expect(() => rows.tuples(bad, 1)).toThrow(/outside the vocabulary 0\.\.6/);
  });
});

describe('gramProductHost, symEigValuesHost, firstUnits', () => {
  it('gramProductHost(c) is matmulF64(cᵀ, c) bit for bit (d around the 64-column panels, k from 1)', () => {
    for (const [rows, d] of [
      [1, 1],
      [7, 65],
      [256, 64],
      [37, 129],
      [256, 200],
      [3, 131],
    ] as const) {
      const c = randomF64(rows * d, rows * 1000 + d);
      const ref = matmulF64(c, c, { m: d, n: d, k: rows, transA: true });
      expectSameBits(gramProductHost(c, rows, d), ref, `rows ${rows}, d ${d}`);
    }
  });

  it('symEigValuesHost equals symEigValues bit for bit (orders below and above the WebAssembly cut, rank-deficient)', () => {
    for (const n of [1, 5, 24, 67, 130]) {
      const k = Math.max(1, Math.floor(n / 2));
      const x = randomF64(n * k, n);
      const a = matmulF64(x, x, { m: n, n, k, transB: true }); // rank ≤ k
      expectSameBits(symEigValuesHost(a, n), symEigValues(a, n), `n ${n}`);
    }
  });

  it('firstUnits of FiringBits over more columns equals FiringBits over the first ones', () => {
    const rows = 77;
    const d = 9;
    const x = randomF64(rows * (d + 2), 8);
    const wide = new FiringBits(d + 2, rows);
    const narrow = new FiringBits(d, rows);
    for (const [r0, r1] of [
      [0, 33],
      [33, 34],
      [34, rows],
    ] as const) {
      wide.add({ data: x.subarray(r0 * (d + 2)), rows: r1 - r0, stride: d + 2, offset: 0 });
      narrow.add({ data: x.subarray(r0 * (d + 2)), rows: r1 - r0, stride: d + 2, offset: 0 });
    }
    for (const cofire of [true, false]) {
      const got = firstUnits(wide.result({ cofire }), d);
      const ref = narrow.result({ cofire });
      expect(got.d).toBe(d);
      for (const k of ['hashLo', 'hashHi', 'fireCount', 'cofire', 'words'] as const) expectSameBits(got[k]!, ref[k]!, `${k}, cofire ${cofire}`);
    }
  });
});

describe("M′ on a ReLU's input from handed-over counts (GpuPasses.reluInputMPrime)", () => {
  const engine = useEngine();

  it("equals the whole gate-form M′'s block (1 layer, add_resid1; and every position), zero signs aside", async () => {
    for (const lastPos of ['add_resid1', null] as const) {
      const m = model({ n_layers: 1 }, 21);
      const P = 3;
      const n = 29;
      const tok = tokens(n, P, 7, 77);
      const mp: ModelProgram = degeneracyProgram(m, P, lastPos);
      const pre = new RowsForward(mp, P, n).tuples(tok, n)[1]!; // mlp_act.0: [p, ρ | residual]
      const h = pre.widths[0]!;
      const bits = new FiringBits(h, n * pre.positions);
      bits.add({ data: pre.parts[0]!, rows: n * pre.positions, stride: h, offset: 0 });
      const counts = bits.result({ cofire: true }).cofire;
      const cut = cutAtFinal(mp, 1);
      const passes = new GpuPasses(await engine(), cut, tok, n, P);
      try {
        const pts = integrationPoints('gradient', 0);
        const block = passes.reluInputMPrime(1, counts, pts);
        expect(block, 'the section has the form').toBeDefined();
        const dOut = cut.sections[1]!.outputs.reduce((a, id) => a + cut.sections[1]!.values[id]!.width, 0);
        const dIn = pre.width;
        const M = await passes.mPrime(1, undefined, dOut, pts);
        expect(passes.stagePaths()['m_prime mlp_act.0->output']).toMatch(/GPU sign-pattern/);
        const lead = new Float64Array(h * h);
        for (let i = 0; i < h; i++) lead.set(M.subarray(i * dIn, i * dIn + h), i * h);
        // The whole M′ adds exact zeros (products with the selection's zeros) that can turn a
        // −0 into +0; every non-zero entry has the same bits.
        const plus0 = (a: Float64Array) => Array.from(a, (v) => (v === 0 ? 0 : v));
        expectSameBits(plus0(block!), plus0(lead), `lastPos ${lastPos}`);
        expect(block!.some((v) => v !== 0)).toBe(true);
      } finally {
        passes.dispose();
      }
    }
  });
});
