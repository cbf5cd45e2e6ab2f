// Elementwise and copy kernels of the transformer programs (src/model/program.ts): the
// embedding gather, the column-copy family (add, copy, concat, slice, lastPos and their VJPs,
// input scaling), activations and their K-batched VJP, and rotary embeddings (forward and the
// transposed rotation for the VJP). Each wraps one shader in shaders/tf_*.wgsl.
//
// Layouts: forward values are [B·P, width] (sample-major, then position); cotangent blocks are
// [B·K·P, width] (sample, cotangent k, position), the forward broadcast over k.

import { checkShape } from '../errors.js';
import { ACTIVATION_ID, type Activation } from '../model/activations.js';
import type { Engine } from '../runtime/engine.js';
import { packParams } from '../runtime/params.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { rotaryTable } from '../cpu/transformer-ops.js';
import { checkCount, checkFloats } from './transformer-params.js';
import { shaderKernel } from './shader-kernel.js';

const WG = 256;

export const gatherKernel = shaderKernel('tf_gather', { MODE: 0, WG });

/** out[r] = table[tokens[r]] (tokens: u32 buffer of `rows` ids, validated < tableRows by the caller). */
export function gatherTokens(engine: Engine, tokens: GPUBuffer, table: GPUBuffer, out: GPUBuffer, rows: number, width: number): void {
  checkCount('tf_gather', 'rows', rows);
  checkCount('tf_gather', 'width', width);
  checkShape(tokens.size >= rows * 4, `tf_gather: token buffer holds fewer than ${rows} ids`);
  checkFloats('tf_gather', 'out', out, rows * width);
  engine.dispatch(gatherKernel, {
    bindings: { idx: tokens, table, out, params: packParams(gatherKernel, { rows, width, P: 1 }) },
    workgroups: ceilDiv(rows * width, WG),
    overrides: { MODE: 0 },
  });
}

/** out[r] = table[r % P] (position embeddings of B samples, rows = B·P). */
export function gatherPositions(engine: Engine, table: GPUBuffer, out: GPUBuffer, rows: number, width: number, P: number): void {
  checkCount('tf_gather', 'rows', rows);
  checkCount('tf_gather', 'P', P);
  checkFloats('tf_gather', 'table', table, P * width);
  checkFloats('tf_gather', 'out', out, rows * width);
  engine.dispatch(gatherKernel, {
    bindings: { idx: table, table, out, params: packParams(gatherKernel, { rows, width, P }) },
    workgroups: ceilDiv(rows * width, WG),
    overrides: { MODE: 1 },
  });
}

export const columnsKernel = shaderKernel('tf_columns', { ACCUM: 0, WG });

/** One side of a column copy: a [rows, ld] matrix, rows g·stride + j + row0, columns col0 + c. */
export interface ColumnSide {
  buf: GPUBuffer;
  ld: number;
  col0?: number;
  stride?: number;
  row0?: number;
}

export interface ColumnCopy {
  src: ColumnSide;
  dst: ColumnSide;
  /** Item i = g·per + j for g < groups, j < per. */
  groups: number;
  per: number;
  width: number;
  /** dst = alpha·src (default 1), or dst += alpha·src with accumulate. */
  alpha?: number;
  accumulate?: boolean;
}

/** Records dst[(g·ds + j + dr0), dc0 + c] (+)= alpha · src[(g·ss + j + sr0), sc0 + c] (tf_columns.wgsl). */
export function copyColumns(engine: Engine, a: ColumnCopy): void {
  const s = { col0: 0, stride: 0, row0: 0, ...a.src };
  const d = { col0: 0, stride: 0, row0: 0, ...a.dst };
  checkCount('tf_columns', 'groups', a.groups);
  checkCount('tf_columns', 'per', a.per);
  checkCount('tf_columns', 'width', a.width);
  checkShape(
    s.col0 + a.width <= s.ld && d.col0 + a.width <= d.ld,
    `tf_columns: columns [${s.col0}, +${a.width}) → [${d.col0}, +${a.width}) exceed the row lengths ${s.ld} / ${d.ld}`,
  );
  checkShape(s.buf !== d.buf, 'tf_columns: src and dst must be different buffers');
  const last = (x: typeof s): number => ((a.groups - 1) * x.stride + a.per - 1 + x.row0) * x.ld + x.col0 + a.width;
  checkFloats('tf_columns', 'src', s.buf, last(s));
  checkFloats('tf_columns', 'dst', d.buf, last(d));
  engine.dispatch(columnsKernel, {
    bindings: {
      src: s.buf,
      dst: d.buf,
      params: packParams(columnsKernel, {
        groups: a.groups,
        per: a.per,
        width: a.width,
        srcStride: s.stride,
        srcRow0: s.row0,
        srcLd: s.ld,
        srcCol0: s.col0,
        dstStride: d.stride,
        dstRow0: d.row0,
        dstLd: d.ld,
        dstCol0: d.col0,
        alpha: a.alpha ?? 1,
      }),
    },
    workgroups: ceilDiv(a.groups * a.per * a.width, WG),
    overrides: { ACCUM: a.accumulate ? 1 : 0 },
  });
}

