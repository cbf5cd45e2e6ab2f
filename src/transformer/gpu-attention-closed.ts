// Closed-form M′ and squared edges for attention sections cut to the last position (rib's ln1.L → ln2.L with
// lastPos): q, k, v and a residual are linear maps of the input tuple (linear, copy, slice,
// concat, add only), one attention op, W_O and the residual add, then lastPos (P_in → P_out = 1).
// Only the query t* = P−1 reaches the output, so per sample n, cotangent k and head h
// (dz_k^h = the cotangent on z at t*, sample-independent; p_u^h the softmax row of query t*;
// w_u^h = v_u^h − Σ_u p_u^h v_u^h; ds_{k,u}^h = p_u^h dz_k^h·w_u^h):
//   g_{k,s} = δ_{s,t*} s_k + Σ_h p_s^h Z_k^h + Σ_h ds_{k,s}^h b^h + δ_{s,t*} Σ_{h,u} ds_{k,u}^h a_u^h
// with s_k the residual path, Z_k^h = V^h dz_k^h, b^h = K^h q_{t*}^h / scale, a_u^h = Q^h k_u^h / scale
// (V^h, K^h, Q^h: the input → v/k/q maps of head h, d_in × dV or d_in × dHead). Every g is
//   g_{k,s} = Σ_a π_{a,s} Y_k^a + Σ_{j∈J_s} ds_{k,j} c_j,
//   Y^0 = s, Y^{h+1} = Z^h, π_{0,s} = δ_{s,t*}, π_{h+1,s} = p_s^h,
//   J_{t*} = {(h,u)}: c_(h,u) = a_u^h + δ_{u,t*} b^h;  J_s = {(h,s)}: c = b^h for s ≠ t*,
// so, with β_{jj'} = Σ_k ds_{k,j} ds_{k,j'}, m_j = Σ_k (Σ_a π_a Y_k^a) ds_{k,j} and
// R_j = m_j + ½ Σ_j' β_{jj'} c_j' (β symmetric):
//   Σ_k g_{k,s} g_{k,s}ᵀ = Σ_{a,b} π_a π_b (Σ_k Y_k^a Y_k^bᵀ) + Σ_j (R_j c_jᵀ + c_j R_jᵀ).
// The (H+1)² matrices Σ_k Y^a Y^bᵀ are precomputed once and the sample enters them only through
// the scalars W_ab = Σ_{n,s} π_a π_b. The rest never touches d_in-wide vectors per sample:
//   - c_j = L φ_j with L = J's k and q columns (d_in × 2H·dHead) and φ_j holding
//     κ_(h,u) = k_u^h / scale in head h's q slot (+ q̂_h = q_{t*}^h / scale in its k slot at u = t*),
//     so Σ_j Σ_j' β_jj' c_j c_j'ᵀ = L Ψ Lᵀ with Ψ = Σ_{n,s} Φ_s β_s Φ_sᵀ (block-sparse, 2H·dHead square);
//   - m_j = p_u^h Σ_a π_a T^{a,h} w_u^h with T^{a,h} = Σ_k Y_k^a dz_k^hᵀ (d_in × dV, precomputed), so
//     Σ_j m_j c_jᵀ = Σ_{a,h} T^{a,h} (ΩQ^{a,h} Q^hᵀ + ΩK^{a,h} K^hᵀ) with the dV × dHead sums
//     ΩQ^{a,h} = Σ_n π^{t*}_a Σ_u p_u w_u κ_(h,u)ᵀ and ΩK^{a,h} = Σ_n (Σ_s π^s_a p_s w_s) q̂_hᵀ.
// Per sample that is O(K·H·P·dV + K·(H·P)² + H²·P·dHead² + (H+1)·H·dV·dHead) — independent of
// d_in — after
// one GPU matmul for the rows [v | k | q] = f·J of the batch.
//
// Exactness: the same function as the generic VJP path (no approximation), evaluated in float64
// on the host from the f32 rows f·J (and u = f·C for the edges) that the GPU model and the shared
// matmul kernel produce; the small sums above are float64 throughout. When the section reads node
// layer 0 and the vocabulary is no larger than N, the rows come instead from float64 tables per
// (token, position) (tokenRowTable): no GPU pass and no f32 at all, and the per-sample sums take
// their table form (src/host/attention-table-sums.ts: what depends on one row is computed once per
// distinct row, the outer products once per row). The per-sample sums run in
// src/host/attention-sums.ts (or the table form), in chunks on the host worker threads. One integration point only
// (gradient method; more points mix the α's inside the square and take the generic path).
// The maps V, K, Q, the residual path and dz come from the float64 interpreter run on the
// sample-independent parts of the program (cost independent of N).

