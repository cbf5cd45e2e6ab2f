// Float64 references of the GPU transformer passes (src/transformer/gpu-stats.ts, gpu-mdash.ts,
// gpu-edges.ts), written directly from SPEC-transformers §4.1, §5.1 and §6.1 on top of the float64
// interpreter (src/cpu/program-f64.ts), one sample at a time.

import { embedF64, forwardF64, vjpF64 } from '../../src/cpu/program-f64.js';
import type { IntegrationPoints } from '../../src/ib/integration.js';
import type { ModelProgram, SectionProgram } from '../../src/model/program.js';

function widths(p: SectionProgram, ids: readonly number[]): number[] {
  return ids.map((id) => p.values[id]!.width);
}

/** Tuples at every node layer for tokens [N, P]: nodes[i][j] is member j, [N, P_i, w_j]. */
export function nodeTuplesF64(mp: ModelProgram, tokens: ArrayLike<number>, N: number, P: number): Float64Array[][] {
  let t = embedF64(mp.embed!, tokens, N, P);
  const out: Float64Array[][] = [];
  for (const sec of [mp.pre, ...mp.sections]) {
    const vals = forwardF64(sec, t, N);
    t = sec.outputs.map((id) => vals[id]!);
    out.push(t);
  }
  return out;
}

/** Member arrays [n, Pn, w_j] → one row-major [n·Pn, Σw]. */
export function concatRows(parts: readonly Float64Array[], ws: readonly number[], rows: number): Float64Array {
  const W = ws.reduce((a, b) => a + b, 0);
  const out = new Float64Array(rows * W);
  let c0 = 0;
  parts.forEach((a, j) => {
    for (let r = 0; r < rows; r++) for (let c = 0; c < ws[j]!; c++) out[r * W + c0 + c] = a[r * ws[j]! + c]!;
    c0 += ws[j]!;
  });
  return out;
}

function splitRows(x: Float64Array, ws: readonly number[], rows: number): Float64Array[] {
  const W = ws.reduce((a, b) => a + b, 0);
  let c0 = 0;
  return ws.map((w) => {
    const a = new Float64Array(rows * w);
    for (let r = 0; r < rows; r++) for (let c = 0; c < w; c++) a[r * w + c] = x[r * W + c0 + c]!;
    c0 += w;
    return a;
  });
}

function sample(parts: readonly Float64Array[], ws: readonly number[], P: number, n: number): Float64Array[] {
  return parts.map((a, j) => a.slice(n * P * ws[j]!, (n + 1) * P * ws[j]!));
}

/** Integrated gradients g for every cotangent (t, i): [K, P_in, d_in] of one sample. */
function integratedGrads(sec: SectionProgram, x: readonly Float64Array[], Chat: Float64Array | undefined, rOut: number, pts: IntegrationPoints): Float64Array {
  const wIn = widths(sec, sec.inputs);
  const wOut = widths(sec, sec.outputs);
  const dIn = wIn.reduce((a, b) => a + b, 0);
  const dOut = wOut.reduce((a, b) => a + b, 0);
  const pIn = sec.values[sec.inputs[0]!]!.positions;
  const pOut = sec.values[sec.outputs[0]!]!.positions;
  const K = pOut * rOut;
  const cot = new Float64Array(K * pOut * dOut);
  for (let k = 0; k < K; k++) {
    const t = Math.floor(k / rOut);
    const i = k % rOut;
    for (let c = 0; c < dOut; c++) cot[(k * pOut + t) * dOut + c] = Chat ? Chat[c * rOut + i]! : c === i ? 1 : 0;
  }
  const cots = splitRows(cot, wOut, K * pOut);
  const g = new Float64Array(K * pIn * dIn);
  pts.alphas.forEach((a, q) => {
    const vals = forwardF64(sec, x, 1, a);
    const gr = concatRows(vjpF64(sec, vals, cots, 1, K), wIn, K * pIn);
    for (let e = 0; e < g.length; e++) g[e]! += pts.weights[q]! * gr[e]!;
  });
  return g;
}

/** Section s of mp, its input tuple over the N samples (float64), the tuple's widths, their sum and P_in. */
function sectionInputsF64(mp: ModelProgram, s: number, tokens: ArrayLike<number>, N: number, P: number) {
  const sec = mp.sections[s]!;
  const tuple = nodeTuplesF64(mp, tokens, N, P)[s]!;
  const wIn = widths(sec, sec.inputs);
  return { sec, tuple, wIn, dIn: wIn.reduce((a, b) => a + b, 0), pIn: sec.values[sec.inputs[0]!]!.positions };
}

export function mDashF64(
  mp: ModelProgram,
  s: number,
  tokens: ArrayLike<number>,
  N: number,
  P: number,
  Chat: Float64Array | undefined,
  rOut: number,
  pts: IntegrationPoints,
): Float64Array {
  const { sec, tuple, wIn, dIn, pIn } = sectionInputsF64(mp, s, tokens, N, P);
  const M = new Float64Array(dIn * dIn);
  for (let n = 0; n < N; n++) {
    const g = integratedGrads(sec, sample(tuple, wIn, pIn, n), Chat, rOut, pts);
    const rows = g.length / dIn;
    for (let r = 0; r < rows; r++) for (let a = 0; a < dIn; a++) for (let b = 0; b < dIn; b++) M[a * dIn + b]! += g[r * dIn + a]! * g[r * dIn + b]!;
  }
  return M.map((v) => v / (N * pIn));
}

export function edgesF64(
  mp: ModelProgram,
  s: number,
  tokens: ArrayLike<number>,
  N: number,
  P: number,
  C: Float64Array,
  Cpinv: Float64Array,
  rIn: number,
  Chat: Float64Array | undefined,
  rOut: number,
  pts: IntegrationPoints,
): Float64Array {
  const { sec, tuple, wIn, dIn, pIn } = sectionInputsF64(mp, s, tokens, N, P);
  const pOut = sec.values[sec.outputs[0]!]!.positions;
  const E = new Float64Array(rOut * rIn);
  for (let n = 0; n < N; n++) {
    const f = concatRows(sample(tuple, wIn, pIn, n), wIn, pIn);
    const u = new Float64Array(pIn * rIn);
    for (let p = 0; p < pIn; p++) for (let j = 0; j < rIn; j++) for (let c = 0; c < dIn; c++) u[p * rIn + j]! += f[p * dIn + c]! * C[c * rIn + j]!;
    const fp = new Float64Array(pIn * dIn);
    for (let p = 0; p < pIn; p++) for (let c = 0; c < dIn; c++) for (let j = 0; j < rIn; j++) fp[p * dIn + c]! += u[p * rIn + j]! * Cpinv[j * dIn + c]!;
    const g = integratedGrads(sec, splitRows(fp, wIn, pIn), Chat, rOut, pts);
    const K = pOut * rOut;
    for (let k = 0; k < K; k++) {
      const i = k % rOut;
      for (let j = 0; j < rIn; j++) {
        let e = 0;
        for (let p = 0; p < pIn; p++) {
          let h = 0;
          for (let c = 0; c < dIn; c++) h += g[(k * pIn + p) * dIn + c]! * Cpinv[j * dIn + c]!;
          e += h * u[p * rIn + j]!;
        }
        E[i * rIn + j]! += e * e;
      }
    }
  }
  return E.map((v) => v / (N * pIn));
}
