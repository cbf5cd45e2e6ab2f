// The panel matmul for CPU adapters: pack op(A) and op(B) into 64 KiB panels
// (shaders/matmul_pack.wgsl), then one dispatch of shaders/matmul_panel.wgsl per (row block,
// column block, k-chunk) with the two panels bound as uniform buffers. On llvmpipe a storage
// load costs a store-forwarding stall per element and lane while a uniform load is a plain
// gather (bench/RESULTS.notes.md), so this path trades one storage load per operand element
// (the packing) for none in the inner loop. Used by src/kernels/matmul.ts (variants 'panel64',
// 'panel128'); only for single products whose operands fit one storage binding.

import type { Engine } from '../runtime/engine.js';
import { type BufferWindow } from '../runtime/kernel-spec.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { packParams } from '../runtime/params.js';
import { shaderKernel } from './shader-kernel.js';

export const matmulPackKernel = shaderKernel('matmul_pack', { WG: 64, COL_MAJOR: 0 });

export const matmulPanelKernel = shaderKernel('matmul_panel', { WG: 32, KB: 128 });

/** Floats per panel: one 64 KiB uniform binding. */
export const PANEL_FLOATS = 16384;

/** A single product C = alpha * op(A) @ op(B) (+ beta * C), operands as element offsets. */
export interface PanelProduct {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  lda: number;
  ldb: number;
  ldc: number;
  offA: number;
  offB: number;
  offC: number;
  alpha: number;
  beta: number;
}

/** Bytes of packed panels the product needs for k-chunks of `kb` (for the caller's limit checks). */
export function panelBytes(p: Pick<PanelProduct, 'm' | 'n' | 'k'>, kb: number): { a: number; b: number } {
  const mb = PANEL_FLOATS / kb;
  const nkc = ceilDiv(p.k, kb);
  return { a: ceilDiv(p.m, mb) * nkc * PANEL_FLOATS * 4, b: nkc * ceilDiv(p.n, mb) * PANEL_FLOATS * 4 };
}

function pack(
  engine: Engine,
  src: GPUBuffer,
  dst: GPUBuffer,
  rows: number,
  cols: number,
  ld: number,
  off: number,
  trans: boolean,
  pr: number,
  pc: number,
  colMajor: boolean,
): void {
  const npr = ceilDiv(rows, pr);
  const npc = ceilDiv(cols, pc);
  const total = npr * npc * pr * pc;
  engine.dispatch(matmulPackKernel, {
    bindings: { src, dst, params: packParams(matmulPackKernel, { rows, cols, ld, off, trans: trans ? 1 : 0, pr, pc, npc, total }) },
    workgroups: ceilDiv(total, 64),
    overrides: { COL_MAJOR: colMajor ? 1 : 0 },
    label: 'matmul_pack',
  });
}

/**
 * Records the product through panels. `a`, `b`, `c` are whole buffers (the caller has checked
 * sizes and binding limits); `kb` is the k-chunk (64 or 128). Does not submit.
 */
export function recordPanelMatmul(engine: Engine, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, p: PanelProduct, kb: 64 | 128): void {
  const mb = PANEL_FLOATS / kb; // rows of C per block = columns of C per block
  const nrb = ceilDiv(p.m, mb);
  const ncb = ceilDiv(p.n, mb);
  const nkc = ceilDiv(p.k, kb);
  const sizes = panelBytes(p, kb);
  engine.withScope((s) => {
    const ap = s.allocUniformStorage(sizes.a, 'matmul-panels-a');
    const bp = s.allocUniformStorage(sizes.b, 'matmul-panels-b');
    // op(A) is m x k: panels of mb rows x kb columns, [kk][row] inside; op(B) is k x n: kb x mb, [kk][col].
    pack(engine, a, ap, p.m, p.k, p.lda, p.offA, p.transA, mb, kb, true);
    pack(engine, b, bp, p.k, p.n, p.ldb, p.offB, p.transB, kb, mb, false);
    const bytes = PANEL_FLOATS * 4;
    const workgroups = ((mb / 8) * (mb / 8)) / 32;
    for (let ib = 0; ib < nrb; ib++) {
      for (let jb = 0; jb < ncb; jb++) {
        for (let kc = 0; kc < nkc; kc++) {
          const params = packParams(matmulPanelKernel, {
            m: p.m,
            n: p.n,
            ldc: p.ldc,
            offC: p.offC,
            row0: ib * mb,
            col0: jb * mb,
            first: kc === 0 ? 1 : 0,
            useBeta: p.beta !== 0 ? 1 : 0,
            alpha: p.alpha,
            beta: p.beta,
          });
          const aw: BufferWindow = { buffer: ap, offset: (ib * nkc + kc) * bytes, size: bytes };
          const bw: BufferWindow = { buffer: bp, offset: (kc * ncb + jb) * bytes, size: bytes };
          engine.dispatch(matmulPanelKernel, {
            bindings: { ap: aw, bp: bw, c, params },
            workgroups,
            overrides: { KB: kb },
            label: `matmul_panel${kb}`,
          });
        }
      }
    }
  });
}
