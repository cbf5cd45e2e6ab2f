// GPU collection of the degeneracy statistics during the build's statistics pass (one forward
// pass per batch, shared with the Gram statistics):
//   - per section ℓ: (1/N) Σ_n J_p(x_n)ᵀ J_p(x_n), J_p = ∂f_out/∂p^ℓ the output Jacobian with
//     respect to the layer's pre-activations. Per batch the Jacobians of all datapoints are
//     stacked output-major (row o·B + n) and pushed backwards through the network:
//       S^{L−1} = gate_{L−1}(I),  S^ℓ = gate_ℓ(S^{ℓ+1} · W^{ℓ+1}ᵀ)
//     (matmul + shaders/jacobian_gate.wgsl), and Σ SᵀS is accumulated by the Gram kernel with
//     float64 host sums. Cost per batch: n_out·B·Σ h_ℓ h_{ℓ+1} multiply-adds plus the Grams.
//     Shortcut for the layer feeding a linear output layer: J_p = W_{L−1}ᵀ diag(g), so
//     Σ J_pᵀJ_p = (W_{L−1} W_{L−1}ᵀ) ∘ Σ g gᵀ, with Σ g gᵀ the exact co-firing counts (ReLU) or N
//     (identity): no Gram of stacked Jacobians for it;
//   - per hidden ReLU layer: firing patterns (SignPatternAccumulator on the layer's outputs —
//     relu(p) > 0 exactly when p > 0, so the activations carry the signs), and the raw Gram and
//     column sums of the outputs h (for the groups' pre-activation ranks).

import { GramAccumulator, ColumnSumAccumulator } from '../kernels/gram.js';
import { jacobianGate } from '../kernels/jacobian-gate.js';
import { matmul } from '../kernels/matmul.js';
import { SignPatternAccumulator } from '../kernels/sign-patterns.js';
import { GpuMlp, type ForwardResult } from './gpu-model.js';
import type { MlpModel } from '../model/mlp.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import type { DegeneracyStats, HiddenStats } from '../report/degeneracy.js';
import { DegeneracyAccumulatorBase, WIDE_LAYER } from '../host/degeneracy.js';

export { WIDE_LAYER };

/** Bytes of one stacked Jacobian buffer per chunk (chunks of a batch keep under this). */
export const CHUNK_BYTES = 32 * 2 ** 20;

export class DegeneracyAccumulator extends DegeneracyAccumulatorBase {
  private readonly weights: GPUBuffer[] = [];
  private readonly biases: GPUBuffer[] = [];
  private readonly jac = new Map<number, GramAccumulator>();
  private readonly signs = new Map<number, SignPatternAccumulator>();
  private readonly actGram = new Map<number, GramAccumulator>();
  private readonly actSum = new Map<number, ColumnSumAccumulator>();
  private readonly chunkRows: number;
  private identity: GPUBuffer | undefined;
  /** Wᵀ, biases and the chunk identity, released by dispose(). */
  private readonly buffers: BufferScope;
  private disposed = false;

  constructor(
    private readonly engine: Engine,
    model: MlpModel,
    layers: number[],
  ) {
    const cofireFor = (h: number) => h < WIDE_LAYER && h * h * 4 <= engine.maxBindingBytes;
    super(model, layers, cofireFor);
    const L = this.L;
    this.buffers = engine.scope();
    for (let i = this.lo; i < L; i++) {
      const l = model.layers[i]!;
      // Wᵀ (dOut × dIn), so the backward products need no transposed operand.
      const Wt = new Float32Array(l.dIn * l.dOut);
      for (let a = 0; a < l.dIn; a++) for (let b = 0; b < l.dOut; b++) Wt[b * l.dIn + a] = l.W[a * l.dOut + b]!;
      this.weights[i] = this.buffers.upload(Wt, `degeneracy.Wt${i}`);
      this.biases[i] = this.buffers.upload(l.b, `degeneracy.b${i}`);
    }
    const hmax = Math.max(...model.layers.slice(this.lo).map((l) => l.dOut));
    this.chunkRows = Math.max(1, Math.floor(Math.min(CHUNK_BYTES, engine.maxBindingBytes) / (4 * this.nOut * hmax)));
    for (const i of layers) {
      const l = model.layers[i]!;
      if (i !== this.closedForm) this.jac.set(i, new GramAccumulator(engine, l.dOut));
      if (i < L - 1 && l.activation === 'relu') {
        this.signs.set(i, new SignPatternAccumulator(engine, l.dOut, { keepWords: true, cofire: cofireFor(l.dOut) }));
        this.actGram.set(i, new GramAccumulator(engine, l.dOut));
        this.actSum.set(i, new ColumnSumAccumulator(engine, l.dOut));
      }
    }
  }

