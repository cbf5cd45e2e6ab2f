// Closed-form M′ for position-local sections with a single elementwise activation (rib's MLP
// sections, e.g. modadd's ln2.0 → unembed: copy, W_in, act, W_out, residual add). The extension
// of the MLP pipeline's gate-Gram form (src/ib/basis.ts header) to tuple inputs, carried paths and
// positions. With the act's input x and output y, every cotangent φ_(t,i) = e_t ⊗ Ĉ[:, i] gives,
// at the section inputs of position t (position-local: nothing at s ≠ t),
//   g_(n,t,i) = A (a_(n,t) ∘ r_i) + W s_i,     a = Σ_k w_k act'(x at α_k),  W = Σ_k w_k,
// where r_i is the cotangent reaching y, s_i what reaches the inputs along paths avoiding the act
// (both sample-independent), and A the (linear, sample-independent) VJP map from x to the inputs.
// Summing over n, t, i:
//   M′ = (1/(N·P)) [ A (R ∘ G_a) Aᵀ + W·(A diag(Σa) S_rs + (…)ᵀ) + W²·N·P·S_ss ],
//   R = Σ_i r_i r_iᵀ,  S_rs = Σ_i r_i s_iᵀ,  S_ss = Σ_i s_i s_iᵀ,  G_a = Σ_(n,t) a aᵀ,  Σa = Σ_(n,t) a.
// Only G_a and Σa touch the data: the gate rows a are formed on the GPU and summed by the shared
// Gram and column-sum kernels (f32 per batch, float64 across); r, s and A come from the float64
// interpreter run on the sample-independent parts of the program (cost independent of N).
// ReLU at one integration point α > 0 (rib's `gradient` method) has binary gates a = w·[x > 0],
// so G_a = w²·(co-firing counts) and Σa = w·(firing counts): the sign-pattern kernels pack the
// signs into bits and count with popcounts, exact integers, instead of an f32 Gram of 0/1 rows
// (on llvmpipe 16x fewer loads; on any adapter 32x less data).

import { forwardF64, inputGradientColumns, vjpSampleF64 } from '../cpu/program-f64.js';
import { mulRows } from '../host/mul-rows.js';
import { mulOnThreads } from '../host/mul-threads.js';
import { wasmMulRows } from '../host/rows-times-wasm.js';
import { ColumnSumAccumulator, GramAccumulator } from '../kernels/gram.js';
import { matmul } from '../kernels/matmul.js';
import { SignPatternAccumulator } from '../kernels/sign-patterns.js';
import { actVjp, copyRows } from '../kernels/transformer-elementwise.js';
import type { Op, SectionProgram } from '../model/program.js';
import { concatTuple, samplesPerBatch } from './gpu-model.js';
import type { SectionGeometry, SectionSamples, SectionVjpOptions } from './gpu-section.js';

export type ActOp = Extract<Op, { kind: 'act' }>;

/** The act op when `p` qualifies: one act, no other sample-dependent or position-mixing op. */
export function singleActSection(p: SectionProgram): { op: ActOp; index: number } | undefined {
  const P = p.values[p.inputs[0]!]!.positions;
  if (p.values.some((v) => v.positions !== P)) return undefined;
  let found: { op: ActOp; index: number } | undefined;
  for (const [index, op] of p.ops.entries()) {
    if (op.kind === 'lnVar' || op.kind === 'lnDiv' || op.kind === 'attention' || op.kind === 'rotary' || op.kind === 'lastPos') return undefined;
    if (op.kind === 'act') {
      if (found) return undefined;
      found = { op, index };
    }
  }
  return found;
}

function zerosFor(p: SectionProgram): Float64Array[] {
  return p.inputs.map((id) => new Float64Array(p.values[id]!.width * p.values[id]!.positions));
}

