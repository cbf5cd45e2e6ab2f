// Transformer configuration in TransformerLens field names (the names rib's
// SequentialTransformerConfig and TL's HookedTransformerConfig use), so a TL config, rib's
// modular-arithmetic checkpoint config (fields under "model") and a HuggingFace GPT-2 / GPT-Neo /
// GPT-NeoX config.json all load as they are (SPEC-transformers §2.5, §8.2).

import { IbgpuError } from '../../errors.js';
import type { Activation } from '../activations.js';

export type TlActFn = 'relu' | 'gelu' | 'gelu_new';
export type NormalizationType = null | 'LNPre' | 'LN';

export interface TransformerConfig {
  d_model: number;
  n_heads: number;
  d_head: number;
  d_mlp: number;
  d_vocab: number;
  n_ctx: number;
  n_layers: number;
  act_fn: TlActFn;
  normalization_type: NormalizationType;
  positional_embedding_type: 'standard' | 'rotary';
  rotary_dim: number | null;
  rotary_base: number;
  parallel_attn_mlp: boolean;
  use_attn_scale: boolean;
  eps: number;
  original_architecture: string | null;
  /** GPT-Neo's local attention on odd layers (window 256), as rib hard-codes it. */
  use_local_attn: boolean;
  window_size: number;
  /** TL's model_name (or a HuggingFace config's name): rib special-cases the TinyStories models. */
  model_name?: string | null;
  /**
   * Rows of W_pos in the checkpoint when they differ from n_ctx: TinyStories' checkpoints hold
   * 2048 positions, but rib forces n_ctx = 511 and keeps only the first 511 rows (tinyStoriesCtx).
   */
  pos_rows?: number;
}

/** rib's n_ctx for the TinyStories models (TransformerLens issue #492: the models never saw position 511 or later). */
export const TINYSTORIES_N_CTX = 511;

/**
 * rib's TinyStories special case (SPEC-transformers §2.2; rib's loader.py and
 * transformer.py:load_tlens_weights): for a model whose name starts with "TinyStories" (TL's
 * model_name; rib also matches its alias "tiny-stories"), n_ctx is forced to 511 and W_pos (and
 * the causal mask, which ibgpu builds per sequence length) cut to it. Applied only where the
 * config's n_ctx is larger (a smaller W_pos could not be cut to 511 rows).
 */
export function tinyStoriesCtx(c: TransformerConfig): TransformerConfig {
  const name = c.model_name ?? '';
  if (!(name.startsWith('TinyStories') || name.startsWith('tiny-stories')) || c.n_ctx <= TINYSTORIES_N_CTX) return c;
  return { ...c, n_ctx: TINYSTORIES_N_CTX, pos_rows: c.n_ctx };
}

function bad(msg: string, hint?: string): IbgpuError {
  return new IbgpuError('BAD_CONFIG', msg, hint);
}

function posInt(o: Record<string, unknown>, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw bad(`${where}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`, `set "${key}" in the model config`);
  }
  return v;
}

/** rib's act_fn names → the activations of src/model/activations.ts. */
export function activationOf(a: TlActFn): Activation {
  return a === 'gelu_new' ? 'gelu_tanh' : a;
}

/**
 * rib's "root of one" ρ (act(ρ) = 1) per activation, as rib's `find_root` returns it (bisection,
 * |act(ρ) − 1| < 1e-11: SPEC-transformers §1.5). The folded W_in carries ρ, so these exact values
 * are what rib's activations contain.
 */
export function ribRootOfOne(a: TlActFn): number {
  switch (a) {
    case 'relu':
      return 1;
    case 'gelu':
      return 1.144450718351436;
    case 'gelu_new':
      return 1.1446303090306174;
  }
}

/**
 * Parses a model config: TL/rib field names at the top level or under "model" (rib's modadd
 * config.json), or a HuggingFace config.json of GPT-2 / GPT-Neo / GPT-NeoX (converted as TL's
 * convert_hf_model_config does).
 */
