// The input layer's raw Gram Σ x xᵀ and column sums over mostly-zero rows (MNIST pixels are ~19 %
// non-zero), for the host statistics pass: SparseGramF64 (src/cpu/sparse-gram.ts, the reference)
// with its row loop in WebAssembly (src/host/wasm/sparse_gram.wat), which gives its bits, ~2x
// faster (bench/host-wasm-kernels.bench.ts). The Gram's upper triangle lives in the instance's memory;
// rows are copied in a chunk at a time (CHUNK_ROWS). Falls back to SparseGramF64 itself where the
// module cannot run (src/host/wasm/load.ts) or IBGPU_HOST_WASM=0.
//
// Also the state that runs it on a host worker thread beside the statistics pass's forward pass
// (tasks.ts HOST_STATES 'sparse-gram'; src/ib/stats.ts posts the batches).

import { shiftedGram, SparseGramF64 } from '../cpu/sparse-gram.js';
import { checkShape } from '../errors.js';
import { hostWasmInstance, WasmLayout } from './wasm/load.js';

interface SparseGramExports {
  add_rows(x: number, rows: number, d: number, g: number, s: number, idx: number, val: number): void;
}

/** Rows copied into the module's memory per call (a chunk of 1024 MNIST rows is 3.2 MB). */
const CHUNK_ROWS = 1024;

/** The accumulator interface shared with SparseGramF64. */
export interface SparseGramAccumulator {
  readonly d: number;
  readonly rows: number;
  add(x: Float32Array, rows: number): void;
  sums(): Float64Array;
  gram(shift?: ArrayLike<number>): Float64Array;
}

class WasmSparseGram implements SparseGramAccumulator {
  private n = 0;
  private constructor(
    readonly d: number,
    private readonly ex: SparseGramExports,
    private readonly at: { x: number; g: number; s: number; idx: number; val: number },
    private readonly x: Float32Array,
    private readonly g: Float64Array,
    private readonly s: Float64Array,
  ) {}

  static create(d: number): WasmSparseGram | undefined {
    const lay = new WasmLayout();
    const at = { x: lay.region(CHUNK_ROWS * d * 4), g: lay.region(d * d * 8), s: lay.region(d * 8), idx: lay.region(d * 4), val: lay.region(d * 8) };
    const ex = hostWasmInstance<SparseGramExports & { memory: WebAssembly.Memory }>('sparse_gram', lay.top);
    if (!ex) return undefined;
    const buf = ex.memory.buffer; // never grows again: the views stay valid
    return new WasmSparseGram(d, ex, at, new Float32Array(buf, at.x, CHUNK_ROWS * d), new Float64Array(buf, at.g, d * d), new Float64Array(buf, at.s, d));
  }

  get rows(): number {
    return this.n;
  }

  add(x: Float32Array, rows: number): void {
    const d = this.d;
    checkShape(Number.isInteger(rows) && rows >= 0 && x.length >= rows * d, `SparseGramF64.add: expected rows*d = ${rows}*${d} values, got ${x.length}`);
    for (let r0 = 0; r0 < rows; r0 += CHUNK_ROWS) {
      const m = Math.min(CHUNK_ROWS, rows - r0);
      this.x.set(x.subarray(r0 * d, (r0 + m) * d));
      this.ex.add_rows(this.at.x, m, d, this.at.g, this.at.s, this.at.idx, this.at.val);
    }
    this.n += rows;
  }

  sums(): Float64Array {
    return Float64Array.from(this.s);
  }

  gram(shift?: ArrayLike<number>): Float64Array {
    return shiftedGram(this.g, this.s, this.n, this.d, shift);
  }
}

/** The WebAssembly accumulator where it runs, else SparseGramF64 (the same bits either way). */
export function hostSparseGram(d: number): SparseGramAccumulator {
  checkShape(Number.isInteger(d) && d >= 1, `SparseGramF64: d must be a positive integer, got ${d}`);
  return WasmSparseGram.create(d) ?? new SparseGramF64(d);
}
