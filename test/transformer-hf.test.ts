// HuggingFace GPT-2 and GPT-NeoX checkpoints converted on load (SPEC-transformers §2.5) with
// TransformerLens' processing (§2.4) and rib's folding: the compiled model's log-probabilities
// equal those of a direct HuggingFace-convention forward pass (LayerNorm with weights, Conv1D /
// nn.Linear layouts, fused QKV, NeoX rotary and parallel residual) written here independently,
// to 1e-10. (center_unembed shifts the logits by a constant per position, so log-probabilities
// are compared.) The processing also makes every residual stream zero-mean over d (§2.4).

import { describe, expect, it } from 'vitest';
import { act } from '../src/model/activations.js';
import type { Tensor } from '../src/io/tensor.js';
import { compileTransformer } from '../src/model/transformer/compile.js';
import { parseTransformerConfig } from '../src/model/transformer/config.js';
import { loadTransformerFrom, tensorsSource } from '../src/model/transformer/weights.js';
import { nodeActivationsF64 } from '../src/transformer/forward-f64.js';
import { gaussian, rng } from './helpers/random.js';
import { attend, layerNorm, linear } from './helpers/hf-reference.js';
import { TINY_HF_DIMS } from './helpers/tiny-hf-dims.js';

const { dModel: d, heads: H, dHead: dh, dMlp: m, vocab: V, layers: L } = TINY_HF_DIMS;
const nCtx = 5;
const P = 5;

function rand(g: () => number, n: number, s = 0.3): Float64Array {
  return Float64Array.from({ length: n }, () => g() * s);
}
const T = (shape: number[], data: Float64Array): Tensor => ({ dtype: 'F64', shape, data });

/** y[o] = Σ_i x[i] W[i, o] + b[o] for W row-major [in, out]. */
function affine(x: Float64Array, W: Float64Array, b: Float64Array | undefined, nOut: number): Float64Array {
  const y = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let s = b ? b[o]! : 0;
    for (let i = 0; i < x.length; i++) s += x[i]! * W[i * nOut + o]!;
    y[o] = s;
  }
  return y;
}

function logSoftmax(x: Float64Array): Float64Array {
  const mx = Math.max(...x);
  const lse = mx + Math.log(x.reduce((a, c) => a + Math.exp(c - mx), 0));
  return x.map((c) => c - lse);
}

function compiledLogProbs(
  tensors: Record<string, Tensor>,
  hfConfig: Record<string, unknown>,
  tokens: number[],
): Promise<{ lp: Float64Array[]; resid: Float64Array }> {
  return (async () => {
    const cfg = parseTransformerConfig(hfConfig);
    const before = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Array.from(t.data as unknown as ArrayLike<number>)]));
    const model = await loadTransformerFrom(tensorsSource(tensors), cfg);
    expect(model.config.normalization_type).toBe('LNPre');
    // Loading processes weights in place on its own copies: the caller's tensors are unchanged.
    for (const [k, t] of Object.entries(tensors)) expect(Array.from(t.data as unknown as ArrayLike<number>), k).toEqual(before[k]);
    const mp = compileTransformer(model, ['ln1.1', 'output'], { positions: P });
    const acts = nodeActivationsF64(mp, tokens, 1, P);
    const logits = acts[1]!.data;
    return { lp: Array.from({ length: P }, (_, t) => logSoftmax(logits.slice(t * V, (t + 1) * V))), resid: acts[0]!.data };
  })();
}

const tokens = [3, 1, 4, 1, 5];

