// TinyStories' n_ctx (SPEC-transformers §2.2): rib forces n_ctx = 511 for the TinyStories models
// and cuts W_pos to 511 rows, on a tiny synthetic GPT-Neo checkpoint with 2048 positions, given
// as a TransformerLens config + state dict and as a HuggingFace GPT-Neo config + checkpoint.
// The HuggingFace GPT-Neo conversion is checked against an independent float64 forward of
// HuggingFace's GPT-Neo (LayerNorm with weights, unscaled attention, local attention on odd
// layers, tied lm_head) on the logits minus their mean over the vocabulary (TL's processing
// centres the unembedding): 1e-10 relative (LayerNorm amplifies rounding; an index or layout error is O(1)).

import { describe, expect, it } from 'vitest';
import { tokensFromTensor } from '../src/data/tokens.js';
import type { Tensor } from '../src/io/tensor.js';
import { compileTransformer } from '../src/model/transformer/compile.js';
import { parseTransformerConfig, TINYSTORIES_N_CTX } from '../src/model/transformer/config.js';
import { loadTransformerFrom, tensorsSource } from '../src/model/transformer/weights.js';
import { nodeActivationsF64 } from '../src/transformer/forward-f64.js';
import { gaussian, rng } from './helpers/random.js';
import { attend, layerNorm, linear } from './helpers/hf-reference.js';
import { TINY_HF_DIMS } from './helpers/tiny-hf-dims.js';

const { dModel: d, heads: H, dHead: dh, dMlp: m, vocab: V, layers: LAYERS } = TINY_HF_DIMS;
const N_POS = 2048;
const WINDOW = 3; // small, so the local attention of layer 1 acts on short sequences

function randomTensors(shapes: Record<string, number[]>, seed: number, scale = 0.5): Record<string, Tensor> {
  const g = gaussian(rng(seed));
  const out: Record<string, Tensor> = {};
  for (const [k, shape] of Object.entries(shapes)) {
    out[k] = { dtype: 'F64', shape, data: Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => g() * scale) };
  }
  return out;
}

const TL_CONFIG = {
  model_name: 'TinyStories-1M',
  d_model: d,
  n_heads: H,
  d_head: dh,
  d_mlp: m,
  d_vocab: V,
  n_ctx: N_POS,
  n_layers: LAYERS,
  act_fn: 'gelu_new',
  normalization_type: 'LNPre',
  positional_embedding_type: 'standard',
  use_attn_scale: false,
  original_architecture: 'GPTNeoForCausalLM',
  window_size: WINDOW,
};

function tlShapes(): Record<string, number[]> {
  const s: Record<string, number[]> = { 'embed.W_E': [V, d], 'pos_embed.W_pos': [N_POS, d], 'unembed.W_U': [d, V], 'unembed.b_U': [V] };
  for (let i = 0; i < LAYERS; i++) {
    for (const w of ['W_Q', 'W_K', 'W_V']) s[`blocks.${i}.attn.${w}`] = [H, d, dh];
    for (const b of ['b_Q', 'b_K', 'b_V']) s[`blocks.${i}.attn.${b}`] = [H, dh];
    Object.assign(s, {
      [`blocks.${i}.attn.W_O`]: [H, dh, d],
      [`blocks.${i}.attn.b_O`]: [d],
      [`blocks.${i}.mlp.W_in`]: [d, m],
      [`blocks.${i}.mlp.b_in`]: [m],
      [`blocks.${i}.mlp.W_out`]: [m, d],
      [`blocks.${i}.mlp.b_out`]: [d],
    });
  }
  return s;
}

const HF_CONFIG = {
  _name_or_path: 'roneneldan/TinyStories-1M',
  model_type: 'gpt_neo',
  architectures: ['GPTNeoForCausalLM'],
  hidden_size: d,
  num_heads: H,
  num_layers: LAYERS,
  intermediate_size: m,
  vocab_size: V,
  max_position_embeddings: N_POS,
  window_size: WINDOW,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  attention_types: [[['global', 'local'], 1]],
};

