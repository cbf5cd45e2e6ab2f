// Column sums reduced entirely on the GPU: out[j] = Σ_r x[r, j] (the bias gradient of a linear
// layer). Deterministic: a fixed reduction tree, no atomics. Each level runs the colsum_partial
// kernel (shaders/colsum_partial.wgsl: per-segment sums, pairwise inside a segment) and the
// next level sums the segment partials the same way, until one row is left. Segments are short
// enough that every invocation stays below the adapter's loop budget (llvmpipe: 65535).

import { checkShape, IbgpuError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { recordColumnSumWindow } from './gram.js';

/** Rows per segment of one level (the kernel's sequential leaves are 32 rows). */
export const COLUMN_SUM_SEGMENT_ROWS = 1024;

export interface ColumnSumsOptions {
  /** Rows per segment (tests use small values to force several levels). */
  segmentRows?: number;
}

/** Records out[0..d) = Σ_r x[r, 0..d) for the row-major rows×d f32 buffer `x`. */
export function columnSums(engine: Engine, x: GPUBuffer, rows: number, d: number, out: GPUBuffer, opts: ColumnSumsOptions = {}): void {
  checkShape(Number.isInteger(rows) && rows >= 1 && Number.isInteger(d) && d >= 1, `column_sums: rows = ${rows} and d = ${d} must be positive integers`);
  checkShape(x.size >= rows * d * 4, `column_sums: x (${x.label}) holds fewer than ${rows}x${d} floats`);
  checkShape(out.size >= d * 4, `column_sums: out (${out.label}) holds fewer than ${d} floats`);
  checkShape(out !== x, 'column_sums: out must not alias x');
  if (rows * d * 4 > engine.maxBindingBytes) {
    throw new IbgpuError(
      'LIMIT_EXCEEDED',
      `column_sums: ${rows}x${d} floats exceed one storage binding (${engine.maxBindingBytes} bytes)`,
      'sum fewer rows at a time',
    );
  }
  // Per invocation: seg rows + one merge per 32-row leaf (at most log2 deep) + 16 final levels.
  const seg = Math.max(2, Math.min(opts.segmentRows ?? COLUMN_SUM_SEGMENT_ROWS, Math.floor((engine.loopBudget - 64) / 2)));
  const cap = engine.limits.maxComputeWorkgroupsPerDimension;
  engine.withScope((partials) => {
    let src = x;
    let n = rows;
    for (;;) {
      const nseg = ceilDiv(n, seg);
      if (nseg > cap) {
        throw new IbgpuError('LIMIT_EXCEEDED', `column_sums: ${n} rows need ${nseg} segments, over ${cap} per dispatch`, 'sum fewer rows at a time');
      }
      const dst = nseg === 1 ? out : partials.alloc(nseg * d * 4, 'column_sums.partial');
      recordColumnSumWindow(engine, { buffer: src, offset: 0, size: src.size, base: 0, rows: n }, d, dst, seg);
      if (src !== x) partials.release(src); // recorded work keeps it until submitted
      if (nseg === 1) return;
      src = dst;
      n = nseg;
    }
  });
}
