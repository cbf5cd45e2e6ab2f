// A linear op of a transformer program on the shared matmul kernel (src/kernels/matmul.ts):
// y = x·W per row, and its VJP dx = dy·Wᵀ, optionally accumulated into the output.
//
// Folded transformer widths are d + 1 (the 1-slot): 129, 513, 132, … The matmul kernels cover C
// in column tiles of 128, so a 129-wide product pays for two full tiles (measured on llvmpipe at
// 31488×128→129: 4.2 s against 1.8 s for 128 columns). When n = 128·q + t with a small tail t,
// the product is split: the 128·q main columns by the kernel into a scratch buffer, the t tail
// columns as the transposed product (t × rows, row tiles of ≤ 128 so nothing is wasted), each
// copied into place. Each entry is still one f32 dot product of length k.

import { matmul } from '../kernels/matmul.js';
import { copyColumns } from '../kernels/transformer-elementwise.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';

/** Column tile of the matmul kernels. */
const TILE_N = 128;
/** Tails up to this width are split off (beyond it a second tile is no longer mostly empty). */
const MAX_TAIL = 16;

function tailOf(n: number): number {
  const t = n % TILE_N;
  return n > TILE_N && t >= 1 && t <= MAX_TAIL ? t : 0;
}

export class GpuLinear {
  readonly wIn: number;
  readonly wOut: number;
  private readonly engine: Engine;
  // The weights live as long as the op (until dispose()), across every batch.
  private readonly buffers: BufferScope;
  /** W [wIn, wOut]. */
  private readonly W: GPUBuffer;
  /** Forward split: W's first wOut − t columns [wIn, main] and its last t columns transposed [t, wIn]. */
  private readonly fwdMain: GPUBuffer | undefined;
  private readonly fwdTailT: GPUBuffer | undefined;
  /** VJP split: W's last t rows [t, wOut] (the main rows are a prefix of W itself). */
  private readonly vjpTail: GPUBuffer | undefined;

  constructor(engine: Engine, W: Float64Array, wIn: number, wOut: number, label: string) {
    this.engine = engine;
    this.wIn = wIn;
    this.wOut = wOut;
    this.buffers = engine.scope();
    this.W = this.buffers.upload(Float32Array.from(W), label);
    const tf = tailOf(wOut);
    if (tf) {
      const main = wOut - tf;
      const m = new Float32Array(wIn * main);
      const t = new Float32Array(tf * wIn);
      for (let r = 0; r < wIn; r++) {
        for (let c = 0; c < main; c++) m[r * main + c] = W[r * wOut + c]!;
        for (let j = 0; j < tf; j++) t[j * wIn + r] = W[r * wOut + main + j]!;
      }
      this.fwdMain = this.buffers.upload(m, `${label}.main`);
      this.fwdTailT = this.buffers.upload(t, `${label}.tailT`);
    }
    const tv = tailOf(wIn);
    if (tv) this.vjpTail = this.buffers.upload(Float32Array.from(W.subarray((wIn - tv) * wOut)), `${label}.tailRows`);
  }

  /** y (+)= x·W for `rows` rows. */
  forward(x: GPUBuffer, y: GPUBuffer, rows: number, accumulate = false): void {
    const { wIn, wOut } = this;
    if (!this.fwdMain) {
      matmul(this.engine, x, this.W, y, { m: rows, n: wOut, k: wIn, beta: accumulate ? 1 : 0 });
      return;
    }
    const t = tailOf(wOut);
    this.place(
      y,
      wOut,
      rows,
      accumulate,
      t,
      (main) => matmul(this.engine, x, this.fwdMain!, main, { m: rows, n: wOut - t, k: wIn }),
      (tail) => matmul(this.engine, this.fwdTailT!, x, tail, { m: t, n: rows, k: wIn, transB: true }),
    );
  }

  /** dx (+)= dy·Wᵀ for `rows` rows. */
  vjp(dy: GPUBuffer, dx: GPUBuffer, rows: number, accumulate = false): void {
    const { wIn, wOut } = this;
    if (!this.vjpTail) {
      matmul(this.engine, dy, this.W, dx, { m: rows, n: wIn, k: wOut, transB: true, beta: accumulate ? 1 : 0 });
      return;
    }
    const t = tailOf(wIn);
    this.place(
      dx,
      wIn,
      rows,
      accumulate,
      t,
      (main) => matmul(this.engine, dy, this.W, main, { m: rows, n: wIn - t, k: wOut, transB: true }),
      (tail) => matmul(this.engine, this.vjpTail!, dy, tail, { m: t, n: rows, k: wOut, transB: true }),
    );
  }

  /** Runs the main product into [rows, n − t] and the tail into [t, rows], then copies both into out [rows, n]. */
  private place(out: GPUBuffer, n: number, rows: number, accumulate: boolean, t: number, main: (b: GPUBuffer) => void, tail: (b: GPUBuffer) => void): void {
    const e = this.engine;
    const wMain = n - t;
    e.withScope((temps) => {
      const mb = temps.alloc(rows * wMain * 4, 'tf.linear-main');
      const tb = temps.alloc(Math.max(16, t * rows * 4), 'tf.linear-tail');
      main(mb);
      tail(tb);
      copyColumns(e, { src: { buf: mb, ld: wMain }, dst: { buf: out, ld: n }, groups: 1, per: rows, width: wMain, accumulate });
      for (let j = 0; j < t; j++) {
        copyColumns(e, { src: { buf: tb, ld: 1, row0: j * rows }, dst: { buf: out, ld: n, col0: wMain + j }, groups: 1, per: rows, width: 1, accumulate });
      }
    });
  }

  dispose(): void {
    this.buffers.close();
  }
}
