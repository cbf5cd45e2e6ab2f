// Transformer weights in TransformerLens names and shapes (SPEC-transformers §2.1), in float64
// whatever the file's dtype. HuggingFace GPT-2, GPT-Neo and GPT-NeoX checkpoints are converted on load
// (§2.5), and where LayerNorm weights are present TL's processing runs (§2.4: fold_layer_norm,
// center_writing_weights, center_unembed, fold_value_biases), which turns 'LN' into 'LNPre' —
// what rib's loader does through HookedTransformer.from_pretrained. Weights here are unfolded; the
// compiler (compile.ts) applies rib's bias folding.

import { IbgpuError } from '../../errors.js';
import { openTensorFile, type TensorFile } from '../../io/tensor-file.js';
import { toFloat64, type Tensor } from '../../io/tensor.js';
import type { TransformerConfig } from './config.js';

export interface BlockWeights {
  WQ: Float64Array; // [H, d, dh]
  WK: Float64Array;
  WV: Float64Array;
  bQ: Float64Array; // [H, dh]
  bK: Float64Array;
  bV: Float64Array;
  WO: Float64Array; // [H, dh, d]
  bO: Float64Array; // [d]
  Win: Float64Array; // [d, m]
  bin: Float64Array; // [m]
  Wout: Float64Array; // [m, d]
  bout: Float64Array; // [d]
}

export interface TransformerWeights {
  WE: Float64Array; // [V, d]
  Wpos?: Float64Array; // [n_ctx, d]
  blocks: BlockWeights[];
  WU: Float64Array; // [d, V]
  bU: Float64Array; // [V]
}

export interface TransformerModel {
  config: TransformerConfig;
  weights: TransformerWeights;
}

/** A source of named tensors (a safetensors file, or tensors in memory). */
export interface TensorSource {
  label: string;
  names(): string[];
  shape(name: string): number[];
  read(name: string): Promise<Float64Array>;
}

export function tensorsSource(tensors: Record<string, Tensor>, label = '<tensors>'): TensorSource {
  return {
    label,
    names: () => Object.keys(tensors),
    shape: (n) => tensors[n]!.shape,
    // A copy even of float64 tensors: loading processes the weights in place (TransformerLens'
    // centring and folding), and the caller's tensors must stay as they were.
    read: async (n) => {
      const t = tensors[n]!;
      return t.data instanceof Float64Array ? t.data.slice() : toFloat64(t);
    },
  };
}

export function safetensorsSource(f: TensorFile): TensorSource {
  return {
    label: f.source,
    names: () => f.keys(),
    shape: (n) => f.info(n).shape,
    read: async (n) => (await f.readF64(n)).data,
  };
}

/** Opens a safetensors file and loads a transformer from it (TL names, or HF GPT-2 / GPT-NeoX names). */
export async function loadTransformer(path: string, config: TransformerConfig): Promise<TransformerModel> {
  const f = await openTensorFile(path); // safetensors or a torch.save checkpoint
  try {
    return await loadTransformerFrom(safetensorsSource(f), config);
  } finally {
    await f.close();
  }
}

type Reader = (name: string, shape: number[]) => Promise<Float64Array>;

function reader(src: TensorSource): Reader {
  const have = new Set(src.names());
  return async (name, shape) => {
    if (!have.has(name)) {
      throw new IbgpuError(
        'MISSING_TENSOR',
        `${src.label}: tensor '${name}' [${shape.join(', ')}] is missing`,
        'the file must hold the TransformerLens state dict (or a HuggingFace GPT-2 / GPT-NeoX checkpoint) of the model the config describes',
      );
    }
    const got = src.shape(name);
    const n = shape.reduce((a, b) => a * b, 1);
    if (got.length !== shape.length || got.some((g, i) => g !== shape[i])) {
      throw new IbgpuError(
        'SHAPE',
        `${src.label}: tensor '${name}' has shape [${got.join(', ')}], expected [${shape.join(', ')}]`,
        'check n_heads, d_head, d_model, d_mlp, d_vocab and n_ctx in the model config',
      );
    }
    const data = await src.read(name);
    if (data.length !== n) throw new IbgpuError('SHAPE', `${src.label}: tensor '${name}' holds ${data.length} values, expected ${n}`);
    return data;
  };
}

