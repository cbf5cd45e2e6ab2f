// Float64 CPU oracles and comparison helpers for the Interaction Basis tests.
//
// Everything here is computed independently of the pipeline's statistics: activations come from
// an f64 forward pass of the (f32-exact) data, and Grams, features f̂, the rotated-section
// Jacobians J̃ and the squared edges are formed per datapoint from those activations, exactly as
// SPEC §5.1–5.2 write them. The pipeline instead streams f32 GPU statistics and uses the gate-Gram
// shortcut (SPEC §10.3), so agreement is evidence, not a restatement.

import { copyFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { act, actGrad } from '../../src/model/activations.js';
import type { LayerBasis } from '../../src/ib/basis.js';
import { foldedWeight, modelFromTensors, parseArch, type MlpModel } from '../../src/model/mlp.js';
import { forwardF64 } from '../../src/cpu/mlp-forward.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { toFloat32, toFloat64 } from '../../src/io/tensor.js';
import type { IbResult } from '../../src/ib/pipeline.js';
import { matmulF64 } from '../../src/cpu/matmul.js';
import { symEigValues } from '../../src/cpu/eigh.js';
import { randomMlp } from '../../src/ib/self-check.js';
import { rng, gaussian } from './random.js';

// ------------------------------------------------------------------ fixture files

export interface HostTensor {
  shape: number[];
  /** Values widened to f64. */
  data: Float64Array;
}

/** Every tensor of a safetensors file, as f64 (through the library's reader). */
export async function readSafetensors(path: string): Promise<Map<string, HostTensor>> {
  const { tensors } = await loadSafetensors(path);
  const out = new Map<string, HostTensor>();
  for (const [name, t] of Object.entries(tensors)) out.set(name, { shape: t.shape, data: toFloat64(t) });
  return out;
}

/**
 * The synthetic fixture's model (16 → 32 → 32 → 8, ReLU, last layer linear) through the library's
 * architecture parser and tensor loader, and its f32-exact inputs X [2048, 16].
 */
export async function loadSyntheticFixture(dir: string): Promise<{ model: MlpModel; x: Float32Array; n: number; d: number }> {
  const arch = parseArch(JSON.parse(await readFile(`${dir}/arch.json`, 'utf8')), 'arch.json');
  const { tensors: w } = await loadSafetensors(`${dir}/weights.safetensors`);
  const model = await modelFromTensors(arch, async (name) => {
    const t = w[name];
    if (!t) throw new Error(`fixture tensor ${name} missing`);
    return { shape: t.shape, data: toFloat32(t) };
  });
  const { tensors: inp } = await loadSafetensors(`${dir}/inputs.safetensors`);
  const X = inp['X']!;
  return { model, x: Float32Array.from(toFloat32(X)), n: X.shape[0]!, d: X.shape[1]! };
}

/** The synthetic MLP fixture (arch.json, weights.safetensors, inputs.safetensors with `X`) and its node layers. */
export const SYNTHETIC_MLP = fileURLToPath(new URL('../fixtures/synthetic-mlp', import.meta.url));
export const SYNTHETIC_MLP_NODES = ['layers.0', 'layers.1', 'layers.2', 'output'];

/**
 * A build over the synthetic MLP fixture in `dir`: its three files copied there and the config
 * `name` written next to them (paths relative to it, then `extra`'s fields).
 */
export function writeSyntheticMlpBuild(dir: string, name: string, extra: Record<string, unknown>): void {
  for (const f of ['arch.json', 'weights.safetensors', 'inputs.safetensors']) copyFileSync(join(SYNTHETIC_MLP, f), join(dir, f));
  const cfg = {
    node_layers: SYNTHETIC_MLP_NODES,
    model: 'weights.safetensors',
    arch: 'arch.json',
    data: { type: 'safetensors', path: 'inputs.safetensors', key: 'X' },
    ...extra,
  };
  writeFileSync(join(dir, name), JSON.stringify(cfg));
}

// ------------------------------------------------------------------ data and models

/** Gaussian data with a few correlated columns (so the Gram spectrum is spread but full rank). */
export function genericData(n: number, d: number, seed: number): Float32Array {
  const g = gaussian(rng(seed));
  const mix = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) mix[i * d + j] = (i === j ? 1 : 0) + 0.3 * g();
  const x = new Float32Array(n * d);
  const row = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) row[i] = g() * (1 + 0.15 * i);
    for (let j = 0; j < d; j++) {
      let s = 0.2 * (j % 3); // non-zero means
      for (let i = 0; i < d; i++) s += row[i]! * mix[i * d + j]!;
      x[r * d + j] = s;
    }
  }
  return x;
}

