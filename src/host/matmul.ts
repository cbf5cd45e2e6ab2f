// Float64 matrix products on the host for the bases stage (src/ib/basis.ts): matmulF64's result
// (src/cpu/matmul.ts, the reference), bit for bit, with the arithmetic in WebAssembly SIMD
// (src/host/wasm/matmul.wat: each C[i, j] summed over q in order from zero, one column per lane),
// about 4x the reference's speed on rib's MNIST bases (bench/host-wasm-kernels.bench.ts). Operands are
// packed into the module's memory (op(A) m × k, op(B) k × n with n padded to 4) and C copied out;
// packing is O(mk + kn) against O(mnk) arithmetic.
//
// Memory: one instance per thread, kept between products and grown to the largest seen (the
// MNIST input layer's 785 × 785 products need ~15 MB). Products that are small (below
// WASM_MATMUL_MIN_WORK multiply-adds), batched, strided or scaled (alpha ≠ 1, beta ≠ 0) take
// matmulF64 itself, as do hosts where the module cannot run (src/host/wasm/load.ts) or
// IBGPU_HOST_WASM=0.

import { matmulF64, type MatmulShape } from '../cpu/matmul.js';
import { hostWasmModule, WasmLayout } from './wasm/load.js';

export interface MatmulExports {
  memory: WebAssembly.Memory;
  gemm(A: number, B: number, C: number, m: number, n: number, k: number): void;
}

/** Below this many multiply-adds (m·n·k) the JS reference is as fast (packing and call overheads). */
export const WASM_MATMUL_MIN_WORK = 32 ** 3;

let instance: MatmulExports | null | undefined;

/**
 * This thread's instance of the matmul module with at least `bytes` of memory, or undefined where
 * it cannot run. Views of its memory are valid until the next call (which may grow it).
 */
export function gemmInstance(bytes: number): MatmulExports | undefined {
  if (instance === undefined) {
    const mod = hostWasmModule('matmul');
    try {
      instance = mod ? (new WebAssembly.Instance(mod, {}).exports as unknown as MatmulExports) : null;
    } catch {
      instance = null;
    }
  }
  if (!instance || bytes > 2 ** 31) return undefined;
  const have = instance.memory.buffer.byteLength;
  if (bytes > have) {
    try {
      instance.memory.grow(Math.ceil((bytes - have) / 65536));
    } catch {
      return undefined;
    }
  }
  return instance;
}

/** matmulF64(a, b, shape), bit for bit; in WebAssembly where it runs and pays (see the module comment). */
export function matmulHost(a: ArrayLike<number>, b: ArrayLike<number>, shape: MatmulShape, c?: ArrayLike<number>): Float64Array {
  const { m, n, k } = shape;
  const plain =
    (shape.batch ?? 1) === 1 &&
    (shape.alpha ?? 1) === 1 &&
    (shape.beta ?? 0) === 0 &&
    shape.strideA === undefined &&
    shape.strideB === undefined &&
    shape.strideC === undefined;
  if (!plain || m * n * k < WASM_MATMUL_MIN_WORK || !hostWasmModule('matmul')) return matmulF64(a, b, shape, c);
  const np = Math.ceil(n / 4) * 4;
  const lay = new WasmLayout();
  const oA = lay.region(m * k * 8);
  const oB = lay.region(k * np * 8);
  const oC = lay.region(m * np * 8);
  const ex = gemmInstance(lay.top);
  if (!ex) return matmulF64(a, b, shape);
  const buf = ex.memory.buffer;
  const A = new Float64Array(buf, oA, m * k);
  if (shape.transA) {
    for (let q = 0; q < k; q++) for (let i = 0; i < m; i++) A[i * k + q] = a[q * m + i]!;
  } else if (a instanceof Float64Array) A.set(a.subarray(0, m * k));
  else for (let t = 0; t < m * k; t++) A[t] = a[t]!;
  const B = new Float64Array(buf, oB, k * np);
  if (np !== n) B.fill(0);
  if (shape.transB) {
    for (let j = 0; j < n; j++) for (let q = 0; q < k; q++) B[q * np + j] = b[j * k + q]!;
  } else {
    for (let q = 0; q < k; q++) for (let j = 0; j < n; j++) B[q * np + j] = b[q * n + j]!;
  }
  ex.gemm(oA, oB, oC, m, np, k);
  const C = new Float64Array(buf, oC, m * np);
  const out = new Float64Array(m * n);
  if (np === n) out.set(C);
  else for (let i = 0; i < m; i++) out.set(C.subarray(i * np, i * np + n), i * n);
  return out;
}

/** Columns per panel of gramProductHost (the gemm's own column panel). */
const GRAM_PANEL = 64;

/**
 * cᵀc for c [rows, d] row-major: matmulF64(c, c, { m: d, n: d, k: rows, transA: true }), bit for
 * bit, at about half its multiply-adds. Entry (i, j) is Σ_q c[q, i]·c[q, j] in order of q from
 * zero and (j, i) the same products (multiplication commutes exactly) in the same order, so the
 * product is symmetric bit for bit: each column panel j ∈ [j0, j0 + 64) is computed for the rows
 * i ≥ j0 only (one gemm per panel), and the entries above the panels' diagonal blocks are mirrored.
 */
export function gramProductHost(c: Float64Array, rows: number, d: number): Float64Array {
  const shape = { m: d, n: d, k: rows, transA: true };
  if (d <= GRAM_PANEL || d * d * rows < WASM_MATMUL_MIN_WORK || !hostWasmModule('matmul')) return matmulHost(c, c, shape);
  const k = rows;
  const lay = new WasmLayout();
  const oA = lay.region(d * k * 8); // cᵀ, d × k
  const oB = lay.region(k * GRAM_PANEL * 8); // one column panel of c, k × 64
  const oC = lay.region(d * GRAM_PANEL * 8); // rows i ≥ j0 of that panel's columns
  const ex = gemmInstance(lay.top);
  if (!ex) return matmulHost(c, c, shape);
  const buf = ex.memory.buffer;
  const A = new Float64Array(buf, oA, d * k);
  for (let q = 0; q < k; q++) for (let i = 0; i < d; i++) A[i * k + q] = c[q * d + i]!;
  const out = new Float64Array(d * d);
  for (let j0 = 0; j0 < d; j0 += GRAM_PANEL) {
    const w = Math.min(GRAM_PANEL, d - j0);
    const wp = Math.ceil(w / 4) * 4;
    const B = new Float64Array(buf, oB, k * wp);
    if (wp !== w) B.fill(0);
    for (let q = 0; q < k; q++) for (let j = 0; j < w; j++) B[q * wp + j] = c[q * d + j0 + j]!;
    const m = d - j0;
    ex.gemm(oA + j0 * k * 8, oB, oC, m, wp, k);
    const C = new Float64Array(buf, oC, m * wp);
    for (let i = j0; i < d; i++)
      for (let j = 0; j < w; j++) {
        const v = C[(i - j0) * wp + j]!;
        out[i * d + j0 + j] = v;
        out[(j0 + j) * d + i] = v;
      }
  }
  return out;
}
