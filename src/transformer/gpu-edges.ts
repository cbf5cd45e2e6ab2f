// Squared edges of a transformer section on the GPU (SPEC-transformers §6.1):
//   E_ij = (1/(N·P_in)) Σ_n Σ_t ( Σ_k w_k Σ_s ∂F̂_{t,i}/∂u_{s,j}(α_k u) · u_{s,j} )²
// with u = f·C (node ℓ's basis, r_in wide) and F̂(u) = F(u·C⁺)·Ĉ. The section runs at the
// projected point f' = (f·C)·C⁺ (scaled by α_k), the VJP uses the cotangents of M′ (one per
// (t, i)), the integrated gradient g_s is mapped into the basis by h_s = g_s·C⁺ᵀ, and
// tf_edge_square forms Σ_b (Σ_s h_{s,j} u_{s,j})² per (t, i, j); the host adds the t terms and the
// batches in float64. When the section's VJP does not depend on the sample (linear ops only), h is
// computed once per batch for all samples and shared by the kernel.

import { checkShape } from '../errors.js';
import { matmul } from '../kernels/matmul.js';
import { edgeSquare, edgeSquareMaxSamples } from '../kernels/transformer-edges.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import { concatTuple, splitTuple, type GpuModel } from './gpu-model.js';
import { edgesLocalGpu } from './gpu-edges-local.js';
import { singleActSection } from './gpu-mdash-local.js';
import { edgesAttentionClosed, lastPosAttentionSection } from './gpu-attention-closed.js';
import { integratedVjp, vjpBlockSizes } from './gpu-mdash.js';
import { edgesLinear, linearSectionKind } from './linear-closed.js';
import type { ForwardState } from './gpu-program.js';
import { cotangentBlock, sectionGeometry, type SectionGeometry, type SectionVjpOptions } from './gpu-section.js';

export interface EdgeOptions extends SectionVjpOptions {
  /** Node ℓ's basis C (d_in × r_in) and its pseudo-inverse C⁺ (r_in × d_in), row-major. */
  C: Float64Array;
  Cpinv: Float64Array;
  rIn: number;
  /**
   * The input node layer's second moment (1/(N·P)) Σ f fᵀ (d_in × d_in), when the statistics pass
   * has it: position-local linear sections then take the closed form of linear-closed.ts.
   */
  secondMoment?: Float64Array;
}