describe('HuggingFace checkpoints', () => {
  it('GPT-2: Conv1D layouts, fused c_attn, tied lm_head, LayerNorm folded and writing weights centred', async () => {
    const g = gaussian(rng(11));
    const t: Record<string, Tensor> = {
      'transformer.wte.weight': T([V, d], rand(g, V * d, 1)),
      'transformer.wpe.weight': T([nCtx, d], rand(g, nCtx * d, 0.5)),
      'transformer.ln_f.weight': T(
        [d],
        rand(g, d).map((x) => 1 + x),
      ),
      'transformer.ln_f.bias': T([d], rand(g, d)),
    };
    for (let i = 0; i < L; i++) {
      const p = `transformer.h.${i}.`;
      t[`${p}ln_1.weight`] = T(
        [d],
        rand(g, d).map((x) => 1 + x),
      );
      t[`${p}ln_1.bias`] = T([d], rand(g, d));
      t[`${p}ln_2.weight`] = T(
        [d],
        rand(g, d).map((x) => 1 + x),
      );
      t[`${p}ln_2.bias`] = T([d], rand(g, d));
      t[`${p}attn.c_attn.weight`] = T([d, 3 * d], rand(g, 3 * d * d));
      t[`${p}attn.c_attn.bias`] = T([3 * d], rand(g, 3 * d, 0.1));
      t[`${p}attn.c_proj.weight`] = T([d, d], rand(g, d * d));
      t[`${p}attn.c_proj.bias`] = T([d], rand(g, d, 0.1));
      t[`${p}mlp.c_fc.weight`] = T([d, m], rand(g, d * m));
      t[`${p}mlp.c_fc.bias`] = T([m], rand(g, m, 0.1));
      t[`${p}mlp.c_proj.weight`] = T([m, d], rand(g, m * d));
      t[`${p}mlp.c_proj.bias`] = T([d], rand(g, d, 0.1));
    }
    const W = (k: string) => t[k]!.data as Float64Array;
    // HF forward
    let h = tokens.map((tok, pos) =>
      W('transformer.wte.weight')
        .slice(tok * d, tok * d + d)
        .map((x, i) => x + W('transformer.wpe.weight')[pos * d + i]!),
    );
    for (let i = 0; i < L; i++) {
      const p = `transformer.h.${i}.`;
      const qkv = h.map((x) => affine(layerNorm(x, W(`${p}ln_1.weight`), W(`${p}ln_1.bias`)), W(`${p}attn.c_attn.weight`), W(`${p}attn.c_attn.bias`), 3 * d));
      const z = attend(
        qkv.map((r) => r.slice(0, d)),
        qkv.map((r) => r.slice(d, 2 * d)),
        qkv.map((r) => r.slice(2 * d)),
        H,
        dh,
        { divisor: Math.sqrt(dh) },
      );
      h = h.map((x, pos) => x.map((c, k) => c + affine(z[pos]!, W(`${p}attn.c_proj.weight`), W(`${p}attn.c_proj.bias`), d)[k]!));
      h = h.map((x) => {
        const pre = affine(layerNorm(x, W(`${p}ln_2.weight`), W(`${p}ln_2.bias`)), W(`${p}mlp.c_fc.weight`), W(`${p}mlp.c_fc.bias`), m).map((c) =>
          act('gelu_tanh', c),
        );
        const y = affine(pre, W(`${p}mlp.c_proj.weight`), W(`${p}mlp.c_proj.bias`), d);
        return x.map((c, k) => c + y[k]!);
      });
    }
    const want = h.map((x) =>
      logSoftmax(linear(layerNorm(x, W('transformer.ln_f.weight'), W('transformer.ln_f.bias')), W('transformer.wte.weight'), undefined, V)),
    );
    const cfg = {
      model_type: 'gpt2',
      n_embd: d,
      n_inner: m,
      n_head: H,
      n_layer: L,
      n_positions: nCtx,
      vocab_size: V,
      activation_function: 'gelu_new',
      layer_norm_epsilon: 1e-5,
    };
    const { lp, resid } = await compiledLogProbs(t, cfg, tokens);
    for (let pos = 0; pos < P; pos++) for (let v = 0; v < V; v++) expect(Math.abs(lp[pos]![v]! - want[pos]![v]!)).toBeLessThan(1e-10);
    // center_writing_weights: the residual at ln1.1 has zero mean over its d coordinates
    for (let pos = 0; pos < P; pos++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += resid[pos * (d + 1) + k]!;
      expect(Math.abs(s)).toBeLessThan(1e-12);
    }
  });

  it('GPT-NeoX: fused query_key_value ordered (head, qkv, d_head), rotary, parallel residual, untied embed_out', async () => {
    const g = gaussian(rng(12));
    const rot = 2; // rotary_pct 0.5 of d_head 4
    const t: Record<string, Tensor> = {
      'gpt_neox.embed_in.weight': T([V, d], rand(g, V * d, 1)),
      'gpt_neox.final_layer_norm.weight': T(
        [d],
        rand(g, d).map((x) => 1 + x),
      ),
      'gpt_neox.final_layer_norm.bias': T([d], rand(g, d)),
      'embed_out.weight': T([V, d], rand(g, V * d)),
    };
    for (let i = 0; i < L; i++) {
      const p = `gpt_neox.layers.${i}.`;
      t[`${p}input_layernorm.weight`] = T(
        [d],
        rand(g, d).map((x) => 1 + x),
      );
      t[`${p}input_layernorm.bias`] = T([d], rand(g, d));
      t[`${p}post_attention_layernorm.weight`] = T(
        [d],
        rand(g, d).map((x) => 1 + x),
      );
      t[`${p}post_attention_layernorm.bias`] = T([d], rand(g, d));
      t[`${p}attention.query_key_value.weight`] = T([3 * d, d], rand(g, 3 * d * d));
      t[`${p}attention.query_key_value.bias`] = T([3 * d], rand(g, 3 * d, 0.1));
      t[`${p}attention.dense.weight`] = T([d, d], rand(g, d * d));
      t[`${p}attention.dense.bias`] = T([d], rand(g, d, 0.1));
      t[`${p}mlp.dense_h_to_4h.weight`] = T([m, d], rand(g, m * d));
      t[`${p}mlp.dense_h_to_4h.bias`] = T([m], rand(g, m, 0.1));
      t[`${p}mlp.dense_4h_to_h.weight`] = T([d, m], rand(g, d * m));
      t[`${p}mlp.dense_4h_to_h.bias`] = T([d], rand(g, d, 0.1));
    }
    const W = (k: string) => t[k]!.data as Float64Array;
    const rotary = (x: Float64Array, pos: number): Float64Array => {
      const y = Float64Array.from(x);
      for (let h = 0; h < H; h++) {
        const half = rot / 2;
        for (let c = 0; c < rot; c++) {
          const th = pos / Math.pow(10000, (2 * (c % half)) / rot);
          const rh = c < half ? -x[h * dh + c + half]! : x[h * dh + c - half]!;
          y[h * dh + c] = x[h * dh + c]! * Math.cos(th) + rh * Math.sin(th);
        }
      }
      return y;
    };
    let x = tokens.map((tok) => W('gpt_neox.embed_in.weight').slice(tok * d, tok * d + d));
    for (let i = 0; i < L; i++) {
      const p = `gpt_neox.layers.${i}.`;
      const qkv = x.map((r) =>
        linear(
          layerNorm(r, W(`${p}input_layernorm.weight`), W(`${p}input_layernorm.bias`)),
          W(`${p}attention.query_key_value.weight`),
          W(`${p}attention.query_key_value.bias`),
          3 * d,
        ),
      );
      // view [H, 3·dh]: head h holds q, k, v consecutively
      const part = (r: Float64Array, s: number) => {
        const o = new Float64Array(H * dh);
        for (let h = 0; h < H; h++) for (let j = 0; j < dh; j++) o[h * dh + j] = r[h * 3 * dh + s * dh + j]!;
        return o;
      };
      const z = attend(
        qkv.map((r, pos) => rotary(part(r, 0), pos)),
        qkv.map((r, pos) => rotary(part(r, 1), pos)),
        qkv.map((r) => part(r, 2)),
        H,
        dh,
        { divisor: Math.sqrt(dh) },
      );
      x = x.map((r, pos) => {
        const a = linear(z[pos]!, W(`${p}attention.dense.weight`), W(`${p}attention.dense.bias`), d);
        const hid = linear(
          layerNorm(r, W(`${p}post_attention_layernorm.weight`), W(`${p}post_attention_layernorm.bias`)),
          W(`${p}mlp.dense_h_to_4h.weight`),
          W(`${p}mlp.dense_h_to_4h.bias`),
          m,
        ).map((c) => act('gelu', c));
        const y = linear(hid, W(`${p}mlp.dense_4h_to_h.weight`), W(`${p}mlp.dense_4h_to_h.bias`), d);
        return r.map((c, k) => c + a[k]! + y[k]!);
      });
    }
    const want = x.map((r) =>
      logSoftmax(linear(layerNorm(r, W('gpt_neox.final_layer_norm.weight'), W('gpt_neox.final_layer_norm.bias')), W('embed_out.weight'), undefined, V)),
    );
    const cfg = {
      model_type: 'gpt_neox',
      hidden_size: d,
      num_attention_heads: H,
      num_hidden_layers: L,
      intermediate_size: m,
      max_position_embeddings: nCtx,
      vocab_size: V,
      rotary_pct: 0.5,
      rotary_emb_base: 10000,
      hidden_act: 'gelu',
      layer_norm_eps: 1e-5,
      use_parallel_residual: true,
    };
    const { lp } = await compiledLogProbs(t, cfg, tokens);
    for (let pos = 0; pos < P; pos++) for (let v = 0; v < V; v++) expect(Math.abs(lp[pos]![v]! - want[pos]![v]!)).toBeLessThan(1e-10);
  });
});
