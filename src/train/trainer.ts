// An MLP being trained on the GPU: parameters, gradients and Adam moments resident in GPU
// buffers; one training step is recorded as forward (matmul + bias_act), loss head
// (softmax_xent), backward (act_backward, matmul with transposes for dW = Xᵀ·dP and
// dX = dP·Wᵀ, column sums for db) and Adam updates, with no host round trip.
//
// Determinism: every kernel writes each output from one invocation in a fixed order (no atomics),
// and the matmul variant is pinned for the trainer's lifetime, so the same inputs on the same
// adapter give bit-identical parameters.

import { checkShape, IbgpuError } from '../errors.js';
import type { Activation } from '../model/activations.js';
import { actBackward } from '../kernels/act-backward.js';
import { adamUpdate, checkAdamHyper, type AdamHyper } from '../kernels/adam.js';
import { biasAct } from '../kernels/bias-act.js';
import { columnSums } from '../kernels/column-sums.js';
import { matmul, type MatmulVariantName } from '../kernels/matmul.js';
import { softmaxXent } from '../kernels/softmax-xent.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';

export interface TrainerLayerInit {
  dIn: number;
  dOut: number;
  /** [dIn, dOut] row-major (y = σ(x·W + b)). */
  W: Float32Array;
  b: Float32Array;
  activation: Activation;
}

interface LayerState {
  dIn: number;
  dOut: number;
  activation: Activation;
  W: GPUBuffer;
  b: GPUBuffer;
  gW: GPUBuffer;
  gb: GPUBuffer;
  mW: GPUBuffer;
  vW: GPUBuffer;
  mb: GPUBuffer;
  vb: GPUBuffer;
}

/** Per-row statistics target: (loss, correct) pairs written at rows [base, base + rows). */
export interface StatsTarget {
  buffer: GPUBuffer;
  base: number;
}

export interface TrainerOptions {
  /** Matmul kernel variant for every product (default: trainingMatmulVariant(engine)). */
  matmulVariant?: MatmulVariantName;
}

/**
 * The matmul variant training uses by default: a function of the adapter alone (never of the
 * autotuner, whose choice may differ between runs), so that a seed reproduces bit for bit.
 * Software adapters get the register-blocked kernel: a step's products are short (64-row
 * batches), where the 128 x 128 tiles leave one workgroup per product; on llvmpipe an epoch of
 * the MNIST example took 1.65 s with reg4x4 against 2.47 s with tiled128.
 */
export function trainingMatmulVariant(engine: Engine): MatmulVariantName {
  return engine.info.isSoftware ? 'reg4x4' : 'tiled128';
}

export class MlpTrainer {
  readonly matmulVariant: MatmulVariantName;
  /** Adam steps taken so far. */
  steps = 0;
  private readonly layers: LayerState[];
  private readonly parameters: BufferScope; // weights, gradients and Adam moments, released by dispose()
  private disposed = false;

