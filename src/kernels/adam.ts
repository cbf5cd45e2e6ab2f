// Adam parameter update on the GPU (shaders/adam_update.wgsl), f32, with bias correction, in the
// form torch.optim.Adam uses: p -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps).

import { checkShape, IbgpuError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { packParams } from '../runtime/params.js';
import { shaderKernel } from './shader-kernel.js';

const WG = 256;

export const adamKernel = shaderKernel('adam_update', { WG });

export interface AdamHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export const ADAM_DEFAULTS: Readonly<Omit<AdamHyper, 'lr'>> = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/** Validates Adam hyper-parameters (IbgpuError BAD_CONFIG naming the bad one). */
export function checkAdamHyper(h: AdamHyper): void {
  const bad = (what: string) => new IbgpuError('BAD_CONFIG', `adam: ${what}`, 'the usual values are lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8');
  if (!(Number.isFinite(h.lr) && h.lr > 0)) throw bad(`lr = ${h.lr} must be a positive number`);
  if (!(h.beta1 >= 0 && h.beta1 < 1)) throw bad(`beta1 = ${h.beta1} must be in [0, 1)`);
  if (!(h.beta2 >= 0 && h.beta2 < 1)) throw bad(`beta2 = ${h.beta2} must be in [0, 1)`);
  if (!(Number.isFinite(h.eps) && h.eps > 0)) throw bad(`eps = ${h.eps} must be a positive number`);
}

/** Step size lr / (1 − β1^t) and sqrt(1 − β2^t) for step t >= 1, in float64. */
export function adamCoefficients(step: number, h: AdamHyper): { stepSize: number; sqrtBc2: number } {
  return { stepSize: h.lr / (1 - h.beta1 ** step), sqrtBc2: Math.sqrt(1 - h.beta2 ** step) };
}

export interface AdamArgs {
  param: GPUBuffer;
  grad: GPUBuffer;
  /** First and second moments, zero-filled before step 1, updated in place. */
  m: GPUBuffer;
  v: GPUBuffer;
  n: number;
  /** 1-based step count (for the bias correction). */
  step: number;
  hyper: AdamHyper;
}

/** Records one Adam step of the n parameters in `param`. */
export function adamUpdate(engine: Engine, a: AdamArgs): void {
  checkShape(Number.isInteger(a.n) && a.n >= 1, `adam: n = ${a.n} must be a positive integer`);
  checkShape(Number.isInteger(a.step) && a.step >= 1, `adam: step = ${a.step} must be a positive integer (1-based)`);
  checkAdamHyper(a.hyper);
  for (const [name, buf] of [
    ['param', a.param],
    ['grad', a.grad],
    ['m', a.m],
    ['v', a.v],
  ] as const) {
    checkShape(buf.size >= a.n * 4, `adam: ${name} (${buf.label}) holds fewer than ${a.n} floats`);
  }
  checkShape(new Set([a.param, a.grad, a.m, a.v]).size === 4, 'adam: param, grad, m and v must be four different buffers');
  const { stepSize, sqrtBc2 } = adamCoefficients(a.step, a.hyper);
  const h = a.hyper;
  const params = packParams(adamKernel, {
    n: a.n,
    step_size: stepSize,
    beta1: h.beta1,
    one_minus_beta1: 1 - h.beta1,
    beta2: h.beta2,
    one_minus_beta2: 1 - h.beta2,
    eps: h.eps,
    sqrt_bc2: sqrtBc2,
  });
  engine.dispatch(adamKernel, {
    bindings: { param: a.param, grad: a.grad, m: a.m, v: a.v, params },
    workgroups: ceilDiv(a.n, WG),
  });
}
