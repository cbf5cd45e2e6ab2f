// One block's inputs of the host squared-edge pass (src/host/edges.ts), for a range of its rows:
// the pass's own forward pass (forwardRowsHost), then per section
//   f̂  = Cᵀ [x; 1] = C[d, :] + Σ_{i: x_i ≠ 0} x_i C[i, :]   (sparse in x; in float64 the centred
//        form of the GPU path buys nothing: there is no cancellation to avoid)
//   p' = Qᵀ f̂ with Q = C⁺W̄   (the section's pre-activation at the projected point, as rib)
//   g  = Σ_k w_k σ'(α_k p')   (integrated derivative)
// Every row is computed on its own with the same float64 operations, so a block's rows may be
// split between the host worker threads (each writing its rows of the shared fhat/gates buffers)
// with the same bits as one call over the whole block. Runs on a worker (tasks.ts
// 'edge-sections') or on the calling thread where there are none; imports no pool code.
// edge-inputs-wasm.ts computes the same sums in WebAssembly SIMD with the same bits; these loops
// are its reference and its fallback.

import { forwardRowsHost, type ForwardScratch } from './mlp-forward.js';
import type { ForwardLayer } from '../cpu/mlp-forward.js';
import { actGrad, type Activation } from '../model/activations.js';

/** A section's operands for its block inputs (arrays shared when held by worker threads). */
export interface EdgeInputSection {
  /** Model layer whose input activations feed the section. */
  layer: number;
  /** The input basis: C is dim × r (dim = d + 1, folded bias row last). */
  dim: number;
  r: number;
  C: Float64Array;
  /** Q = C⁺W̄, r × h. */
  Q: Float64Array;
  h: number;
  act: Activation;
}

/** What every block of one pass shares: the float64 model, the sections and the integration points. */
export interface EdgeInputPass {
  /** Layers with float64 W and b (shared when held by worker threads). */
  layers: ForwardLayer[];
  /** Layers 0..upTo−1 are run (the deepest section's layer). */
  upTo: number;
  sections: EdgeInputSection[];
  alphas: Float64Array;
  weights: Float64Array;
}

/** Rows [from, to) of one block: x is the block's rows × d0 input; each section's outputs are written in place. */
export interface EdgeInputRows {
  x: Float32Array;
  from: number;
  to: number;
  /** Per section: fhat (rows × r) and gates (rows × h) of the whole block. */
  out: { fhat: Float64Array; gates: Float64Array }[];
}

/**
 * f̂ and gates of rows [from, to) of a block (see the module comment). `scratch` (one per thread
 * and pass) holds the forward pass's buffers from block to block.
 */
export function edgeInputRows(pass: EdgeInputPass, job: EdgeInputRows, scratch?: ForwardScratch): void {
  const { from, to } = job;
  const rows = to - from;
  if (rows <= 0) return;
  const d0 = pass.layers[0]!.dIn;
  const fw = forwardRowsHost(pass, job.x.subarray(from * d0, to * d0), rows, pass.upTo, undefined, scratch);
  pass.sections.forEach((s, si) => {
    const o = job.out[si]!;
    sectionRows(s, fw.acts[s.layer]!, rows, pass.alphas, pass.weights, o.fhat.subarray(from * s.r, to * s.r), o.gates.subarray(from * s.h, to * s.h));
  });
}

/** f̂ and gates of one section for `rows` rows of its input activations x (rows × d, float64). */
function sectionRows(
  s: EdgeInputSection,
  x: Float64Array,
  rows: number,
  alphas: Float64Array,
  weights: Float64Array,
  fhat: Float64Array,
  gates: Float64Array,
): void {
  const { dim, r, C, Q, h, act } = s;
  const d = dim - 1;
  const npts = alphas.length;
  // Row scratch in plain arrays; each row is copied into the shared ones once.
  const f = new Float64Array(r);
  const pre = new Float64Array(h);
  const nz = new Int32Array(d);
  const nzv = new Float64Array(d);
  const cb = d * r;
  const qRows = Int32Array.from({ length: r }, (_, k) => k * h); // row k of Q starts at k·h
  for (let n = 0; n < rows; n++) {
    const xo = n * d;
    // The non-zeros only: MNIST pixels are ~19 % non-zero and ReLU outputs about half.
    let m = 0;
    for (let i = 0; i < d; i++) {
      const v = x[xo + i]!;
      if (v !== 0) {
        nz[m] = i * r;
        nzv[m] = v;
        m++;
      }
    }
    // f̂ = C[d, :] + Σ x_i C[i, :] over the non-zeros, then p' = Qᵀ f̂.
    rowTimes(nzv, nz, m, C, r, cb, f);
    rowTimes(f, qRows, r, Q, h, -1, pre);
    fhat.set(f, n * r);
    const go = n * h;
    for (let o = 0; o < h; o++) {
      let g = 0;
      for (let k = 0; k < npts; k++) g += weights[k]! * actGrad(act, alphas[k]! * pre[o]!);
      gates[go + o] = g;
    }
  }
}

/**
 * out[j] = (init < 0 ? 0 : M[init + j]) + Σ_t val[t]·M[off[t] + j] for j < n, the terms in t
 * order: a row vector, given by the values of its m entries and the offsets of their rows in M
 * (row-major, n columns), times M. Both of a row's products (f̂ from its non-zeros, p' from f̂)
 * are this one. Four columns at a time are held in registers across the entries (V8 does not
 * vectorise; an axpy per entry would load and store out each time).
 */
function rowTimes(val: Float64Array, off: Int32Array, m: number, M: Float64Array, n: number, init: number, out: Float64Array): void {
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    let a0 = 0,
      a1 = 0,
      a2 = 0,
      a3 = 0;
    if (init >= 0) {
      a0 = M[init + j]!;
      a1 = M[init + j + 1]!;
      a2 = M[init + j + 2]!;
      a3 = M[init + j + 3]!;
    }
    for (let t = 0; t < m; t++) {
      const v = val[t]!;
      const co = off[t]! + j;
      a0 += v * M[co]!;
      a1 += v * M[co + 1]!;
      a2 += v * M[co + 2]!;
      a3 += v * M[co + 3]!;
    }
    out[j] = a0;
    out[j + 1] = a1;
    out[j + 2] = a2;
    out[j + 3] = a3;
  }
  for (; j < n; j++) {
    let a0 = init < 0 ? 0 : M[init + j]!;
    for (let t = 0; t < m; t++) a0 += val[t]! * M[off[t]! + j]!;
    out[j] = a0;
  }
}
