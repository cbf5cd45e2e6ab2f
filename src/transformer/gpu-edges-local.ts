// Squared edges of position-local sections with one elementwise activation (rib's MLP sections,
// e.g. modadd's ln2.0 → unembed: copy, W_in, act, W_out, residual add) on the MLP pipeline's edge
// kernels (src/kernels/edges.ts) instead of per-sample VJPs. The same section class as the
// gate-Gram form of M′ (gpu-mdash-local.ts, whose detection and sample-independent parts this
// reuses). With u = f·C (node ℓ's basis, r_in wide), the projected point f' = u·C⁺ and
// a = Σ_k w_k act'(α_k x'), x' = f'·A the act's input there, the cotangent Ĉ[:, i] at output
// position t reaches the inputs at position t only (position-local) as A (a ∘ r_i) + W s_i
// (W = Σ_k w_k; r_i, s_i, A as in gpu-mdash-local.ts). Mapped into the basis (h = g·C⁺ᵀ):
//   J̃_ij(n, t) = Σ_h r_i[h] a_h(n, t) (C⁺A)_jh  +  W Σ_c s_i[c] C⁺_jc.
// The first term is the MLP kernels' A·diag(g)·Bᵀ; the second is gate-free, so it is exactly a
// block of extra hidden units whose gate is always 1 (A' = [R | R_A], B' = [C⁺A | R_B], g' = [a, 1]),
// and the kernels apply unchanged. The block has k = min(r_out, r_in, d_in) units (the smallest
// exact factorisation of R_A R_Bᵀ = W·S·C⁺ᵀ; none when no path avoids the act). Each row of the
// kernels is one (sample, position), so E_ij = (1/(N·P)) Σ_rows (J̃_ij u_j)² is SPEC-transformers
// §6.1 with its Σ_s reduced to the one term s = t. ReLU sections take the carried-Jacobian kernel
// with its gate ordering (two-valued gates; the always-on block never changes between rows), other
// activations the per-row kernel. x' = u·(C⁺A) is one product on the GPU; r, s, A come from the
// float64 interpreter, so nothing but the gates depends on the data.

import { signPatternOrder } from '../cpu/gate-order.js';
import { checkShape } from '../errors.js';
import { CARRY_RESET_ROWS, edgeChunkRows, edgeOperandLayouts, pad4, recordEdgesSquared, recordEdgesSquaredDelta } from '../kernels/edges.js';
import { matmul } from '../kernels/matmul.js';
import { actVjp, copyColumns, copyRows } from '../kernels/transformer-elementwise.js';
import type { SectionProgram } from '../model/program.js';
import { bottomMap, topParts, type ActOp } from './gpu-mdash-local.js';
import { concatTuple, samplesPerBatch } from './gpu-model.js';
import type { SectionGeometry, SectionSamples, SectionVjpOptions } from './gpu-section.js';

export interface LocalEdgeOptions extends SectionVjpOptions {
  /** Node ℓ's basis C (d_in × r_in) and its pseudo-inverse C⁺ (r_in × d_in), row-major. */
  C: Float64Array;
  Cpinv: Float64Array;
  rIn: number;
}

/** The kernel operands of J̃ = A'·diag(g')·B'ᵀ: A' (r_out × h), B' (r_in × h), h = m + extra. */
export interface LocalEdgeFactors {
  /** Width of the act (gated hidden units). */
  m: number;
  /** Always-on units carrying the gate-free paths. */
  extra: number;
  A: Float64Array;
  B: Float64Array;
  /** C⁺A (r_in × m): the act's input at the projected point is u·(C⁺A). */
  CpA: Float64Array;
}

/**
 * A', B' for section program p (the caller checked singleActSection): the gated block from r_i and
 * C⁺A, the gate-free block W·S·C⁺ᵀ factored through the smallest of r_out, r_in, d_in units.
 */
