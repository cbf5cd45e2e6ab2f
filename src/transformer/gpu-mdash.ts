// M′ of a transformer section on the GPU (SPEC-transformers §5.1), the exact deterministic form:
// cotangents φ_(t,i) = e_t ⊗ Ĉ[:, i] for every output position t and kept direction i (Ĉ = C of
// the next node layer, or the identity for an unrotated output), the VJP at α_k·f for every
// integration point, the weighted sum over k, then
//   M′ = (1/(N·P_in)) Σ_n Σ_(t,i) Σ_s g_s g_sᵀ     (one outer product per INPUT position s)
// accumulated by the shared Gram kernel on the stacked g rows [b, (t,i), s] (f32 per batch,
// float64 across batches). The cotangents are the same for every sample: each block is uploaded
// once and the VJP keeps it shared (computed once per batch) until the first sample-dependent op.
// Three exact shortcuts:
//   - sections of linear ops only (e.g. unembed → output): the float64 closed form of
//     linear-closed.ts, without visiting the data (`generic: true` turns it off); other sections
//     whose gradients turn out sample-independent: g gᵀ is summed once and multiplied by N;
//   - position-local sections with one elementwise activation (MLP blocks): the gate-Gram closed
//     form of gpu-mdash-local.ts, with no per-sample VJP at all (`generic: true` turns it off);
//   - attention sections cut to the last position, with one integration point: the closed form
//     of gpu-attention-closed.ts (also used by the squared edges; `generic: true` turns it off).
//
// Memory: per batch, the forward states of every integration point plus one K-block of
// cotangents and gradients; K-block and batch are chosen from the batch buffer budget, so nothing
// grows with N (rib holds K·P·d gradients per sample for the whole batch).

import { checkShape } from '../errors.js';
import { GramAccumulator } from '../kernels/gram.js';
import { copyColumns } from '../kernels/transformer-elementwise.js';
import type { Engine } from '../runtime/engine.js';
import { lastPosAttentionSection, mDashAttentionClosed } from './gpu-attention-closed.js';
import { mDashLocalGpu, singleActSection } from './gpu-mdash-local.js';
import { linearSectionKind, mDashLinear } from './linear-closed.js';
import { cotangentBlock, sectionGeometry, type SectionGeometry, type SectionVjpOptions } from './gpu-section.js';
import { BATCH_BUFFER_BYTES, perSampleFloats, samplesPerBatch, type GpuModel } from './gpu-model.js';
import type { ForwardState, GpuSectionProgram } from './gpu-program.js';

/** K-block and batch size for VJP passes over section s (both bounded by the buffer budget). */
export function vjpBlockSizes(
  engine: Engine,
  model: GpuModel,
  s: number,
  g: SectionGeometry,
  N: number,
  opts: { batch?: number; kBlock?: number },
): { B: number; Kb: number } {
  const prog = model.sections[s]!.program;
  const per1 = Math.max(perSampleFloats(prog, 1), g.pIn * g.dIn, g.pOut * g.dOut);
  // At least ~16 samples per batch at the full block, so small batches do not dominate.
  const Kb = opts.kBlock ?? Math.max(1, Math.min(g.K, Math.floor(Math.min(BATCH_BUFFER_BYTES, engine.maxBindingBytes) / (4 * per1 * Math.min(16, N)))));
  const B = opts.batch ?? samplesPerBatch(engine, Math.max(model.forwardFloatsPerSample(), per1 * Kb), N);
  return { B, Kb };
}

/** An integrated gradient block: per sample [B·Kb·P_in, d_in], or shared by all samples [Kb·P_in, d_in]. */
export interface IntegratedGrad {
  buf: GPUBuffer;
  shared: boolean;
}

/**
 * Records, for one K-block, g = Σ_k w_k · VJP(states[k], φ) concatenated over the input tuple
 * into a new buffer (the caller releases it). `cot` is the uploaded block [Kb·P_out, d_out], the
 * same for every sample: the VJP keeps it shared until the first sample-dependent op. When every
 * member's gradient is still sample-independent at the inputs (a section of linear ops only) and
 * `allowShared` is set, g is returned shared; otherwise shared members are broadcast.
 */