/** dst = alpha·src over `rows` whole rows of `width` (or dst += alpha·src). */
export function copyRows(engine: Engine, src: GPUBuffer, dst: GPUBuffer, rows: number, width: number, alpha = 1, accumulate = false): void {
  copyColumns(engine, { src: { buf: src, ld: width }, dst: { buf: dst, ld: width }, groups: 1, per: rows, width, alpha, accumulate });
}

export const actKernel = shaderKernel('tf_act', { ACT: 1, WG });

export const actVjpKernel = shaderKernel('tf_act_vjp', { ACT: 1, WG });

function actId(kernel: string, a: Activation): number {
  const id = ACTIVATION_ID[a];
  checkShape(id !== undefined, `${kernel}: unknown activation '${String(a)}'`);
  return id;
}

/** y = act(x) over n elements. */
export function actForward(engine: Engine, x: GPUBuffer, y: GPUBuffer, n: number, activation: Activation): void {
  checkCount('tf_act', 'n', n);
  checkFloats('tf_act', 'x', x, n);
  checkFloats('tf_act', 'y', y, n);
  checkShape(x !== y, 'tf_act: y must not alias x');
  engine.dispatch(actKernel, {
    bindings: { x, y, params: packParams(actKernel, { n }) },
    workgroups: ceilDiv(n, WG),
    overrides: { ACT: actId('tf_act', activation) },
  });
}

export interface BlockShape {
  /** Samples in the batch. */
  B: number;
  /** Cotangents per sample. */
  K: number;
  /** Positions of the value. */
  P: number;
}

/** dx[(b,k,p), c] = dy[(b,k,p), c] · act'(x[(b,p), c]). */
export function actVjp(engine: Engine, x: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer, s: BlockShape, width: number, activation: Activation): void {
  const rows = s.B * s.K * s.P;
  checkCount('tf_act_vjp', 'rows', rows);
  checkCount('tf_act_vjp', 'width', width);
  checkFloats('tf_act_vjp', 'x', x, s.B * s.P * width);
  checkFloats('tf_act_vjp', 'dy', dy, rows * width);
  checkFloats('tf_act_vjp', 'dx', dx, rows * width);
  checkShape(dx !== dy && dx !== x, 'tf_act_vjp: dx must not alias x or dy');
  engine.dispatch(actVjpKernel, {
    bindings: { x, dy, dx, params: packParams(actVjpKernel, { rows, width, K: s.K, P: s.P }) },
    workgroups: ceilDiv(rows * width, WG),
    overrides: { ACT: actId('tf_act_vjp', activation) },
  });
}

export const rotaryKernel = shaderKernel('tf_rotary', { TRANSPOSE: 0, WG });

export interface RotaryShape {
  heads: number;
  dHead: number;
  rotaryDim: number;
  base: number;
}

/** Uploads the float64-computed (cos, sin) table [P, rotaryDim/2, 2] for `rotary`. */
export function uploadRotaryTable(engine: Engine, r: RotaryShape, P: number): GPUBuffer {
  return engine.upload(Float32Array.from(rotaryTable(P, r.rotaryDim, r.base)), 'tf_rotary.table');
}

/**
 * Rotates `rows` rows (position = row % P) with the table from uploadRotaryTable; `transpose`
 * applies the inverse rotation (the VJP).
 */
export function rotary(engine: Engine, x: GPUBuffer, table: GPUBuffer, y: GPUBuffer, rows: number, P: number, r: RotaryShape, transpose: boolean): void {
  checkCount('tf_rotary', 'rows', rows);
  checkShape(
    r.rotaryDim % 2 === 0 && r.rotaryDim >= 2 && r.rotaryDim <= r.dHead,
    `tf_rotary: rotaryDim ${r.rotaryDim} must be even and in [2, dHead = ${r.dHead}]`,
  );
  const width = r.heads * r.dHead;
  checkFloats('tf_rotary', 'x', x, rows * width);
  checkFloats('tf_rotary', 'y', y, rows * width);
  checkFloats('tf_rotary', 'table', table, P * r.rotaryDim);
  checkShape(x !== y, 'tf_rotary: y must not alias x');
  engine.dispatch(rotaryKernel, {
    bindings: { x, cs: table, y, params: packParams(rotaryKernel, { rows, width, dHead: r.dHead, rotaryDim: r.rotaryDim, P }) },
    workgroups: ceilDiv(rows * width, WG),
    overrides: { TRANSPOSE: transpose ? 1 : 0 },
  });
}
