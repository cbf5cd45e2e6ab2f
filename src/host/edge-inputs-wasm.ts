// The block inputs of the host edge pass (edge-inputs.ts) with their sums in WebAssembly SIMD
// (src/host/wasm/edge_inputs.wat): per row, the forward pass's pre-activations b + Σ x_i W[i, :],
// f̂ = C[d, :] + Σ x_i C[i, :] over the non-zero x_i and p' = Qᵀ f̂, each column's sum in the
// order of the JS loops (affineRow of mlp-forward.ts, sectionRows of edge-inputs.ts), so f̂ and
// the gates are the same bits. Activations and integrated gates stay in JS (the same functions).
//
// Memory: one private instance per pass and thread, laid out once: the pass's float64 W, b, C and
// Q copied in with rows padded to a multiple of 8 columns (zeros), then one row of scratch per
// layer and section. Each row's input is copied in (d0 values) and its f̂ out (r per section);
// the arithmetic per row is Σ over layers and sections of (non-zeros + r)·width, far more.
//
// Undefined where the module cannot run (src/host/wasm/load.ts) or IBGPU_HOST_WASM=0: the caller
// runs edgeInputRows instead.

import type { EdgeInputPass, EdgeInputRows } from './edge-inputs.js';
import { hostWasmInstance, WasmLayout } from './wasm/load.js';
import { act as actF64, actGrad } from '../model/activations.js';

interface EdgeInputsExports {
  gather_nonzeros: (x: number, d: number, M: number, rowb: number, idx: number, val: number) => number;
  gemv_rows: (m: number, rowb: number, init: number, idx: number, val: number, out: number) => void;
}

/** Columns padded to a multiple of 8 (the kernel's block of four f64x2 accumulators). */
function padded(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** Writes rows × cols of M (row-major) into a padded region of memory. */
function copyRows(buf: ArrayBuffer, at: number, M: ArrayLike<number>, rows: number, cols: number): void {
  const src = M instanceof Float64Array ? M : Float64Array.from(M);
  const dst = new Float64Array(buf, at, rows * padded(cols));
  for (let i = 0; i < rows; i++) dst.set(src.subarray(i * cols, (i + 1) * cols), i * padded(cols));
}

/** f̂ and gates of a range of a block's rows, as edgeInputRows writes them. */
export type EdgeInputRowsFn = (job: EdgeInputRows) => void;

/** The WebAssembly preparer for `pass` (see the module comment), or undefined where it cannot run. */
export function wasmEdgeInputs(pass: EdgeInputPass): EdgeInputRowsFn | undefined {
  const { layers, upTo, sections, alphas, weights } = pass;
  // A pass without sections has no rows to prepare (edgeInputRows returns at once as well).
  if (sections.length === 0 || layers.length === 0) return undefined;
  const d0 = layers[0]!.dIn;
  const lay = new WasmLayout();
  const oX = lay.region(padded(d0) * 8);
  const L = layers.slice(0, upTo).map((l) => ({
    l,
    oW: lay.region(l.dIn * padded(l.dOut) * 8),
    ob: lay.region(padded(l.dOut) * 8),
    oPre: lay.region(padded(l.dOut) * 8),
    oAct: lay.region(padded(l.dOut) * 8),
  }));
  // acts[a]: the byte offset of activation row a (0: the input, a: layer a − 1's output).
  const acts = [oX, ...L.map((x) => x.oAct)];
  const S = sections.map((s) => ({
    s,
    oC: lay.region(s.dim * padded(s.r) * 8),
    oQ: lay.region(s.r * padded(s.h) * 8),
    oQidx: lay.region(s.r * 4),
    oF: lay.region(padded(s.r) * 8),
    oPre: lay.region(padded(s.h) * 8),
  }));
  const widest = Math.max(d0, ...layers.slice(0, upTo).map((l) => l.dIn), ...sections.map((s) => Math.max(s.dim, s.r)));
  const oIdx = lay.region(widest * 4);
  const oVal = lay.region(widest * 8);
  const oZero = lay.region(Math.max(1, ...sections.map((s) => padded(s.h))) * 8);
  const ex = hostWasmInstance<EdgeInputsExports>('edge_inputs', lay.top);
  if (!ex) return undefined;
  // The memory never grows again, so these views stay valid for the preparer's life.
  const buf = ex.memory.buffer;
  const f64 = (at: number, n: number): Float64Array => new Float64Array(buf, at, n);
  const x0 = f64(oX, d0);
  const layerViews = L.map(({ l, oW, ob, oPre, oAct }) => {
    copyRows(buf, oW, l.W, l.dIn, l.dOut);
    f64(ob, l.dOut).set(l.b);
    return { pre: f64(oPre, l.dOut), act: f64(oAct, l.dOut) };
  });
  const sectionViews = S.map(({ s, oC, oQ, oQidx, oF, oPre }) => {
    copyRows(buf, oC, s.C, s.dim, s.r);
    copyRows(buf, oQ, s.Q, s.r, s.h);
    const qidx = new Int32Array(buf, oQidx, s.r);
    for (let k = 0; k < s.r; k++) qidx[k] = oQ + k * padded(s.h) * 8;
    return { f: f64(oF, s.r), pre: f64(oPre, s.h) };
  });
  const npts = alphas.length;
  return (job) => {
    const { from, to } = job;
    for (let n = from; n < to; n++) {
      x0.set(job.x.subarray(n * d0, (n + 1) * d0));
      L.forEach(({ l, oW, ob, oPre }, li) => {
        const rowb = padded(l.dOut) * 8;
        const m = ex.gather_nonzeros(acts[li]!, l.dIn, oW, rowb, oIdx, oVal);
        ex.gemv_rows(m, rowb, ob, oIdx, oVal, oPre);
        const { pre, act } = layerViews[li]!;
        for (let o = 0; o < l.dOut; o++) act[o] = actF64(l.activation, pre[o]!);
      });
      S.forEach(({ s, oC, oQidx, oF, oPre }, si) => {
        const d = s.dim - 1;
        const rowb = padded(s.r) * 8;
        const m = ex.gather_nonzeros(acts[s.layer]!, d, oC, rowb, oIdx, oVal);
        ex.gemv_rows(m, rowb, oC + d * rowb, oIdx, oVal, oF);
        ex.gemv_rows(s.r, padded(s.h) * 8, oZero, oQidx, oF, oPre);
        const { f, pre } = sectionViews[si]!;
        const out = job.out[si]!;
        out.fhat.set(f, n * s.r);
        const go = n * s.h;
        for (let o = 0; o < s.h; o++) {
          let g = 0;
          for (let k = 0; k < npts; k++) g += weights[k]! * actGrad(s.act, alphas[k]! * pre[o]!);
          out.gates[go + o] = g;
        }
      });
    }
  };
}
