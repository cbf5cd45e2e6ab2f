// y += alpha * x on the GPU (used for on-device accumulation of partial results).

import { checkShape } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { packParams } from '../runtime/params.js';
import { shaderKernel } from './shader-kernel.js';

export const axpyKernel = shaderKernel('vec_axpy', { WG: 256 });

/** Records y[0..n) += alpha * x[0..n). */
export function axpy(engine: Engine, x: GPUBuffer, y: GPUBuffer, n: number, alpha = 1): void {
  checkShape(Number.isInteger(n) && n >= 0, `axpy: bad length ${n}`);
  checkShape(x.size >= n * 4 && y.size >= n * 4, `axpy: buffers hold fewer than ${n} floats`);
  engine.dispatch(axpyKernel, { bindings: { x, y, params: packParams(axpyKernel, { n, alpha }) }, workgroups: ceilDiv(n, 256) });
}
