// Section epilogue: out = σ(x + bias) and, optionally, the integrated derivative
// gate = Σ_k w_k σ'(α_k (x + bias)) (shaders/bias_act.wgsl).

import { checkShape } from '../errors.js';
import { ACTIVATION_ID, type Activation } from '../model/activations.js';
import type { Engine } from '../runtime/engine.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { packParams } from '../runtime/params.js';
import { shaderKernel } from './shader-kernel.js';

export const biasActKernel = shaderKernel('bias_act', { ACT: 1, WRITE_GATE: 0, WG: 256 });

export interface BiasActArgs {
  x: GPUBuffer;
  bias: GPUBuffer;
  out: GPUBuffer;
  rows: number;
  cols: number;
  activation: Activation;
  /** When given, the gate is written here; `points` holds α_0..α_{m-1}, w_0..w_{m-1}. */
  gate?: GPUBuffer;
  points?: GPUBuffer;
  npts?: number;
}

export function biasAct(engine: Engine, a: BiasActArgs): void {
  const n = a.rows * a.cols;
  checkShape(a.x.size >= n * 4 && a.out.size >= n * 4, `bias_act: buffers hold fewer than ${a.rows}x${a.cols} floats`);
  checkShape(a.bias.size >= a.cols * 4, `bias_act: bias holds fewer than ${a.cols} floats`);
  checkShape(a.x !== a.out, 'bias_act: out must not alias x');
  if (a.gate) {
    checkShape(a.gate.size >= n * 4 && a.points !== undefined && (a.npts ?? 0) > 0, 'bias_act: gate needs a rows*cols buffer and integration points');
  }
  const params = packParams(biasActKernel, { rows: a.rows, cols: a.cols, npts: a.gate ? a.npts! : 0 });
  // WebGPU forbids two writable bindings of one buffer; without a gate bind a 4-byte dummy.
  engine.withScope((s) => {
    const gate = a.gate ?? s.alloc(4, 'bias_act.no-gate');
    engine.dispatch(biasActKernel, {
      bindings: { x: a.x, bias: a.bias, out: a.out, gate, points: a.points ?? a.bias, params },
      workgroups: ceilDiv(n, 256),
      overrides: { ACT: ACTIVATION_ID[a.activation], WRITE_GATE: a.gate ? 1 : 0 },
    });
  });
}