type Family = 'tl' | 'gpt2' | 'neo' | 'neox';

function family(src: TensorSource): { fam: Family; prefix: string } {
  const names = src.names();
  if (names.includes('embed.W_E')) return { fam: 'tl', prefix: '' };
  for (const p of ['transformer.', '']) {
    if (names.includes(`${p}wte.weight`)) return { fam: names.includes(`${p}h.0.attn.attention.q_proj.weight`) ? 'neo' : 'gpt2', prefix: p };
  }
  for (const p of ['gpt_neox.', '']) if (names.includes(`${p}embed_in.weight`)) return { fam: 'neox', prefix: p };
  throw new IbgpuError(
    'MISSING_TENSOR',
    `${src.label}: neither TransformerLens names (embed.W_E, …) nor HuggingFace GPT-2 (wte.weight) or GPT-NeoX (embed_in.weight) names`,
    "export the model's TransformerLens state dict to safetensors",
  );
}

/** LN weights [d] of one norm, present only before folding ('LN' models). */
interface LnWeights {
  w: Float64Array;
  b: Float64Array;
}

interface Raw {
  w: TransformerWeights;
  ln1: (LnWeights | undefined)[];
  ln2: (LnWeights | undefined)[];
  lnf: LnWeights | undefined;
}

export async function loadTransformerFrom(src: TensorSource, cfg: TransformerConfig): Promise<TransformerModel> {
  const { fam, prefix } = family(src);
  const raw =
    fam === 'tl'
      ? await readTl(src, cfg)
      : fam === 'gpt2'
        ? await readGpt2(src, cfg, prefix)
        : fam === 'neo'
          ? await readNeo(src, cfg, prefix)
          : await readNeox(src, cfg, prefix);
  const hasLn = raw.lnf !== undefined || raw.ln1.some((x) => x) || raw.ln2.some((x) => x);
  let config = cfg;
  if (hasLn) {
    if (cfg.normalization_type === null) {
      throw new IbgpuError('BAD_CONFIG', `${src.label} holds LayerNorm weights, but the config says normalization_type null`, "set normalization_type to 'LN'");
    }
    processLikeTransformerLens(raw, cfg);
    config = { ...cfg, normalization_type: 'LNPre' };
  } else if (cfg.normalization_type === 'LN') {
    throw new IbgpuError(
      'MISSING_TENSOR',
      `${src.label}: normalization_type 'LN' but no LayerNorm weights (blocks.0.ln1.w, …)`,
      "use normalization_type 'LNPre' for weights with LayerNorm already folded",
    );
  }
  return { config, weights: raw.w };
}

async function readTl(src: TensorSource, c: TransformerConfig): Promise<Raw> {
  const r = reader(src);
  const names = new Set(src.names());
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m, d_vocab: V } = c;
  const blocks: BlockWeights[] = [];
  const ln1: (LnWeights | undefined)[] = [];
  const ln2: (LnWeights | undefined)[] = [];
  const optLn = async (p: string): Promise<LnWeights | undefined> =>
    names.has(`${p}.w`) ? { w: await r(`${p}.w`, [d]), b: names.has(`${p}.b`) ? await r(`${p}.b`, [d]) : new Float64Array(d) } : undefined;
  for (let i = 0; i < c.n_layers; i++) {
    const a = `blocks.${i}.attn.`;
    const mm = `blocks.${i}.mlp.`;
    blocks.push({
      WQ: await r(`${a}W_Q`, [H, d, dh]),
      WK: await r(`${a}W_K`, [H, d, dh]),
      WV: await r(`${a}W_V`, [H, d, dh]),
      bQ: await r(`${a}b_Q`, [H, dh]),
      bK: await r(`${a}b_K`, [H, dh]),
      bV: await r(`${a}b_V`, [H, dh]),
      WO: await r(`${a}W_O`, [H, dh, d]),
      bO: await r(`${a}b_O`, [d]),
      Win: await r(`${mm}W_in`, [d, m]),
      bin: await r(`${mm}b_in`, [m]),
      Wout: await r(`${mm}W_out`, [m, d]),
      bout: await r(`${mm}b_out`, [d]),
    });
    ln1.push(await optLn(`blocks.${i}.ln1`));
    ln2.push(await optLn(`blocks.${i}.ln2`));
  }
  const w: TransformerWeights = {
    WE: await r('embed.W_E', [V, d]),
    blocks,
    WU: await r('unembed.W_U', [d, V]),
    bU: await r('unembed.b_U', [V]),
  };
  if (c.positional_embedding_type === 'standard') w.Wpos = firstRows(await r('pos_embed.W_pos', [c.pos_rows ?? c.n_ctx, d]), c.n_ctx, d);
  return { w, ln1, ln2, lnf: await optLn('ln_final') };
}