export function localEdgeFactors(
  p: SectionProgram,
  act: { op: ActOp; index: number },
  g: SectionGeometry,
  Chat: Float64Array | undefined,
  Cpinv: Float64Array,
  rIn: number,
  W: number,
): LocalEdgeFactors {
  const { r, s } = topParts(p, act, g, Chat);
  const Amap = bottomMap(p, act, g);
  const m = p.values[act.op.x]!.width;
  const ro = g.rOut;
  const d = g.dIn;
  const CpA = new Float64Array(rIn * m);
  for (let j = 0; j < rIn; j++) {
    for (let c = 0; c < d; c++) {
      const v = Cpinv[j * d + c]!;
      if (v === 0) continue;
      for (let h = 0; h < m; h++) CpA[j * m + h]! += v * Amap[c * m + h]!;
    }
  }
  const hasResidual = s.some((v) => v !== 0);
  const extra = hasResidual ? Math.min(ro, rIn, d) : 0;
  const h = m + extra;
  const A = new Float64Array(ro * h);
  const B = new Float64Array(rIn * h);
  for (let i = 0; i < ro; i++) for (let k = 0; k < m; k++) A[i * h + k] = r[i * m + k]!;
  for (let j = 0; j < rIn; j++) for (let k = 0; k < m; k++) B[j * h + k] = CpA[j * m + k]!;
  if (extra > 0) {
    if (extra === d) {
      // R_A = S, R_B = W·C⁺.
      for (let i = 0; i < ro; i++) for (let c = 0; c < d; c++) A[i * h + m + c] = s[i * d + c]!;
      for (let j = 0; j < rIn; j++) for (let c = 0; c < d; c++) B[j * h + m + c] = W * Cpinv[j * d + c]!;
    } else {
      // R = W·S·C⁺ᵀ (r_out × r_in), then R_A = I, R_B = Rᵀ (extra = r_out) or R_A = R, R_B = I.
      const R = new Float64Array(ro * rIn);
      for (let i = 0; i < ro; i++) {
        for (let j = 0; j < rIn; j++) {
          let acc = 0;
          for (let c = 0; c < d; c++) acc += s[i * d + c]! * Cpinv[j * d + c]!;
          R[i * rIn + j] = W * acc;
        }
      }
      if (extra === ro) {
        for (let i = 0; i < ro; i++) A[i * h + m + i] = 1;
        for (let j = 0; j < rIn; j++) for (let i = 0; i < ro; i++) B[j * h + m + i] = R[i * rIn + j]!;
      } else {
        for (let i = 0; i < ro; i++) for (let j = 0; j < rIn; j++) A[i * h + m + j] = R[i * rIn + j]!;
        for (let j = 0; j < rIn; j++) B[j * h + m + j] = 1;
      }
    }
  }
  return { m, extra, A, B, CpA };
}