/** Deep copy of a model (weights are Float32Array, so edits never touch the original). */
export function cloneModel(m: MlpModel): MlpModel {
  return { layers: m.layers.map((l) => ({ ...l, W: Float32Array.from(l.W), b: Float32Array.from(l.b) })) };
}

/** Folded activations f^ℓ (N × (dIn+1), last column 1) for every layer input, and the raw output. */
export function foldedActs(model: MlpModel, x: ArrayLike<number>, n: number): { acts: Float64Array[]; dims: number[]; out: Float64Array } {
  const raw = forwardF64(model, x, n, act);
  const acts: Float64Array[] = [];
  const dims: number[] = [];
  model.layers.forEach((l, i) => {
    const d = l.dIn;
    const f = new Float64Array(n * (d + 1));
    const src = raw[i]!;
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < d; c++) f[r * (d + 1) + c] = src[r * d + c]!;
      f[r * (d + 1) + d] = 1;
    }
    acts.push(f);
    dims.push(d + 1);
  });
  return { acts, dims, out: raw[raw.length - 1]! };
}

/** (1/N) Σ f fᵀ (uncentred) or (1/N) Σ (f − μ)(f − μ)ᵀ. */
export function gramOf(f: Float64Array, n: number, dim: number, centre = false): Float64Array {
  const mu = new Float64Array(dim);
  if (centre) {
    for (let r = 0; r < n; r++) for (let c = 0; c < dim; c++) mu[c]! += f[r * dim + c]! / n;
  }
  const y = new Float64Array(n * dim);
  for (let i = 0; i < y.length; i++) y[i] = f[i]! - mu[i % dim]!;
  return matmulF64(y, y, { m: dim, n: dim, k: n, transA: true, alpha: 1 / n });
}

/** f̂ = f·C (N × r). */
export function features(f: Float64Array, n: number, C: Float64Array, dim: number, r: number): Float64Array {
  return matmulF64(f, C, { m: n, n: r, k: dim });
}

export function eigDesc(a: Float64Array, n: number): Float64Array {
  return Float64Array.from(symEigValues(a, n)).sort((p, q) => q - p);
}

// ------------------------------------------------------------------ rotated-section Jacobians

export interface Section {
  /** Folded weight W̄ (dim × dimOut). */
  Wbar: Float64Array;
  dimOut: number;
  act: MlpModel['layers'][number]['activation'];
  /** Q = C⁺W̄ (r × dimOut): the pre-activation as a function of f̂. */
  Q: Float64Array;
  /** Next basis (dimOut × ro), or undefined (identity). */
  Cn: Float64Array | undefined;
  ro: number;
  r: number;
  dim: number;
}

export function section(model: MlpModel, layer: number, b: LayerBasis, next: LayerBasis | undefined): Section {
  const W = foldedWeight(model, layer);
  return {
    Wbar: W.data,
    dimOut: W.cols,
    act: model.layers[layer]!.activation,
    Q: matmulF64(b.Cpinv, W.data, { m: b.r, n: W.cols, k: b.dim }),
    Cn: next?.C,
    ro: next ? next.r : W.cols,
    r: b.r,
    dim: b.dim,
  };
}

/**
 * J̃(x) = Ĉᵀ diag(σ'(p)) W̄ᵀ C⁺ᵀ (ro × r) for one datapoint, with the gate evaluated at the
 * pre-activation p (dimOut). `out` receives row-major ro × r.
 */
export function jTilde(s: Section, p: Float64Array, out: Float64Array): void {
  const g = new Float64Array(s.dimOut);
  for (let h = 0; h < s.dimOut; h++) g[h] = actGrad(s.act, p[h]!);
  for (let i = 0; i < s.ro; i++) {
    for (let j = 0; j < s.r; j++) {
      let t = 0;
      if (s.Cn) {
        for (let h = 0; h < s.dimOut; h++) t += s.Cn[h * s.ro + i]! * g[h]! * s.Q[j * s.dimOut + h]!;
      } else {
        t = g[i]! * s.Q[j * s.dimOut + i]!;
      }
      out[i * s.r + j] = t;
    }
  }
}

/** Pre-activation W̄ᵀf at the real point (`projected` false) or at the projection C⁺ᵀCᵀf = Qᵀf̂. */
function preact(s: Section, f: Float64Array, fh: Float64Array, row: number, projected: boolean): Float64Array {
  const p = new Float64Array(s.dimOut);
  for (let h = 0; h < s.dimOut; h++) {
    let t = 0;
    if (projected) for (let j = 0; j < s.r; j++) t += s.Q[j * s.dimOut + h]! * fh[row * s.r + j]!;
    else for (let c = 0; c < s.dim; c++) t += s.Wbar[c * s.dimOut + h]! * f[row * s.dim + c]!;
    p[h] = t;
  }
  return p;
}

