// A ModelProgram on the GPU: the embedding stage and every section as GpuSectionPrograms, run
// batch by batch over token sequences. The passes (gpu-stats.ts, gpu-mdash.ts, gpu-edges.ts)
// drive it; node layer i is the output tuple of `pre` (i = 0) or of sections[i − 1].
//
// Batch sizes: the largest per-sample buffer of any section (its widest value over its positions,
// the attention probabilities, and, for the VJP passes, K cotangents of it) times B must stay
// under a budget of at most engine.maxBindingBytes, so no binding needs splitting and the memory
// held per batch is bounded independently of N.

import { checkShape, IbgpuError } from '../errors.js';
import { copyColumns } from '../kernels/transformer-elementwise.js';
import type { ModelProgram, SectionProgram } from '../model/program.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import { embedBatch, GpuSectionProgram } from './gpu-program.js';

/** Default cap on one batch buffer: 32 MiB keeps several alive at once well inside llvmpipe's RAM. */
export const BATCH_BUFFER_BYTES = 32 * 2 ** 20;

/** Floats per sample of the largest single buffer a forward (K = 1) or VJP block (K) of p allocates. */
export function perSampleFloats(p: SectionProgram, K = 1): number {
  let most = 0;
  for (const v of p.values) most = Math.max(most, v.width * v.positions * K);
  for (const op of p.ops) {
    if (op.kind === 'attention') {
      const P = p.values[op.q]!.positions;
      most = Math.max(most, op.heads * P * P * K);
    }
  }
  return most;
}

/** Samples per batch so that no buffer exceeds `bytes` (at least 1; error if one sample does not fit). */
export function samplesPerBatch(engine: Engine, floatsPerSample: number, N: number, bytes = BATCH_BUFFER_BYTES): number {
  const cap = Math.min(bytes, engine.maxBindingBytes);
  const B = Math.floor(cap / (4 * floatsPerSample));
  if (B < 1) {
    throw new IbgpuError(
      'LIMIT_EXCEEDED',
      `one sample needs a ${floatsPerSample * 4}-byte buffer, over the ${cap}-byte limit`,
      'use fewer positions, or an adapter with a larger maxStorageBufferBindingSize',
    );
  }
  return Math.min(B, N);
}

export function tupleWidthsOf(p: SectionProgram, ids: readonly number[]): number[] {
  return ids.map((id) => p.values[id]!.width);
}

/** Concatenates tuple members [rows, w_j] into one new buffer [rows, Σw] (a node layer's activation), handed to the caller (adopt it into a scope). */
export function concatTuple(engine: Engine, parts: readonly GPUBuffer[], widths: readonly number[], rows: number): GPUBuffer {
  const W = widths.reduce((a, b) => a + b, 0);
  const out = engine.alloc(Math.max(16, rows * W * 4), 'tf.node');
  let c0 = 0;
  parts.forEach((buf, j) => {
    copyColumns(engine, { src: { buf, ld: widths[j]! }, dst: { buf: out, ld: W, col0: c0 }, groups: 1, per: rows, width: widths[j]! });
    c0 += widths[j]!;
  });
  return out;
}

/** Splits [rows, Σw] into new member buffers [rows, w_j], handed to the caller (adopt them into a scope). */
export function splitTuple(engine: Engine, whole: GPUBuffer, widths: readonly number[], rows: number): GPUBuffer[] {
  const W = widths.reduce((a, b) => a + b, 0);
  let c0 = 0;
  return widths.map((w) => {
    const out = engine.alloc(Math.max(16, rows * w * 4), 'tf.part');
    copyColumns(engine, { src: { buf: whole, ld: W, col0: c0 }, dst: { buf: out, ld: w }, groups: 1, per: rows, width: w });
    c0 += w;
    return out;
  });
}

export interface NodeLayout {
  name: string;
  /** Σ of the tuple widths. */
  width: number;
  widths: number[];
  positions: number;
}

