// An MLP resident on the GPU: weights uploaded once, forward passes per batch recording into the
// engine's pending encoder. Activations of every node layer and, on request, the integrated
// activation derivative ("gate") of every section are left in buffers of the caller's scope.

import { biasAct } from '../kernels/bias-act.js';
import { matmul } from '../kernels/matmul.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import type { IntegrationPoints } from './integration.js';
import type { MlpModel } from '../model/mlp.js';

export interface ForwardResult {
  /** acts[0] = input batch (rows × dIn_0), acts[i+1] = output of layer i (rows × dOut_i). */
  acts: GPUBuffer[];
  /** gates[i] = rows × dOut_i derivative gate of layer i (when requested), else undefined. */
  gates: (GPUBuffer | undefined)[];
  /** scratch[i] = rows × dOut_i pre-activation of layer i (bias not yet added). */
  scratch: GPUBuffer[];
}

export class GpuMlp {
  // The weights live as long as the model object (until dispose()), past any one pass.
  private readonly buffers: BufferScope;
  private readonly W: GPUBuffer[];
  private readonly b: GPUBuffer[];
  private readonly points: GPUBuffer;
  private readonly npts: number;

  constructor(
    private readonly engine: Engine,
    readonly model: MlpModel,
    pts: IntegrationPoints,
  ) {
    this.buffers = engine.scope();
    this.W = model.layers.map((l) => this.buffers.upload(l.W, `${l.name}.W`));
    this.b = model.layers.map((l) => this.buffers.upload(l.b, `${l.name}.b`));
    this.npts = pts.alphas.length;
    const p = new Float32Array(2 * this.npts);
    p.set(pts.alphas, 0);
    p.set(pts.weights, this.npts);
    this.points = this.buffers.upload(p, 'integration-points');
  }

  /** Records a forward pass of `rows` rows in `x`; its activations, gates and scratch belong to `scope`. */
  forward(scope: BufferScope, x: GPUBuffer, rows: number, wantGates: (i: number) => boolean, upTo = this.model.layers.length): ForwardResult {
    const acts: GPUBuffer[] = [x];
    const gates: (GPUBuffer | undefined)[] = [];
    const scratch: GPUBuffer[] = [];
    for (let i = 0; i < upTo; i++) {
      const l = this.model.layers[i]!;
      const pre = scope.alloc(rows * l.dOut * 4, `${l.name}.pre`);
      matmul(this.engine, acts[i]!, this.W[i]!, pre, { m: rows, n: l.dOut, k: l.dIn });
      const out = scope.alloc(rows * l.dOut * 4, `${l.name}.out`);
      const gate = wantGates(i) ? scope.alloc(rows * l.dOut * 4, `${l.name}.gate`) : undefined;
      biasAct(this.engine, {
        x: pre,
        bias: this.b[i]!,
        out,
        rows,
        cols: l.dOut,
        activation: l.activation,
        ...(gate ? { gate, points: this.points, npts: this.npts } : {}),
      });
      scratch.push(pre);
      acts.push(out);
      gates.push(gate);
    }
    return { acts, gates, scratch };
  }

  /** Gate of an arbitrary pre-activation batch (bias already included) for layer i; both buffers belong to `scope`. */
  gateOf(scope: BufferScope, i: number, pre: GPUBuffer, zeroBias: GPUBuffer, rows: number, cols: number): { gate: GPUBuffer; out: GPUBuffer } {
    const l = this.model.layers[i]!;
    const out = scope.alloc(rows * cols * 4, `${l.name}.proj-out`);
    const gate = scope.alloc(rows * cols * 4, `${l.name}.proj-gate`);
    biasAct(this.engine, { x: pre, bias: zeroBias, out, rows, cols, activation: l.activation, gate, points: this.points, npts: this.npts });
    return { gate, out };
  }

  dispose(): void {
    this.buffers.close();
  }
}
