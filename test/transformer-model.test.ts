// The transformer model floor: module ids, node-layer validation, rib's node-layer layouts
// (SPEC-transformers §1.5, §9.3.1) on random models with every module id as a node layer, and
// folded = unfolded (§9.3.2): the compiled (bias-folded) programs reproduce the plain
// TransformerLens forward pass to 1e-12·(1 + max |value|) in float64.

import { describe, expect, it } from 'vitest';
import { compileTransformer } from '../src/model/transformer/compile.js';
import type { TransformerConfig } from '../src/model/transformer/config.js';
import { parseTransformerConfig, ribRootOfOne } from '../src/model/transformer/config.js';
import { moduleIds, validateNodeLayers } from '../src/model/transformer/modules.js';
import { randomTransformer, transformerConfig } from '../src/model/transformer/random.js';
import { forwardTransformerF64 } from '../src/model/transformer/reference.js';
import { loadTransformerFrom, tensorsSource } from '../src/model/transformer/weights.js';
import { nodeActivationsF64, type NodeActs } from '../src/transformer/forward-f64.js';
import { readFileSync } from 'node:fs';

const base = { d_model: 8, n_heads: 3, d_head: 2, d_mlp: 12, d_vocab: 11, n_ctx: 5, n_layers: 2 };
const VARIANTS: Record<string, TransformerConfig> = {
  'sequential LNPre (GPT-2-like)': transformerConfig({ ...base, act_fn: 'gelu_new', normalization_type: 'LNPre' }),
  'parallel LNPre rotary (Pythia-like)': transformerConfig({
    ...base,
    d_head: 4,
    n_heads: 2,
    act_fn: 'gelu',
    normalization_type: 'LNPre',
    positional_embedding_type: 'rotary',
    rotary_dim: 2,
    parallel_attn_mlp: true,
  }),
  'no LN (modadd-like)': transformerConfig({ ...base, act_fn: 'relu' }),
  'local attention (GPT-Neo-like, window 2)': transformerConfig({
    ...base,
    act_fn: 'gelu_new',
    normalization_type: 'LNPre',
    use_attn_scale: false,
    use_local_attn: true,
    window_size: 2,
  }),
};

/** §1.5: width of every node layer. */
function expectedWidth(c: TransformerConfig, id: string): number {
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m, d_vocab: V } = c;
  const ln = c.normalization_type !== null;
  const par = c.parallel_attn_mlp;
  const widths: Record<string, number> = {
    add_embed: 2 * d + 2,
    ln1: d + 1,
    ln1_out: ln ? d + 2 : d + 1,
    attn_in: 2 * d + 2,
    attn_out: 3 * H * dh + H + d + 1,
    add_resid1: 2 * d + 2,
    ln2: par ? 2 * d + 2 : d + 1,
    ln2_out: par ? 2 * d + 3 : ln ? d + 2 : d + 1,
    mlp_in: 2 * d + 2,
    mlp_act: m + d + 2,
    mlp_out: m + d + 2,
    add_resid2: 2 * d + 2,
    ln_final: d + 1,
    ln_final_out: ln ? d + 2 : d + 1,
    unembed: d + 1,
    output: V,
  };
  const w = widths[id.split('.')[0]!];
  if (w === undefined) throw new Error(id);
  return w;
}

function tokens(n: number, P: number, V: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n * P }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % V;
  });
}

function allNodes(c: TransformerConfig): string[] {
  return [...moduleIds(c).filter((i) => i !== 'embed' && i !== 'pos_embed'), 'output'];
}

/** max |a − b| / (1 + max |b|) */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let mb = 0;
  for (let i = 0; i < b.length; i++) mb = Math.max(mb, Math.abs(b[i]!));
  return maxDiff(a, b) / (1 + mb);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Columns [from, to) of a [rows, W] activation. */
function cols(a: NodeActs, from: number, to: number): Float64Array {
  const rows = a.data.length / a.width;
  const out = new Float64Array(rows * (to - from));
  for (let r = 0; r < rows; r++) for (let k = from; k < to; k++) out[r * (to - from) + k - from] = a.data[r * a.width + k]!;
  return out;
}

