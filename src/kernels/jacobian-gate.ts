// The backward step of stacked output Jacobians through one layer's activation
// (shaders/jacobian_gate.wgsl), used by the degeneracy statistics (src/ib/degeneracy-gpu.ts).

import { checkShape } from '../errors.js';
import { ACTIVATION_ID, type Activation } from '../model/activations.js';
import type { Engine } from '../runtime/engine.js';
import { packParams } from '../runtime/params.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { shaderKernel } from './shader-kernel.js';

const WG = 256;

export const jacobianGateKernel = shaderKernel('jacobian_gate', { ACT: 1, WG });

/**
 * out[o·batch + r, c] = inp[o·batch + r, c] · σ'(pre[rowOffset + r, c] + bias[c]) for
 * rows = nOut·batch stacked rows of width cols.
 */
export function jacobianGate(
  engine: Engine,
  a: { inp: GPUBuffer; pre: GPUBuffer; bias: GPUBuffer; out: GPUBuffer; rows: number; cols: number; batch: number; rowOffset: number; activation: Activation },
): void {
  const n = a.rows * a.cols;
  checkShape(a.rows % a.batch === 0, `jacobian_gate: rows ${a.rows} is not a multiple of batch ${a.batch}`);
  checkShape(a.inp.size >= n * 4 && a.out.size >= n * 4, `jacobian_gate: inp/out hold fewer than ${a.rows}x${a.cols} floats`);
  checkShape(a.pre.size >= (a.rowOffset + a.batch) * a.cols * 4, `jacobian_gate: pre holds fewer than ${a.rowOffset + a.batch} rows of ${a.cols}`);
  checkShape(a.bias.size >= a.cols * 4, `jacobian_gate: bias holds fewer than ${a.cols} floats`);
  checkShape(a.out !== a.inp && a.out !== a.pre, 'jacobian_gate: out must not alias inp or pre');
  engine.dispatch(jacobianGateKernel, {
    bindings: {
      inp: a.inp,
      pre: a.pre,
      bias: a.bias,
      out: a.out,
      params: packParams(jacobianGateKernel, { rows: a.rows, cols: a.cols, batch: a.batch, row_offset: a.rowOffset }),
    },
    workgroups: ceilDiv(n, WG),
    overrides: { ACT: ACTIVATION_ID[a.activation] },
  });
}