export function parseTransformerConfig(raw: unknown, where = 'model config'): TransformerConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(`${where} must be a JSON object`);
  let o = raw as Record<string, unknown>;
  if (typeof o['model'] === 'object' && o['model'] !== null && !('d_model' in o)) o = o['model'] as Record<string, unknown>;
  if (!('d_model' in o) && ('n_embd' in o || 'hidden_size' in o)) o = fromHuggingFace(o, where);
  const d_model = posInt(o, 'd_model', where);
  const n_heads = posInt(o, 'n_heads', where);
  const d_head = 'd_head' in o && o['d_head'] !== null ? posInt(o, 'd_head', where) : d_model / n_heads;
  if (!Number.isInteger(d_head)) throw bad(`${where}: d_model ${d_model} is not divisible by n_heads ${n_heads}`, 'give d_head');
  const d_mlp = 'd_mlp' in o && o['d_mlp'] !== null ? posInt(o, 'd_mlp', where) : 4 * d_model;
  const act = o['act_fn'] ?? 'relu';
  if (act !== 'relu' && act !== 'gelu' && act !== 'gelu_new') {
    throw bad(`${where}: act_fn '${String(act)}' is not supported`, "use 'relu', 'gelu' or 'gelu_new' (rib's three)");
  }
  const norm = o['normalization_type'] ?? null;
  if (norm !== null && norm !== 'LNPre' && norm !== 'LN') {
    throw bad(`${where}: normalization_type '${String(norm)}' is not supported`, "use null, 'LNPre' or 'LN' (LN weights are folded on load)");
  }
  const pos = o['positional_embedding_type'] ?? 'standard';
  if (pos !== 'standard' && pos !== 'rotary') {
    throw bad(`${where}: positional_embedding_type '${String(pos)}' is not supported`, "use 'standard' or 'rotary'");
  }
  const rotary_dim = o['rotary_dim'] === undefined || o['rotary_dim'] === null ? null : posInt(o, 'rotary_dim', where);
  if (pos === 'rotary') {
    if (rotary_dim === null) throw bad(`${where}: a rotary model needs 'rotary_dim'`);
    if (rotary_dim % 2 !== 0 || rotary_dim > d_head) throw bad(`${where}: rotary_dim ${rotary_dim} must be even and at most d_head ${d_head}`);
  }
  const bool = (k: string, dflt: boolean): boolean => {
    const v = o[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw bad(`${where}: '${k}' must be true or false`);
    return v;
  };
  const arch = typeof o['original_architecture'] === 'string' ? o['original_architecture'] : null;
  const parallel = bool('parallel_attn_mlp', false);
  if (parallel && norm === null) throw bad(`${where}: parallel_attn_mlp without LayerNorm is not a rib model`, 'set normalization_type');
  const eps = typeof o['eps'] === 'number' ? o['eps'] : 1e-5;
  const base = typeof o['rotary_base'] === 'number' ? o['rotary_base'] : 10000;
  return tinyStoriesCtx({
    d_model,
    n_heads,
    d_head,
    d_mlp,
    d_vocab: posInt(o, 'd_vocab', where),
    n_ctx: posInt(o, 'n_ctx', where),
    n_layers: posInt(o, 'n_layers', where),
    act_fn: act,
    normalization_type: norm,
    positional_embedding_type: pos,
    rotary_dim,
    rotary_base: base,
    parallel_attn_mlp: parallel,
    use_attn_scale: bool('use_attn_scale', true),
    eps,
    original_architecture: arch,
    use_local_attn: bool('use_local_attn', arch === 'GPTNeoForCausalLM'),
    window_size: typeof o['window_size'] === 'number' ? o['window_size'] : 256,
    model_name: typeof o['model_name'] === 'string' ? o['model_name'] : null,
  });
}

/**
 * One HuggingFace family as TL's convert_hf_model_config reads it (SPEC-transformers §2.5): the HF
 * key behind each TL dimension (n_ctx: the first of its keys that is set), the activation HF
 * assumes when none is named, whether d_mlp falls back to 4·d_model, and the family's own fields.
 */
interface HfFamily {
  modelType: string;
  architecture: string;
  keys: { d_model: string; n_heads: string; d_mlp: string; n_ctx: string[]; n_layers: string; act_fn: string; eps: string };
  act: string;
  /** d_mlp = 4·d_model where the key holds no number (GPT-2's n_inner, GPT-Neo's intermediate_size). */
  mlpDefault: boolean;
  /** Positional embedding, attention scaling and what else only this family has. */
  extra: (h: Record<string, unknown>, dHead: number) => Record<string, unknown>;
}