import { forwardF64, inputGradientColumns, vjpSampleF64 } from '../cpu/program-f64.js';
import { opInputs, type Op, type SectionProgram } from '../model/program.js';
import { matmul } from '../kernels/matmul.js';
import { attentionShape, mDashSumLengths, mDashSumsView, SAMPLE_CHUNK } from '../host/attention-sums.js';
import { hostThreadPool, runHostTasks } from '../host/pool.js';
import { concatTuple, samplesPerBatch, type GpuModel } from './gpu-model.js';
import { mapCotangents } from './gpu-mdash-local.js';
import { attentionRowTables, edgeRowTables, TABLE_SAMPLE_CHUNK } from '../host/attention-table-sums.js';
import { gatherRows, tableRowIds, tokenRowTable } from './token-table.js';
import { mulRows } from '../host/mul-rows.js';
import { attentionT, omegaRows } from '../host/attention-t.js';
import { wasmOmegaRowsKernel } from '../host/attention-mdash-wasm.js';
import type { SectionGeometry, SectionSamples, SectionVjpOptions } from './gpu-section.js';

type AttentionOp = Extract<Op, { kind: 'attention' }>;

const LINEAR_KINDS = new Set<Op['kind']>(['linear', 'copy', 'slice', 'concat', 'add']);

/**
 * The attention op when `p` has the closed-form pattern: one attention op, every other op linear
 * per position (linear, copy, slice, concat, add) or lastPos, inputs at P positions, outputs at
 * one position, positions changed only by lastPos.
 */
export function lastPosAttentionSection(p: SectionProgram): { op: AttentionOp; index: number } | undefined {
  const P = p.values[p.inputs[0]!]!.positions;
  if (p.inputs.some((id) => p.values[id]!.positions !== P)) return undefined;
  if (p.outputs.some((id) => p.values[id]!.positions !== 1)) return undefined;
  let found: { op: AttentionOp; index: number } | undefined;
  for (const [index, op] of p.ops.entries()) {
    const Py = p.values[op.y]!.positions;
    const reads = opInputs(op);
    if (op.kind === 'attention') {
      if (found) return undefined;
      if (reads.some((id) => p.values[id]!.positions !== P) || Py !== P) return undefined;
      found = { op, index };
    } else if (op.kind === 'lastPos') {
      if (p.values[op.x]!.positions !== P || Py !== 1) return undefined;
    } else if (LINEAR_KINDS.has(op.kind)) {
      if (reads.some((id) => p.values[id]!.positions !== Py)) return undefined;
    } else {
      return undefined;
    }
  }
  return found;
}

function zerosFor(p: SectionProgram): Float64Array[] {
  return p.inputs.map((id) => new Float64Array(p.values[id]!.width * p.values[id]!.positions));
}

/** Sample-independent parts: J (d × m, input → [v | k | q]), S (K × d), DZ (K × H·dV). */
export interface AttentionClosedParts {
  J: Float64Array;
  m: number;
  S: Float64Array;
  DZ: Float64Array;
}

// Kept per program for Ĉ = I (VJPs through the float64 interpreter; a build needs them for the host
// statistics, M′ and the edges): S and DZ are linear in Ĉ, J does not depend on it.
const identityParts = new WeakMap<SectionProgram, AttentionClosedParts>();

