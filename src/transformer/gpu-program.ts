// The GPU interpreter of a SectionProgram (src/model/program.ts): the forward of a batch of B
// samples and the VJP of that batch for a block of K cotangents per sample, in f32.
//
// Layouts: a forward value v is one buffer [B·P_v, width_v] (sample-major, then position); a
// cotangent block on v is [B·K·P_v, width_v] (sample, cotangent, position). The forward values
// the VJP needs are broadcast over k inside the kernels, so the VJP never copies them K times.
//
// Memory: the forward keeps only what the VJP reads (inputs of act, lnVar, lnDiv and attention,
// and the attention probabilities) plus the outputs; every other value is released after its
// last reader. The VJP releases each cotangent once the op that produced its value is done.
// Callers bound B and K (vjpBlockSizes in gpu-mdash.ts); this module allocates what it is given.
//
// Linear ops and their VJPs run on the shared matmul kernel (gpu-linear.ts, src/kernels/matmul.ts).

import { checkShape, IbgpuError } from '../errors.js';
import { attentionForward, attentionProbFloats, attentionVjp, type AttentionShape } from '../kernels/transformer-attention.js';
import { actForward, actVjp, copyColumns, copyRows, gatherPositions, gatherTokens, rotary, uploadRotaryTable } from '../kernels/transformer-elementwise.js';
import { lnDiv, lnDivVjp, lnVar, lnVarVjp } from '../kernels/transformer-ln.js';
import { opInputs, type EmbedSpec, type Op, type SectionProgram } from '../model/program.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import { GpuLinear } from './gpu-linear.js';

/** Forward values of one batch, kept for the VJP. */
export interface ForwardState {
  B: number;
  /** Value id → buffer [B·P, width] (only the values still alive). */
  values: Map<number, GPUBuffer>;
  /** Op index → attention probabilities [B·heads, P, P]. */
  probs: Map<number, GPUBuffer>;
  /** Value ids whose buffers the state owns (the rest are the caller's inputs). */
  owned: Set<number>;
  /** Holds the owned values and the probabilities; closed by releaseState. */
  buffers: BufferScope;
}

export interface VjpOptions {
  /** The cotangents are one block for all samples, [K·P_out, width]. */
  shared?: boolean;
  /** Return still sample-independent input gradients shared, [K·P_in, width]. */
  keepShared?: boolean;
  /** Filled with one flag per input: whether its gradient was returned shared. */
  sharedOut?: boolean[];
}

/** A cotangent: per sample [B·K·P, w], or shared by all samples [K·P, w]. */
interface Grad {
  buf: GPUBuffer;
  shared: boolean;
}

/** Ops whose VJP reads the sample's forward values (all others act on every sample alike). */
const SAMPLE_DEPENDENT = new Set<Op['kind']>(['act', 'lnVar', 'lnDiv', 'attention']);

export interface ForwardOptions {
  /** Keep the values the VJP needs (default true). False: keep only the outputs. */
  forVjp?: boolean;
  /** Multiply every input by alpha first (the integration point α·f); the inputs are not modified. */
  alpha?: number;
  /** The state's buffers live in a child scope of this one (closed with it at the latest); default: of the engine. */
  scope?: BufferScope;
}

/** Inputs the VJP of op reads from the forward. */
function vjpReads(op: Op): number[] {
  switch (op.kind) {
    case 'act':
    case 'lnVar':
      return [op.x];
    case 'lnDiv':
      return [op.v, op.x];
    case 'attention':
      return [op.q, op.k, op.v];
    default:
      return [];
  }
}

export class GpuSectionProgram {
  readonly program: SectionProgram;
  private readonly engine: Engine;
  /** Op index → rotary table. */
  private readonly weights = new Map<number, GPUBuffer>();
  // The rotary tables live as long as the program (until dispose()), across every batch.
  private readonly buffers: BufferScope;
  /** Op index → linear op on the matmul kernel. */
  private readonly linears = new Map<number, GpuLinear>();
  /** Value id → index of the last op reading it in the forward. */
  private readonly lastRead = new Map<number, number>();
  private readonly vjpNeeded = new Set<number>();
  private readonly outputs: Set<number>;
  private disposed = false;