/** E_x[J̃ᵀJ̃] (r × r), gates at the real activations (the point the basis was built from). */
export function jacobianGram(s: Section, f: Float64Array, fh: Float64Array, n: number): Float64Array {
  const acc = new Float64Array(s.r * s.r);
  const J = new Float64Array(s.ro * s.r);
  for (let row = 0; row < n; row++) {
    jTilde(s, preact(s, f, fh, row, false), J);
    for (let a = 0; a < s.r; a++) {
      for (let b = a; b < s.r; b++) {
        let t = 0;
        for (let i = 0; i < s.ro; i++) t += J[i * s.r + a]! * J[i * s.r + b]!;
        acc[a * s.r + b]! += t / n;
      }
    }
  }
  for (let a = 0; a < s.r; a++) for (let b = 0; b < a; b++) acc[a * s.r + b] = acc[b * s.r + a]!;
  return acc;
}

/**
 * Squared edges E_ij = (1/N) Σ_n (J̃_ij(x_n) f̂_j(x_n))², gate at the projected point C⁺ᵀCᵀf
 * (SPEC §5.1; `gateAt: 'real'` evaluates it at f instead, to show that the choice is visible).
 */
export function edgesRef(s: Section, f: Float64Array, fh: Float64Array, n: number, gateAt: 'projected' | 'real' = 'projected'): Float64Array {
  const E = new Float64Array(s.ro * s.r);
  const J = new Float64Array(s.ro * s.r);
  for (let row = 0; row < n; row++) {
    jTilde(s, preact(s, f, fh, row, gateAt === 'projected'), J);
    for (let i = 0; i < s.ro; i++) {
      for (let j = 0; j < s.r; j++) {
        const a = J[i * s.r + j]! * fh[row * s.r + j]!;
        E[i * s.r + j]! += (a * a) / n;
      }
    }
  }
  return E;
}

// ------------------------------------------------------------------ CPU reference for a whole build

export interface CpuRef {
  acts: Float64Array[];
  dims: number[];
  out: Float64Array;
  /** f̂ per node layer name (N × r). */
  fhat: Map<string, Float64Array>;
}

/** Node layer name → model layer index for 'layers.i'. */
export function layerIndex(model: MlpModel, name: string): number {
  const i = model.layers.findIndex((l) => l.name === name);
  if (i < 0) throw new Error(`no layer ${name}`);
  return i;
}

export function cpuRef(model: MlpModel, x: ArrayLike<number>, n: number, res: IbResult): CpuRef {
  const { acts, dims, out } = foldedActs(model, x, n);
  const fhat = new Map<string, Float64Array>();
  for (const [name, b] of res.bases) {
    if (name === 'output') continue;
    const i = layerIndex(model, name);
    fhat.set(name, features(acts[i]!, n, b.C, b.dim, b.r));
  }
  return { acts, dims, out, fhat };
}

/** Section leaving node layer `name` in a build (next basis from the build, or identity). */
export function buildSection(model: MlpModel, res: IbResult, name: string): Section {
  const nl = res.config.node_layers;
  const j = nl.indexOf(name);
  return section(model, layerIndex(model, name), res.bases.get(name)!, res.bases.get(nl[j + 1]!));
}

// ------------------------------------------------------------------ comparisons

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** max |a − b| / max |b|. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return maxAbsDiff(a, b) / (maxAbs(b) || 1);
}

/** max_i |a_i − b_i| / |b_i| over entries with |b_i| > floor·max|b|. */
export function entryRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): number {
  const cut = floor * maxAbs(b);
  let m = 0;
  for (let i = 0; i < b.length; i++) if (Math.abs(b[i]!) > cut) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.abs(b[i]!));
  return m;
}

/**
 * Column-wise comparison up to sign: each column of A (rows × cols) takes the sign that aligns it
 * with B's column; returns max_j ‖s_j·A_j − B_j‖₂ / ‖B_j‖₂.
 */
export function columnErrUpToSign(A: ArrayLike<number>, B: ArrayLike<number>, rows: number, cols: number): number {
  let worst = 0;
  for (let j = 0; j < cols; j++) {
    let dot = 0;
    let nb = 0;
    for (let i = 0; i < rows; i++) {
      dot += A[i * cols + j]! * B[i * cols + j]!;
      nb += B[i * cols + j]! ** 2;
    }
    const s = dot < 0 ? -1 : 1;
    let e = 0;
    for (let i = 0; i < rows; i++) e += (s * A[i * cols + j]! - B[i * cols + j]!) ** 2;
    worst = Math.max(worst, Math.sqrt(e / (nb || 1)));
  }
  return worst;
}

