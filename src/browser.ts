// Browser entry of ibgpu: what runs in a page. Bundled by scripts/build-web.mjs into
// dist/web/ibgpu.js (ESM, shaders included as strings). Nothing here reaches Node-only code at
// run time: the device comes from navigator.gpu, models and datasets from bytes (fetch, File,
// Blob), and results stay in memory (their safetensors bytes via `resultFiles`). Node-only parts
// of the library (result directories on disk, file readers, the MNIST package, Dawn) are in
// src/index.ts only; the build refuses any static Node import outside the allow-listed file
// modules (see scripts/build-web.mjs).

import { IbgpuError } from './errors.js';
import { Engine, type EngineOptions } from './runtime/engine.js';
import { parseArch, modelFromTensors, type MlpModel } from './model/mlp.js';
import { arraySource, type DataSource } from './ib/data.js';
import { resultContents, type ResultMeta } from './ib/results.js';
import { openSafetensorsBlob, parseSafetensors, serializeSafetensors, type SafetensorsFile } from './io/safetensors.js';
import { fortranToC, parseNpyHeader } from './io/npy.js';
import { arrayFromBytes, dtypeSize, toFloat32 } from './io/tensor.js';
import type { IbResult } from './ib/pipeline.js';
import { parseTransformerConfig } from './model/transformer/config.js';
import { loadTransformerFrom, safetensorsSource, type TransformerModel } from './model/transformer/weights.js';
import type { TokenDataset } from './data/modular-arithmetic.js';
import { tokensFromTensor } from './data/tokens.js';
import type { TensorFile } from './io/tensor-file.js';
import { looksLikeZip, readTorchCheckpoint } from './io/torch-pt.js';

export { IbgpuError, type IbgpuErrorCode } from './errors.js';
export { Engine, type EngineOptions } from './runtime/engine.js';
export { adapterName, type AdapterDescription } from './gpu/acquire.js';
export { parseConfig, DEFAULT_CONFIG, type BuildConfig } from './ib/config.js';
export { arraySource, type DataSource } from './ib/data.js';
export { parseArch, modelFromTensors, type MlpModel, type MlpLayer, type MlpArch } from './model/mlp.js';
export { buildInteractionBasis, type IbResult, type BuildOptions, type Logger } from './ib/pipeline.js';
export { basisTensors, edgeTensors, graphJson, manifest } from './ib/results.js';
export { layerIdentities } from './ib/identities.js';
export { parseSafetensors, openSafetensorsBlob, serializeSafetensors, type SafetensorsFile } from './io/safetensors.js';
export type { Tensor, DType } from './io/tensor.js';
export { symEig, symEigValues } from './cpu/eigh.js';
export { buildTransformerBasis, type TransformerRunOptions } from './transformer/run.js';
export { parseTransformerConfig, type TransformerConfig } from './model/transformer/config.js';
export { loadTransformerFrom, tensorsSource, type TransformerModel } from './model/transformer/weights.js';
export { modularArithmetic, parseModularArithmetic, type ModularArithmeticSpec, type TokenDataset } from './data/modular-arithmetic.js';
export { VERSION } from './version.js';

/** An Engine on the page's WebGPU (navigator.gpu). */
export function createBrowserEngine(opts: Omit<EngineOptions, 'backend'> = {}): Promise<Engine> {
  return Engine.create({ ...opts, backend: 'browser' });
}

type Bytes = Uint8Array | ArrayBuffer | Blob;

async function openBytes(src: Bytes, label: string): Promise<SafetensorsFile> {
  if (typeof Blob !== 'undefined' && src instanceof Blob) return openSafetensorsBlob(src, label);
  return parseSafetensors(src instanceof Uint8Array ? src : new Uint8Array(src as ArrayBuffer), label);
}

/** Weights from bytes: safetensors, or a torch.save checkpoint (told apart by the first bytes). */
async function openWeightBytes(src: Bytes, label: string): Promise<TensorFile> {
  const size = typeof Blob !== 'undefined' && src instanceof Blob ? src.size : (src as Uint8Array | ArrayBuffer).byteLength;
  if (!looksLikeZip(await sliceOf(src, 0, 4))) return openBytes(src, label);
  return readTorchCheckpoint((offset, length) => sliceOf(src, offset, offset + length), size, label);
}

/**
 * An MLP from an architecture (object or JSON text) and the bytes of its weights (safetensors, or
 * a torch.save checkpoint of its state dict).
 */
export async function modelFromSafetensorsBytes(arch: unknown /* MlpArch or its JSON */, weights: Bytes, label = 'model.safetensors'): Promise<MlpModel> {
  const a = parseArch(typeof arch === 'string' ? JSON.parse(arch) : arch, 'arch');
  const f = await openWeightBytes(weights, label);
  try {
    return await modelFromTensors(a, (name) => f.readF32(name));
  } finally {
    await f.close();
  }
}

/**
 * A transformer from its config (TransformerLens fields, rib's config.json with them under
 * "model", or a HuggingFace GPT-2 / GPT-NeoX config; object or JSON text) and the bytes of its
 * weights (safetensors or a torch.save checkpoint; TransformerLens or HF names).
 */
export async function transformerFromSafetensorsBytes(config: unknown, weights: Bytes, label = 'model.safetensors'): Promise<TransformerModel> {
  const cfg = parseTransformerConfig(typeof config === 'string' ? JSON.parse(config) : config, 'model config');
  const f = await openWeightBytes(weights, label);
  try {
    return await loadTransformerFrom(safetensorsSource(f), cfg);
  } finally {
    await f.close();
  }
}

