// The WebAssembly SIMD row kernel of the host squared-edge pass: the same arithmetic as the JS
// kernel of edges-squared.ts (updateRow, updateRowIdentity), two float64 lanes at a time and
// register-blocked 4 rows × 4 columns (src/host/wasm/edges_squared.wat), with the same bits.
//
// Memory: each kernel owns one private instance and memory, laid out once for its section (the
// constant A and B copied in, columns padded to a multiple of 4, rows of A to a multiple of 4).
// A run copies its partial E in at `begin` and out at `end`; each row copies its f̂ (r values) in,
// and the caller writes the row's units and coefficients straight into views of the memory. Those
// copies are O(ro·r) per run and O(r) per row against O(ro·r·units) of arithmetic per row, so
// sharing the pass's SharedArrayBuffers with the module (which would need every shared operand
// allocated inside one shared WebAssembly.Memory) would buy nothing measurable (bench/host-edges-
// kernel.bench.ts prints the copies' share).
//
// Falls back to the JS kernel where WebAssembly SIMD is missing (validate fails), where the module
// cannot be compiled synchronously (a browser's main thread limits that to small modules), where a
// section's layout would pass 2 GiB, or where IBGPU_HOST_WASM=0.

import { jsRowKernel, type SquaredEdgeRowKernel, type SquaredEdgeSection } from './edges-squared.js';
import { hostWasmInstance, hostWasmModule, WasmLayout } from './wasm/load.js';

interface EdgesSquaredExports {
  update_row: (...args: number[]) => void;
  update_row_identity: (...args: number[]) => void;
}

/** Whether the WebAssembly SIMD kernel runs on this thread (IBGPU_HOST_WASM=0 turns it off). */
export function wasmSquaredEdgesAvailable(): boolean {
  return hostWasmModule('edges_squared') !== null;
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/**
 * The WebAssembly kernel for `sec`, or undefined where it cannot run (see the module comment).
 * Copies A and B now: the kernel serves every run of the pass.
 */
export function wasmRowKernel(sec: SquaredEdgeSection): SquaredEdgeRowKernel | undefined {
  const { h, ro, r, A, B } = sec;
  const rp = roundUp(r, 4);
  // The identity A moves whole rows of J, one per unit: no row blocking, no padded rows.
  const rows = A ? roundUp(ro, 4) : h;
  const lay = new WasmLayout();
  const oA = A ? lay.region(h * rows * 8) : 0;
  const oB = lay.region(h * rp * 8);
  const oJ = lay.region(rows * rp * 8);
  const oE = lay.region(rows * rp * 8);
  const oF = lay.region(rp * 8);
  const oU = lay.region(h * 4);
  const oC = lay.region(h * 8);
  const oS = lay.region(4 * h * 8);
  const oBO = lay.region(h * 4);
  const ex = hostWasmInstance<EdgesSquaredExports>('edges_squared', lay.top);
  if (!ex) return undefined;
  // The memory never grows again, so these views stay valid for the kernel's life.
  const buf = ex.memory.buffer;
  const f64 = (at: number, n: number): Float64Array => new Float64Array(buf, at, n);
  if (A) {
    const a = f64(oA, h * rows);
    for (let u = 0; u < h; u++) a.set(A.subarray(u * ro, (u + 1) * ro), u * rows);
  }
  const b = f64(oB, h * rp);
  for (let u = 0; u < h; u++) b.set(B.subarray(u * r, (u + 1) * r), u * rp);
  const e = f64(oE, rows * rp);
  const f = f64(oF, rp);
  const units = new Int32Array(buf, oU, h);
  const coef = f64(oC, h);
  let target: Float64Array | undefined;
  const erows = A ? ro : h;
  return {
    units,
    coef,
    begin: (E) => {
      target = E;
      for (let i = 0; i < erows; i++) e.set(E.subarray(i * r, (i + 1) * r), i * rp);
    },
    row: A
      ? (fresh, nf, fhat, fo) => {
          f.set(fhat.subarray(fo, fo + r));
          ex.update_row(nf, fresh ? 1 : 0, rows, rp, oA, oB, oJ, oE, oF, oU, oC, oS, oBO);
        }
      : (fresh, nf, fhat, fo) => {
          f.set(fhat.subarray(fo, fo + r));
          ex.update_row_identity(nf, fresh ? 1 : 0, h, rp, oB, oJ, oE, oF, oU, oC);
        },
    end: () => {
      const E = target!;
      for (let i = 0; i < erows; i++) E.set(e.subarray(i * rp, i * rp + r), i * r);
      target = undefined;
    },
  };
}

/** The fastest kernel for `sec` on this thread: WebAssembly SIMD where it runs, else the JS kernel. */
export function squaredEdgeRowKernel(sec: SquaredEdgeSection): SquaredEdgeRowKernel {
  return wasmRowKernel(sec) ?? jsRowKernel(sec);
}