function hfShapes(): Record<string, number[]> {
  const p = 'transformer.';
  const s: Record<string, number[]> = { [`${p}wte.weight`]: [V, d], [`${p}wpe.weight`]: [N_POS, d], [`${p}ln_f.weight`]: [d], [`${p}ln_f.bias`]: [d] };
  for (let i = 0; i < LAYERS; i++) {
    const b = `${p}h.${i}.`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) s[`${b}attn.attention.${n}.weight`] = [d, d];
    Object.assign(s, {
      [`${b}attn.attention.out_proj.bias`]: [d],
      [`${b}mlp.c_fc.weight`]: [m, d],
      [`${b}mlp.c_fc.bias`]: [m],
      [`${b}mlp.c_proj.weight`]: [d, m],
      [`${b}mlp.c_proj.bias`]: [d],
      [`${b}ln_1.weight`]: [d],
      [`${b}ln_1.bias`]: [d],
      [`${b}ln_2.weight`]: [d],
      [`${b}ln_2.bias`]: [d],
    });
  }
  return s;
}

/** HuggingFace's GPT-Neo forward in float64 (modeling_gpt_neo.py), logits [P, V] of one sequence. */
function hfGptNeoLogits(t: Record<string, Tensor>, tokens: number[]): Float64Array {
  const W = (k: string): Float64Array => t[`transformer.${k}`]!.data as Float64Array;
  const P = tokens.length;
  let x = tokens.map((tok, p) => Float64Array.from({ length: d }, (_, k) => W('wte.weight')[tok * d + k]! + W('wpe.weight')[p * d + k]!));
  const gelu = (u: number): number => 0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u ** 3)));
  for (let i = 0; i < LAYERS; i++) {
    const b = `h.${i}.`;
    const h1 = x.map((v) => layerNorm(v, W(`${b}ln_1.weight`), W(`${b}ln_1.bias`)));
    const q = h1.map((v) => linear(v, W(`${b}attn.attention.q_proj.weight`), undefined, d));
    const k = h1.map((v) => linear(v, W(`${b}attn.attention.k_proj.weight`), undefined, d));
    const v = h1.map((u) => linear(u, W(`${b}attn.attention.v_proj.weight`), undefined, d));
    // Odd layers attend locally; GPT-Neo scales no scores.
    const z = attend(q, k, v, H, dh, { divisor: 1, ...(i % 2 === 1 ? { window: WINDOW } : {}) });
    x = x.map((r, p) => r.map((c, kk) => c + linear(z[p]!, W(`${b}attn.attention.out_proj.weight`), W(`${b}attn.attention.out_proj.bias`), d)[kk]!));
    const h2 = x.map((r) => layerNorm(r, W(`${b}ln_2.weight`), W(`${b}ln_2.bias`)));
    const mlp = h2.map((r) =>
      linear(linear(r, W(`${b}mlp.c_fc.weight`), W(`${b}mlp.c_fc.bias`), m).map(gelu), W(`${b}mlp.c_proj.weight`), W(`${b}mlp.c_proj.bias`), d),
    );
    x = x.map((r, p) => r.map((c, kk) => c + mlp[p]![kk]!));
  }
  const out = new Float64Array(P * V);
  x.forEach((r, p) => out.set(linear(layerNorm(r, W('ln_f.weight'), W('ln_f.bias')), W('wte.weight'), undefined, V), p * V));
  return out;
}

/** Logits minus their mean over the vocabulary, per position (what TL's centred unembedding keeps). */
function centredLogits(a: Float64Array, P: number): Float64Array {
  const out = Float64Array.from(a);
  for (let p = 0; p < P; p++) {
    let mu = 0;
    for (let k = 0; k < V; k++) mu += a[p * V + k]! / V;
    for (let k = 0; k < V; k++) out[p * V + k] = a[p * V + k]! - mu;
  }
  return out;
}