export function attentionClosedParts(
  p: SectionProgram,
  att: { op: AttentionOp; index: number },
  g: SectionGeometry,
  Chat: Float64Array | undefined,
): AttentionClosedParts {
  let id = identityParts.get(p);
  if (!id) identityParts.set(p, (id = attentionClosedPartsOnce(p, att, { ...g, rOut: g.dOut, K: g.pOut * g.dOut }, undefined)));
  if (!Chat) return id;
  const HdV = att.op.heads * att.op.dV;
  return { J: id.J, m: id.m, S: mapCotangents(Chat, g.rOut, id.S, g.dOut, g.dIn), DZ: mapCotangents(Chat, g.rOut, id.DZ, g.dOut, HdV) };
}

function attentionClosedPartsOnce(
  p: SectionProgram,
  att: { op: AttentionOp; index: number },
  g: SectionGeometry,
  Chat: Float64Array | undefined,
): AttentionClosedParts {
  const { op } = att;
  const P = g.pIn;
  const d = g.dIn;
  const K = g.rOut;
  const HdV = op.heads * op.dV;
  const HdH = op.heads * op.dHead;
  const m = HdV + 2 * HdH;
  // Bottom: the ops before the attention, outputs (v, k, q); unit cotangents at position 0.
  const bot: SectionProgram = { ...p, outputs: [op.v, op.k, op.q], ops: p.ops.slice(0, att.index) };
  const cot = [op.v, op.k, op.q].map((id) => new Float64Array(m * P * p.values[id]!.width));
  const offs = [0, HdV, HdV + HdH];
  for (let c = 0; c < m; c++) {
    const j = c < HdV ? 0 : c < HdV + HdH ? 1 : 2;
    const w = p.values[[op.v, op.k, op.q][j]!]!.width;
    cot[j]![c * P * w + (c - offs[j]!)] = 1;
  }
  const gb = vjpSampleF64(bot, forwardF64(bot, zerosFor(bot), 1), 0, cot, m);
  const J = inputGradientColumns(p, gb, m, P);
  // Top: the program without the attention, z an input; the VJP of the K output cotangents
  // stops at z (→ dz) and carries the residual path to the inputs (→ s), both at t* = P−1.
  const top: SectionProgram = { ...p, inputs: [...p.inputs, op.y], ops: p.ops.filter((_, i) => i !== att.index) };
  let c0 = 0;
  const cots = p.outputs.map((id) => {
    const w = p.values[id]!.width;
    const c = new Float64Array(K * w);
    for (let i = 0; i < K; i++) for (let a = 0; a < w; a++) c[i * w + a] = Chat ? Chat[(c0 + a) * g.rOut + i]! : c0 + a === i ? 1 : 0;
    c0 += w;
    return c;
  });
  const gt = vjpSampleF64(top, forwardF64(top, zerosFor(top), 1), 0, cots, K);
  const t = P - 1;
  const S = new Float64Array(K * d);
  const DZ = new Float64Array(K * HdV);
  const gz = gt[gt.length - 1]!;
  for (let k = 0; k < K; k++) {
    for (let c = 0; c < HdV; c++) DZ[k * HdV + c] = gz[(k * P + t) * HdV + c]!;
    let off = 0;
    p.inputs.forEach((id, j) => {
      const w = p.values[id]!.width;
      for (let a = 0; a < w; a++) S[k * d + off + a] = gt[j]![(k * P + t) * w + a]!;
      off += w;
    });
  }
  return { J, m, S, DZ };
}

/**
 * One batch's node activations through the GPU model, multiplied on the GPU by J (f32 matmul):
 * rows f·J [b·P, m], or with a basis the projected point's rows f'·J = (f C)(C⁺ J) and u = f C
 * [b·P, r]; `CpJ` = C⁺J (r × m) is formed once in float64, so the d_in-wide f' is never built.
 */