  constructor(
    private readonly engine: Engine,
    init: TrainerLayerInit[],
    readonly hyper: AdamHyper,
    opts: TrainerOptions = {},
  ) {
    checkShape(init.length >= 1, 'MlpTrainer: needs at least one layer');
    checkAdamHyper(hyper);
    for (let i = 0; i < init.length; i++) {
      const l = init[i]!;
      checkShape(
        Number.isInteger(l.dIn) && l.dIn >= 1 && Number.isInteger(l.dOut) && l.dOut >= 1,
        `MlpTrainer: layer ${i} sizes ${l.dIn}x${l.dOut} must be positive integers`,
      );
      checkShape(
        l.W.length === l.dIn * l.dOut && l.b.length === l.dOut,
        `MlpTrainer: layer ${i} W has ${l.W.length} values and b ${l.b.length}, expected ${l.dIn}x${l.dOut} and ${l.dOut}`,
      );
      if (i > 0) checkShape(l.dIn === init[i - 1]!.dOut, `MlpTrainer: layer ${i} takes ${l.dIn} inputs, layer ${i - 1} gives ${init[i - 1]!.dOut}`);
    }
    this.matmulVariant = opts.matmulVariant ?? trainingMatmulVariant(engine);
    this.parameters = engine.scope();
    this.layers = init.map((l, i) => {
      const nW = l.dIn * l.dOut;
      const zerosW = new Float32Array(nW);
      const zerosB = new Float32Array(l.dOut);
      return {
        dIn: l.dIn,
        dOut: l.dOut,
        activation: l.activation,
        W: this.parameters.upload(l.W, `train.${i}.W`),
        b: this.parameters.upload(l.b, `train.${i}.b`),
        gW: this.parameters.alloc(nW * 4, `train.${i}.gW`),
        gb: this.parameters.alloc(l.dOut * 4, `train.${i}.gb`),
        mW: this.parameters.upload(zerosW, `train.${i}.mW`),
        vW: this.parameters.upload(zerosW, `train.${i}.vW`),
        mb: this.parameters.upload(zerosB, `train.${i}.mb`),
        vb: this.parameters.upload(zerosB, `train.${i}.vb`),
      };
    });
  }

  get dIn(): number {
    return this.layers[0]!.dIn;
  }

  get classes(): number {
    return this.layers[this.layers.length - 1]!.dOut;
  }

  /**
   * Records forward, loss and (with `backward`) the gradients of the mean loss of `rows` rows
   * into the gradient buffers. Activations and their gradients are allocated in `scratch`.
   */
  private record(x: GPUBuffer, labels: GPUBuffer, rows: number, stats: StatsTarget, backward: boolean, scratch: BufferScope): void {
    const e = this.engine;
    const L = this.layers;
    const alloc = (n: number, label: string): GPUBuffer => scratch.alloc(n * 4, label);
    const acts: GPUBuffer[] = [x];
    const pres: GPUBuffer[] = [];
    for (let i = 0; i < L.length; i++) {
      const l = L[i]!;
      const pre = alloc(rows * l.dOut, `train.${i}.pre`);
      matmul(e, acts[i]!, l.W, pre, { m: rows, n: l.dOut, k: l.dIn }, { variant: this.matmulVariant });
      const out = alloc(rows * l.dOut, `train.${i}.out`);
      biasAct(e, { x: pre, bias: l.b, out, rows, cols: l.dOut, activation: l.activation });
      pres.push(pre);
      acts.push(out);
    }
    const last = L[L.length - 1]!;
    const gLogits = backward ? alloc(rows * last.dOut, 'train.grad-logits') : undefined;
    softmaxXent(e, {
      logits: acts[L.length]!,
      labels,
      rows,
      cols: last.dOut,
      stats: stats.buffer,
      statsBase: stats.base,
      ...(gLogits ? { grad: gLogits, scale: 1 / rows } : {}),
    });
    if (!gLogits) return;
    let g = gLogits; // ∂loss/∂(output of layer i)
    for (let i = L.length - 1; i >= 0; i--) {
      const l = L[i]!;
      let gp = g; // ∂loss/∂(pre-activation of layer i)
      if (l.activation !== 'identity') {
        gp = alloc(rows * l.dOut, `train.${i}.grad-pre`);
        actBackward(e, { x: pres[i]!, bias: l.b, gradOut: g, gradIn: gp, rows, cols: l.dOut, activation: l.activation });
      }
      // dW = Xᵀ·dP ([dIn, dOut]), db = Σ_rows dP, dX = dP·Wᵀ.
      matmul(e, acts[i]!, gp, l.gW, { m: l.dIn, n: l.dOut, k: rows, transA: true }, { variant: this.matmulVariant });
      columnSums(e, gp, rows, l.dOut, l.gb);
      if (i > 0) {
        const gx = alloc(rows * l.dIn, `train.${i}.grad-in`);
        matmul(e, gp, l.W, gx, { m: rows, n: l.dIn, k: l.dOut, transB: true }, { variant: this.matmulVariant });
        g = gx;
      }
    }
  }