const HF_FAMILIES: readonly HfFamily[] = [
  {
    modelType: 'gpt2',
    architecture: 'GPT2LMHeadModel',
    keys: {
      d_model: 'n_embd',
      n_heads: 'n_head',
      d_mlp: 'n_inner',
      n_ctx: ['n_positions', 'n_ctx'],
      n_layers: 'n_layer',
      act_fn: 'activation_function',
      eps: 'layer_norm_epsilon',
    },
    act: 'gelu_new',
    mlpDefault: true,
    extra: () => ({ positional_embedding_type: 'standard', use_attn_scale: true }),
  },
  {
    modelType: 'gpt_neox',
    architecture: 'GPTNeoXForCausalLM',
    keys: {
      d_model: 'hidden_size',
      n_heads: 'num_attention_heads',
      d_mlp: 'intermediate_size',
      n_ctx: ['max_position_embeddings'],
      n_layers: 'num_hidden_layers',
      act_fn: 'hidden_act',
      eps: 'layer_norm_eps',
    },
    act: 'gelu',
    mlpDefault: false,
    extra: (h, dHead) => ({
      positional_embedding_type: 'rotary',
      rotary_dim: Math.round(((h['rotary_pct'] as number | undefined) ?? 1) * dHead),
      rotary_base: h['rotary_emb_base'] ?? 10000,
      parallel_attn_mlp: h['use_parallel_residual'] ?? true,
      use_attn_scale: true,
    }),
  },
  {
    // No attention scaling, local attention on odd layers.
    modelType: 'gpt_neo',
    architecture: 'GPTNeoForCausalLM',
    keys: {
      d_model: 'hidden_size',
      n_heads: 'num_heads',
      d_mlp: 'intermediate_size',
      n_ctx: ['max_position_embeddings'],
      n_layers: 'num_layers',
      act_fn: 'activation_function',
      eps: 'layer_norm_epsilon',
    },
    act: 'gelu_new',
    mlpDefault: true,
    extra: (h) => ({ positional_embedding_type: 'standard', use_attn_scale: false, window_size: h['window_size'] ?? 256, model_name: hfModelName(h) }),
  },
];

/** TL's convert_hf_model_config for the families ibgpu converts (HF_FAMILIES), as TL field names. */
function fromHuggingFace(h: Record<string, unknown>, where: string): Record<string, unknown> {
  const archs = Array.isArray(h['architectures']) ? (h['architectures'] as string[]) : [];
  const type = h['model_type'];
  const family = HF_FAMILIES.find((f) => type === f.modelType || archs.includes(f.architecture));
  if (!family) {
    throw bad(
      `${where}: a HuggingFace config of model_type '${String(type)}' cannot be converted`,
      'give a TransformerLens config (d_model, n_heads, …), or a GPT-2 / GPT-Neo / GPT-NeoX config.json',
    );
  }
  const hfAct = (s: unknown): string => (s === 'gelu_new' ? 'gelu_new' : s === 'gelu' ? 'gelu' : s === 'relu' ? 'relu' : String(s));
  const k = family.keys;
  const d = h[k.d_model] as number;
  const H = h[k.n_heads] as number;
  const mlp = h[k.d_mlp];
  return {
    d_model: d,
    n_heads: H,
    d_head: d / H,
    d_mlp: family.mlpDefault && typeof mlp !== 'number' ? 4 * d : mlp,
    d_vocab: h['vocab_size'],
    n_ctx: k.n_ctx.reduce<unknown>((v, key) => v ?? h[key], undefined),
    n_layers: h[k.n_layers],
    act_fn: hfAct(h[k.act_fn] ?? family.act),
    normalization_type: 'LN',
    eps: h[k.eps] ?? 1e-5,
    original_architecture: family.architecture,
    ...family.extra(h, d / H),
  };
}

/** A HuggingFace config's model name ("roneneldan/TinyStories-1M" → "TinyStories-1M"), as TL names it. */
function hfModelName(h: Record<string, unknown>): string | null {
  for (const k of ['model_name', '_name_or_path', 'name_or_path']) {
    const v = h[k];
    if (typeof v === 'string' && v !== '') return v.split('/').pop()!;
  }
  return null;
}