describe("TinyStories' n_ctx = 511 (rib's special case)", () => {
  it('a TransformerLens TinyStories config gets n_ctx 511 and W_pos cut to its first 511 rows', async () => {
    const cfg = parseTransformerConfig(TL_CONFIG);
    expect(cfg.n_ctx).toBe(TINYSTORIES_N_CTX);
    expect(cfg.pos_rows).toBe(N_POS);
    const t = randomTensors(tlShapes(), 1);
    const model = await loadTransformerFrom(tensorsSource(t), cfg);
    expect(model.config.n_ctx).toBe(511);
    expect(model.weights.Wpos!.length).toBe(511 * d);
    expect(model.weights.Wpos).toEqual((t['pos_embed.W_pos']!.data as Float64Array).slice(0, 511 * d));
    // Other models keep their n_ctx and whole W_pos.
    const other = parseTransformerConfig({ ...TL_CONFIG, model_name: 'gpt-neo-tiny' });
    expect(other.n_ctx).toBe(N_POS);
    expect((await loadTransformerFrom(tensorsSource(t), other)).weights.Wpos!.length).toBe(N_POS * d);
    // Token data: sequences longer than 511 are refused; a token stream is cut into 511-token windows.
    const seq = (P: number): Tensor => ({ dtype: 'I32', shape: [2, P], data: new Int32Array(2 * P) });
    expect(() => tokensFromTensor(seq(512), 'x.npy', { nCtx: cfg.n_ctx, vocab: V })).toThrow(/512/);
    expect(tokensFromTensor(seq(511), 'x.npy', { nCtx: cfg.n_ctx, vocab: V }).P).toBe(511);
    const stream = tokensFromTensor({ dtype: 'I32', shape: [2000], data: new Int32Array(2000) }, 's.npy', { nCtx: cfg.n_ctx, vocab: V });
    expect([stream.n, stream.P]).toEqual([3, 511]); // windows 0–510, 511–1021, 1022–1532 and a partial one, which rib drops (the last window always)
  });

  it('a HuggingFace GPT-Neo TinyStories checkpoint converts to the same logits as HuggingFace computes, with n_ctx 511', async () => {
    const cfg = parseTransformerConfig(HF_CONFIG);
    expect([cfg.n_ctx, cfg.pos_rows, cfg.model_name, cfg.use_attn_scale, cfg.use_local_attn, cfg.window_size]).toEqual([
      511,
      N_POS,
      'TinyStories-1M',
      false,
      true,
      WINDOW,
    ]);
    const t = randomTensors(hfShapes(), 2);
    for (const k of Object.keys(t))
      if (k.endsWith('ln_1.weight') || k.endsWith('ln_2.weight') || k.endsWith('ln_f.weight'))
        (t[k]!.data as Float64Array).forEach((v, i, a) => {
          a[i] = 1 + 0.3 * v;
        });
    // A copy: the loader processes float64 tensors in place (TL's folding), the reference needs the originals.
    const model = await loadTransformerFrom(tensorsSource(t, 'tinystories.safetensors'), cfg);
    expect(model.config.normalization_type).toBe('LNPre');
    expect(model.weights.Wpos!.length).toBe(511 * d);
    const P = 7;
    const seqs = [
      [1, 4, 2, 9, 0, 10, 3],
      [5, 5, 6, 7, 8, 2, 1],
    ];
    const mp = compileTransformer(model, ['unembed', 'output'], { positions: P });
    const acts = nodeActivationsF64(mp, Int32Array.from(seqs.flat()), seqs.length, P);
    const logits = acts[acts.length - 1]!.data;
    seqs.forEach((s, n) => {
      const want = centredLogits(hfGptNeoLogits(t, s), P);
      const got = centredLogits(logits.subarray(n * P * V, (n + 1) * P * V), P);
      let err = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(got[i]! - want[i]!));
        scale = Math.max(scale, Math.abs(want[i]!));
      }
      expect(err / scale, `sequence ${n}`).toBeLessThan(1e-10);
    });
  });
});
