// Inner square-and-sum of transformer squared edges (shaders/tf_edge_square.wgsl):
// out[k, j] = Σ_b (Σ_s h[b, k, s, j] u[b, s, j])² for a block of K cotangents per sample (h may be
// one block shared by every sample).

import type { Engine } from '../runtime/engine.js';
import { packParams } from '../runtime/params.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { checkCount, checkFloats, checkLoopBudget } from './transformer-params.js';
import { shaderKernel } from './shader-kernel.js';

const WG = 64;

export const edgeSquareKernel = shaderKernel('tf_edge_square', { WG });

/** Most samples per edge_square dispatch for P positions on this adapter (loop budget). */
export function edgeSquareMaxSamples(engine: Engine, P: number): number {
  return Number.isFinite(engine.loopBudget) ? Math.max(1, Math.floor(engine.loopBudget / (P + 1))) : Infinity;
}

/** `hShared`: h is one [K·P, r] block for every sample (a sample-independent VJP). */
export function edgeSquare(engine: Engine, h: GPUBuffer, u: GPUBuffer, out: GPUBuffer, B: number, K: number, P: number, r: number, hShared = false): void {
  for (const [n, v] of [
    ['B', B],
    ['K', K],
    ['P', P],
    ['r', r],
  ] as const)
    checkCount('tf_edge_square', n, v);
  checkLoopBudget(engine, 'tf_edge_square', B * (P + 1), `${B} samples of ${P} positions`);
  checkFloats('tf_edge_square', 'h', h, (hShared ? 1 : B) * K * P * r);
  checkFloats('tf_edge_square', 'u', u, B * P * r);
  checkFloats('tf_edge_square', 'out', out, K * r);
  engine.dispatch(edgeSquareKernel, {
    bindings: { h, u, out, params: packParams(edgeSquareKernel, { B, K, P, r, hStride: hShared ? 0 : K * P * r }) },
    workgroups: ceilDiv(K * r, WG),
  });
}
