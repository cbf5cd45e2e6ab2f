// Softmax cross-entropy per row, forward and gradient of the batch mean
// (shaders/softmax_xent.wgsl): the loss head of `ibgpu train-mlp`.

import { checkShape, IbgpuError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { packParams } from '../runtime/params.js';
import { shaderKernel } from './shader-kernel.js';

const WG = 64;

export const softmaxXentKernel = shaderKernel('softmax_xent', { WRITE_GRAD: 1, WG });

export interface SoftmaxXentArgs {
  /** rows × cols f32 logits. */
  logits: GPUBuffer;
  /** rows u32 class indices, each < cols. */
  labels: GPUBuffer;
  rows: number;
  cols: number;
  /**
   * Receives (loss, correct) pairs: stats[2 (statsBase + r)] = −log softmax(z_r)[y_r] and
   * stats[2 (statsBase + r) + 1] = 1 when argmax z_r = y_r (first maximum), else 0.
   */
  stats: GPUBuffer;
  statsBase?: number;
  /** When given, receives scale · (softmax(z) − onehot(y)), rows × cols (must not alias logits). */
  grad?: GPUBuffer;
  /** Gradient scale; default 1 / rows (the gradient of the batch mean). */
  scale?: number;
}

/** Loop iterations one invocation runs for `cols` classes (kept below engine.loopBudget). */
export function softmaxXentLoopCount(cols: number): number {
  return 3 * cols;
}

/** Records the per-row loss / correctness and, with `grad`, the gradient of the mean loss. */
export function softmaxXent(engine: Engine, a: SoftmaxXentArgs): void {
  const { rows, cols } = a;
  const base = a.statsBase ?? 0;
  checkShape(
    Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1,
    `softmax_xent: rows = ${rows} and cols = ${cols} must be positive integers`,
  );
  checkShape(Number.isInteger(base) && base >= 0, `softmax_xent: statsBase = ${base} must be a non-negative integer`);
  checkShape(a.logits.size >= rows * cols * 4, `softmax_xent: logits (${a.logits.label}) hold fewer than ${rows}x${cols} floats`);
  checkShape(a.labels.size >= rows * 4, `softmax_xent: labels (${a.labels.label}) hold fewer than ${rows} u32`);
  checkShape(a.stats.size >= 2 * (base + rows) * 4, `softmax_xent: stats (${a.stats.label}) hold fewer than 2 * (${base} + ${rows}) floats`);
  if (a.grad) {
    checkShape(a.grad.size >= rows * cols * 4, `softmax_xent: grad (${a.grad.label}) holds fewer than ${rows}x${cols} floats`);
    checkShape(a.grad !== a.logits && a.grad !== a.labels && a.grad !== a.stats, 'softmax_xent: grad must not alias logits, labels or stats');
  }
  checkShape(a.stats !== a.logits && a.stats !== a.labels, 'softmax_xent: stats must not alias logits or labels');
  if (softmaxXentLoopCount(cols) + 16 > engine.loopBudget) {
    throw new IbgpuError(
      'LIMIT_EXCEEDED',
      `softmax_xent: ${cols} classes need ${softmaxXentLoopCount(cols)} loop iterations per row, over this adapter's per-invocation budget of ${engine.loopBudget}`,
      'use fewer classes, or a hardware adapter',
    );
  }
  const scale = a.scale ?? 1 / rows;
  checkShape(Number.isFinite(scale), `softmax_xent: scale = ${scale} must be finite`);
  const params = packParams(softmaxXentKernel, { rows, cols, stats_base: base, scale });
  // WebGPU forbids two writable bindings of one buffer; without a gradient bind a 4-byte dummy.
  engine.withScope((s) => {
    const grad = a.grad ?? s.alloc(4, 'softmax_xent.no-grad');
    engine.dispatch(softmaxXentKernel, {
      bindings: { logits: a.logits, labels: a.labels, grad, stats: a.stats, params },
      workgroups: ceilDiv(rows, WG),
      overrides: { WRITE_GRAD: a.grad ? 1 : 0 },
    });
  });
}