async function batchRows(
  { engine, model, s, tokens, g }: SectionSamples,
  first: number,
  b: number,
  Jb: GPUBuffer,
  m: number,
  shared: boolean,
  basis?: { Cb: GPUBuffer; r: number },
): Promise<{ xj: Float64Array; u?: Float64Array }> {
  const rows = b * g.pIn;
  return engine.withScope(async (batch) => {
    const inputs = batch.adoptAll(model.forwardTo(tokens, first, b, s));
    const f = batch.adopt(concatTuple(engine, inputs, g.widthsIn, rows));
    batch.release(...inputs);
    const xjb = batch.alloc(Math.max(16, rows * m * 4), 'tf.fJ');
    let u: GPUBuffer | undefined;
    if (basis) {
      u = batch.alloc(Math.max(16, rows * basis.r * 4), 'tf.u');
      matmul(engine, f, basis.Cb, u, { m: rows, n: basis.r, k: g.dIn });
      matmul(engine, u, Jb, xjb, { m: rows, n: m, k: basis.r });
    } else {
      matmul(engine, f, Jb, xjb, { m: rows, n: m, k: g.dIn });
    }
    batch.release(f);
    const [xj, uh] = await Promise.all([engine.readF32(xjb, rows * m), u ? engine.readF32(u, rows * basis!.r) : undefined]);
    return { xj: hostF64(xj, shared), u: uh ? hostF64(uh, shared) : undefined };
  });
}

/** [n0, n1) ranges of `chunk` samples covering [0, b). */
function sampleChunks(b: number, chunk = SAMPLE_CHUNK): [number, number][] {
  const out: [number, number][] = [];
  for (let n0 = 0; n0 < b; n0 += chunk) out.push([n0, Math.min(b, n0 + chunk)]);
  return out;
}

/**
 * `a` as float64 (itself when it is one already and `shared` is off), in shared memory with
 * `shared` (what the host worker threads read and write without copies); `length` zeros when given.
 */
function hostF64(a: Float32Array | Float64Array, shared: boolean, length?: number): Float64Array {
  const n = length ?? a.length;
  if (!shared && length === undefined && a instanceof Float64Array) return a;
  const b = shared ? new Float64Array(new SharedArrayBuffer(n * 8)) : new Float64Array(n);
  if (length === undefined) b.set(a);
  return b;
}

/** What both closed forms start from: the head and section sizes, the one integration point, and the float64 parts. */
function closedFormSetup(model: GpuModel, s: number, g: SectionGeometry, opts: SectionVjpOptions, att: { op: AttentionOp; index: number }) {
  const { op } = att;
  const parts = attentionClosedParts(model.sections[s]!.program, att, g, opts.Chat);
  return {
    op,
    H: op.heads,
    dH: op.dHead,
    dV: op.dV,
    P: g.pIn,
    d: g.dIn,
    K: g.rOut,
    alpha: opts.points.alphas[0]!,
    weight: opts.points.weights[0]!,
    ...parts,
    HdV: op.heads * op.dV,
    HdH: op.heads * op.dHead,
  };
}