/** E (r_out × r_in row-major), divided by N·P_in. */
export async function edgesSquaredGpu(
  engine: Engine,
  model: GpuModel,
  s: number,
  tokens: ArrayLike<number>,
  N: number,
  opts: EdgeOptions,
): Promise<Float64Array> {
  const g = sectionGeometry(model, s, opts.Chat, opts.rOut);
  const rIn = opts.rIn;
  checkShape(
    Number.isInteger(rIn) && rIn >= 1 && opts.C.length === g.dIn * rIn && opts.Cpinv.length === rIn * g.dIn,
    `edgesSquaredGpu: C must be ${g.dIn} × ${rIn} and C⁺ ${rIn} × ${g.dIn}`,
    'pass the node layer basis C and Cpinv with rIn = its kept directions',
  );
  checkShape(
    Number.isInteger(N) && N >= 1 && tokens.length >= N * model.P,
    `edgesSquaredGpu: ${tokens.length} tokens for N = ${N} samples of ${model.P} positions`,
  );
  // Linear sections with their input's second moment at hand: no data pass (linear-closed.ts).
  const lin = opts.generic || !opts.secondMoment ? undefined : linearSectionKind(model.sections[s]!.program);
  if (lin === 'local' || (lin === 'mixing' && g.pIn === 1)) {
    checkShape(opts.secondMoment!.length === g.dIn * g.dIn, `edgesSquaredGpu: the second moment must be ${g.dIn} × ${g.dIn}`);
    opts.onPath?.("linear closed form from the statistics' second moment, host float64, no data pass");
    return edgesLinear(
      model.sections[s]!.program,
      g,
      opts.Chat,
      opts.points.weights.reduce((a, b) => a + b, 0),
      opts,
      opts.secondMoment!,
    );
  }
  // Position-local single-activation sections (MLP blocks) run on the MLP edge kernels (gpu-edges-local.ts).
  const local = opts.generic ? undefined : singleActSection(model.sections[s]!.program);
  if (local && g.pOut === g.pIn) return edgesLocalGpu({ engine, model, s, tokens, N, g }, opts, local);
  // Attention cut to the last position, one integration point: the closed form of gpu-attention-closed.ts.
  const att = opts.generic || opts.points.alphas.length !== 1 ? undefined : lastPosAttentionSection(model.sections[s]!.program);
  if (att) return edgesAttentionClosed({ engine, model, s, tokens, N, g }, opts, att);
  const sizes = vjpBlockSizes(engine, model, s, g, N, opts);
  opts.onPath?.('per-sample VJPs on the GPU');
  const B = Math.min(sizes.B, edgeSquareMaxSamples(engine, g.pIn));
  const Kb = sizes.Kb;
  const sec = model.sections[s]!;
  const pass = engine.scope();
  try {
    const blocks: GPUBuffer[] = [];
    for (let k0 = 0; k0 < g.K; k0 += Kb) blocks.push(pass.upload(cotangentBlock(g, opts.Chat, k0, Math.min(Kb, g.K - k0)), 'tf.cot-block'));
    return await vjpEdgePass(engine, pass, model, s, g, tokens, N, { B, Kb, scale: 1 / (N * g.pIn) }, opts, (batch, states, _first, b, k0, kb) => {
      const total = integratedVjp(engine, sec, states, opts.points.weights, blocks[k0 / Kb]!, g, b, kb, true);
      return { grad: batch.adopt(total.buf), shared: total.shared };
    });
  } finally {
    pass.close();
  }
}

/**
 * One block of cotangents' integrated gradient for samples [first, first + b), as addEdgeBlock
 * takes it: a buffer of `batch` ([(shared ? 1 : b)·kb·P_in, d_in]).
 */
export type EdgeBlockGradient = (
  batch: BufferScope,
  states: ForwardState[],
  first: number,
  b: number,
  k0: number,
  kb: number,
) => { grad: GPUBuffer; shared: boolean };

/**
 * The batch loop of the VJP edge passes (exact and stochastic cotangents): per batch of B samples
 * the projected forward at every integration point (projectedBatch), per block of Kb cotangents the
 * block's integrated gradient (`blockGradient`) and its squared edges added into E (r_out × r_in),
 * returned times `scale`. Buffers live in child scopes of `pass`.
 */
export async function vjpEdgePass(
  engine: Engine,
  pass: BufferScope,
  model: GpuModel,
  s: number,
  g: SectionGeometry,
  tokens: ArrayLike<number>,
  N: number,
  { B, Kb, scale }: { B: number; Kb: number; scale: number },
  opts: { C: Float64Array; Cpinv: Float64Array; rIn: number; points: { alphas: ArrayLike<number> } },
  blockGradient: EdgeBlockGradient,
): Promise<Float64Array> {
  const rIn = opts.rIn;
  const E = new Float64Array(g.rOut * rIn);
  const Cb = pass.upload(Float32Array.from(opts.C), 'tf.C');
  const Cpb = pass.upload(Float32Array.from(opts.Cpinv), 'tf.Cpinv');
  for (let first = 0; first < N; first += B) {
    const b = Math.min(B, N - first);
    const batch = pass.scope();
    const { u, states } = projectedBatch(engine, batch, model, s, g, tokens, first, b, { C: Cb, Cpinv: Cpb, rIn }, opts.points.alphas);
    const reads: Promise<void>[] = [];
    for (let k0 = 0; k0 < g.K; k0 += Kb) {
      const kb = Math.min(Kb, g.K - k0);
      const { grad, shared } = blockGradient(batch, states, first, b, k0, kb);
      reads.push(addEdgeBlock(engine, batch, grad, shared, Cpb, u, E, { g, b, k0, kb, rIn }));
    }
    batch.close(); // u, the projected parts and the forward states
    await Promise.all(reads);
  }
  for (let i = 0; i < E.length; i++) E[i] = E[i]! * scale;
  return E;
}

