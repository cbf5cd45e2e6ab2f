// The evaluation set of an ablation run: the data in batches, each batch's folded activations at
// every node layer (computed once, unablated), the labels on the GPU, and the score of a batch of
// logits (softmax cross-entropy and first-maximum accuracy, summed over the batches in float64).

import { IbgpuError } from '../errors.js';
import { matmul } from '../kernels/matmul.js';
import { softmaxXent } from '../kernels/softmax-xent.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import type { DataSource } from '../ib/data.js';
import type { PreparedSection, SectionRunner } from './model.js';

export interface Scores {
  accuracy: number;
  ce_loss: number;
}

interface Batch {
  rows: number;
  labels: GPUBuffer;
  /** acts[j]: rows × width(j), node layer j (acts[L] = logits). */
  acts: GPUBuffer[];
}

export class EvalSet {
  private constructor(
    private readonly engine: Engine,
    readonly runner: SectionRunner,
    private readonly batches: Batch[],
    readonly n: number,
    readonly classes: number,
    /** Every batch's labels and cached activations, released by dispose(). */
    private readonly cache: BufferScope,
  ) {}

  /** Streams the data once, forward through every section, keeping each node layer's activations. */
  static async create(engine: Engine, runner: SectionRunner, data: DataSource, labels: ArrayLike<number>, batchSize: number): Promise<EvalSet> {
    const L = runner.nodeLayers.length - 1;
    const classes = runner.width(L);
    if (labels.length !== data.n) {
      throw new IbgpuError('BAD_CONFIG', `the data has ${data.n} rows but ${labels.length} labels`, 'give one label per datapoint');
    }
    for (let i = 0; i < labels.length; i++) {
      const y = labels[i]!;
      if (!Number.isInteger(y) || y < 0 || y >= classes) {
        throw new IbgpuError(
          'BAD_CONFIG',
          `label ${i} is ${y}, not a class index in [0, ${classes})`,
          `the model has ${classes} outputs; labels must be integers 0..${classes - 1}`,
        );
      }
    }
    // Every cached node layer of a batch must fit one storage binding.
    const widest = Math.max(...Array.from({ length: L + 1 }, (_, j) => runner.width(j)));
    const step = Math.max(1, Math.min(batchSize, Math.floor(engine.maxBindingBytes / (4 * widest))));
    const prepared = Array.from({ length: L }, (_, j) => runner.prepare(j));
    const batches: Batch[] = [];
    const cache = engine.scope();
    try {
      for (let s = 0; s < data.n; s += step) {
        const rows = Math.min(step, data.n - s);
        const x = await data.readRows(s, rows);
        const acts = [cache.adopt(runner.input(x, rows))];
        for (let j = 0; j < L; j++) acts.push(cache.adopt(prepared[j]!.run(acts[j]!, rows)));
        const lab = new Uint32Array(rows);
        for (let i = 0; i < rows; i++) lab[i] = labels[s + i]!;
        batches.push({ rows, labels: cache.upload(lab, 'ablate.labels'), acts });
      }
    } catch (e) {
      cache.close();
      throw e;
    } finally {
      for (const p of prepared) p.release();
    }
    return new EvalSet(engine, runner, batches, data.n, classes, cache);
  }

  get batchCount(): number {
    return this.batches.length;
  }

  rowsOf(b: number): number {
    return this.batches[b]!.rows;
  }

  /** The cached (unablated) activations of node layer j for batch b. */
  actsAt(j: number, b: number): GPUBuffer {
    return this.batches[b]!.acts[j]!;
  }

  /**
   * Scores of the model when batch b's values at node layer j are `z(b)`, run from there on.
   * `first` replaces section j (an ablated section). Buffers `z` returns are released unless
   * they are the cache's own.
   */
  async score(j: number, z: (b: number) => GPUBuffer, first?: PreparedSection): Promise<Scores> {
    const L = this.runner.nodeLayers.length - 1;
    const rest = Array.from({ length: L - j }, (_, t) => (t === 0 && first ? first : this.runner.prepare(j + t)));
    const scope = this.engine.scope();
    try {
      const stats = scope.alloc(2 * this.n * 4, 'ablate.stats');
      let base = 0;
      for (let b = 0; b < this.batches.length; b++) {
        const batch = this.batches[b]!;
        // This batch's values past node layer j: released when its loss is recorded.
        const values = scope.scope();
        const own = (buf: GPUBuffer): GPUBuffer => (batch.acts.includes(buf) ? buf : values.adopt(buf));
        let cur = own(z(b));
        for (const sec of rest) cur = own(sec.run(cur, batch.rows));
        softmaxXent(this.engine, { logits: cur, labels: batch.labels, rows: batch.rows, cols: this.classes, stats, statsBase: base });
        values.close();
        base += batch.rows;
      }
      const v = await this.engine.readF32(stats, 2 * this.n);
      let loss = 0;
      let correct = 0;
      for (let i = 0; i < this.n; i++) {
        loss += v[2 * i]!;
        correct += v[2 * i + 1]!;
      }
      return { accuracy: correct / this.n, ce_loss: loss / this.n };
    } finally {
      scope.close();
      rest.forEach((sec, t) => {
        if (!(t === 0 && first)) sec.release();
      });
    }
  }

  /** Records z·B (+ acc when accumulate) for batch values z (rows × k) into acc (rows × m). */
  linear(z: GPUBuffer, B: GPUBuffer, acc: GPUBuffer, rows: number, k: number, m: number, accumulate: boolean): void {
    matmul(this.engine, z, B, acc, { m: rows, n: m, k, beta: accumulate ? 1 : 0 });
  }

  dispose(): void {
    this.cache.close();
  }
}