/** M′ of section s by the closed form (the caller checked the pattern and one integration point). */
export async function mDashAttentionClosed(run: SectionSamples, opts: SectionVjpOptions, att: { op: AttentionOp; index: number }): Promise<Float64Array> {
  const { engine, model, s, tokens, N, g } = run;
  const { op, H, dH, dV, P, d, K, alpha, weight, J, m, S, DZ, HdV, HdH } = closedFormSetup(model, s, g, opts, att);
  const kCol = (h: number): number => HdV + h * dH;
  const qCol = (h: number): number => HdV + HdH + h * dH;
  const A = H + 1;
  // Y^a and T^{a,h}: sample-independent, computed on this thread while the host threads run the
  // per-sample sums (they do not need them).
  const partsYT = (): { Y: Float64Array[]; T: Float64Array[] } => {
    // Y^a (K × d): Y^0 = S, Y^{h+1}_k = V^h dz_k^h.
    const Y: Float64Array[] = [S];
    for (let h = 0; h < H; h++) {
      const y = new Float64Array(K * d);
      for (let k = 0; k < K; k++)
        for (let i = 0; i < d; i++) {
          let acc = 0;
          for (let j = 0; j < dV; j++) acc += DZ[k * HdV + h * dV + j]! * J[i * m + h * dV + j]!;
          y[k * d + i] = acc;
        }
      Y.push(y);
    }
    // T^{a,h} = Σ_k Y_k^a dz_k^hᵀ (d × dV).
    const T = attentionT(Y, DZ, K, d, H, dV);
    return { Y, T };
  };
  let YT: { Y: Float64Array[]; T: Float64Array[] } | undefined;
  // Per-sample sums, all in the small spaces (see the header): W_ab = Σ π_a π_b; Ψ (2H·dHead
  // square, laid out as J's k and q columns) = Σ_s Φ_s β_s Φ_sᵀ; ΩQ^{a,h}, ΩK^{a,h} (dV × dHead),
  // summed by src/host/attention-sums.ts in chunks of samples on the host threads.
  const L2 = 2 * HdH;
  const shape = attentionShape(op, P, m, K);
  const total = new Float64Array(mDashSumLengths(shape).reduce((x, y) => x + y, 0));
  const { Wab, Psi, OmQ, OmK } = mDashSumsView(shape, total);
  // The batch buffers: the model's forward and the rows f·J [P, m] per sample.
  const B = opts.batch ?? samplesPerBatch(engine, Math.max(model.forwardFloatsPerSample(), P * Math.max(m, d)), N);
  const table = tokenRowTable(model, s, N, m);
  const tableJ = table ? mulRows(table, table.length / d, d, J, m) : undefined;
  const scope = engine.scope();
  try {
    const Jb = tableJ ? undefined : scope.upload(Float32Array.from(J), 'tf.attn-J');
    const pool = await hostThreadPool();
    opts.onPath?.(
      `last-position attention closed form, rows from ${tableJ ? 'float64 per-(token, position) tables (sums per distinct row)' : 'the GPU (f32 f·J)'}, per-sample sums on ${pool ? `${pool.size} host worker thread(s)` : 'the calling thread'}`,
    );
    if (tableJ) {
      // Rows from the table: the table forms (src/host/attention-table-sums.ts) work per distinct
      // row, over all N samples at once.
      const sh = pool !== undefined;
      const { ids, rows } = tableRowIds(tokens, model.mp.embed!.vocab, P, N, sh);
      const rt = attentionRowTables(shape, DZ, alpha, gatherRows(tableJ, m, rows), ids, (n) => hostF64(new Float64Array(0), sh, n));
      const ranges = sampleChunks(N, TABLE_SAMPLE_CHUNK);
      const parts = hostF64(new Float64Array(0), sh, ranges.length * total.length);
      const sums = runHostTasks(
        'attention-mdash-table',
        ranges.map(([n0, n1], i) => ({ shape, rows: rt, n0, n1, out: parts.subarray(i * total.length, (i + 1) * total.length) })),
        { threads: sh },
      );
      // A failure surfaces at the await below; until then it must not be unhandled.
      sums.catch(() => undefined);
      YT = partsYT();
      await sums;
      for (let i = 0; i < ranges.length; i++) {
        const o = i * total.length;
        for (let e = 0; e < total.length; e++) total[e]! += parts[o + e]!;
      }
    }
    const DZs = hostF64(DZ, pool !== undefined);
    for (let first = 0; first < (tableJ ? 0 : N); first += B) {
      const b = Math.min(B, N - first);
      const xjs = (await batchRows(run, first, b, Jb!, m, pool !== undefined)).xj;
      const ranges = sampleChunks(b);
      const parts = hostF64(new Float64Array(ranges.length * total.length), pool !== undefined);
      await runHostTasks(
        'attention-mdash',
        ranges.map(([n0, n1], i) => ({
          shape,
          DZ: DZs,
          alpha,
          xj: xjs,
          n0,
          n1,
          out: parts.subarray(i * total.length, (i + 1) * total.length),
        })),
        { threads: pool !== undefined },
      );
      for (let i = 0; i < ranges.length; i++) {
        const o = i * total.length;
        for (let e = 0; e < total.length; e++) total[e]! += parts[o + e]!;
      }
    }
  } finally {
    scope.close();
  }
  const { Y, T } = YT ?? partsYT();
  // M = Σ_ab W_ab Y^aᵀY^b + X + Xᵀ, X = Σ_h XQ^h Q^hᵀ + XK^h K^hᵀ.
  // Σ_ab W_ab Y^a_k Y^b_kᵀ = Σ_a Y^a_k (Σ_b W_ab Y^b_k)ᵀ summed over (k, a) in order: the product
  // of Yᵀ (Yt: d × K·A, columns (k, a)) and the rows yy_(k,a) = Σ_b W_ab Y^b_k (a row product, the same
  // bits as the rank-1 updates in that order).
  const KA = K * A;
  const Yt = new Float64Array(d * KA);
  const YY = new Float64Array(KA * d);
  for (let k = 0; k < K; k++)
    for (let a = 0; a < A; a++) {
      const ka = k * A + a;
      const ya = Y[a]!.subarray(k * d, (k + 1) * d);
      for (let i = 0; i < d; i++) Yt[i * KA + ka] = ya[i]!;
      const yy = YY.subarray(ka * d, (ka + 1) * d);
      for (let a2 = 0; a2 < A; a2++) {
        const f = Wab[a * A + a2]!;
        if (f === 0) continue;
        const yb = Y[a2]!.subarray(k * d, (k + 1) * d);
        for (let i = 0; i < d; i++) yy[i]! += f * yb[i]!;
      }
    }
  const M = mulRows(Yt, d, KA, YY, d);
  // X_m = Σ_{a,h} T^{a,h} (ΩQ^{a,h} Q^hᵀ + ΩK^{a,h} K^hᵀ) (d × d).
  const X = new Float64Array(d * d);
  const zk = wasmOmegaRowsKernel(d, dV, dH);
  const zmJs = zk ? undefined : new Float64Array(dV * d);
  for (let a1 = 0; a1 < A; a1++)
    for (let h = 0; h < H; h++) {
      const o = (a1 * H + h) * dV * dH;
      const qc = qCol(h),
        kc = kCol(h);
      let Zm: Float64Array;
      if (zk) {
        // Z in WebAssembly (attention-mdash-wasm.ts), the bits of omegaRows.
        zk.omq.set(OmQ.subarray(o, o + dV * dH));
        zk.omk.set(OmK.subarray(o, o + dV * dH));
        for (let i2 = 0; i2 < d; i2++)
          for (let c = 0; c < dH; c++) {
            zk.jqt[c * d + i2] = J[i2 * m + qc + c]!;
            zk.jkt[c * d + i2] = J[i2 * m + kc + c]!;
          }
        zk.run();
        Zm = zk.zm;
      } else {
        Zm = zmJs!;
        omegaRows(OmQ.subarray(o, o + dV * dH), OmK.subarray(o, o + dV * dH), J, m, qc, kc, d, dV, dH, Zm);
      }
      mulRows(T[a1 * H + h]!, d, dV, Zm, d, X, true); // X += T·Zm
    }
  // Ψ holds U, the upper head blocks of QQ and KK and the QK blocks; Ψ = U + Uᵀ once the
  // diagonal head blocks (symmetric themselves) are halved.
  for (let l1 = 0; l1 < L2; l1++)
    for (let l2 = 0; l2 < L2; l2++) {
      if (Math.floor(l1 / dH) === Math.floor(l2 / dH)) Psi[l1 * L2 + l2] = 0.5 * Psi[l1 * L2 + l2]!;
    }
  for (let l1 = 0; l1 < L2; l1++)
    for (let l2 = l1; l2 < L2; l2++) {
      const v = Psi[l1 * L2 + l2]! + Psi[l2 * L2 + l1]!;
      Psi[l1 * L2 + l2] = v;
      Psi[l2 * L2 + l1] = v;
    }
  // L Ψ Lᵀ with L = J's k and q columns (d × 2H·dHead): (L Ψ) Lᵀ, each entry summed in order of
  // the columns of L (row products, mulRows).
  const Lkq = new Float64Array(d * L2);
  const LkqT = new Float64Array(L2 * d);
  for (let i = 0; i < d; i++)
    for (let l = 0; l < L2; l++) {
      Lkq[i * L2 + l] = J[i * m + HdV + l]!;
      LkqT[l * d + i] = J[i * m + HdV + l]!;
    }
  const LPsiL = mulRows(mulRows(Lkq, d, L2, Psi, L2), d, L2, LkqT, d);
  const f = (weight * weight) / (N * P);
  for (let i = 0; i < d; i++) for (let i2 = 0; i2 < d; i2++) M[i * d + i2] = (M[i * d + i2]! + X[i * d + i2]! + X[i2 * d + i]! + LPsiL[i * d + i2]!) * f;
  return M;
}