  private checkBatch(x: GPUBuffer, labels: GPUBuffer, rows: number, stats: StatsTarget): void {
    this.assertLive();
    checkShape(Number.isInteger(rows) && rows >= 1, `MlpTrainer: rows = ${rows} must be a positive integer`);
    checkShape(x.size >= rows * this.dIn * 4, `MlpTrainer: input batch holds fewer than ${rows}x${this.dIn} floats`);
    checkShape(labels.size >= rows * 4, `MlpTrainer: labels hold fewer than ${rows} u32`);
    checkShape(stats.buffer.size >= 2 * (stats.base + rows) * 4, `MlpTrainer: stats buffer holds fewer than 2 * (${stats.base} + ${rows}) floats`);
  }

  /**
   * Records one training step on a batch already on the GPU: forward, per-row (loss, correct)
   * into `stats`, backward for the mean loss over the batch, one Adam update of every parameter.
   */
  step(x: GPUBuffer, labels: GPUBuffer, rows: number, stats: StatsTarget): void {
    this.checkBatch(x, labels, rows, stats);
    this.engine.withScope((scratch) => {
      this.record(x, labels, rows, stats, true, scratch);
      const t = ++this.steps;
      for (const l of this.layers) {
        adamUpdate(this.engine, { param: l.W, grad: l.gW, m: l.mW, v: l.vW, n: l.dIn * l.dOut, step: t, hyper: this.hyper });
        adamUpdate(this.engine, { param: l.b, grad: l.gb, m: l.mb, v: l.vb, n: l.dOut, step: t, hyper: this.hyper });
      }
    });
  }

  /** Records a forward pass and the loss head only (evaluation): per-row (loss, correct) into `stats`. */
  evaluate(x: GPUBuffer, labels: GPUBuffer, rows: number, stats: StatsTarget): void {
    this.checkBatch(x, labels, rows, stats);
    this.engine.withScope((scratch) => this.record(x, labels, rows, stats, false, scratch));
  }

  /**
   * Gradients of the mean loss over a host batch at the current parameters, without updating
   * them (for gradient checks). Returns per-row losses too.
   */
  async gradients(x: Float32Array, labels: Uint32Array, rows: number): Promise<{ rowLoss: Float32Array; gW: Float32Array[]; gb: Float32Array[] }> {
    return this.engine.withScope(async (scope) => {
      const xb = scope.upload(x, 'train.grad-x');
      const lb = scope.upload(labels, 'train.grad-labels');
      const stats = scope.alloc(2 * rows * 4, 'train.grad-stats');
      this.checkBatch(xb, lb, rows, { buffer: stats, base: 0 });
      this.record(xb, lb, rows, { buffer: stats, base: 0 }, true, scope);
      const s = await this.engine.readF32(stats, 2 * rows);
      const gW: Float32Array[] = [];
      const gb: Float32Array[] = [];
      for (const l of this.layers) {
        gW.push(await this.engine.readF32(l.gW, l.dIn * l.dOut));
        gb.push(await this.engine.readF32(l.gb, l.dOut));
      }
      return { rowLoss: s.filter((_, i) => i % 2 === 0), gW, gb };
    });
  }

  /** Current parameters, read back to the host. */
  async readParameters(): Promise<{ W: Float32Array; b: Float32Array }[]> {
    this.assertLive();
    const out: { W: Float32Array; b: Float32Array }[] = [];
    for (const l of this.layers) {
      out.push({ W: await this.engine.readF32(l.W, l.dIn * l.dOut), b: await this.engine.readF32(l.b, l.dOut) });
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.parameters.close();
  }

  private assertLive(): void {
    if (this.disposed) throw new IbgpuError('DISPOSED', 'MlpTrainer was disposed', 'create a new trainer');
  }
}