/** r_i (K × m) and s_i (K × d_in) at position 0 for the K = rOut cotangents Ĉ[:, i] there. */
function topPartsOnce(
  p: SectionProgram,
  act: { op: ActOp; index: number },
  g: SectionGeometry,
  Chat: Float64Array | undefined,
): { r: Float64Array; s: Float64Array } {
  // The program without the act, its output an input: the VJP then stops at y (→ r) and carries
  // every other path to the inputs (→ s). No sample-dependent op is left, so any forward values do.
  const top: SectionProgram = { ...p, inputs: [...p.inputs, act.op.y], ops: p.ops.filter((_, i) => i !== act.index) };
  const P = g.pIn;
  const vals = forwardF64(top, zerosFor(top), 1);
  const K = g.rOut;
  let c0 = 0;
  const cot = p.outputs.map((id) => {
    const w = p.values[id]!.width;
    const c = new Float64Array(K * P * w);
    for (let i = 0; i < K; i++) for (let a = 0; a < w; a++) c[i * P * w + a] = Chat ? Chat[(c0 + a) * g.rOut + i]! : c0 + a === i ? 1 : 0;
    c0 += w;
    return c;
  });
  const grads = vjpSampleF64(top, vals, 0, cot, K);
  const m = p.values[act.op.y]!.width;
  const r = new Float64Array(K * m);
  const s = new Float64Array(K * g.dIn);
  for (let i = 0; i < K; i++) {
    const gy = grads[grads.length - 1]!;
    for (let a = 0; a < m; a++) r[i * m + a] = gy[i * P * m + a]!;
    let off = 0;
    p.inputs.forEach((id, j) => {
      const w = p.values[id]!.width;
      for (let a = 0; a < w; a++) s[i * g.dIn + off + a] = grads[j]![i * P * w + a]!;
      off += w;
    });
  }
  return { r, s };
}

/** A (d_in × m): column c is the input gradient of the unit cotangent on x[c] at position 0. */
function bottomMapOnce(p: SectionProgram, act: { op: ActOp; index: number }, g: SectionGeometry): Float64Array {
  const bot: SectionProgram = { ...p, outputs: [act.op.x], ops: p.ops.slice(0, act.index) };
  const m = p.values[act.op.x]!.width;
  const P = g.pIn;
  const vals = forwardF64(bot, zerosFor(bot), 1);
  const cot = new Float64Array(m * P * m);
  for (let c = 0; c < m; c++) cot[c * P * m + c] = 1;
  const grads = vjpSampleF64(bot, vals, 0, [cot], m);
  return inputGradientColumns(p, grads, m, P);
}

// The sample-independent parts cost VJPs through the float64 interpreter (hundreds of ms for an
// MLP block of 512 units) and a build needs them up to three times per section (host statistics,
// M′, edges): kept per program. r and s are linear in Ĉ, so they are kept for Ĉ = I and mapped.
const bottomMaps = new WeakMap<SectionProgram, Float64Array>();
const topIdentity = new WeakMap<SectionProgram, { r: Float64Array; s: Float64Array }>();

/**
 * Ĉᵀ X (r_out × w) from X (d_out × w) for Ĉ = I: the parts of the cotangents Ĉ[:, i]. Each entry is
 * summed over c in increasing order from +0 with the zero Ĉ entries skipped: a row product (Ĉᵀ's
 * rows times X), in WebAssembly SIMD where it runs (rows-times-wasm.ts) and in the JS loop
 * otherwise, the same bits. `wasm` false runs the JS loop only (the reference).
 */
export function mapCotangents(Chat: Float64Array, rOut: number, X: Float64Array, dOut: number, w: number, wasm = true): Float64Array {
  const out = new Float64Array(rOut * w);
  if (wasm) {
    const ct = new Float64Array(rOut * dOut);
    for (let c = 0; c < dOut; c++) for (let i = 0; i < rOut; i++) ct[i * dOut + c] = Chat[c * rOut + i]!;
    if (wasmMulRows(ct, dOut, X, w, 0, rOut, out)) return out;
  }
  for (let c = 0; c < dOut; c++) {
    const xo = c * w;
    for (let i = 0; i < rOut; i++) {
      const v = Chat[c * rOut + i]!;
      if (v === 0) continue;
      const o = i * w;
      for (let a = 0; a < w; a++) out[o + a]! += v * X[xo + a]!;
    }
  }
  return out;
}

/** r_i (K × m) and s_i (K × d_in) at position 0 for the K = rOut cotangents Ĉ[:, i] there (kept per program for Ĉ = I). */
export function topParts(
  p: SectionProgram,
  act: { op: ActOp; index: number },
  g: SectionGeometry,
  Chat: Float64Array | undefined,
): { r: Float64Array; s: Float64Array } {
  let id = topIdentity.get(p);
  if (!id) topIdentity.set(p, (id = topPartsOnce(p, act, { ...g, rOut: g.dOut, K: g.pOut * g.dOut }, undefined)));
  if (!Chat) return id;
  const m = p.values[act.op.y]!.width;
  return { r: mapCotangents(Chat, g.rOut, id.r, g.dOut, m), s: mapCotangents(Chat, g.rOut, id.s, g.dOut, g.dIn) };
}

/** A (d_in × m): column c is the input gradient of the unit cotangent on x[c] at position 0 (kept per program). */
export function bottomMap(p: SectionProgram, act: { op: ActOp; index: number }, g: SectionGeometry): Float64Array {
  let A = bottomMaps.get(p);
  if (!A) bottomMaps.set(p, (A = bottomMapOnce(p, act, g)));
  return A;
}