describe('node-layer layouts and folded = unfolded', () => {
  for (const [name, c] of Object.entries(VARIANTS)) {
    for (const lastPos of [null, 'add_resid1', 'unembed'] as const) {
      if (lastPos === 'add_resid1' && c.parallel_attn_mlp) continue;
      it(`${name}, last_pos_module_type ${lastPos}`, () => {
        const model = randomTransformer(c, 7);
        const n = 3;
        const P = 4;
        const nodes = allNodes(c);
        const mp = compileTransformer(model, nodes, { positions: P, lastPosModuleType: lastPos });
        expect(mp.sections.length).toBe(nodes.length - 1);
        const tok = tokens(n, P, c.d_vocab, 3);
        const acts = nodeActivationsF64(mp, tok, n, P);
        expect(acts.map((a) => a.name)).toEqual(nodes);
        const ref = forwardTransformerF64(model, tok, n, P, lastPos);
        const d = c.d_model;
        let cut = false;
        for (const a of acts) {
          expect(a.width, a.name).toBe(expectedWidth(c, a.name));
          // Positions: P until the add_resid1 cut (which takes effect after add_resid1.0); unembed's cut only the logits.
          const want = a.name === 'output' ? (lastPos !== null ? 1 : P) : cut ? 1 : P;
          expect(a.positions, a.name).toBe(want);
          if (a.name.startsWith('add_resid1') && lastPos === 'add_resid1') cut = true;
          if (a.name !== 'output') {
            // every node layer ends in a 1-slot fed by the residual's 1
            const last = cols(a, a.width - 1, a.width);
            expect(maxDiff(last, new Float64Array(last.length).fill(1)), `${a.name} 1-slot`).toBe(0);
          }
        }
        const byName = new Map(acts.map((a) => [a.name, a]));
        for (let i = 0; i < c.n_layers; i++) {
          expect(relDiff(cols(byName.get(`ln1.${i}`)!, 0, d), ref.residPre[i]!), `ln1.${i} = resid_pre`).toBeLessThan(1e-12);
          const ln2 = byName.get(`ln2.${i}`)!;
          expect(relDiff(cols(ln2, 0, d), ref.residMid[i]!), `ln2.${i} = resid_mid`).toBeLessThan(1e-12);
          if (c.parallel_attn_mlp) expect(relDiff(cols(ln2, d + 1, 2 * d + 1), ref.residPre[i]!)).toBeLessThan(1e-12);
          // 0-slots of add_resid1/add_resid2 (W_O, W_out gained a zero output column)
          for (const id of [`add_resid1.${i}`, `add_resid2.${i}`]) {
            const z = cols(byName.get(id)!, d, d + 1);
            expect(maxDiff(z, new Float64Array(z.length)), `${id} 0-slot`).toBe(0);
          }
          // mlp_act carries ρ, mlp_out act(ρ) = 1 (rib's root is within 1e-11)
          const m = c.d_mlp;
          const rho = cols(byName.get(`mlp_act.${i}`)!, m, m + 1);
          expect(maxDiff(rho, new Float64Array(rho.length).fill(ribRootOfOne(c.act_fn)))).toBeLessThan(1e-15);
          const one = cols(byName.get(`mlp_out.${i}`)!, m, m + 1);
          expect(maxDiff(one, new Float64Array(one.length).fill(1))).toBeLessThan(1e-10);
          // every head's v ends in its 1-slot
          const ao = byName.get(`attn_out.${i}`)!;
          for (let h = 0; h < c.n_heads; h++) {
            const at = 2 * c.n_heads * c.d_head + h * (c.d_head + 1) + c.d_head;
            const v1 = cols(ao, at, at + 1);
            expect(maxDiff(v1, new Float64Array(v1.length).fill(1))).toBe(0);
          }
        }
        expect(relDiff(byName.get('output')!.data, ref.logits), 'logits').toBeLessThan(1e-12);
      });
    }
  }

  it('no-LN attn_in and mlp_in duplicate [r, 1]', () => {
    const c = VARIANTS['no LN (modadd-like)']!;
    const mp = compileTransformer(randomTransformer(c, 2), ['attn_in.0', 'mlp_in.0', 'output'], { positions: 3 });
    const acts = nodeActivationsF64(mp, tokens(2, 3, c.d_vocab, 1), 2, 3);
    for (const a of acts.slice(0, 2)) expect(maxDiff(cols(a, 0, 9), cols(a, 9, 18))).toBe(0);
  });
});

