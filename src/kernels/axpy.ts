// y += alpha * x on the GPU (used for on-device accumulation of partial results).

import { checkShape } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { defineKernel } from '../runtime/kernel-spec.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { SHADERS } from '../shaders/index.generated.js';

export const axpyKernel = defineKernel({
  name: 'vec_axpy',
  shader: SHADERS.vec_axpy,
  bindings: [
    { name: 'x', kind: 'read-only-storage' },
    { name: 'y', kind: 'storage' },
    { name: 'params', kind: 'uniform' },
  ],
  overrides: { WG: 256 },
});

/** Records y[0..n) += alpha * x[0..n). */
export function axpy(engine: Engine, x: GPUBuffer, y: GPUBuffer, n: number, alpha = 1): void {
  checkShape(Number.isInteger(n) && n >= 0, `axpy: bad length ${n}`);
  checkShape(x.size >= n * 4 && y.size >= n * 4, `axpy: buffers hold fewer than ${n} floats`);
  const params = new ArrayBuffer(8);
  new Uint32Array(params, 0, 1)[0] = n;
  new Float32Array(params, 4, 1)[0] = alpha;
  engine.dispatch(axpyKernel, { bindings: { x, y, params: new Uint8Array(params) }, workgroups: ceilDiv(n, 256) });
}