export function integratedVjp(
  engine: Engine,
  sec: GpuSectionProgram,
  states: readonly ForwardState[],
  weights: ArrayLike<number>,
  cot: GPUBuffer,
  g: SectionGeometry,
  B: number,
  Kb: number,
  allowShared = false,
): IntegratedGrad {
  return engine.withScope((work) => {
    let c0 = 0;
    const cots = g.widthsOut.map((w) => {
      const buf = work.alloc(Math.max(16, Kb * g.pOut * w * 4), 'tf.cot');
      copyColumns(engine, { src: { buf: cot, ld: g.dOut, col0: c0 }, dst: { buf, ld: w }, groups: 1, per: Kb * g.pOut, width: w });
      c0 += w;
      return buf;
    });
    const perStep = states.map((st) => {
      const sharedOut: boolean[] = [];
      const grads = work.adoptAll(sec.vjp(st, cots, Kb, { shared: true, keepShared: true, sharedOut }));
      return { grads, sharedOut };
    });
    work.release(...cots);
    const shared = allowShared && perStep.every((q) => q.sharedOut.every(Boolean));
    const rows = (shared ? 1 : B) * Kb * g.pIn;
    const total = work.alloc(Math.max(16, rows * g.dIn * 4), 'tf.g');
    perStep.forEach(({ grads, sharedOut }, k) => {
      let col = 0;
      grads.forEach((buf, j) => {
        const w = g.widthsIn[j]!;
        const dst = { buf: total, ld: g.dIn, col0: col };
        const common = { alpha: weights[k]!, accumulate: k > 0, width: w };
        if (sharedOut[j] && !shared) {
          copyColumns(engine, { src: { buf, ld: w, stride: 0 }, dst: { ...dst, stride: Kb * g.pIn }, groups: B, per: Kb * g.pIn, ...common });
        } else {
          copyColumns(engine, { src: { buf, ld: w }, dst, groups: 1, per: rows, ...common });
        }
        col += w;
      });
      work.release(...grads);
    });
    return { buf: work.keep(total), shared };
  });
}

/** M′ of section s (node s → node s + 1), d_in × d_in row-major, divided by N·P_in. */
export async function mDashGpu(
  engine: Engine,
  model: GpuModel,
  s: number,
  tokens: ArrayLike<number>,
  N: number,
  opts: SectionVjpOptions,
): Promise<Float64Array> {
  const g = sectionGeometry(model, s, opts.Chat, opts.rOut);
  checkShape(Number.isInteger(N) && N >= 1 && tokens.length >= N * model.P, `mDashGpu: ${tokens.length} tokens for N = ${N} samples of ${model.P} positions`);
  const sec = model.sections[s]!;
  if (!opts.generic && linearSectionKind(sec.program)) {
    opts.onPath?.('linear closed form, host float64, no data pass');
    return mDashLinear(
      sec.program,
      g,
      opts.Chat,
      opts.points.weights.reduce((a, b) => a + b, 0),
    );
  }
  const act = opts.generic ? undefined : singleActSection(sec.program);
  if (act && g.pOut === g.pIn) return mDashLocalGpu({ engine, model, s, tokens, N, g }, opts, act);
  // Attention cut to the last position, one integration point: the closed form of gpu-attention-closed.ts.
  const att = opts.generic || opts.points.alphas.length !== 1 ? undefined : lastPosAttentionSection(sec.program);
  if (att) return mDashAttentionClosed({ engine, model, s, tokens, N, g }, opts, att);
  const { B, Kb } = vjpBlockSizes(engine, model, s, g, N, opts);
  opts.onPath?.('per-sample VJPs on the GPU');
  const pass = engine.scope();
  const blocks: GPUBuffer[] = [];
  for (let k0 = 0; k0 < g.K; k0 += Kb) blocks.push(pass.upload(cotangentBlock(g, opts.Chat, k0, Math.min(Kb, g.K - k0)), 'tf.cot-block'));
  const gram = new GramAccumulator(engine, g.dIn);
  // Blocks whose gradients turned out sample-independent: Σ_n g gᵀ = N·(g gᵀ), added once.
  const sharedGram = new GramAccumulator(engine, g.dIn);
  const sharedDone = blocks.map(() => false);
  try {
    for (let first = 0; first < N; first += B) {
      if (sharedDone.every(Boolean)) break;
      const b = Math.min(B, N - first);
      const batch = pass.scope();
      const inputs = batch.adoptAll(model.forwardTo(tokens, first, b, s));
      const states = Array.from(opts.points.alphas, (a) => sec.forward(inputs, b, { alpha: a, scope: batch }));
      const pending: Promise<void>[] = [];
      blocks.forEach((cot, bi) => {
        if (sharedDone[bi]) return;
        const kb = Math.min(Kb, g.K - bi * Kb);
        const total = integratedVjp(engine, sec, states, opts.points.weights, cot, g, b, kb, true);
        batch.adopt(total.buf);
        const p = total.shared ? sharedGram.addBatch(total.buf, kb * g.pIn) : gram.addBatch(total.buf, b * kb * g.pIn);
        if (total.shared) sharedDone[bi] = true;
        if (p) pending.push(p);
        batch.release(total.buf); // the next block reuses it once this one is submitted
      });
      batch.close(); // the states (child scopes) and the inputs
      await Promise.all(pending);
    }
    const m = await gram.result();
    const ms = await sharedGram.result();
    const scale = 1 / (N * g.pIn);
    for (let i = 0; i < m.length; i++) m[i] = (m[i]! + N * ms[i]!) * scale;
    return m;
  } finally {
    gram.dispose();
    sharedGram.dispose();
    pass.close();
  }
}
