// M′ and squared edges of a transformer section on the GPU with rib's stochastic sources
// (SPEC-transformers §5.1 table, §6.2; the draws and their layout: stochastic.ts). Unlike the
// deterministic set, each sample has its own cotangents, so the VJP runs on per-sample cotangent
// blocks [b·Kb·P_out, d_out] (no sharing across samples, and none of the closed forms of
// gpu-mdash-local.ts, which assume the deterministic set):
//   M′ = (1/(N·P_in·R)) Σ_n Σ_k Σ_s g_s g_sᵀ                  (shared Gram kernel, f32 per batch)
//   E_ij = (1/(N·P_in·R)) Σ_n Σ_{k: k mod r_out = i} (Σ_s h_{s,j} u_{s,j})²   (tf_edge_square)
// The host draws each K-block's cotangents for the batch (the same float64 draws as
// passes-f64.ts, rounded to f32 on upload), so GPU and float64 agree for the same seed.
//
// Memory: one batch's forward states and one K-block of cotangents and gradients, on the GPU and
// (cotangents only) on the host; block and batch sizes from vjpBlockSizes, as the deterministic
// passes. Nothing grows with N or K.

import { checkShape } from '../errors.js';
import { GramAccumulator } from '../kernels/gram.js';
import { edgeSquareMaxSamples } from '../kernels/transformer-edges.js';
import { copyColumns } from '../kernels/transformer-elementwise.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import { vjpEdgePass } from './gpu-edges.js';
import { vjpBlockSizes } from './gpu-mdash.js';
import type { GpuModel } from './gpu-model.js';
import type { ForwardState, GpuSectionProgram } from './gpu-program.js';
import { sectionGeometry, type SectionGeometry, type SectionVjpOptions } from './gpu-section.js';
import { stochasticCotangents, stochasticK, stochasticR, type StochasticKind, type StochasticSources } from './stochastic.js';

export interface StochasticVjpOptions extends SectionVjpOptions {
  stochastic: StochasticSources;
}

/** The section's geometry with K replaced by the stochastic set's cotangent count. */
function stochasticGeometry(model: GpuModel, s: number, opts: StochasticVjpOptions, kind: StochasticKind): SectionGeometry {
  const g = sectionGeometry(model, s, opts.Chat, opts.rOut);
  return { ...g, K: stochasticK(opts.stochastic, kind, g.pOut, g.rOut) };
}

/** Block k ∈ [k0, k0 + kb) of the cotangents of samples [first, first + b): [b·kb·P_out, d_out], f32, in a buffer of `scope`. */
function uploadBlock(
  scope: BufferScope,
  opts: StochasticVjpOptions,
  kind: StochasticKind,
  s: number,
  g: SectionGeometry,
  first: number,
  b: number,
  k0: number,
  kb: number,
): GPUBuffer {
  const per = kb * g.pOut * g.dOut;
  const out = new Float32Array(b * per);
  for (let n = 0; n < b; n++) out.set(stochasticCotangents(opts.stochastic, kind, s, first + n, g.pOut, g.dOut, g.rOut, opts.Chat, k0, kb).cot, n * per);
  return scope.upload(out, 'tf.stoch-cot');
}

/**
 * g = Σ_q w_q · VJP(states[q], cot) concatenated over the input tuple, per sample:
 * [b·kb·P_in, d_in], a buffer of `scope`.
 */
function integratedVjpPerSample(
  engine: Engine,
  scope: BufferScope,
  sec: GpuSectionProgram,
  states: readonly ForwardState[],
  weights: ArrayLike<number>,
  cot: GPUBuffer,
  g: SectionGeometry,
  b: number,
  kb: number,
): GPUBuffer {
  const rowsOut = b * kb * g.pOut;
  const work = scope.scope();
  try {
    let c0 = 0;
    const cots = g.widthsOut.map((w) => {
      const buf = work.alloc(Math.max(16, rowsOut * w * 4), 'tf.cot');
      copyColumns(engine, { src: { buf: cot, ld: g.dOut, col0: c0 }, dst: { buf, ld: w }, groups: 1, per: rowsOut, width: w });
      c0 += w;
      return buf;
    });
    const rows = b * kb * g.pIn;
    const total = scope.alloc(Math.max(16, rows * g.dIn * 4), 'tf.g');
    states.forEach((st, q) => {
      const grads = work.adoptAll(sec.vjp(st, cots, kb));
      let col = 0;
      grads.forEach((buf, j) => {
        const w = g.widthsIn[j]!;
        copyColumns(engine, {
          src: { buf, ld: w },
          dst: { buf: total, ld: g.dIn, col0: col },
          groups: 1,
          per: rows,
          width: w,
          alpha: weights[q]!,
          accumulate: q > 0,
        });
        col += w;
      });
      work.release(...grads);
    });
    return total;
  } finally {
    work.close(); // the cotangent columns
  }
}

