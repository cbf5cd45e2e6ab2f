// MLP models: a small JSON architecture next to a safetensors file of weights, and bias folding
// (SPEC §1.2). Weights are kept in rib's orientation, W [in, out] with y = x·W + b.

import { IbgpuError, checkFinite, checkShape } from '../errors.js';
import { ACTIVATIONS, parseActivation, rootOfOne, type Activation } from './activations.js';

export interface MlpLayer {
  /** Node-layer name of this layer's INPUT, e.g. 'layers.0'. */
  name: string;
  dIn: number;
  dOut: number;
  /** [dIn, dOut] row-major, y = x·W + b. */
  W: Float32Array;
  b: Float32Array;
  activation: Activation;
}

export interface MlpModel {
  layers: MlpLayer[];
}

/** The architecture file (`arch.json`). */
export interface MlpArch {
  type: 'mlp';
  /** 'in_out': tensors [in, out] as in rib; 'out_in': [out, in] as torch nn.Linear. */
  weight_layout: 'in_out' | 'out_in';
  layers: { name: string; in: number; out: number; activation: Activation; weight: string; bias?: string }[];
}

export function parseArch(raw: unknown, where = 'arch'): MlpArch {
  const bad = (m: string, hint?: string) => new IbgpuError('BAD_CONFIG', `${where}: ${m}`, hint);
  if (typeof raw !== 'object' || raw === null) throw bad('must be a JSON object');
  const r = raw as Record<string, unknown>;
  if (r['type'] !== 'mlp') {
    // A transformer config reaching an MLP-only reader (e.g. a command without a transformer
    // path): say what it is instead of suggesting that transformers are unsupported altogether.
    const inner = r['model'];
    const transformer = 'd_model' in r || 'n_embd' in r || 'hidden_size' in r || (typeof inner === 'object' && inner !== null && 'd_model' in inner);
    throw transformer
      ? bad(
          'this is a transformer config, and this step reads MLP architecture files ({"type": "mlp", "layers": [...]}) only',
          'transformers are supported by `ibgpu build` and `ibgpu report` (with --recompute); see README "Transformers"',
        )
      : bad(`type must be "mlp" (got ${JSON.stringify(r['type'])})`, 'an MLP architecture file is {"type": "mlp", "weight_layout": ..., "layers": [...]}');
  }
  const layout = r['weight_layout'] ?? 'in_out';
  if (layout !== 'in_out' && layout !== 'out_in') throw bad(`weight_layout must be "in_out" or "out_in"`);
  if (!Array.isArray(r['layers']) || r['layers'].length === 0) throw bad('layers must be a non-empty list');
  const layers = (r['layers'] as Record<string, unknown>[]).map((l, i) => {
    const name = l['name'] ?? `layers.${i}`;
    if (typeof name !== 'string') throw bad(`layers[${i}].name must be a string`);
    const din = l['in'];
    const dout = l['out'];
    if (!Number.isInteger(din) || (din as number) < 1 || !Number.isInteger(dout) || (dout as number) < 1) {
      throw bad(`layers[${i}] needs positive integer 'in' and 'out'`);
    }
    const act = parseActivation(String(l['activation'] ?? 'relu'), `${where}.layers[${i}]`);
    const weight = l['weight'] ?? `${name}.W`;
    const bias = l['bias'] === null ? undefined : (l['bias'] ?? `${name}.b`);
    return { name, in: din as number, out: dout as number, activation: act, weight: String(weight), ...(bias === undefined ? {} : { bias: String(bias) }) };
  });
  for (let i = 1; i < layers.length; i++) {
    if (layers[i]!.in !== layers[i - 1]!.out) {
      throw bad(`layers[${i}].in = ${layers[i]!.in} does not match layers[${i - 1}].out = ${layers[i - 1]!.out}`);
    }
  }
  return { type: 'mlp', weight_layout: layout, layers };
}

/** Builds a model from arch + a tensor getter (safetensors file, or in-memory tensors). */
export async function modelFromTensors(arch: MlpArch, get: (name: string) => Promise<{ shape: number[]; data: Float32Array }>): Promise<MlpModel> {
  const layers: MlpLayer[] = [];
  for (const l of arch.layers) {
    const w = await get(l.weight);
    const expect = arch.weight_layout === 'in_out' ? [l.in, l.out] : [l.out, l.in];
    checkShape(
      w.shape.length === 2 && w.shape[0] === expect[0] && w.shape[1] === expect[1],
      `tensor ${l.weight} has shape [${w.shape.join(', ')}], the architecture expects [${expect.join(', ')}] (${arch.weight_layout})`,
      'fix the arch file (in/out sizes or weight_layout)',
    );
    checkFinite(l.weight, w.data, w.shape);
    const W = arch.weight_layout === 'in_out' ? Float32Array.from(w.data) : transpose(w.data, l.out, l.in);
    let b = new Float32Array(l.out);
    if (l.bias) {
      const t = await get(l.bias);
      checkShape(t.data.length === l.out, `tensor ${l.bias} has ${t.data.length} values, expected ${l.out}`);
      checkFinite(l.bias, t.data, t.shape);
      b = Float32Array.from(t.data);
    }
    layers.push({ name: l.name, dIn: l.in, dOut: l.out, W, b, activation: l.activation });
  }
  return { layers };
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j]!;
  return out;
}

/**
 * Folded weight of layer i in f64: W̄ = [[W, 0], [bᵀ, ρ]] of size (dIn+1)×(dOut+1), or
 * (dIn+1)×dOut for the model's last layer (its output has no constant slot).
 */
export function foldedWeight(model: MlpModel, i: number): { data: Float64Array; rows: number; cols: number } {
  const l = model.layers[i]!;
  const last = i === model.layers.length - 1;
  const rows = l.dIn + 1;
  const cols = last ? l.dOut : l.dOut + 1;
  const data = new Float64Array(rows * cols);
  for (let r = 0; r < l.dIn; r++) for (let c = 0; c < l.dOut; c++) data[r * cols + c] = l.W[r * l.dOut + c]!;
  for (let c = 0; c < l.dOut; c++) data[l.dIn * cols + c] = l.b[c]!;
  if (!last) data[l.dIn * cols + l.dOut] = rootOfOne(l.activation);
  return { data, rows, cols };
}

/** Node layers of an MLP: 'layers.i' is the input of layer i (dim dIn+1, folded), then 'output'. */
export function nodeLayerDims(model: MlpModel): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of model.layers) m.set(l.name, l.dIn + 1);
  m.set('output', model.layers[model.layers.length - 1]!.dOut);
  return m;
}

export { ACTIVATIONS };