/** M′ of section s by the closed form (the caller checked singleActSection). d_in × d_in / (N·P). */
export async function mDashLocalGpu(
  run: SectionSamples,
  opts: SectionVjpOptions,
  act: { op: ActOp; index: number },
  given?: { Ga: Float64Array; sa: Float64Array },
): Promise<Float64Array> {
  const { engine, model, s, N, g } = run;
  const sec = model.sections[s]!;
  const p = sec.program;
  const m = p.values[act.op.x]!.width;
  const P = g.pIn;
  const B = opts.batch ?? samplesPerBatch(engine, model.forwardFloatsPerSample(), N);
  const A = bottomMap(p, act, g);
  const binary = act.op.act === 'relu' && opts.points.alphas.length === 1 && opts.points.alphas[0]! > 0;
  if (!given) opts.onPath?.(binary ? 'gate closed form, ReLU co-firing counts (GPU sign-pattern kernels)' : 'gate closed form, gate Gram (GPU)');
  // `given`: G_a and Σa computed elsewhere (the host statistics pass's act inputs, host-stats.ts).
  const gates = given ?? (binary ? await reluGateMoments(run, B, A, m, opts.points.weights[0]!) : await gateMoments(run, B, act, opts.points));
  const { Ga, sa } = gates;
  const { r, s: sv } = topParts(p, act, g, opts.Chat);
  const W = opts.points.weights.reduce((x, y) => x + y, 0);
  const K = g.rOut;
  const d = g.dIn;
  // T = R ∘ G_a + W·(diag(Σa) S_rs A-side terms folded below); U = A T Aᵀ.
  // The products below are row products X·Y with each entry summed in order of the inner index
  // (mulRows: the same bits in WebAssembly and JS).
  const T = gateGramCore(r, K, m, Ga);
  const AT = await mulOnThreads(A, d, m, T, m); // A·T (d·m² multiply-adds: split over the host threads)
  const At = new Float64Array(m * d);
  for (let x = 0; x < d; x++) for (let c = 0; c < m; c++) At[c * d + x] = A[x * m + c]!;
  const M = mulRows(AT, d, m, At, d);
  // Cross terms: X = A diag(Σa) S_rs, S_rs = Σ_i r_i s_iᵀ (m × d).
  const rsT = new Float64Array(m * K);
  for (let i = 0; i < K; i++) for (let a = 0; a < m; a++) rsT[a * K + i] = r[i * m + a]! * sa[a]!;
  const Srs = mulRows(rsT, m, K, sv, d);
  const rowsTotal = N * P;
  const ASrs = mulRows(A, d, m, Srs, d);
  for (let x = 0; x < d; x++)
    for (let y = 0; y < d; y++) {
      const acc = ASrs[x * d + y]!;
      M[x * d + y]! += W * acc;
      M[y * d + x]! += W * acc;
    }
  for (let i = 0; i < K; i++)
    for (let x = 0; x < d; x++) {
      const v = sv[i * d + x]!;
      if (v === 0) continue;
      for (let y = 0; y < d; y++) M[x * d + y]! += W * W * rowsTotal * v * sv[i * d + y]!;
    }
  for (let k = 0; k < M.length; k++) M[k] = M[k]! / rowsTotal;
  return M;
}

/** T = (Σ_i r_i r_iᵀ) ∘ G_a (m × m) from r (K × m): rᵀ r by mulRows, then the Hadamard product. */
function gateGramCore(r: Float64Array, K: number, m: number, Ga: Float64Array): Float64Array {
  const rT = new Float64Array(m * K);
  for (let i = 0; i < K; i++) for (let a = 0; a < m; a++) rT[a * K + i] = r[i * m + a]!;
  const T = mulRows(rT, m, K, r, m);
  for (let k = 0; k < T.length; k++) T[k] = T[k]! * Ga[k]!;
  return T;
}

/**
 * The block of mDashLocalGpu's M′ on the act's input, m × m, without the d_in × d_in products,
 * where the act reads the section's first input directly: then A = bottomMap is the selection
 * [I; 0] and s_i is zero on the act's input (only the act reads it), so on that block
 * A T Aᵀ = T and every cross and W² term adds zeros: M′ there is T / (N·P) (the same values
 * as mDashLocalGpu's block; a zero entry may differ in sign). Both facts are checked on the
 * float64 maps themselves; undefined where they do not hold.
 */
