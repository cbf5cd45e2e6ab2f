// rib's split LayerNorm on the GPU (ops lnVar and lnDiv of src/model/program.ts): forward over a
// batch of rows and the VJPs over K-blocks of cotangents (rows [b, k, p], the forward broadcast
// over k). Each wraps one shader in shaders/tf_ln_*.wgsl; one row per invocation.

import { checkShape } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { packParams } from '../runtime/params.js';
import { ceilDiv } from '../runtime/workgroups.js';
import type { BlockShape } from './transformer-elementwise.js';
import { checkCount, checkFloats, checkLoopBudget } from './transformer-params.js';
import { shaderKernel } from './shader-kernel.js';

const WG = 64;

export const lnVarKernel = shaderKernel('tf_ln_var', { WG });
export const lnDivKernel = shaderKernel('tf_ln_div', { WG });
export const lnVarVjpKernel = shaderKernel('tf_ln_var_vjp', { WG });
export const lnDivVjpKernel = shaderKernel('tf_ln_div_vjp', { WG });

function checkD(engine: Engine, name: string, d: number, width: number, perD: number): void {
  checkCount(name, 'd', d);
  checkShape(d <= width, `${name}: d = ${d} exceeds the value width ${width}`);
  checkLoopBudget(engine, name, perD * d + width, `a LayerNorm over d = ${d}`);
}

/** y[r] = population variance of x[r, :d] (x is [rows, width]). */
export function lnVar(engine: Engine, x: GPUBuffer, y: GPUBuffer, rows: number, width: number, d: number): void {
  checkCount('tf_ln_var', 'rows', rows);
  checkD(engine, 'tf_ln_var', d, width, 2);
  checkFloats('tf_ln_var', 'x', x, rows * width);
  checkFloats('tf_ln_var', 'y', y, rows);
  engine.dispatch(lnVarKernel, { bindings: { x, y, params: packParams(lnVarKernel, { rows, width, d }) }, workgroups: ceilDiv(rows, WG) });
}

/** y = [(x[:d] − mean)/√(v + eps), x[d]] per row (x, y are [rows, d + 1], v is [rows]). */
export function lnDiv(engine: Engine, v: GPUBuffer, x: GPUBuffer, y: GPUBuffer, rows: number, d: number, eps: number): void {
  checkCount('tf_ln_div', 'rows', rows);
  checkD(engine, 'tf_ln_div', d, d + 1, 2);
  checkShape(Number.isFinite(eps) && eps >= 0, `tf_ln_div: eps = ${eps} must be finite and ≥ 0`);
  checkFloats('tf_ln_div', 'v', v, rows);
  checkFloats('tf_ln_div', 'x', x, rows * (d + 1));
  checkFloats('tf_ln_div', 'y', y, rows * (d + 1));
  engine.dispatch(lnDivKernel, { bindings: { v, x, y, params: packParams(lnDivKernel, { rows, d, eps }) }, workgroups: ceilDiv(rows, WG) });
}

/** dx[(b,k,p), :] = dy[(b,k,p)] · ∂var/∂x at x[(b,p)] (dy is one column). */
export function lnVarVjp(engine: Engine, x: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer, s: BlockShape, width: number, d: number): void {
  const rows = s.B * s.K * s.P;
  checkCount('tf_ln_var_vjp', 'rows', rows);
  checkD(engine, 'tf_ln_var_vjp', d, width, 1);
  checkFloats('tf_ln_var_vjp', 'x', x, s.B * s.P * width);
  checkFloats('tf_ln_var_vjp', 'dy', dy, rows);
  checkFloats('tf_ln_var_vjp', 'dx', dx, rows * width);
  engine.dispatch(lnVarVjpKernel, {
    bindings: { x, dy, dx, params: packParams(lnVarVjpKernel, { rows, width, d, K: s.K, P: s.P }) },
    workgroups: ceilDiv(rows, WG),
  });
}

/** (dx, dvar) of lnDiv for the cotangent block dy [B·K·P, d + 1]. */
export function lnDivVjp(
  engine: Engine,
  v: GPUBuffer,
  x: GPUBuffer,
  dy: GPUBuffer,
  dx: GPUBuffer,
  dvar: GPUBuffer,
  s: BlockShape,
  d: number,
  eps: number,
): void {
  const rows = s.B * s.K * s.P;
  checkCount('tf_ln_div_vjp', 'rows', rows);
  checkD(engine, 'tf_ln_div_vjp', d, d + 1, 2);
  checkFloats('tf_ln_div_vjp', 'v', v, s.B * s.P);
  checkFloats('tf_ln_div_vjp', 'x', x, s.B * s.P * (d + 1));
  checkFloats('tf_ln_div_vjp', 'dy', dy, rows * (d + 1));
  checkFloats('tf_ln_div_vjp', 'dx', dx, rows * (d + 1));
  checkFloats('tf_ln_div_vjp', 'dvar', dvar, rows);
  engine.dispatch(lnDivVjpKernel, {
    bindings: { v, x, dy, dx, dvar, params: packParams(lnDivVjpKernel, { rows, d, K: s.K, P: s.P, eps }) },
    workgroups: ceilDiv(rows, WG),
  });
}