/**
 * Token ids from the bytes of a `.npy` file (int32/int64 [N, P] sequences, or a 1-D stream cut into
 * n_ctx windows), checked against the model's vocabulary and context.
 */
export function tokensFromNpyBytes(bytes: Uint8Array | ArrayBuffer, model: TransformerModel, label = 'tokens.npy', count?: number): TokenDataset {
  const u = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const h = parseNpyHeader(u, u.byteLength, label);
  const numel = h.shape.reduce((a, b) => a * b, 1);
  let data = arrayFromBytes(h.dtype, u.slice(h.dataOffset, h.dataOffset + numel * dtypeSize(h.dtype)), numel, h.littleEndian);
  if (h.fortranOrder) data = fortranToC(data, h.shape);
  const c = model.config;
  return tokensFromTensor({ dtype: h.dtype, shape: h.shape, data }, label, { nCtx: c.n_ctx, vocab: c.d_vocab, ...(count !== undefined ? { count } : {}) });
}

/** A dataset from one 2-D tensor (default key 'X') of a safetensors file's bytes. */
export async function dataFromSafetensorsBytes(bytes: Bytes, key = 'X', label = 'data.safetensors', count?: number): Promise<DataSource> {
  const f = await openBytes(bytes, label);
  try {
    if (!f.has(key))
      throw new IbgpuError('MISSING_TENSOR', `${label} has no tensor '${key}' (it has ${f.keys().join(', ')})`, 'name the data tensor with data.key');
    const t = await f.read(key);
    if (t.shape.length !== 2) throw new IbgpuError('SHAPE', `${label}:${key} has shape [${t.shape.join(', ')}], expected [n, d]`);
    let [n, d] = t.shape as [number, number];
    let x = toFloat32(t);
    if (count !== undefined && count < n) {
      n = count;
      x = x.subarray(0, n * d);
    }
    return arraySource(x, n, d, `${label}:${key}`);
  } finally {
    await f.close();
  }
}

/** Bytes [a, b) of an in-memory buffer or a Blob (a Blob reads only that slice). */
async function sliceOf(src: Bytes, a: number, b: number): Promise<Uint8Array> {
  if (typeof Blob !== 'undefined' && src instanceof Blob) return new Uint8Array(await src.slice(a, b).arrayBuffer());
  const u = src instanceof Uint8Array ? src : new Uint8Array(src as ArrayBuffer);
  return u.subarray(a, Math.min(b, u.length));
}

/**
 * A dataset from the bytes of a 2-D `.npy` file (as `np.save` writes it: any numeric dtype, C or
 * Fortran order, either byte order; converted to f32). A Blob (a picked File) is read in two
 * slices, the header and the data rows needed, never as a whole string.
 */
export async function dataFromNpyBytes(src: Bytes, label = 'data.npy', count?: number): Promise<DataSource> {
  const size = typeof Blob !== 'undefined' && src instanceof Blob ? src.size : (src as Uint8Array | ArrayBuffer).byteLength;
  // Magic (6) + version (2) + header length (2 bytes in v1, 4 in v2/v3), then the header itself.
  const lead = await sliceOf(src, 0, 12);
  let headerEnd = lead.length;
  if (lead.length >= 10) {
    const dv = new DataView(lead.buffer, lead.byteOffset, lead.byteLength);
    if (lead[6] === 1) headerEnd = 10 + dv.getUint16(8, true);
    else if (lead.length >= 12) headerEnd = 12 + dv.getUint32(8, true);
  }
  const head = headerEnd <= lead.length ? lead : await sliceOf(src, 0, Math.min(headerEnd, size));
  const h = parseNpyHeader(head, size, label); // bad magic, truncation, odd dtypes: clear errors
  if (h.shape.length !== 2) {
    throw new IbgpuError(
      'SHAPE',
      `${label} holds an array of shape (${h.shape.join(', ')}), expected (n, d)`,
      'save the data as one 2-D array: rows are datapoints',
    );
  }
  let [n, d] = h.shape as [number, number];
  // C order: the first `count` rows are a prefix of the data; Fortran order needs all of it.
  const rows = count !== undefined && count < n && !h.fortranOrder ? count : n;
  const bytes = await sliceOf(src, h.dataOffset, h.dataOffset + rows * d * dtypeSize(h.dtype));
  let data = arrayFromBytes(h.dtype, Uint8Array.from(bytes), rows * d, h.littleEndian);
  if (h.fortranOrder) data = fortranToC(data, [n, d]);
  let x = toFloat32({ dtype: h.dtype, shape: [rows, d], data });
  if (count !== undefined && count < n) {
    n = count;
    x = x.subarray(0, n * d);
  } else n = rows;
  return arraySource(x, n, d, label);
}

/**
 * The files `ibgpu build` writes for a result, in memory: basis.safetensors, edges.safetensors
 * (when edges were computed), manifest.json, graph.json, degeneracy.json and modules.json (when
 * computed). Feed them to the viewer or offer them for download.
 */
export function resultFiles(res: IbResult, meta: ResultMeta): Record<string, Uint8Array | string> {
  const c = resultContents(res, meta);
  const files: Record<string, Uint8Array | string> = {};
  for (const [name, t] of c.tensors) files[name] = serializeSafetensors(t, c.metadata);
  for (const [name, v] of c.json) files[name] = JSON.stringify(v);
  files['manifest.json'] = JSON.stringify(c.manifest);
  return files;
}
