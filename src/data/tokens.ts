// Token sequences from .npy files: [N, P] sequences as they are, or a 1-D token stream cut into
// rib's windows (SPEC-transformers §3.2: consecutive, non-overlapping windows of n_ctx, the last
// window always dropped even when full, no BOS; optional n_samples drawn as
// torch.randperm(n_windows, seed)[:n_samples] in permutation order).

import { IbgpuError } from '../errors.js';
import { loadNpy } from '../io/npy.js';
import type { Tensor } from '../io/tensor.js';
import type { TokenDataset } from './modular-arithmetic.js';
import { torchRandperm } from './torch-randperm.js';

export interface TokenNpyOptions {
  /** The model's context length: longer sequences are refused. */
  nCtx: number;
  /** The model's vocabulary size: ids must be in 0..vocab−1. */
  vocab: number;
  /** Window length for a 1-D stream (default nCtx). */
  windowCtx?: number;
  /** Draw this many windows (torch.randperm order) from a 1-D stream. */
  nSamples?: number;
  seed?: number;
  /** Use only the first `count` sequences. */
  count?: number;
}

function tokenValues(t: Tensor, path: string): Int32Array {
  if (t.dtype === 'I32') return t.data as Int32Array;
  if (t.dtype === 'I64' || t.dtype === 'U64') {
    const src = t.data as BigInt64Array | BigUint64Array;
    const out = new Int32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const v = src[i]!;
      if (v < 0n || v > 2147483647n) throw new IbgpuError('SHAPE', `${path}: token id ${v} at flat index ${i} is out of range`);
      out[i] = Number(v);
    }
    return out;
  }
  if (t.dtype === 'I16' || t.dtype === 'U16' || t.dtype === 'U32' || t.dtype === 'U8' || t.dtype === 'I8') return Int32Array.from(t.data as ArrayLike<number>);
  throw new IbgpuError(
    'BAD_FILE',
    `${path}: token ids must be integers (int32 or int64), the file holds ${t.dtype}`,
    'save the token ids with dtype int64 or int32',
  );
}

/** Cuts a token stream into rib's windows: ceil(L / n_ctx) − 1 of them (the last always dropped). */
export function textWindows(stream: Int32Array, nCtx: number): { tokens: Int32Array; n: number } {
  const n = Math.max(0, Math.ceil(stream.length / nCtx) - 1);
  return { tokens: stream.slice(0, n * nCtx), n };
}

export function tokensFromTensor(t: Tensor, path: string, o: TokenNpyOptions): TokenDataset {
  let ids = tokenValues(t, path);
  let n: number;
  let P: number;
  let source = path;
  if (t.shape.length === 2) {
    [n, P] = t.shape as [number, number];
  } else if (t.shape.length === 1) {
    P = o.windowCtx ?? o.nCtx;
    const w = textWindows(ids, P);
    ids = w.tokens;
    n = w.n;
    source = `${path} (${n} windows of ${P} tokens)`;
    if (o.nSamples !== undefined) {
      if (o.nSamples > n) throw new IbgpuError('BAD_CONFIG', `n_samples ${o.nSamples} exceeds the ${n} windows of ${path}`);
      const perm = torchRandperm(n, o.seed ?? 0);
      const pick = new Int32Array(o.nSamples * P);
      for (let i = 0; i < o.nSamples; i++) pick.set(ids.subarray(perm[i]! * P, (perm[i]! + 1) * P), i * P);
      ids = pick;
      n = o.nSamples;
    }
  } else {
    throw new IbgpuError('SHAPE', `${path}: token ids must be [N, P] sequences or a 1-D stream, got shape [${t.shape.join(', ')}]`);
  }
  if (P > o.nCtx) {
    throw new IbgpuError('SHAPE', `${path}: sequences of ${P} tokens exceed the model's n_ctx ${o.nCtx}`, `cut the sequences to at most ${o.nCtx} tokens`);
  }
  if (o.count !== undefined) n = Math.min(n, o.count);
  ids = ids.subarray(0, n * P);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (v < 0 || v >= o.vocab) {
      throw new IbgpuError(
        'SHAPE',
        `${path}: token id ${v} (sequence ${Math.floor(i / P)}, position ${i % P}) is outside the vocabulary 0..${o.vocab - 1}`,
        "tokenise with the model's tokenizer, or check d_vocab in the model config",
      );
    }
  }
  if (n === 0) throw new IbgpuError('SHAPE', `${path}: no sequences`);
  return { tokens: Int32Array.from(ids), n, P, source };
}

export async function loadTokenNpy(path: string, o: TokenNpyOptions): Promise<TokenDataset> {
  return tokensFromTensor(await loadNpy(path), path, o);
}