export class GpuModel {
  readonly mp: ModelProgram;
  readonly P: number;
  readonly pre: GpuSectionProgram;
  readonly sections: GpuSectionProgram[];
  readonly nodes: NodeLayout[];
  private readonly engine: Engine;
  // The embedding tables live as long as the model (until dispose()), across every pass.
  private readonly buffers: BufferScope;
  private readonly WE: GPUBuffer;
  private readonly Wpos: GPUBuffer | undefined;
  /**
   * Node activations kept from the statistics pass ([N·P_ℓ, width] concatenated tuples, rows in
   * sample order) for the token array they were computed from: later passes over the same tokens
   * copy their batch rows from here instead of running the sections before that node again.
   * A cache outliving the pass that made it: its buffers are released explicitly (keepNode
   * replacing one, dropKept, dispose).
   */
  private readonly nodeCache = new Map<number, { tokens: ArrayLike<number>; n: number; buf: GPUBuffer }>();

  /** `P` is the sequence length of the token batches (the programs' input positions). */
  constructor(engine: Engine, mp: ModelProgram, P: number) {
    if (!mp.embed)
      throw new IbgpuError(
        'BAD_CONFIG',
        'GpuModel: the model program has no embedding stage',
        'GPU transformer passes take token sequences; compile the model with its embedding',
      );
    const inP = mp.pre.values[mp.pre.inputs[0]!]!.positions;
    checkShape(inP === P, `GpuModel: the program was compiled for ${inP} positions, the tokens have ${P}`, `compile with positions: ${P}`);
    checkShape(mp.sections.length === mp.nodeLayers.length - 1, `GpuModel: ${mp.sections.length} sections for ${mp.nodeLayers.length} node layers`);
    this.engine = engine;
    this.mp = mp;
    this.P = P;
    this.pre = new GpuSectionProgram(engine, mp.pre);
    this.sections = mp.sections.map((s) => new GpuSectionProgram(engine, s));
    const layout = (name: string, p: SectionProgram): NodeLayout => {
      const widths = tupleWidthsOf(p, p.outputs);
      return { name, widths, width: widths.reduce((a, b) => a + b, 0), positions: p.values[p.outputs[0]!]!.positions };
    };
    this.nodes = [layout(mp.nodeLayers[0]!, mp.pre), ...mp.sections.map((s, i) => layout(mp.nodeLayers[i + 1]!, s))];
    this.buffers = engine.scope();
    this.WE = this.buffers.upload(Float32Array.from(mp.embed.WE), 'tf.WE');
    this.Wpos = mp.embed.Wpos ? this.buffers.upload(Float32Array.from(mp.embed.Wpos.subarray(0, P * mp.embed.width)), 'tf.Wpos') : undefined;
  }

  /** Floats per sample of the largest buffer of a forward through every section. */
  forwardFloatsPerSample(): number {
    return Math.max(perSampleFloats(this.mp.pre), ...this.mp.sections.map((s) => perSampleFloats(s)));
  }

  /** Validates and uploads tokens [B·P] (sample-major) as u32. */
  uploadTokens(tokens: ArrayLike<number>, first: number, B: number): GPUBuffer {
    const vocab = this.mp.embed!.vocab;
    const ids = new Uint32Array(B * this.P);
    for (let i = 0; i < ids.length; i++) {
      const t = tokens[first * this.P + i]!;
      if (!Number.isInteger(t) || t < 0 || t >= vocab) {
        throw new IbgpuError(
          'BAD_FILE',
          `token ${i % this.P} of sample ${first + Math.floor(i / this.P)} is ${t}, outside the vocabulary 0..${vocab - 1}`,
          'check that the dataset was tokenised for this model',
        );
      }
      ids[i] = t;
    }
    return this.engine.upload(ids, 'tf.tokens');
  }