  /** Records the batch's work (the forward result must cover all layers); resolves when read back. */
  addBatch(f: ForwardResult, rows: number): Promise<unknown> {
    if (this.disposed) throw new Error('DegeneracyAccumulator was disposed');
    const e = this.engine;
    const waits: Promise<unknown>[] = [];
    for (const [i, acc] of this.signs) {
      acc.addBatch(f.acts[i + 1]!, rows);
      waits.push(Promise.resolve(this.actGram.get(i)!.addBatch(f.acts[i + 1]!, rows)));
      waits.push(this.actSum.get(i)!.addBatch(f.acts[i + 1]!, rows));
    }
    const nf = this.nOut;
    const last = this.model.layers[this.L - 1]!;
    if (this.jac.size === 0) {
      this.seen += rows;
      return Promise.all(waits);
    }
    for (let r0 = 0; r0 < rows; r0 += this.chunkRows) {
      const b = Math.min(this.chunkRows, rows - r0);
      const stacked = nf * b;
      const chunk = e.scope();
      try {
        const id = this.identityFor(b, chunk);
        let S = chunk.alloc(stacked * nf * 4, 'degeneracy.S');
        jacobianGate(e, {
          inp: id,
          pre: f.scratch[this.L - 1]!,
          bias: this.biases[this.L - 1]!,
          out: S,
          rows: stacked,
          cols: nf,
          batch: b,
          rowOffset: r0,
          activation: last.activation,
        });
        let width = nf;
        if (this.jac.has(this.L - 1)) waits.push(Promise.resolve(this.jac.get(this.L - 1)!.addBatch(S, stacked)));
        for (let i = this.L - 2; i >= this.lo; i--) {
          const l = this.model.layers[i]!;
          const U = chunk.alloc(stacked * l.dOut * 4, 'degeneracy.U');
          matmul(e, S, this.weights[i + 1]!, U, { m: stacked, n: l.dOut, k: width });
          const T = chunk.alloc(stacked * l.dOut * 4, 'degeneracy.S');
          jacobianGate(e, {
            inp: U,
            pre: f.scratch[i]!,
            bias: this.biases[i]!,
            out: T,
            rows: stacked,
            cols: l.dOut,
            batch: b,
            rowOffset: r0,
            activation: l.activation,
          });
          chunk.release(U, S); // recyclable after the next submit: the chunk's memory stays bounded
          S = T;
          width = l.dOut;
          if (this.jac.has(i)) waits.push(Promise.resolve(this.jac.get(i)!.addBatch(S, stacked)));
        }
      } finally {
        chunk.close();
      }
    }
    this.seen += rows;
    return Promise.all(waits);
  }

  /** The stacked identity for a chunk of b datapoints: row o·b + r is e_o (a short tail's lives in `chunk`). */
  private identityFor(b: number, chunk: BufferScope): GPUBuffer {
    if (b === this.chunkRows && this.identity) return this.identity;
    const nf = this.nOut;
    const data = new Float32Array(nf * b * nf);
    for (let o = 0; o < nf; o++) for (let r = 0; r < b; r++) data[(o * b + r) * nf + o] = 1;
    if (b === this.chunkRows) {
      const id = this.buffers.upload(data, 'degeneracy.identity');
      this.identity = id;
      return id;
    }
    return chunk.upload(data, 'degeneracy.identity-tail');
  }

  async result(): Promise<DegeneracyStats> {
    const n = this.seen;
    const jacobianGram = new Map<number, Float64Array>();
    for (const [i, acc] of this.jac) jacobianGram.set(i, scaleSym(await acc.result(), 1 / n));
    const hidden = new Map<number, HiddenStats>();
    for (const [i, acc] of this.signs) {
      const patterns = await acc.result();
      const actGram = scaleSym(await this.actGram.get(i)!.result(), 1 / n);
      const actMean = Float64Array.from(await this.actSum.get(i)!.result(), (v) => v / n);
      hidden.set(i, { patterns, actGram, actMean });
    }
    return this.stats(jacobianGram, hidden);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.buffers.close();
    for (const m of [this.jac, this.signs, this.actGram, this.actSum] as Map<number, { dispose(): void }>[]) for (const a of m.values()) a.dispose();
  }
}

function scaleSym(a: Float64Array, s: number): Float64Array {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! * s;
  return a;
}

/**
 * A standalone pass over the data collecting only the degeneracy statistics (for `ibgpu report`
 * on a result built with degeneracy: false). The integration rule does not matter: the
 * Jacobians use the plain derivative at the data.
 */
export async function collectDegeneracyStats(
  engine: Engine,
  model: MlpModel,
  data: { n: number; readRows(start: number, count: number): Promise<Float32Array> },
  layers: number[],
  batchSize: number,
  progress: (stage: string, done: number, total: number) => void = () => {},
): Promise<DegeneracyStats> {
  const mlp = new GpuMlp(engine, model, { alphas: Float64Array.of(1), weights: Float64Array.of(1) });
  const acc = new DegeneracyAccumulator(engine, model, layers);
  try {
    let inflight: Promise<unknown> | undefined;
    for (let start = 0; start < data.n; start += batchSize) {
      const rows = Math.min(batchSize, data.n - start);
      const batch = engine.scope();
      let p: Promise<unknown>;
      try {
        const x = batch.upload(await data.readRows(start, rows), 'batch');
        p = acc.addBatch(
          mlp.forward(batch, x, rows, () => false, acc.upTo),
          rows,
        );
      } finally {
        batch.close();
      }
      if (inflight) await inflight;
      inflight = p;
      progress('degeneracy', start + rows, data.n);
    }
    await inflight;
    return await acc.result();
  } finally {
    acc.dispose();
    mlp.dispose();
  }
}