/**
 * Adds one block of cotangents' squared edges into E (r_out × r_in): h = grad·C⁺ᵀ (rows × r_in;
 * `grad` is the block's integrated gradient [(shared ? 1 : b)·kb·P_in, d_in], a buffer of `scope`,
 * released once h is recorded), then edgeSquare's Σ over samples and positions of (h ⊙ u)² per
 * (k, j), read back into rows (k0 + kk) mod r_out of E (k = r·r_out + i for stochastic blocks).
 * Resolves when the block is added.
 */
export function addEdgeBlock(
  engine: Engine,
  scope: BufferScope,
  grad: GPUBuffer,
  shared: boolean,
  Cpb: GPUBuffer,
  u: GPUBuffer,
  E: Float64Array,
  { g, b, k0, kb, rIn }: { g: SectionGeometry; b: number; k0: number; kb: number; rIn: number },
): Promise<void> {
  const rows = (shared ? 1 : b) * kb * g.pIn;
  const h = scope.alloc(rows * rIn * 4, 'tf.h');
  matmul(engine, grad, Cpb, h, { m: rows, n: rIn, k: g.dIn, transB: true });
  scope.release(grad);
  const out = scope.alloc(Math.max(16, kb * rIn * 4), 'tf.edge-partial');
  edgeSquare(engine, h, u, out, b, kb, g.pIn, rIn, shared);
  scope.release(h);
  const read = engine.readF32(out, kb * rIn).then((part) => {
    for (let kk = 0; kk < kb; kk++) {
      const i = (k0 + kk) % g.rOut;
      for (let j = 0; j < rIn; j++) E[i * rIn + j]! += part[kk * rIn + j]!;
    }
  });
  scope.release(out);
  return read;
}

/**
 * One batch of section s evaluated where rib evaluates edges: the node layer's activations f
 * projected onto the kept directions, f ↦ u = f·C ↦ u·C⁺, then the section's forward at each
 * integration point. Returns u (rows × rIn), the projected input parts and the forward states,
 * all held by `scope` (the states in child scopes).
 */
export function projectedBatch(
  engine: Engine,
  scope: BufferScope,
  model: GpuModel,
  s: number,
  g: SectionGeometry,
  tokens: ArrayLike<number>,
  first: number,
  b: number,
  basis: { C: GPUBuffer; Cpinv: GPUBuffer; rIn: number },
  alphas: ArrayLike<number>,
): { u: GPUBuffer; parts: GPUBuffer[]; states: ForwardState[] } {
  const rowsIn = b * g.pIn;
  const inputs = scope.adoptAll(model.forwardTo(tokens, first, b, s));
  const f = scope.adopt(concatTuple(engine, inputs, g.widthsIn, rowsIn));
  scope.release(...inputs);
  const u = scope.alloc(rowsIn * basis.rIn * 4, 'tf.u');
  matmul(engine, f, basis.C, u, { m: rowsIn, n: basis.rIn, k: g.dIn });
  const fp = scope.alloc(rowsIn * g.dIn * 4, 'tf.fproj');
  matmul(engine, u, basis.Cpinv, fp, { m: rowsIn, n: g.dIn, k: basis.rIn });
  scope.release(f);
  const parts = scope.adoptAll(splitTuple(engine, fp, g.widthsIn, rowsIn));
  scope.release(fp);
  const sec = model.sections[s]!;
  return { u, parts, states: Array.from(alphas, (a) => sec.forward(parts, b, { alpha: a, scope })) };
}
