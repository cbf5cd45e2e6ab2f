// Hidden-layer activations kept on the GPU between the statistics pass and the edge pass.
//
// Both passes stream the same rows through the same forward kernels, so the edge pass can take
// the activations the statistics pass already computed instead of running the network again
// (on rib's MNIST MLP through llvmpipe that is the whole 784→100 forward, ~0.25 s). The copies
// are bit-identical to a recomputation: a matmul row does not depend on the other rows of its
// batch. The cache is used only when it fits a fixed memory budget, so a build's memory stays
// bounded whatever N is; otherwise the edge pass runs the forward pass itself, as it does for
// shards and staged runs.

import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import type { DataSource } from './data.js';
import type { ForwardResult, GpuMlp } from './gpu-model.js';

/** Cap on the cache's device memory (rib's MNIST MLP on 10k digits needs 8 MB). */
export const ACTIVATION_CACHE_BYTES = 64 * 2 ** 20;

export class ActivationCache {
  private readonly bufs = new Map<number, { buf: GPUBuffer; dim: number }>();
  // The cached activations outlive the statistics pass that fills them, until dispose().
  private readonly buffers: BufferScope;

  private constructor(
    private readonly engine: Engine,
    private readonly start: number,
    private readonly rows: number,
  ) {
    this.buffers = engine.scope();
  }

  /**
   * A cache for activations `acts` (model activation indices ≥ 1, widths `dims(act)`) of rows
   * [start, end), or undefined when it would exceed `budgetBytes` or a buffer limit.
   */
  static plan(
    engine: Engine,
    acts: number[],
    dims: (act: number) => number,
    start: number,
    end: number,
    budgetBytes = ACTIVATION_CACHE_BYTES,
  ): ActivationCache | undefined {
    const wanted = [...new Set(acts.filter((a) => a >= 1))];
    const rows = end - start;
    if (wanted.length === 0 || rows < 1) return undefined;
    const bytes = wanted.map((a) => rows * dims(a) * 4);
    if (bytes.reduce((s, b) => s + b, 0) > budgetBytes || bytes.some((b) => b > engine.limits.maxBufferSize)) return undefined;
    const c = new ActivationCache(engine, start, rows);
    wanted.forEach((a) => c.bufs.set(a, { buf: c.buffers.alloc(rows * dims(a) * 4, `act-cache.${a}`), dim: dims(a) }));
    return c;
  }

  /** The model activation indices held. */
  get acts(): number[] {
    return [...this.bufs.keys()];
  }

  has(act: number): boolean {
    return this.bufs.has(act);
  }

  /** Records copies of a forward pass's cached activations for rows [start, start + rows). */
  store(f: ForwardResult, start: number, rows: number): void {
    for (const [a, { buf, dim }] of this.bufs) {
      this.engine.copy(f.acts[a]!, 0, buf, (start - this.start) * dim * 4, rows * dim * 4);
    }
  }

  /**
   * Writes activation `act` of rows [start, start + rows) from the host (rows × width f32): the
   * host statistics pass's float64 activations rounded to f32, for a GPU edge pass. They are the
   * exactly rounded values, so they may differ from a GPU recomputation in the last bit.
   */
  storeRows(act: number, start: number, rows: number, values: Float32Array): void {
    const { buf, dim } = this.bufs.get(act)!;
    if (values.length !== rows * dim) throw new Error(`activation cache: ${values.length} values for ${rows} rows of width ${dim}`);
    this.engine.write(buf, values, (start - this.start) * dim * 4);
  }

  /** A buffer of `scope` holding activation `act` of rows [start, start + rows). */
  load(scope: BufferScope, act: number, start: number, rows: number): GPUBuffer {
    const { buf, dim } = this.bufs.get(act)!;
    if (start < this.start || start + rows > this.start + this.rows)
      throw new Error(`activation cache: rows [${start}, ${start + rows}) are outside [${this.start}, ${this.start + this.rows})`);
    const out = scope.alloc(rows * dim * 4, `act-cache.${act}.rows`);
    this.engine.copy(buf, (start - this.start) * dim * 4, out, 0, rows * dim * 4);
    return out;
  }

  dispose(): void {
    this.buffers.close();
    this.bufs.clear();
  }
}

/** The activations of one block of rows at the input node layers of the given sections. */
export interface SectionInputs {
  /** Model layer index → rows × dIn activations entering that layer. */
  at(layer: number): GPUBuffer;
}

/**
 * Uploads rows [start, start + rows) and produces the activations entering each layer in
 * `layers`: from the cache where it holds them, else by a forward pass up to the deepest one.
 * Every buffer made belongs to `scope`.
 */
export async function sectionInputs(
  scope: BufferScope,
  mlp: GpuMlp,
  data: DataSource,
  layers: number[],
  start: number,
  rows: number,
  cache?: ActivationCache,
): Promise<SectionInputs> {
  const fromCache = cache !== undefined && layers.every((l) => l === 0 || cache.has(l));
  const needX = !fromCache || layers.includes(0);
  const x = needX ? scope.upload(await data.readRows(start, rows), 'batch') : undefined;
  if (fromCache) {
    const loaded = new Map<number, GPUBuffer>();
    for (const l of layers) if (l > 0 && !loaded.has(l)) loaded.set(l, cache.load(scope, l, start, rows));
    return { at: (l) => (l === 0 ? x! : loaded.get(l)!) };
  }
  const f = mlp.forward(scope, x!, rows, () => false, Math.max(...layers));
  return { at: (l) => f.acts[l]! };
}