export function mDashLocalActBlock(
  p: SectionProgram,
  act: { op: ActOp; index: number },
  g: SectionGeometry,
  opts: Pick<SectionVjpOptions, 'Chat' | 'rOut'>,
  gates: { Ga: Float64Array },
  N: number,
): Float64Array | undefined {
  if (act.op.x !== p.inputs[0]) return undefined;
  const m = p.values[act.op.x]!.width;
  const d = g.dIn;
  const A = bottomMap(p, act, g);
  for (let x = 0; x < d; x++) for (let c = 0; c < m; c++) if (A[x * m + c] !== (x === c ? 1 : 0)) return undefined;
  const { r, s: sv } = topParts(p, act, g, opts.Chat);
  const K = g.rOut;
  for (let i = 0; i < K; i++) for (let x = 0; x < m; x++) if (sv[i * d + x] !== 0) return undefined;
  const T = gateGramCore(r, K, m, gates.Ga);
  const rowsTotal = N * g.pIn;
  for (let k = 0; k < T.length; k++) T[k] = T[k]! / rowsTotal;
  return T;
}

/** G_a = Σ a aᵀ and Σa over every sample and position, a = Σ_k w_k act'(x at α_k) (f32 Gram per batch). */
async function gateMoments(
  { engine, model, s, tokens, N }: SectionSamples,
  B: number,
  act: { op: ActOp; index: number },
  points: SectionVjpOptions['points'],
): Promise<{ Ga: Float64Array; sa: Float64Array }> {
  const sec = model.sections[s]!;
  const m = sec.program.values[act.op.x]!.width;
  const P = model.nodes[s]!.positions;
  const gateGram = new GramAccumulator(engine, m);
  const gateSum = new ColumnSumAccumulator(engine, m);
  const pass = engine.scope();
  try {
    const ones = pass.upload(new Float32Array(B * P * m).fill(1), 'tf.ones');
    for (let first = 0; first < N; first += B) {
      const b = Math.min(B, N - first);
      const rows = b * P;
      const batch = pass.scope();
      const inputs = batch.adoptAll(model.forwardTo(tokens, first, b, s));
      const gate = batch.alloc(rows * m * 4, 'tf.gate');
      const tmp = batch.alloc(rows * m * 4, 'tf.gate-step');
      points.alphas.forEach((alpha, k) => {
        const st = sec.forward(inputs, b, { alpha, scope: batch });
        actVjp(engine, st.values.get(act.op.x)!, ones, tmp, { B: b, K: 1, P }, m, act.op.act);
        copyRows(engine, tmp, gate, rows, m, points.weights[k], k > 0);
        sec.releaseState(st);
      });
      batch.release(...inputs, tmp);
      const pend: Promise<void>[] = [gateSum.addBatch(gate, rows)];
      const gp = gateGram.addBatch(gate, rows);
      if (gp) pend.push(gp);
      batch.close();
      await Promise.all(pend);
    }
    return { Ga: await gateGram.result(), sa: await gateSum.result() };
  } finally {
    gateGram.dispose();
    gateSum.dispose();
    pass.close();
  }
}

/**
 * The same for ReLU at one point α > 0: a = w·[x > 0], from the co-firing and firing counts. The
 * ops before the act are linear and homogeneous (no op adds a constant; biases are folded into
 * the inputs' constant column), so x = α·f·A with A = bottomMap, and [α·x > 0] = [f·A > 0]: one
 * matmul per batch gives the signs, without the rest of the section.
 */
async function reluGateMoments(
  { engine, model, s, tokens, N, g }: SectionSamples,
  B: number,
  A: Float64Array,
  m: number,
  w: number,
): Promise<{ Ga: Float64Array; sa: Float64Array }> {
  const signs = new SignPatternAccumulator(engine, m);
  const pass = engine.scope();
  try {
    const Ab = pass.upload(Float32Array.from(A), 'tf.bottom-map');
    for (let first = 0; first < N; first += B) {
      const b = Math.min(B, N - first);
      const rows = b * g.pIn;
      engine.withScope((batch) => {
        const inputs = batch.adoptAll(model.forwardTo(tokens, first, b, s));
        const f = batch.adopt(concatTuple(engine, inputs, g.widthsIn, rows));
        batch.release(...inputs);
        const x = batch.alloc(Math.max(16, rows * m * 4), 'tf.pre-act');
        matmul(engine, f, Ab, x, { m: rows, n: m, k: g.dIn });
        batch.release(f);
        signs.addBatch(x, rows);
      });
    }
    const r = await signs.result();
    const Ga = r.cofire;
    for (let i = 0; i < Ga.length; i++) Ga[i] = w * w * Ga[i]!;
    return { Ga, sa: r.fireCount.map((c) => w * c) };
  } finally {
    signs.dispose();
    pass.close();
  }
}