function checkData(model: GpuModel, tokens: ArrayLike<number>, N: number, what: string): void {
  checkShape(Number.isInteger(N) && N >= 1 && tokens.length >= N * model.P, `${what}: ${tokens.length} tokens for N = ${N} samples of ${model.P} positions`);
}

/** Stochastic M′ of section s, d_in × d_in row-major, divided by N·P_in·R. */
export async function mDashStochasticGpu(
  engine: Engine,
  model: GpuModel,
  s: number,
  tokens: ArrayLike<number>,
  N: number,
  opts: StochasticVjpOptions,
): Promise<Float64Array> {
  const g = stochasticGeometry(model, s, opts, 'basis');
  checkData(model, tokens, N, 'mDashStochasticGpu');
  const sec = model.sections[s]!;
  const { B, Kb } = vjpBlockSizes(engine, model, s, g, N, opts);
  const gram = new GramAccumulator(engine, g.dIn);
  try {
    for (let first = 0; first < N; first += B) {
      const b = Math.min(B, N - first);
      const pending = engine.withScope((batch) => {
        const inputs = batch.adoptAll(model.forwardTo(tokens, first, b, s));
        const states = Array.from(opts.points.alphas, (a) => sec.forward(inputs, b, { alpha: a, scope: batch }));
        const pending: Promise<void>[] = [];
        for (let k0 = 0; k0 < g.K; k0 += Kb) {
          const kb = Math.min(Kb, g.K - k0);
          const cot = uploadBlock(batch, opts, 'basis', s, g, first, b, k0, kb);
          const total = integratedVjpPerSample(engine, batch, sec, states, opts.points.weights, cot, g, b, kb);
          batch.release(cot);
          const p = gram.addBatch(total, b * kb * g.pIn);
          if (p) pending.push(p);
          batch.release(total);
        }
        return pending;
      });
      await Promise.all(pending);
    }
    const m = await gram.result();
    const scale = 1 / (N * g.pIn * stochasticR(opts.stochastic, 'basis'));
    for (let i = 0; i < m.length; i++) m[i] = m[i]! * scale;
    return m;
  } finally {
    gram.dispose();
  }
}

export interface StochasticEdgeOptions extends StochasticVjpOptions {
  C: Float64Array;
  Cpinv: Float64Array;
  rIn: number;
}

/** Stochastic squared edges of section s (r_out × r_in row-major), divided by N·P_in·R. */
export async function edgesStochasticGpu(
  engine: Engine,
  model: GpuModel,
  s: number,
  tokens: ArrayLike<number>,
  N: number,
  opts: StochasticEdgeOptions,
): Promise<Float64Array> {
  const g = stochasticGeometry(model, s, opts, 'edges');
  const rIn = opts.rIn;
  checkShape(
    Number.isInteger(rIn) && rIn >= 1 && opts.C.length === g.dIn * rIn && opts.Cpinv.length === rIn * g.dIn,
    `edgesStochasticGpu: C must be ${g.dIn} × ${rIn} and C⁺ ${rIn} × ${g.dIn}`,
    'pass the node layer basis C and Cpinv with rIn = its kept directions',
  );
  checkData(model, tokens, N, 'edgesStochasticGpu');
  const sizes = vjpBlockSizes(engine, model, s, g, N, opts);
  const B = Math.min(sizes.B, edgeSquareMaxSamples(engine, g.pIn));
  const Kb = sizes.Kb;
  const sec = model.sections[s]!;
  const scale = 1 / (N * g.pIn * stochasticR(opts.stochastic, 'edges'));
  return engine.withScope((pass) =>
    vjpEdgePass(engine, pass, model, s, g, tokens, N, { B, Kb, scale }, opts, (batch, states, first, b, k0, kb) => {
      const cot = uploadBlock(batch, opts, 'edges', s, g, first, b, k0, kb);
      const grad = integratedVjpPerSample(engine, batch, sec, states, opts.points.weights, cot, g, b, kb);
      batch.release(cot);
      return { grad, shared: false };
    }),
  );
}