describe('module ids and node-layer validation', () => {
  it('counts 3 + 11L + 3 (standard) and 1 + 11L + 3 (rotary) ids', () => {
    expect(moduleIds({ n_layers: 2, positional_embedding_type: 'standard' }).length).toBe(3 + 22 + 3);
    expect(moduleIds({ n_layers: 6, positional_embedding_type: 'rotary' }).length).toBe(1 + 66 + 3);
    // rib's test: GPT-2 with node layers add_embed, ln2.4, mlp_act.7: section_0 position 17 is ln2.1
    const ids = moduleIds({ n_layers: 12, positional_embedding_type: 'standard' });
    expect(ids[ids.indexOf('add_embed') + 17]).toBe('ln2.1');
  });

  const c = { n_layers: 1, positional_embedding_type: 'standard' as const };
  for (const [list, why] of [
    [[], /at least one/],
    [['embed', 'ln1.0'], /may not be 'embed'/],
    [['ln2.0', 'ln1.0'], /comes before/],
    [['ln1.0', 'ln1.0'], /twice/],
    [['ln1.3'], /not a module/],
    [['output', 'ln1.0'], /only be the last/],
  ] as [string[], RegExp][]) {
    it(`rejects ${JSON.stringify(list)} with the valid ids in order`, () => {
      expect(() => validateNodeLayers(c, list)).toThrow(why);
      expect(() => validateNodeLayers(c, list)).toThrow(/add_embed, ln1\.0, ln1_out\.0, attn_in\.0, attn_out\.0, add_resid1\.0, ln2\.0/);
    });
  }
});

describe('config and weights loading', () => {
  it('reads the fixture and rib-modadd configs (fields under "model")', () => {
    const fx = parseTransformerConfig(JSON.parse(readFileSync('test/fixtures/synthetic-transformer/gpt-tiny/config.json', 'utf8')));
    expect(fx).toMatchObject({
      d_model: 16,
      n_heads: 2,
      d_head: 8,
      d_mlp: 32,
      d_vocab: 23,
      n_ctx: 6,
      n_layers: 2,
      act_fn: 'gelu_new',
      normalization_type: 'LNPre',
    });
    const modadd = parseTransformerConfig({
      model: { act_fn: 'relu', d_head: 32, d_mlp: 512, d_model: 128, d_vocab: 114, n_ctx: 3, n_heads: 4, n_layers: 1, normalization_type: null },
      dataset: {},
    });
    expect(modadd).toMatchObject({ d_model: 128, positional_embedding_type: 'standard', use_attn_scale: true, eps: 1e-5 });
  });

  it('names a missing tensor and a wrong head shape with the expected shape', async () => {
    const c = VARIANTS['no LN (modadd-like)']!;
    const m = randomTransformer(c, 1);
    const t: Record<string, { dtype: 'F64'; shape: number[]; data: Float64Array }> = {
      'embed.W_E': { dtype: 'F64', shape: [11, 8], data: m.weights.WE },
    };
    await expect(loadTransformerFrom(tensorsSource(t), c)).rejects.toThrow(/'blocks\.0\.attn\.W_Q' \[3, 8, 2\] is missing/);
    t['blocks.0.attn.W_Q'] = { dtype: 'F64', shape: [2, 8, 3], data: m.weights.blocks[0]!.WQ };
    await expect(loadTransformerFrom(tensorsSource(t), c)).rejects.toThrow(/'blocks\.0\.attn\.W_Q' has shape \[2, 8, 3\], expected \[3, 8, 2\]/);
  });
});