  constructor(engine: Engine, program: SectionProgram) {
    this.engine = engine;
    this.program = program;
    this.outputs = new Set(program.outputs);
    checkProgram(program);
    this.buffers = engine.scope();
    program.ops.forEach((op, i) => {
      for (const id of opInputs(op)) this.lastRead.set(id, i);
      for (const id of vjpReads(op)) this.vjpNeeded.add(id);
      if (op.kind === 'linear') this.linears.set(i, new GpuLinear(engine, op.W, op.wIn, op.wOut, `tf.${program.from}.W${i}`));
      if (op.kind === 'rotary') this.weights.set(i, this.buffers.adopt(uploadRotaryTable(engine, op, program.values[op.x]!.positions)));
    });
  }

  private shape(id: number): { w: number; P: number } {
    const v = this.program.values[id]!;
    return { w: v.width, P: v.positions };
  }

  private static alloc(scope: BufferScope, floats: number, label: string): GPUBuffer {
    return scope.alloc(Math.max(16, floats * 4), label);
  }

  /**
   * Runs the section on B samples. `inputs[i]` is the buffer of program.inputs[i], [B·P, width];
   * the caller keeps ownership of them and must keep them alive until the VJP of this state is
   * recorded (with alpha = 1 the VJP may read them). Returns the kept values; release with releaseState.
   */
  forward(inputs: readonly GPUBuffer[], B: number, opts: ForwardOptions = {}): ForwardState {
    this.assertLive();
    const buffers = opts.scope ? opts.scope.scope() : this.engine.scope();
    try {
      return this.record(inputs, B, opts, buffers);
    } catch (err) {
      buffers.close();
      throw err;
    }
  }

  private record(inputs: readonly GPUBuffer[], B: number, opts: ForwardOptions, buffers: BufferScope): ForwardState {
    const p = this.program;
    checkShape(inputs.length === p.inputs.length, `section ${p.from}->${p.to}: ${inputs.length} input buffers for a ${p.inputs.length}-member tuple`);
    checkShape(Number.isInteger(B) && B >= 1, `section ${p.from}->${p.to}: batch size ${B} is not a positive integer`);
    const forVjp = opts.forVjp ?? true;
    const alpha = opts.alpha ?? 1;
    const e = this.engine;
    const values = new Map<number, GPUBuffer>();
    const owned = new Set<number>();
    p.inputs.forEach((id, i) => {
      const { w, P } = this.shape(id);
      checkShape(inputs[i]!.size >= B * P * w * 4, `section ${p.from}->${p.to}: input ${i} (${p.values[id]!.label}) holds fewer than ${B}·${P}·${w} floats`);
      if (alpha === 1) values.set(id, inputs[i]!);
      else {
        const s = GpuSectionProgram.alloc(buffers, B * P * w, `tf.${p.values[id]!.label}`);
        copyRows(e, inputs[i]!, s, B * P, w, alpha);
        values.set(id, s);
        owned.add(id);
      }
    });
    const probs = new Map<number, GPUBuffer>();
    const get = (id: number): GPUBuffer => values.get(id)!;
    p.ops.forEach((op, i) => {
      const y = 'y' in op ? op.y : -1;
      const { w, P } = this.shape(y);
      const rows = B * P;
      const out = GpuSectionProgram.alloc(buffers, rows * w, `tf.${p.values[y]!.label}`);
      switch (op.kind) {
        case 'linear':
          this.linears.get(i)!.forward(get(op.x), out, rows);
          break;
        case 'act':
          actForward(e, get(op.x), out, rows * w, op.act);
          break;
        case 'lnVar':
          lnVar(e, get(op.x), out, rows, this.shape(op.x).w, op.d);
          break;
        case 'lnDiv':
          lnDiv(e, get(op.v), get(op.x), out, rows, op.d, op.eps);
          break;
        case 'rotary':
          rotary(e, get(op.x), this.weights.get(i)!, out, rows, P, op, false);
          break;
        case 'attention': {
          const a = attentionShape(op, B, P);
          const pr = GpuSectionProgram.alloc(buffers, attentionProbFloats(a), `tf.probs${i}`);
          attentionForward(e, get(op.q), get(op.k), get(op.v), out, pr, a);
          probs.set(i, pr);
          break;
        }
        case 'add':
          copyRows(e, get(op.a), out, rows, w);
          copyRows(e, get(op.b), out, rows, w, 1, true);
          break;
        case 'copy':
          copyRows(e, get(op.x), out, rows, w);
          break;
        case 'lastPos': {
          const Px = this.shape(op.x).P;
          copyColumns(e, { src: { buf: get(op.x), ld: w, stride: Px, row0: Px - 1 }, dst: { buf: out, ld: w, stride: 1 }, groups: B, per: 1, width: w });
          break;
        }
        case 'concat': {
          let c0 = 0;
          for (const id of op.xs) {
            const wx = this.shape(id).w;
            copyColumns(e, { src: { buf: get(id), ld: wx }, dst: { buf: out, ld: w, col0: c0 }, groups: 1, per: rows, width: wx });
            c0 += wx;
          }
          break;
        }
        case 'slice':
          copyColumns(e, {
            src: { buf: get(op.x), ld: this.shape(op.x).w, col0: op.from },
            dst: { buf: out, ld: w },
            groups: 1,
            per: rows,
            width: op.to - op.from,
          });
          break;
      }
      values.set(y, out);
      owned.add(y);
      // Release inputs whose last reader this was, unless the VJP or the caller needs them.
      for (const id of opInputs(op)) {
        if (this.lastRead.get(id) !== i || !owned.has(id) || this.outputs.has(id) || (forVjp && this.vjpNeeded.has(id))) continue;
        buffers.release(values.get(id));
        values.delete(id);
        owned.delete(id);
      }
    });
    // Drop what nobody needs any more: dead values (never read) the state owns, and borrowed
    // inputs (the caller owns them) unless the VJP reads them unscaled.
    for (const [id, buf] of [...values]) {
      if (this.outputs.has(id) || (forVjp && this.vjpNeeded.has(id))) continue;
      if (owned.has(id)) {
        buffers.release(buf);
        owned.delete(id);
      }
      values.delete(id);
    }
    return { B, values, probs, owned, buffers };
  }

