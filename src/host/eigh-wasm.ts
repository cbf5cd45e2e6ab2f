// The host's float64 symmetric eigensolver: src/cpu/eigh.ts's algorithm (Householder
// tridiagonalisation, backward accumulation of Qᵀ, implicit QL with Wilkinson shifts) with its
// O(n²)-per-step loops in WebAssembly SIMD (src/host/wasm/eigh.wat), two float64 lanes at a time.
// The kernels give the JS kernels' bits (EighKernels in src/cpu/eigh.ts: same operations in the
// same order per element, no FMA), so symEigHost(a, n) equals symEig(a, n) exactly; what changes
// is speed (bench/host-wasm-kernels.bench.ts: about 3.5x at n = 785 on this 2-core host).
//
// Memory: each solve instantiates the module once with a fresh memory laid out for its order
// (w and Qᵀ n×n, five vectors); the working matrices live there for the whole solve and only the
// eigenvalues and the transposed vectors are copied out, so nothing of it outlives the call.
// Falls back to symEig (plain JS) where WebAssembly SIMD is missing, where the module cannot be
// compiled synchronously (a browser's main thread limits that to small modules), where the
// layout would pass 2 GiB, or where IBGPU_HOST_WASM=0.

import {
  symEig,
  symEigReduce,
  symEigReduceWith,
  symEigValues,
  symEigValuesWith,
  symEigWith,
  type EighKernels,
  type EighWorkspace,
  type SymEigResult,
} from '../cpu/eigh.js';
import { hostWasmInstance, hostWasmModule, WasmLayout } from './wasm/load.js';

interface EighExports {
  symv_upper(w: number, n: number, k: number, p: number): void;
  rank2_upper(w: number, n: number, k: number, p: number): void;
  accumulate_pair(zt: number, n: number, lo: number, va: number, vb: number, vab: number, b1: number, b2: number, i0: number, step: number): void;
  accumulate_single(zt: number, n: number, va: number, b: number, i0: number, step: number): void;
  rot_chain(zt: number, n: number, cs: number, sn: number, lo: number, hi: number, k0: number, k1: number): void;
}

/** Below this order the JS solver is as fast (instantiation and call overheads dominate). */
export const WASM_EIG_MIN_ORDER = 24;

/** Whether the WebAssembly kernels run on this thread (IBGPU_HOST_WASM=0 turns them off). */
export function wasmEigAvailable(): boolean {
  return hostWasmModule('eigh') !== null;
}

/**
 * A workspace in a fresh instance's memory and kernels over it, or undefined where the module
 * cannot run. The kernels accept only arrays of that workspace (they pass byte offsets).
 */
export function wasmEighKernels(n: number): { ws: EighWorkspace; kern: EighKernels } | undefined {
  const lay = new WasmLayout();
  const at = { w: lay.region(n * n * 8), zt: lay.region(n * n * 8), p: lay.region(n * 8), vb: lay.region(n * 8), cs: lay.region(n * 8), sn: lay.region(n * 8) };
  const ex = hostWasmInstance<EighExports>('eigh', lay.top);
  if (!ex) return undefined;
  const buf = ex.memory.buffer; // never grows again: the views stay valid
  const ws: EighWorkspace = {
    w: new Float64Array(buf, at.w, n * n),
    zt: new Float64Array(buf, at.zt, n * n),
    p: new Float64Array(buf, at.p, n),
    vb: new Float64Array(buf, at.vb, n),
    cs: new Float64Array(buf, at.cs, n),
    sn: new Float64Array(buf, at.sn, n),
  };
  const ptr = (a: Float64Array): number => {
    if (a.buffer !== buf) throw new Error('eigh kernels: an array outside the WebAssembly workspace');
    return a.byteOffset;
  };
  const kern: EighKernels = {
    symvUpper: (w, nn, k, p) => ex.symv_upper(ptr(w), nn, k, ptr(p)),
    rank2Upper: (w, nn, k, p) => ex.rank2_upper(ptr(w), nn, k, ptr(p)),
    accumulatePair: (zt, nn, lo, va, vb, vab, b1, b2, i0, step) => ex.accumulate_pair(ptr(zt), nn, lo, ptr(va), ptr(vb), vab, b1, b2, i0, step),
    accumulateSingle: (zt, nn, va, b, i0, step) => ex.accumulate_single(ptr(zt), nn, ptr(va), b, i0, step),
    // cs[i + off] is rotation i's cosine: shift the base by off elements (i32 offsets wrap alike).
    rotationChain: (zt, nn, cs, sn, lo, hi, k0, k1, off) => ex.rot_chain(ptr(zt), nn, (ptr(cs) + 8 * off) | 0, (ptr(sn) + 8 * off) | 0, lo, hi, k0, k1),
  };
  return { ws, kern };
}

/**
 * symEig(a, n), bit for bit, with the WebAssembly kernels where they run (see the module
 * comment); small orders and hosts without them take symEig itself.
 */
export function symEigHost(a: ArrayLike<number>, n: number): SymEigResult {
  const k = n >= WASM_EIG_MIN_ORDER ? wasmEighKernels(n) : undefined;
  return k ? symEigWith(a, n, k.ws, k.kern) : symEig(a, n);
}

/** symEigReduce(a, n) (the phased solver's first phase), bit for bit, with the WebAssembly kernels where they run. */
export function symEigReduceHost(a: ArrayLike<number>, n: number): ReturnType<typeof symEigReduce> {
  const k = n >= WASM_EIG_MIN_ORDER ? wasmEighKernels(n) : undefined;
  return k ? symEigReduceWith(a, n, k.ws, k.kern) : symEigReduce(a, n);
}

/** symEigValues(a, n) (eigenvalues only, descending), bit for bit, with the WebAssembly kernels where they run. */
export function symEigValuesHost(a: ArrayLike<number>, n: number): Float64Array {
  const k = n >= WASM_EIG_MIN_ORDER ? wasmEighKernels(n) : undefined;
  return k ? symEigValuesWith(a, n, k.ws, k.kern) : symEigValues(a, n);
}