/**
 * Squared edges of section s by the closed form (SPEC-transformers §6.1 with P_out = 1), r_out × r_in
 * divided by N·P_in. With Ĉp = C⁺ᵀ, u = f C and the section run at α·(u C⁺) as the generic path:
 *   e_{k,j} = Σ_s (g_{k,s} Ĉp)_j u_{s,j}
 *           = Σ_a (Y_k^a Ĉp)_j U_{a,j} + Σ_{(h,u)} ds_{k,(h,u)} Γ_{(h,u),j},
 *   U_0 = u_{t*}, U_{h+1} = Σ_s p_s^h u_s,  Γ_(h,u) = (a_u^h Ĉp) ⊙ u_{t*} + (b^h Ĉp) ⊙ u_u,
 * (the key u's ds reaches k_u, giving b^h at position u, and q_{t*}, giving a_u^h at t*), and
 * E_{k,j} = Σ_n (w e_{k,j})². Y^a Ĉp (K × r_in) and Q^hᵀĈp, K^hᵀĈp (dHead × r_in) are precomputed;
 * per sample the work is O(K·r_in·(H + 1 + H·P)).
 */
export async function edgesAttentionClosed(
  run: SectionSamples,
  opts: SectionVjpOptions & { C: Float64Array; Cpinv: Float64Array; rIn: number },
  att: { op: AttentionOp; index: number },
): Promise<Float64Array> {
  const { engine, model, s, tokens, N, g } = run;
  const { op, H, dH, dV, P, d, K, alpha, weight, J, m, S, DZ, HdV, HdH } = closedFormSetup(model, s, g, opts, att);
  const r = opts.rIn;
  const { C, Cpinv } = opts;
  // Ỹ^a = Y^a Ĉp (K × r): Y^0 = S, Y^{h+1}_k = V^h dz_k^h, so Ỹ^{h+1} = dz^h (V^hᵀ Ĉp).
  // C⁺ᵀ (d × r): the right factor of the projections, as rows for the row products.
  const CpT = new Float64Array(d * r);
  for (let j = 0; j < r; j++) for (let i = 0; i < d; i++) CpT[i * r + j] = Cpinv[j * d + i]!;
  const proj = (col0: number, width: number): Float64Array => {
    // (J[:, col0 .. col0+width))ᵀ Ĉp: width × r, each entry summed over i in order (row products,
    // mulRows).
    const Jt = new Float64Array(width * d);
    for (let c = 0; c < width; c++) for (let i = 0; i < d; i++) Jt[c * d + i] = J[i * m + col0 + c]!;
    return mulRows(Jt, width, d, CpT, r);
  };
  const Yt: Float64Array[] = [];
  const y0 = new Float64Array(K * r);
  for (let k = 0; k < K; k++)
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let i = 0; i < d; i++) acc += S[k * d + i]! * Cpinv[j * d + i]!;
      y0[k * r + j] = acc;
    }
  Yt.push(y0);
  const Qt: Float64Array[] = [];
  const Kt: Float64Array[] = [];
  for (let h = 0; h < H; h++) {
    const Vt = proj(h * dV, dV);
    const y = new Float64Array(K * r);
    for (let k = 0; k < K; k++)
      for (let c = 0; c < dV; c++) {
        const z = DZ[k * HdV + h * dV + c]!;
        if (z === 0) continue;
        for (let j = 0; j < r; j++) y[k * r + j]! += z * Vt[c * r + j]!;
      }
    Yt.push(y);
    Kt.push(proj(HdV + h * dH, dH));
    Qt.push(proj(HdV + HdH + h * dH, dH));
  }
  const E = new Float64Array(K * r);
  // The batch buffers: the model's forward and, per sample, u [P, r] and f'·J [P, m].
  const B = opts.batch ?? samplesPerBatch(engine, Math.max(model.forwardFloatsPerSample(), P * Math.max(m, d, r)), N);
  // C⁺J (r × m) in float64: the projected point's rows are u·(C⁺J).
  const CpJ = mulRows(Cpinv, r, d, J, m);
  const table = tokenRowTable(model, s, N, Math.max(m, r));
  const tableU = table ? mulRows(table, table.length / d, d, C, r) : undefined;
  const tableJ = tableU ? mulRows(tableU, tableU.length / r, r, CpJ, m) : undefined;
  const shape = attentionShape(op, P, m, K);
  const cat = (xs: Float64Array[]): Float64Array => {
    const out = new Float64Array(xs.reduce((a, x) => a + x.length, 0));
    let o = 0;
    for (const x of xs) {
      out.set(x, o);
      o += x.length;
    }
    return out;
  };
  const scope = engine.scope();
  try {
    const Jb = table ? undefined : scope.upload(Float32Array.from(CpJ), 'tf.attn-CpJ');
    const Cb = table ? undefined : scope.upload(Float32Array.from(C), 'tf.C');
    const pool = await hostThreadPool();
    const sh = pool !== undefined;
    opts.onPath?.(
      `last-position attention closed form, rows from ${table ? 'float64 per-(token, position) tables (sums per distinct row)' : "the GPU (f32 u and f'·J)"}, per-sample sums on ${pool ? `${pool.size} host worker thread(s)` : 'the calling thread'}`,
    );
    const tables = { r, Yt: hostF64(cat(Yt), sh), Kt: hostF64(cat(Kt), sh), Qt: hostF64(cat(Qt), sh) };
    if (tableU && tableJ) {
      // Rows from the tables: the table form (src/host/attention-table-sums.ts), per distinct row.
      const { ids, rows } = tableRowIds(tokens, model.mp.embed!.vocab, P, N, sh);
      const alloc = (n: number): Float64Array => hostF64(new Float64Array(0), sh, n);
      const rt = attentionRowTables(shape, DZ, alpha, gatherRows(tableJ, m, rows), ids, alloc);
      const edgeRows = edgeRowTables(shape, rt, tables, hostF64(gatherRows(tableU, r, rows), sh), alloc);
      const ranges = sampleChunks(N, TABLE_SAMPLE_CHUNK);
      const parts = hostF64(new Float64Array(0), sh, ranges.length * K * r);
      await runHostTasks(
        'attention-edges-table',
        ranges.map(([n0, n1], i) => ({ shape, rows: rt, tables, edgeRows, n0, n1, out: parts.subarray(i * K * r, (i + 1) * K * r) })),
        { threads: sh },
      );
      for (let i = 0; i < ranges.length; i++) for (let e = 0; e < K * r; e++) E[e]! += parts[i * K * r + e]!;
    }
    const DZs = hostF64(DZ, sh);
    for (let first = 0; first < (tableU && tableJ ? 0 : N); first += B) {
      const b = Math.min(B, N - first);
      // u = f C and the rows of the projected point f' = u C⁺, the section at α f'.
      const rows = await batchRows(run, first, b, Jb!, m, sh, { Cb: Cb!, r });
      const xj = rows.xj;
      const u = rows.u!;
      const ranges = sampleChunks(b);
      const parts = hostF64(new Float64Array(ranges.length * K * r), sh);
      await runHostTasks(
        'attention-edges',
        ranges.map(([n0, n1], i) => ({
          shape,
          DZ: DZs,
          alpha,
          tables,
          xj,
          u,
          n0,
          n1,
          out: parts.subarray(i * K * r, (i + 1) * K * r),
        })),
        { threads: sh },
      );
      for (let i = 0; i < ranges.length; i++) for (let e = 0; e < K * r; e++) E[e]! += parts[i * K * r + e]!;
    }
  } finally {
    scope.close();
  }
  const sc = (weight * weight) / (N * P);
  for (let i = 0; i < E.length; i++) E[i] = E[i]! * sc;
  return E;
}