  /** Output tuple buffers of a forward state, in program.outputs order. */
  outputBuffers(s: ForwardState): GPUBuffer[] {
    return this.program.outputs.map((id) => s.values.get(id)!);
  }

  /**
   * Hands the state's output buffers to the caller (they leave the state's scope; borrowed inputs
   * passed through stay the caller's anyway) and releases the rest of the state.
   */
  takeOutputs(s: ForwardState): GPUBuffer[] {
    const outs = this.program.outputs.map((id) => {
      const buf = s.values.get(id)!;
      if (s.owned.has(id)) {
        s.buffers.keep(buf);
        s.owned.delete(id);
      }
      return buf;
    });
    this.releaseState(s);
    return outs;
  }

  /** Releases the buffers the state owns (never the caller's inputs). */
  releaseState(s: ForwardState): void {
    s.buffers.close();
    s.values.clear();
    s.probs.clear();
    s.owned.clear();
  }

  /**
   * VJP of the batch in `s` for K cotangents per sample. `cot[i]` is the cotangent block on
   * program.outputs[i] (null: zero): [B·K·P_out, width], or with `shared` one block for all
   * samples, [K·P_out, width]. Returns one new buffer per input tuple member, [B·K·P_in, width_in]
   * (the caller releases them); the cotangent buffers are not modified.
   *
   * Shared cotangents stay shared (computed once for the batch, not B times) through the ops
   * whose VJP does not depend on the sample: linear, add, copy, concat, slice, lastPos and rotary
   * (position-only). They are broadcast over the batch at the first sample-dependent op (act,
   * LayerNorm, attention) or where they meet a per-sample cotangent. With `keepShared`, input
   * gradients that are still sample-independent are returned shared ([K·P_in, width]) and
   * `sharedOut` says which.
   */
  vjp(s: ForwardState, cot: readonly (GPUBuffer | null)[], K: number, opts: VjpOptions = {}): GPUBuffer[] {
    this.assertLive();
    // Every cotangent buffer made here lives in this scope; the input gradients are handed out.
    return this.engine.withScope((work) => this.recordVjp(work, s, cot, K, opts));
  }

