// Backward pass of an activation: grad_in = grad_out · σ'(x + bias) (shaders/act_backward.wgsl).
// The derivative is the one of src/model/activations.ts (actGrad), evaluated in f32.

import { checkShape } from '../errors.js';
import { ACTIVATION_ID, type Activation } from '../model/activations.js';
import type { Engine } from '../runtime/engine.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { packParams } from '../runtime/params.js';
import { shaderKernel } from './shader-kernel.js';

const WG = 256;

export const actBackwardKernel = shaderKernel('act_backward', { ACT: 1, WG });

export interface ActBackwardArgs {
  /** rows × cols pre-activations without the bias (the matmul output). */
  x: GPUBuffer;
  /** cols biases. */
  bias: GPUBuffer;
  /** rows × cols upstream gradient ∂L/∂σ. */
  gradOut: GPUBuffer;
  /** rows × cols output ∂L/∂p (must not alias x or gradOut). */
  gradIn: GPUBuffer;
  rows: number;
  cols: number;
  activation: Activation;
}

export function actBackward(engine: Engine, a: ActBackwardArgs): void {
  const n = a.rows * a.cols;
  checkShape(
    Number.isInteger(a.rows) && a.rows >= 1 && Number.isInteger(a.cols) && a.cols >= 1,
    `act_backward: rows = ${a.rows} and cols = ${a.cols} must be positive integers`,
  );
  for (const [name, buf] of [
    ['x', a.x],
    ['gradOut', a.gradOut],
    ['gradIn', a.gradIn],
  ] as const) {
    checkShape(buf.size >= n * 4, `act_backward: ${name} (${buf.label}) holds fewer than ${a.rows}x${a.cols} floats`);
  }
  checkShape(a.bias.size >= a.cols * 4, `act_backward: bias (${a.bias.label}) holds fewer than ${a.cols} floats`);
  checkShape(a.gradIn !== a.x && a.gradIn !== a.gradOut && a.gradIn !== a.bias, 'act_backward: gradIn must not alias x, bias or gradOut');
  checkShape(a.activation in ACTIVATION_ID, `act_backward: unknown activation '${String(a.activation)}'`);
  engine.dispatch(actBackwardKernel, {
    bindings: { x: a.x, bias: a.bias, gradOut: a.gradOut, gradIn: a.gradIn, params: packParams(actBackwardKernel, { rows: a.rows, cols: a.cols }) },
    workgroups: ceilDiv(n, WG),
    overrides: { ACT: ACTIVATION_ID[a.activation] },
  });
}