/** The first `rows` rows of a row-major [·, cols] matrix (W_pos cut to n_ctx: tinyStoriesCtx). */
function firstRows(a: Float64Array, rows: number, cols: number): Float64Array {
  return a.length === rows * cols ? a : a.slice(0, rows * cols);
}

/** Transposes a row-major [rows, cols] matrix. */
function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}

/** [d, H·dh] (columns (head, dh)) → [H, d, dh]. */
function splitHeadsCols(a: Float64Array, d: number, H: number, dh: number, colOffset = 0, stride = H * dh): Float64Array {
  const out = new Float64Array(H * d * dh);
  for (let h = 0; h < H; h++) for (let k = 0; k < d; k++) for (let j = 0; j < dh; j++) out[(h * d + k) * dh + j] = a[k * stride + colOffset + h * dh + j]!;
  return out;
}

/**
 * The layout GPT-2 and GPT-Neo checkpoints share: blocks `${p}h.i.` with ln_1 / ln_2, embeddings
 * wte / wpe, ln_f, and an lm_head tied to wte unless an untied lm_head.weight [V, d] is present
 * (no output bias). `block` reads one block's attention and MLP weights.
 */
async function readGptLike(
  src: TensorSource,
  c: TransformerConfig,
  p: string,
  block: (b: string, r: ReturnType<typeof reader>) => Promise<BlockWeights>,
): Promise<Raw> {
  const r = reader(src);
  const names = new Set(src.names());
  const { d_model: d, d_vocab: V } = c;
  const blocks: BlockWeights[] = [];
  const ln1: LnWeights[] = [];
  const ln2: LnWeights[] = [];
  for (let i = 0; i < c.n_layers; i++) {
    const b = `${p}h.${i}.`;
    blocks.push(await block(b, r));
    ln1.push({ w: await r(`${b}ln_1.weight`, [d]), b: await r(`${b}ln_1.bias`, [d]) });
    ln2.push({ w: await r(`${b}ln_2.weight`, [d]), b: await r(`${b}ln_2.bias`, [d]) });
  }
  const WE = await r(`${p}wte.weight`, [V, d]);
  const head = names.has('lm_head.weight') ? await r('lm_head.weight', [V, d]) : WE;
  return {
    w: { WE, Wpos: firstRows(await r(`${p}wpe.weight`, [c.pos_rows ?? c.n_ctx, d]), c.n_ctx, d), blocks, WU: transpose(head, V, d), bU: new Float64Array(V) },
    ln1,
    ln2,
    lnf: { w: await r(`${p}ln_f.weight`, [d]), b: await r(`${p}ln_f.bias`, [d]) },
  };
}

