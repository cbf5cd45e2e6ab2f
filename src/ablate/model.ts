// The model as ablations see it: node layers 0..L (L = the logits), and for each section j
// (node layer j → j+1) a function on the folded activations of node layer j. An intervention
// enters a section as a linear map applied to its input first — f ↦ f·R for a node ablation,
// z ↦ (z ∘ m)·C⁺ for an edge ablation — so every ablation is "prepare a section with a map, run
// it on cached activations, then run the remaining sections unchanged".
//
// `SectionRunner` is the contract a model implements. `GpuFoldedMlp` is the MLP: its section is
// y = act(x̄·W̄) with the folded weight W̄ = [[W, 0], [bᵀ, ρ]] (SPEC §1.2), so an input map M folds
// into the weight (M·W̄, in float64 on the host) and an ablated forward costs what a plain one
// does. A transformer plugs in by implementing `SectionRunner` on its section programs
// (src/model/program.ts): `prepare` uploads the map and `run` records z·M followed by the
// program's GPU interpreter.

import { biasAct } from '../kernels/bias-act.js';
import { matmul } from '../kernels/matmul.js';
import { matmulF64 } from '../cpu/matmul.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import type { Activation } from '../model/activations.js';
import { foldedWeight, type MlpModel } from '../model/mlp.js';

/** A linear map into a section's input: M = left·right (left absent: the identity, width k). */
export interface InputMap {
  /** zWidth × k, row-major; absent means z already has width k. */
  left?: Float64Array;
  k: number;
  /** k × width(j), row-major. */
  right: Float64Array;
  /** M = left·diag(rowMask)·right: zeroes coordinates of the k-space (edge ablation's mask row). */
  rowMask?: ArrayLike<number>;
}

export interface PreparedSection {
  /** Width of the values `run` takes (width(j), or the map's input width). */
  readonly inWidth: number;
  /** Records the section on rows × inWidth values; returns rows × width(j+1) (caller releases). */
  run(z: GPUBuffer, rows: number): GPUBuffer;
  release(): void;
}

export interface SectionRunner {
  /** Node layer names, 0..L; the last is the logits ('output'). */
  readonly nodeLayers: string[];
  /** Folded width of node layer j (real units + the constant slot; the logits have none). */
  width(j: number): number;
  /** Section j with an optional input map. */
  prepare(j: number, map?: InputMap): PreparedSection;
  /** Node layer 0's folded activations of a batch of inputs (rows × width(0)). */
  input(x: Float32Array, rows: number): GPUBuffer;
}

/** An MLP on the GPU in folded form (sections = layers). */
export class GpuFoldedMlp implements SectionRunner {
  readonly nodeLayers: string[];
  private readonly Wbar: { data: Float64Array; rows: number; cols: number }[];
  private readonly acts: Activation[];
  private readonly gpuW: GPUBuffer[];
  private readonly zero: GPUBuffer;
  /** The folded weights and every prepared section's mapped weight (child scopes), released by dispose(). */
  private readonly buffers: BufferScope;
  /** right·W̄ per section, keyed by the `right` array: edge ablations reuse one C⁺ for every mask row. */
  private readonly products: WeakMap<Float64Array, Float64Array>[];

  constructor(
    private readonly engine: Engine,
    model: MlpModel,
  ) {
    this.nodeLayers = [...model.layers.map((l) => l.name), 'output'];
    this.Wbar = model.layers.map((_, i) => foldedWeight(model, i));
    this.acts = model.layers.map((l) => l.activation);
    this.buffers = engine.scope();
    this.gpuW = this.Wbar.map((w, i) => this.buffers.upload(Float32Array.from(w.data), `ablate.W${i}`));
    this.products = this.Wbar.map(() => new WeakMap());
    this.zero = this.buffers.upload(new Float32Array(Math.max(...this.Wbar.map((w) => w.cols))), 'ablate.zero');
  }

  width(j: number): number {
    return j < this.Wbar.length ? this.Wbar[j]!.rows : this.Wbar[this.Wbar.length - 1]!.cols;
  }

  /** The folded weight of section j (float64), e.g. for host-side references. */
  foldedWeight(j: number): { data: Float64Array; rows: number; cols: number } {
    return this.Wbar[j]!;
  }

  prepare(j: number, map?: InputMap): PreparedSection {
    const w = this.Wbar[j]!;
    let W = this.gpuW[j]!;
    let inWidth = w.rows;
    const own = this.buffers.scope(); // the mapped weight, if any: released by the section's release()
    if (map) {
      // M·W̄ = left·(right·W̄): the low-rank factor first keeps it O(dim·k·cols).
      const cache = this.products[j]!;
      let m = cache.get(map.right);
      if (!m) {
        m = matmulF64(map.right, w.data, { m: map.k, n: w.cols, k: w.rows });
        cache.set(map.right, m);
      }
      if (map.rowMask) {
        m = Float64Array.from(m);
        for (let i = 0; i < map.k; i++) if (!map.rowMask[i]) m.fill(0, i * w.cols, (i + 1) * w.cols);
      }
      inWidth = map.k;
      if (map.left) {
        inWidth = map.left.length / map.k;
        m = matmulF64(map.left, m, { m: inWidth, n: w.cols, k: map.k });
      }
      W = own.upload(Float32Array.from(m), `ablate.W${j}.mapped`);
    }
    const engine = this.engine;
    const act = this.acts[j]!;
    const zero = this.zero;
    return {
      inWidth,
      run(z: GPUBuffer, rows: number): GPUBuffer {
        return engine.withScope((s) => {
          const pre = s.alloc(rows * w.cols * 4, `ablate.pre${j}`);
          matmul(engine, z, W, pre, { m: rows, n: w.cols, k: inWidth });
          const out = s.alloc(rows * w.cols * 4, `ablate.out${j}`);
          biasAct(engine, { x: pre, bias: zero, out, rows, cols: w.cols, activation: act });
          return s.keep(out);
        });
      },
      release() {
        own.close();
      },
    };
  }

  input(x: Float32Array, rows: number): GPUBuffer {
    const d = this.Wbar[0]!.rows - 1;
    const xb = new Float32Array(rows * (d + 1));
    for (let s = 0; s < rows; s++) {
      xb.set(x.subarray(s * d, (s + 1) * d), s * (d + 1));
      xb[s * (d + 1) + d] = 1;
    }
    return this.engine.upload(xb, 'ablate.input');
  }

  dispose(): void {
    this.buffers.close();
  }
}