  private recordVjp(work: BufferScope, s: ForwardState, cot: readonly (GPUBuffer | null)[], K: number, opts: VjpOptions): GPUBuffer[] {
    const p = this.program;
    const e = this.engine;
    const B = s.B;
    const sharedIn = opts.shared ?? false;
    checkShape(cot.length === p.outputs.length, `section ${p.from}->${p.to}: ${cot.length} cotangent buffers for a ${p.outputs.length}-member output tuple`);
    checkShape(Number.isInteger(K) && K >= 1, `section ${p.from}->${p.to}: K = ${K} is not a positive integer`);
    const grads = new Map<number, Grad>();
    const rowsOf = (id: number, shared: boolean): number => (shared ? 1 : B) * K * this.shape(id).P;
    const fresh = (id: number, shared: boolean): Grad => ({
      buf: GpuSectionProgram.alloc(work, rowsOf(id, shared) * this.shape(id).w, `tf.d${p.values[id]!.label}`),
      shared,
    });
    /** A per-sample copy of a shared gradient (the shared buffer is released when owned). */
    const broadcast = (id: number, g: Grad, owned: boolean): Grad => {
      if (!g.shared) return g;
      const { w, P } = this.shape(id);
      const out = fresh(id, false);
      copyColumns(e, { src: { buf: g.buf, ld: w, stride: 0 }, dst: { buf: out.buf, ld: w, stride: K * P }, groups: B, per: K * P, width: w });
      if (owned) work.release(g.buf);
      return out;
    };
    /** grad[id] += c; takes ownership of c.buf when `owned`. */
    const addGrad = (id: number, c: Grad, owned: boolean): void => {
      const { w } = this.shape(id);
      let have = grads.get(id);
      if (!have) {
        if (owned) grads.set(id, c);
        else {
          const g = fresh(id, c.shared);
          copyRows(e, c.buf, g.buf, rowsOf(id, c.shared), w);
          grads.set(id, g);
        }
        return;
      }
      if (have.shared !== c.shared) {
        if (have.shared) {
          have = broadcast(id, have, true);
          grads.set(id, have);
        } else {
          c = broadcast(id, c, owned);
          owned = true;
        }
      }
      copyRows(e, c.buf, have.buf, rowsOf(id, have.shared), w, 1, true);
      if (owned) work.release(c.buf);
    };
    p.outputs.forEach((id, i) => {
      const c = cot[i];
      if (!c) return;
      const { w } = this.shape(id);
      checkShape(
        c.size >= rowsOf(id, sharedIn) * w * 4,
        `section ${p.from}->${p.to}: cotangent ${i} holds fewer than ${sharedIn ? '' : `${B}·`}${K}·${this.shape(id).P}·${w} floats`,
      );
      addGrad(id, { buf: c, shared: sharedIn }, false);
    });
    const fwd = (id: number): GPUBuffer => {
      const b = s.values.get(id);
      if (!b)
        throw new IbgpuError(
          'SHAPE',
          `section ${p.from}->${p.to}: forward value ${p.values[id]!.label} was not kept`,
          'run forward with forVjp: true before vjp',
        );
      return b;
    };
    for (let i = p.ops.length - 1; i >= 0; i--) {
      const op = p.ops[i]!;
      const y = op.y;
      let g = grads.get(y);
      if (!g) continue;
      grads.delete(y);
      if (g.shared && SAMPLE_DEPENDENT.has(op.kind)) g = broadcast(y, g, true);
      const dy = g.buf;
      const sh = g.shared;
      const { w, P } = this.shape(y);
      const blk = { B, K, P };
      switch (op.kind) {
        case 'linear': {
          const have = grads.get(op.x);
          if (have && have.shared === sh) {
            this.linears.get(i)!.vjp(dy, have.buf, rowsOf(y, sh), true);
          } else {
            const dx = fresh(op.x, sh);
            this.linears.get(i)!.vjp(dy, dx.buf, rowsOf(y, sh));
            addGrad(op.x, dx, true);
          }
          break;
        }
        case 'act': {
          const dx = fresh(op.x, false);
          actVjp(e, fwd(op.x), dy, dx.buf, blk, w, op.act);
          addGrad(op.x, dx, true);
          break;
        }
        case 'lnVar': {
          const dx = fresh(op.x, false);
          lnVarVjp(e, fwd(op.x), dy, dx.buf, blk, this.shape(op.x).w, op.d);
          addGrad(op.x, dx, true);
          break;
        }
        case 'lnDiv': {
          const dx = fresh(op.x, false);
          const dv = fresh(op.v, false);
          lnDivVjp(e, fwd(op.v), fwd(op.x), dy, dx.buf, dv.buf, blk, op.d, op.eps);
          addGrad(op.x, dx, true);
          addGrad(op.v, dv, true);
          break;
        }
        case 'rotary': {
          const dx = fresh(op.x, sh);
          rotary(e, dy, this.weights.get(i)!, dx.buf, rowsOf(y, sh), P, op, true);
          addGrad(op.x, dx, true);
          break;
        }
        case 'attention': {
          const a = attentionShape(op, B, P);
          const dq = fresh(op.q, false);
          const dk = fresh(op.k, false);
          const dv = fresh(op.v, false);
          const ds = GpuSectionProgram.alloc(work, attentionProbFloats(a) * K, `tf.ds${i}`);
          attentionVjp(e, { q: fwd(op.q), k: fwd(op.k), v: fwd(op.v), probs: s.probs.get(i)!, dz: dy, dq: dq.buf, dk: dk.buf, dv: dv.buf, ds, K }, a);
          work.release(ds);
          addGrad(op.q, dq, true);
          addGrad(op.k, dk, true);
          addGrad(op.v, dv, true);
          break;
        }
        case 'add':
          addGrad(op.a, g, false);
          addGrad(op.b, g, false);
          break;
        case 'copy':
          addGrad(op.x, g, false);
          break;
        case 'lastPos': {
          const Px = this.shape(op.x).P;
          const dx = fresh(op.x, sh);
          e.clear(dx.buf, 0, rowsOf(op.x, sh) * w * 4);
          copyColumns(e, {
            src: { buf: dy, ld: w, stride: 1 },
            dst: { buf: dx.buf, ld: w, stride: Px, row0: Px - 1 },
            groups: (sh ? 1 : B) * K,
            per: 1,
            width: w,
          });
          addGrad(op.x, dx, true);
          break;
        }
        case 'concat': {
          let c0 = 0;
          for (const id of op.xs) {
            const wx = this.shape(id).w;
            const dx = fresh(id, sh);
            copyColumns(e, { src: { buf: dy, ld: w, col0: c0 }, dst: { buf: dx.buf, ld: wx }, groups: 1, per: rowsOf(y, sh), width: wx });
            addGrad(id, dx, true);
            c0 += wx;
          }
          break;
        }
        case 'slice': {
          const wx = this.shape(op.x).w;
          const dx = fresh(op.x, sh);
          e.clear(dx.buf, 0, rowsOf(op.x, sh) * wx * 4);
          copyColumns(e, { src: { buf: dy, ld: w }, dst: { buf: dx.buf, ld: wx, col0: op.from }, groups: 1, per: rowsOf(y, sh), width: op.to - op.from });
          addGrad(op.x, dx, true);
          break;
        }
      }
      work.release(dy);
    }
    const sharedOut: boolean[] = [];
    const out = p.inputs.map((id) => {
      let g = grads.get(id);
      grads.delete(id);
      if (!g) {
        g = fresh(id, !!opts.keepShared);
        e.clear(g.buf, 0, rowsOf(id, g.shared) * this.shape(id).w * 4);
      }
      if (g.shared && !opts.keepShared) g = broadcast(id, g, true);
      sharedOut.push(g.shared);
      return work.keep(g.buf);
    });
    // The gradients of values that are not inputs are released with the scope.
    if (opts.sharedOut) opts.sharedOut.splice(0, opts.sharedOut.length, ...sharedOut);
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.buffers.close();
    for (const l of this.linears.values()) l.dispose();
    this.weights.clear();
    this.linears.clear();
  }