/** E (r_out × r_in row-major), divided by N·P_in, for a section singleActSection accepts with P_out = P_in. */
export async function edgesLocalGpu(run: SectionSamples, opts: LocalEdgeOptions, act: { op: ActOp; index: number }): Promise<Float64Array> {
  const { engine, model, s, tokens, N, g } = run;
  checkShape(g.pIn === g.pOut, `edgesLocalGpu: section ${s} maps ${g.pIn} positions to ${g.pOut}`, 'use edgesSquaredGpu, which takes any section');
  const rIn = opts.rIn;
  const ro = g.rOut;
  const P = g.pIn;
  const d = g.dIn;
  const r4 = pad4(rIn);
  const W = opts.points.weights.reduce((a, b) => a + b, 0);
  opts.onPath?.(`MLP edge kernels (${act.op.act === 'relu' ? 'carried Jacobian, ReLU switches only' : 'per row'}) on the GPU`);
  const fac = localEdgeFactors(model.sections[s]!.program, act, g, opts.Chat, opts.Cpinv, rIn, W);
  const { m } = fac;
  const h = m + fac.extra;
  // Rows per batch: the forward's buffers, the gates (rows × h), the per-chunk partials
  // (chunks × r_out × r_in) within one binding, and for the carried kernel its change list
  // (at most rows × h pairs of 8 bytes).
  const chunkRows = edgeChunkRows(engine, h);
  const partRows = Math.max(1, Math.floor(engine.maxBindingBytes / (ro * rIn * 4))) * chunkRows;
  let B = opts.batch ?? samplesPerBatch(engine, Math.max(model.forwardFloatsPerSample(), P * Math.max(h, r4, d)), N);
  B = Math.max(1, Math.min(B, Math.floor(partRows / P)));
  const deltaRows = Math.floor(engine.maxBindingBytes / (h * 8));
  const delta = act.op.act === 'relu' && deltaRows >= P;
  if (delta) B = Math.min(B, Math.floor(deltaRows / P));
  const maxRows = B * P;
  // C padded to r4 columns, so u comes out in the kernels' f̂ layout (zero-padded columns).
  const Cpad = new Float32Array(d * r4);
  for (let c = 0; c < d; c++) for (let j = 0; j < rIn; j++) Cpad[c * r4 + j] = opts.C[c * rIn + j]!;
  const CpApad = new Float32Array(r4 * m);
  CpApad.set(Float32Array.from(fac.CpA));
  const { at, bt } = edgeOperandLayouts(fac.A, fac.B, [], 0, h, ro, rIn);
  const E = new Float64Array(ro * rIn);
  const reads: Promise<void>[] = [];
  const pass = engine.scope();
  try {
    const bufs = {
      C: pass.upload(Cpad, 'tf.local.C'),
      CpA: pass.upload(CpApad, 'tf.local.CpA'),
      at: pass.upload(at, 'tf.local.at'),
      bt: pass.upload(bt, 'tf.local.bt'),
      ones: pass.upload(new Float32Array(maxRows * Math.max(m, fac.extra)).fill(1), 'tf.local.ones'),
    };
    for (let first = 0; first < N; first += B) {
      const b = Math.min(B, N - first);
      const rows = b * P;
      const batch = pass.scope();
      const inputs = batch.adoptAll(model.forwardTo(tokens, first, b, s));
      const f = batch.adopt(concatTuple(engine, inputs, g.widthsIn, rows));
      batch.release(...inputs);
      const u = batch.alloc(rows * r4 * 4, 'tf.local.u');
      matmul(engine, f, bufs.C, u, { m: rows, n: r4, k: d });
      batch.release(f);
      const x = batch.alloc(rows * m * 4, 'tf.local.x');
      matmul(engine, u, bufs.CpA, x, { m: rows, n: m, k: r4 });
      const gate = batch.alloc(rows * h * 4, 'tf.local.gate');
      const step = batch.alloc(rows * m * 4, 'tf.local.gate-step');
      const xa = opts.points.alphas.some((a) => a !== 1) ? batch.alloc(rows * m * 4, 'tf.local.x-alpha') : undefined;
      opts.points.alphas.forEach((alpha, k) => {
        // The section at α·f' has its act input at α·x' (every op before the act is linear).
        let at = x;
        if (alpha !== 1) {
          copyRows(engine, x, xa!, rows, m, alpha);
          at = xa!;
        }
        actVjp(engine, at, bufs.ones, step, { B: rows, K: 1, P: 1 }, m, act.op.act);
        copyColumns(engine, {
          src: { buf: step, ld: m },
          dst: { buf: gate, ld: h },
          groups: 1,
          per: rows,
          width: m,
          alpha: opts.points.weights[k]!,
          accumulate: k > 0,
        });
      });
      if (fac.extra > 0)
        copyColumns(engine, { src: { buf: bufs.ones, ld: fac.extra }, dst: { buf: gate, ld: h, col0: m }, groups: 1, per: rows, width: fac.extra });
      batch.release(x, step, xa);
      const shape = { fhat: u, at: bufs.at, bt: bufs.bt, rows, r: rIn, ro, h, chunkRows };
      let run: { part: GPUBuffer; chunks: number };
      if (delta) {
        const gates = await engine.readF32(gate, rows * h);
        batch.release(gate);
        run = recordEdgesSquaredDelta(engine, { ...shape, gates, order: signPatternOrder(gates, rows, h), reset: CARRY_RESET_ROWS });
      } else {
        run = recordEdgesSquared(engine, { ...shape, gates: gate });
        batch.release(gate);
      }
      const n = ro * rIn;
      const { part, chunks } = run;
      reads.push(
        engine.readF32(part, chunks * n).then((v) => {
          for (let c = 0; c < chunks; c++) for (let t = 0; t < n; t++) E[t]! += v[c * n + t]!;
        }),
      );
      batch.adopt(part);
      batch.close();
      if (reads.length > 1) await Promise.all(reads.splice(0, reads.length - 1));
    }
    await Promise.all(reads);
  } finally {
    pass.close();
  }
  const scale = 1 / (N * P);
  for (let i = 0; i < E.length; i++) E[i] = E[i]! * scale;
  return E;
}
