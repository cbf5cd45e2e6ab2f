// The host forward pass of an MLP (forwardRowsHost, src/host/mlp-forward.ts) with each layer's
// pre-activations b + Σ x_i W[i, :] summed in WebAssembly SIMD (the gather_nonzeros and gemv_rows
// kernels of src/host/wasm/edge_inputs.wat, shared with the edge pass's block inputs). Every
// output column sees the same float64 operations in the same order as affineRow (b first, then
// the non-zero x_i in increasing i, mul then add), so the result equals forwardRowsHost's bit for
// bit; activations stay in JS (the same function). Used by the host statistics pass, whose forward
// over 10k MNIST rows is most of its time (about 3x faster: bench/host-wasm-kernels.bench.ts).
//
// Memory: one private instance per forwarder (built once per pass), laid out once: W and b copied
// in with rows padded to a multiple of 8 columns (zeros), then one row of scratch per layer. Each
// row's input is copied in (d0 values); its pre-activations and activations are copied out into
// the caller's arrays (O(width) per row against O(non-zeros·width) of arithmetic).
//
// Undefined where the module cannot run (src/host/wasm/load.ts) or IBGPU_HOST_WASM=0: callers run
// forwardRowsHost instead (hostForwardRows below chooses).

import type { ForwardLayer } from '../cpu/mlp-forward.js';
import { checkShape } from '../errors.js';
import { act as actF64, type Activation } from '../model/activations.js';
import { forwardRowsHost, type ForwardScratch, type HostForward } from './mlp-forward.js';
import { hostWasmInstance, WasmLayout } from './wasm/load.js';

interface ForwardExports {
  gather_nonzeros: (x: number, d: number, M: number, rowb: number, idx: number, val: number) => number;
  gemv_rows: (m: number, rowb: number, init: number, idx: number, val: number, out: number) => void;
}

/**
 * Runs layers 0..upTo−1 on `rows` row-major rows of x. The returned arrays are the forwarder's
 * own buffers, valid until its next call (a pass over many batches allocates them once instead
 * of leaving ~16 MB per 1000 MNIST rows to the garbage collector).
 */
export type ForwardRows = (x: ArrayLike<number>, rows: number, upTo: number) => HostForward;

function padded(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** The WebAssembly forwarder of `model`'s layers (see the module comment), or undefined where it cannot run. */
export function wasmForwardRows(model: { readonly layers: readonly ForwardLayer[] }): ForwardRows | undefined {
  const layers = model.layers;
  if (layers.length === 0) return undefined;
  const d0 = layers[0]!.dIn;
  const lay = new WasmLayout();
  const oX = lay.region(padded(d0) * 8);
  const L = layers.map((l) => ({
    l,
    rowb: padded(l.dOut) * 8,
    oW: lay.region(l.dIn * padded(l.dOut) * 8),
    ob: lay.region(padded(l.dOut) * 8),
    oPre: lay.region(padded(l.dOut) * 8),
    oAct: lay.region(padded(l.dOut) * 8),
  }));
  const widest = Math.max(...layers.map((l) => l.dIn));
  const oIdx = lay.region(widest * 4);
  const oVal = lay.region(widest * 8);
  const ex = hostWasmInstance<ForwardExports>('edge_inputs', lay.top);
  if (!ex) return undefined;
  // The memory never grows again, so these views stay valid for the forwarder's life.
  const buf = ex.memory.buffer;
  const f64 = (at: number, n: number): Float64Array => new Float64Array(buf, at, n);
  const x0 = f64(oX, d0);
  const views = L.map(({ l, oW, ob, oPre, oAct }) => {
    const W = l.W instanceof Float64Array ? l.W : Float64Array.from(l.W);
    const dst = f64(oW, l.dIn * padded(l.dOut));
    for (let i = 0; i < l.dIn; i++) dst.set(W.subarray(i * l.dOut, (i + 1) * l.dOut), i * padded(l.dOut));
    f64(ob, l.dOut).set(l.b);
    return { pre: f64(oPre, l.dOut), act: f64(oAct, l.dOut) };
  });
  // acts[a]: the byte offset of activation row a (0: the input, a: layer a − 1's output).
  const actAt = [oX, ...L.map((x) => x.oAct)];
  const acts0 = actAt.slice(0, layers.length);
  const scratch: ForwardScratch = { bufs: [] };
  const take = (k: number, n: number): Float64Array => {
    let b = scratch.bufs[k];
    if (!b || b.length < n) scratch.bufs[k] = b = new Float64Array(n);
    return b.subarray(0, n);
  };
  return (x, rows, upTo) => {
    checkShape(Number.isInteger(upTo) && upTo >= 0 && upTo <= layers.length, `wasmForwardRows: upTo = ${upTo} is outside 0..${layers.length}`);
    checkShape(Number.isInteger(rows) && rows >= 0 && x.length >= rows * d0, `wasmForwardRows: expected rows*d = ${rows}*${d0} values, got ${x.length}`);
    const a0 = take(0, rows * d0);
    if (x instanceof Float32Array || x instanceof Float64Array) a0.set(x.subarray(0, rows * d0));
    else for (let k = 0; k < a0.length; k++) a0[k] = x[k]!;
    const acts: Float64Array[] = [a0];
    const pres: Float64Array[] = [];
    for (let li = 0; li < upTo; li++) {
      pres.push(take(1 + 2 * li, rows * layers[li]!.dOut));
      acts.push(take(2 + 2 * li, rows * layers[li]!.dOut));
    }
    for (let r = 0; r < rows; r++) {
      x0.set(a0.subarray(r * d0, (r + 1) * d0));
      for (let li = 0; li < upTo; li++) {
        const Li = L[li]!;
        const dIn = Li.l.dIn;
        const dOut = Li.l.dOut;
        const m = ex.gather_nonzeros(acts0[li]!, dIn, Li.oW, Li.rowb, oIdx, oVal);
        ex.gemv_rows(m, Li.rowb, Li.ob, oIdx, oVal, Li.oPre);
        const v = views[li]!;
        const o = r * dOut;
        pres[li]!.set(v.pre, o);
        activateRow(Li.l.activation, v.pre, v.act, dOut);
        acts[li + 1]!.set(v.act, o);
      }
    }
    return { rows, acts, pres };
  };
}

/** act[j] = σ(pre[j]) for j < n, with actF64's values (ReLU and identity inline: the common cases). */
function activateRow(a: Activation, pre: Float64Array, act: Float64Array, n: number): void {
  if (a === 'relu') for (let j = 0; j < n; j++) act[j] = pre[j]! > 0 ? pre[j]! : 0;
  else if (a === 'identity') act.set(pre.subarray(0, n));
  else for (let j = 0; j < n; j++) act[j] = actF64(a, pre[j]!);
}

/** wasmForwardRows where it runs, else forwardRowsHost (the same bits either way). */
export function hostForwardRows(model: { readonly layers: readonly ForwardLayer[] }): ForwardRows {
  const scratch: ForwardScratch = { bufs: [] };
  return wasmForwardRows(model) ?? ((x, rows, upTo) => forwardRowsHost(model, x, rows, upTo, undefined, scratch));
}