async function readGpt2(src: TensorSource, c: TransformerConfig, p: string): Promise<Raw> {
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m } = c;
  return readGptLike(src, c, p, async (b, r) => {
    // Conv1D weights are [in, out] and used without transpose; c_attn's columns are (qkv, head, dh).
    const cw = await r(`${b}attn.c_attn.weight`, [d, 3 * d]);
    const cb = await r(`${b}attn.c_attn.bias`, [3 * d]);
    const proj = await r(`${b}attn.c_proj.weight`, [d, d]);
    return {
      WQ: splitHeadsCols(cw, d, H, dh, 0, 3 * d),
      WK: splitHeadsCols(cw, d, H, dh, d, 3 * d),
      WV: splitHeadsCols(cw, d, H, dh, 2 * d, 3 * d),
      bQ: cb.slice(0, d),
      bK: cb.slice(d, 2 * d),
      bV: cb.slice(2 * d, 3 * d),
      WO: proj, // rows (head, dh) = [H, dh, d]
      bO: await r(`${b}attn.c_proj.bias`, [d]),
      Win: await r(`${b}mlp.c_fc.weight`, [d, m]),
      bin: await r(`${b}mlp.c_fc.bias`, [m]),
      Wout: await r(`${b}mlp.c_proj.weight`, [m, d]),
      bout: await r(`${b}mlp.c_proj.bias`, [d]),
    };
  });
}

async function readNeo(src: TensorSource, c: TransformerConfig, p: string): Promise<Raw> {
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m } = c;
  return readGptLike(src, c, p, async (b, r) => {
    // nn.Linear weights are [out, in]: transposed to [in, out], whose columns are (head, dh).
    // GPT-Neo's q/k/v projections have no bias.
    const proj = async (n: string): Promise<Float64Array> => splitHeadsCols(transpose(await r(`${b}attn.attention.${n}.weight`, [d, d]), d, d), d, H, dh);
    return {
      WQ: await proj('q_proj'),
      WK: await proj('k_proj'),
      WV: await proj('v_proj'),
      bQ: new Float64Array(H * dh),
      bK: new Float64Array(H * dh),
      bV: new Float64Array(H * dh),
      WO: transpose(await r(`${b}attn.attention.out_proj.weight`, [d, d]), d, d), // rows (head, dh) = [H, dh, d]
      bO: await r(`${b}attn.attention.out_proj.bias`, [d]),
      Win: transpose(await r(`${b}mlp.c_fc.weight`, [m, d]), m, d),
      bin: await r(`${b}mlp.c_fc.bias`, [m]),
      Wout: transpose(await r(`${b}mlp.c_proj.weight`, [d, m]), d, m),
      bout: await r(`${b}mlp.c_proj.bias`, [d]),
    };
  });
}

async function readNeox(src: TensorSource, c: TransformerConfig, p: string): Promise<Raw> {
  const r = reader(src);
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m, d_vocab: V } = c;
  const blocks: BlockWeights[] = [];
  const ln1: LnWeights[] = [];
  const ln2: LnWeights[] = [];
  for (let i = 0; i < c.n_layers; i++) {
    const b = `${p}layers.${i}.`;
    // query_key_value [3d, d] (nn.Linear, [out, in]) with output rows ordered (head, qkv, dh).
    const qkv = await r(`${b}attention.query_key_value.weight`, [3 * d, d]);
    const qkvb = await r(`${b}attention.query_key_value.bias`, [3 * d]);
    const Ws = [0, 1, 2].map(() => new Float64Array(H * d * dh));
    const bs = [0, 1, 2].map(() => new Float64Array(H * dh));
    for (let h = 0; h < H; h++) {
      for (let s = 0; s < 3; s++) {
        for (let j = 0; j < dh; j++) {
          const row = (h * 3 + s) * dh + j;
          for (let k = 0; k < d; k++) Ws[s]![(h * d + k) * dh + j] = qkv[row * d + k]!;
          bs[s]![h * dh + j] = qkvb[row]!;
        }
      }
    }
    // dense [d, d] ([out, in]); its input columns are (head, dh): W_O[h][j, :] = dense[:, h·dh + j].
    const dense = await r(`${b}attention.dense.weight`, [d, d]);
    blocks.push({
      WQ: Ws[0]!,
      WK: Ws[1]!,
      WV: Ws[2]!,
      bQ: bs[0]!,
      bK: bs[1]!,
      bV: bs[2]!,
      WO: transpose(dense, d, d),
      bO: await r(`${b}attention.dense.bias`, [d]),
      Win: transpose(await r(`${b}mlp.dense_h_to_4h.weight`, [m, d]), m, d),
      bin: await r(`${b}mlp.dense_h_to_4h.bias`, [m]),
      Wout: transpose(await r(`${b}mlp.dense_4h_to_h.weight`, [d, m]), d, m),
      bout: await r(`${b}mlp.dense_4h_to_h.bias`, [d]),
    });
    ln1.push({ w: await r(`${b}input_layernorm.weight`, [d]), b: await r(`${b}input_layernorm.bias`, [d]) });
    ln2.push({ w: await r(`${b}post_attention_layernorm.weight`, [d]), b: await r(`${b}post_attention_layernorm.bias`, [d]) });
  }
  return {
    w: { WE: await r(`${p}embed_in.weight`, [V, d]), blocks, WU: transpose(await r('embed_out.weight', [V, d]), V, d), bU: new Float64Array(V) },
    ln1,
    ln2,
    lnf: { w: await r(`${p}final_layer_norm.weight`, [d]), b: await r(`${p}final_layer_norm.bias`, [d]) },
  };
}