  /**
   * Runs samples [first, first + B) up to node layer `upTo` and returns its tuple buffers
   * ([B·P_node, w_j] each; the caller owns them: pass them to a scope with adoptAll). `visit`
   * sees every node layer's tuple on the way (before its buffers are released).
   */
  forwardTo(tokens: ArrayLike<number>, first: number, B: number, upTo: number, visit?: (node: number, tuple: readonly GPUBuffer[]) => void): GPUBuffer[] {
    checkShape(upTo >= 0 && upTo < this.nodes.length, `GpuModel.forwardTo: node ${upTo} outside 0..${this.nodes.length - 1}`);
    // Every intermediate tuple lives in this scope; only the last one is handed out.
    return this.engine.withScope((work) => {
      const tuple = this.recordForward(work, tokens, first, B, upTo, visit);
      for (const b of new Set(tuple)) work.keep(b);
      return tuple;
    });
  }

  private recordForward(
    work: BufferScope,
    tokens: ArrayLike<number>,
    first: number,
    B: number,
    upTo: number,
    visit?: (node: number, tuple: readonly GPUBuffer[]) => void,
  ): GPUBuffer[] {
    const e = this.engine;
    const cached = visit ? undefined : this.nodeCache.get(upTo);
    if (cached && cached.tokens === tokens && first + B <= cached.n) {
      const L = this.nodes[upTo]!;
      let c0 = 0;
      return L.widths.map((w) => {
        const out = work.alloc(Math.max(16, B * L.positions * w * 4), 'tf.part');
        copyColumns(e, {
          src: { buf: cached.buf, ld: L.width, col0: c0, row0: first * L.positions },
          dst: { buf: out, ld: w },
          groups: 1,
          per: B * L.positions,
          width: w,
        });
        c0 += w;
        return out;
      });
    }
    const tb = work.adopt(this.uploadTokens(tokens, first, B));
    const emb = work.adoptAll(embedBatch(e, this.mp.embed!, { WE: this.WE, Wpos: this.Wpos }, tb, B, this.P));
    work.release(tb);
    const run = (g: GpuSectionProgram, inputs: GPUBuffer[]): GPUBuffer[] => {
      const st = g.forward(inputs, B, { forVjp: false, scope: work });
      const outs = g.takeOutputs(st);
      // The state held only the outputs (forVjp false); they pass to this scope. Inputs that are
      // passed through unchanged as outputs stay alive.
      for (const b of outs) if (!inputs.includes(b)) work.adopt(b);
      work.release(...inputs.filter((b) => !outs.includes(b)));
      return outs;
    };
    let tuple = run(this.pre, emb);
    visit?.(0, tuple);
    for (let i = 0; i < upTo; i++) {
      tuple = run(this.sections[i]!, tuple);
      visit?.(i + 1, tuple);
    }
    return tuple;
  }

  /**
   * Keeps node `node`'s activations of samples [0, n) of `tokens` ([n·P_ℓ, width], the caller's
   * buffer passes to the model, which releases it on dispose or when replaced) for forwardTo.
   * The caller guarantees the rows are what forwardTo would compute for these tokens.
   */
  keepNode(node: number, tokens: ArrayLike<number>, n: number, buf: GPUBuffer): void {
    const L = this.nodes[node]!;
    checkShape(buf.size >= n * L.positions * L.width * 4, `GpuModel.keepNode: ${buf.size} bytes for ${n} samples of ${L.name}`);
    const old = this.nodeCache.get(node);
    if (old) this.engine.release(old.buf); // the cache's own buffer (see nodeCache)
    this.nodeCache.set(node, { tokens, n, buf });
  }

  /** Bytes held by kept node activations. */
  keptBytes(): number {
    let b = 0;
    for (const c of this.nodeCache.values()) b += c.buf.size;
    return b;
  }

  /** Drops every kept node activation. */
  dropKept(): void {
    for (const c of this.nodeCache.values()) this.engine.release(c.buf); // the cache's own buffers (see nodeCache)
    this.nodeCache.clear();
  }

  dispose(): void {
    this.dropKept();
    this.pre.dispose();
    for (const s of this.sections) s.dispose();
    this.buffers.close();
  }
}