  private assertLive(): void {
    if (this.disposed) throw new IbgpuError('DISPOSED', `section ${this.program.from}->${this.program.to} was disposed`, 'create a new GpuSectionProgram');
  }
}

function attentionShape(op: Extract<Op, { kind: 'attention' }>, B: number, P: number): AttentionShape {
  return { B, P, heads: op.heads, dHead: op.dHead, dV: op.dV, scale: op.scale, causal: op.causal, window: op.window };
}

/** Structural checks the kernels rely on (ids in range, widths consistent, SSA order). */
function checkProgram(p: SectionProgram): void {
  const where = `section ${p.from}->${p.to}`;
  const defined = new Set(p.inputs);
  const fail = (msg: string): never => {
    throw new IbgpuError('SHAPE', `${where}: ${msg}`, 'rebuild the program with src/model/transformer (a malformed program is a bug there)');
  };
  const val = (id: number) => p.values[id] ?? fail(`value id ${id} does not exist`);
  p.ops.forEach((op, i) => {
    for (const id of opInputs(op)) if (!defined.has(id)) fail(`op ${i} (${op.kind}) reads value ${id} before it is written`);
    const y = val(op.y);
    if (defined.has(op.y)) fail(`op ${i} (${op.kind}) writes value ${op.y} twice`);
    defined.add(op.y);
    const x = 'x' in op ? val(op.x) : undefined;
    switch (op.kind) {
      case 'linear':
        if (x!.width !== op.wIn || y.width !== op.wOut || op.W.length !== op.wIn * op.wOut)
          fail(`linear op ${i}: W is ${op.wIn}x${op.wOut} for widths ${x!.width} -> ${y.width}`);
        break;
      case 'lnDiv':
        if (val(op.x).width !== op.d + 1 || y.width !== op.d + 1 || val(op.v).width !== 1)
          fail(`lnDiv op ${i}: widths must be (1, d+1) -> d+1 with d = ${op.d}`);
        break;
      case 'lnVar':
        if (y.width !== 1 || x!.width < op.d) fail(`lnVar op ${i}: output width must be 1 and d ≤ input width`);
        break;
      case 'lastPos':
        if (y.positions !== 1 || y.width !== x!.width) fail(`lastPos op ${i}: output must be [1, ${x!.width}]`);
        break;
      case 'attention':
        if (
          val(op.q).width !== op.heads * op.dHead ||
          val(op.k).width !== op.heads * op.dHead ||
          val(op.v).width !== op.heads * op.dV ||
          y.width !== op.heads * op.dV
        ) {
          fail(`attention op ${i}: q, k must be heads·dHead wide and v, z heads·dV wide`);
        }
        break;
      case 'concat':
        if (op.xs.reduce((s, id) => s + val(id).width, 0) !== y.width) fail(`concat op ${i}: part widths do not add up to ${y.width}`);
        break;
      case 'slice':
        if (op.to - op.from !== y.width || op.from < 0 || op.to > x!.width) fail(`slice op ${i}: [${op.from}, ${op.to}) of a ${x!.width}-wide value`);
        break;
      case 'add':
        if (val(op.a).width !== y.width || val(op.b).width !== y.width) fail(`add op ${i}: operand widths differ`);
        break;
      default:
        if (x!.width !== y.width) fail(`${op.kind} op ${i}: width changes from ${x!.width} to ${y.width}`);
    }
  });
  for (const id of p.outputs) if (!defined.has(id)) fail(`output value ${id} is never written`);
}

/** Embedding of a token batch [B·P] (u32, validated < vocab): the tuple (e, pos) or (e). */
export function embedBatch(
  engine: Engine,
  embed: EmbedSpec,
  weights: { WE: GPUBuffer; Wpos?: GPUBuffer },
  tokens: GPUBuffer,
  B: number,
  P: number,
): GPUBuffer[] {
  const e = engine.alloc(B * P * embed.width * 4, 'tf.embed');
  gatherTokens(engine, tokens, weights.WE, e, B * P, embed.width);
  if (!weights.Wpos) return [e];
  const pos = engine.alloc(B * P * embed.width * 4, 'tf.pos_embed');
  gatherPositions(engine, weights.Wpos, pos, B * P, embed.width, P);
  return [e, pos];
}