/**
 * TL's default processing (SPEC-transformers §2.4), in TL's order: fold_layer_norm,
 * center_writing_weights, center_unembed, fold_value_biases. Mutates `raw.w`.
 */
function processLikeTransformerLens(raw: Raw, c: TransformerConfig): void {
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m, d_vocab: V } = c;
  const w = raw.w;
  // 1. fold_layer_norm: b += Σ_k ln.b[k]·W[k,:]; W[k,:] *= ln.w[k]; W −= its mean over the d rows.
  const foldInto = (ln: LnWeights | undefined, W: Float64Array, b: Float64Array, heads: number, cols: number): void => {
    if (!ln) return;
    for (let h = 0; h < heads; h++) {
      const o = h * d * cols;
      for (let j = 0; j < cols; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += ln.b[k]! * W[o + k * cols + j]!;
        b[h * cols + j]! += s;
      }
      for (let k = 0; k < d; k++) for (let j = 0; j < cols; j++) W[o + k * cols + j]! *= ln.w[k]!;
      for (let j = 0; j < cols; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += W[o + k * cols + j]!;
        s /= d;
        for (let k = 0; k < d; k++) W[o + k * cols + j]! -= s;
      }
    }
  };
  w.blocks.forEach((b, i) => {
    foldInto(raw.ln1[i], b.WQ, b.bQ, H, dh);
    foldInto(raw.ln1[i], b.WK, b.bK, H, dh);
    foldInto(raw.ln1[i], b.WV, b.bV, H, dh);
    foldInto(raw.ln2[i], b.Win, b.bin, 1, m);
  });
  foldInto(raw.lnf, w.WU, w.bU, 1, V);
  // 2. center_writing_weights: every vector written to the residual loses its mean over d.
  const centreRows = (a: Float64Array, rows: number): void => {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += a[r * d + k]!;
      s /= d;
      for (let k = 0; k < d; k++) a[r * d + k]! -= s;
    }
  };
  centreRows(w.WE, V);
  if (w.Wpos) centreRows(w.Wpos, c.n_ctx);
  for (const b of w.blocks) {
    centreRows(b.WO, H * dh);
    centreRows(b.bO, 1);
    centreRows(b.Wout, m);
    centreRows(b.bout, 1);
  }
  // 3. center_unembed: W_U and b_U lose their mean over the vocabulary.
  for (let k = 0; k < d; k++) {
    let s = 0;
    for (let v = 0; v < V; v++) s += w.WU[k * V + v]!;
    s /= V;
    for (let v = 0; v < V; v++) w.WU[k * V + v]! -= s;
  }
  let sb = 0;
  for (let v = 0; v < V; v++) sb += w.bU[v]!;
  for (let v = 0; v < V; v++) w.bU[v]! -= sb / V;
  // 4. fold_value_biases: b_O += Σ_h b_V[h]·W_O[h]; b_V := 0 (exact because softmax rows sum to 1).
  for (const b of w.blocks) {
    for (let h = 0; h < H; h++) {
      for (let j = 0; j < dh; j++) {
        const bv = b.bV[h * dh + j]!;
        for (let k = 0; k < d; k++) b.bO[k]! += bv * b.WO[(h * dh + j) * d + k]!;
      }
    }
    b.bV.fill(0);
  }
}