/** The same, for rows (C⁺ compared up to per-row sign). */
export function rowErrUpToSign(A: ArrayLike<number>, B: ArrayLike<number>, rows: number, cols: number): number {
  return columnErrUpToSign(transpose(A, rows, cols), transpose(B, rows, cols), cols, rows);
}

export function transpose(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}

/** max |M − I| for a square n × n matrix. */
export function identityResidual(M: ArrayLike<number>, n: number): number {
  let m = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m = Math.max(m, Math.abs(M[i * n + j]! - (i === j ? 1 : 0)));
  return m;
}

/**
 * Scale-free diagonal check: max_{ij} |A_ij − δ_ij·λ_i| / √(λ_i λ_j). For A = CᵀGC this is the
 * error of the whitened Gram, the quantity the f32 statistics perturb uniformly.
 */
export function whitenedDiagErr(A: ArrayLike<number>, lambda: ArrayLike<number>, n: number): number {
  let m = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const e = Math.abs(A[i * n + j]! - (i === j ? lambda[i]! : 0)) / Math.sqrt(lambda[i]! * lambda[j]!);
      m = Math.max(m, e);
    }
  }
  return m;
}

/** |f̂| compared column-wise: max |(|a| − |b|)| / max|b_col|. */
export function absFeatureErr(a: ArrayLike<number>, b: ArrayLike<number>, rows: number, cols: number): number {
  let worst = 0;
  for (let j = 0; j < cols; j++) {
    let nb = 0;
    let e = 0;
    for (let i = 0; i < rows; i++) {
      nb = Math.max(nb, Math.abs(b[i * cols + j]!));
      e = Math.max(e, Math.abs(Math.abs(a[i * cols + j]!) - Math.abs(b[i * cols + j]!)));
    }
    worst = Math.max(worst, e / (nb || 1));
  }
  return worst;
}

/** Formats a number for test logs. */
export function fmt(v: number): string {
  return v.toExponential(2);
}

// ------------------------------------------------------------------ block-diagonal modular MLP

/**
 * The block-diagonal modular MLP of SPEC §9.3 on product-set data. Block a: 3 inputs → 6 → 5 → 2
 * logits; block b: 4 inputs → 7 → 4 → 3 logits. The weights are block-diagonal, the biases
 * generic. The data (N = 40·45 rows of 7) is the product set {(a_i, b_j)} of two sample lists, so
 * every cross-block empirical covariance is exactly 0. blockOf[layer][unit] = 0 or 1 for the units
 * of node layer `layers.i` (the input of layer i); blocks[b][i] is block b's width there.
 */
export function blockDiagonalProductSet(): { model: MlpModel; blocks: number[][]; sizes: number[]; blockOf: number[][]; x: Float32Array; N: number } {
  const blocks = [
    [3, 6, 5, 2],
    [4, 7, 4, 3],
  ];
  const sizes = [0, 1, 2, 3].map((i) => blocks[0]![i]! + blocks[1]![i]!);
  const g = gaussian(rng(41));
  const model = randomMlp(sizes, 42);
  const blockOf = sizes.map((s, i) => Array.from({ length: s }, (_, u) => (u < blocks[0]![i]! ? 0 : 1)));
  model.layers.forEach((l, i) => {
    for (let r = 0; r < l.dIn; r++) {
      for (let c = 0; c < l.dOut; c++) {
        const cb = c < blocks[0]![i + 1]! ? 0 : 1;
        if (blockOf[i]![r] !== cb) l.W[r * l.dOut + c] = 0;
      }
    }
  });
  const na = 40;
  const nb = 45;
  const N = na * nb;
  const A = Array.from({ length: na * 3 }, () => g() + 0.3);
  const B = Array.from({ length: nb * 4 }, () => 1.3 * g() - 0.2);
  const x = new Float32Array(N * 7);
  for (let i = 0; i < na; i++) {
    for (let j = 0; j < nb; j++) {
      const row = (i * nb + j) * 7;
      for (let k = 0; k < 3; k++) x[row + k] = A[i * 3 + k]!;
      for (let k = 0; k < 4; k++) x[row + 3 + k] = B[j * 4 + k]!;
    }
  }
  return { model, blocks, sizes, blockOf, x, N };
}
