// M′ and squared edges of sections made of linear ops only (rib's unembed → output: the
// unembedding with its folded bias), without visiting the data. Such a section's VJP does not
// depend on the sample or on the integration point, so with W = Σ_k w_k and g_(t,i),s the input
// gradient at position s of the cotangent φ_(t,i) = e_t ⊗ Ĉ[:, i] (SPEC-transformers §5.1, §6.1):
//   M′ = (1/(N·P_in)) Σ_n Σ_(t,i) Σ_s W² g gᵀ = (W²/P_in) Σ_(t,i) Σ_s g_(t,i),s g_(t,i),sᵀ;
// and when the section is also position-local (no lastPos, or one position), g_(t,i),s = δ_st h_i,
// so with u = f·C the edge sum factors through the node layer's second moment
// S = (1/(N·P)) Σ_(n,t) f fᵀ, which the statistics pass already has:
//   E_ij = (1/(N·P)) Σ_n Σ_t (W (h_i C⁺ᵀ)_j u_(n,t),j)² = W² (h_i C⁺ᵀ)_j² (Cᵀ S C)_jj.
// (The edges' projected point f C C⁺ does not matter: the gradient is the same everywhere.)
// Everything here is float64; the gradients come from the float64 interpreter at a zero input.

import { forwardF64, vjpSampleF64 } from '../cpu/program-f64.js';
import type { Op, SectionProgram } from '../model/program.js';
import type { SectionGeometry } from './gpu-section.js';

const LINEAR_KINDS = new Set<Op['kind']>(['linear', 'copy', 'slice', 'concat', 'add', 'lastPos']);

/** 'local' when every op is linear and per position, 'mixing' when lastPos also occurs, else undefined. */
export function linearSectionKind(p: SectionProgram): 'local' | 'mixing' | undefined {
  if (!p.ops.every((op) => LINEAR_KINDS.has(op.kind))) return undefined;
  return p.ops.some((op) => op.kind === 'lastPos') ? 'mixing' : 'local';
}

/** g for every cotangent (t, i): [K = pOut·rOut][pIn · dIn], the input tuple concatenated per position. */
function linearGradients(p: SectionProgram, g: SectionGeometry, Chat: Float64Array | undefined): Float64Array {
  const K = g.K;
  const vals = forwardF64(
    p,
    p.inputs.map((id) => new Float64Array(p.values[id]!.width * p.values[id]!.positions)),
    1,
  );
  let c0 = 0;
  const cot = p.outputs.map((id) => {
    const w = p.values[id]!.width;
    const c = new Float64Array(K * g.pOut * w);
    for (let k = 0; k < K; k++) {
      const t = Math.floor(k / g.rOut);
      const i = k % g.rOut;
      for (let a = 0; a < w; a++) c[(k * g.pOut + t) * w + a] = Chat ? Chat[(c0 + a) * g.rOut + i]! : c0 + a === i ? 1 : 0;
    }
    c0 += w;
    return c;
  });
  const grads = vjpSampleF64(p, vals, 0, cot, K);
  const out = new Float64Array(K * g.pIn * g.dIn);
  let off = 0;
  p.inputs.forEach((id, j) => {
    const w = p.values[id]!.width;
    for (let k = 0; k < K; k++)
      for (let s = 0; s < g.pIn; s++) {
        for (let a = 0; a < w; a++) out[(k * g.pIn + s) * g.dIn + off + a] = grads[j]![(k * g.pIn + s) * w + a]!;
      }
    off += w;
  });
  return out;
}

/** M′ (d_in × d_in, divided by N·P_in) of a linear section; `W` = Σ of the integration weights. */
export function mDashLinear(p: SectionProgram, g: SectionGeometry, Chat: Float64Array | undefined, W: number): Float64Array {
  const G = linearGradients(p, g, Chat);
  const d = g.dIn;
  const M = new Float64Array(d * d);
  for (let r = 0; r < g.K * g.pIn; r++) {
    const row = G.subarray(r * d, (r + 1) * d);
    for (let x = 0; x < d; x++) {
      const v = row[x]!;
      if (v === 0) continue;
      for (let y = 0; y < d; y++) M[x * d + y]! += v * row[y]!;
    }
  }
  const f = (W * W) / g.pIn;
  for (let i = 0; i < M.length; i++) M[i] = M[i]! * f;
  return M;
}

/**
 * Squared edges (r_out × r_in, divided by N·P_in) of a position-local linear section (or one with
 * a single input position) from the input node layer's second moment S = (1/(N·P)) Σ f fᵀ (d_in × d_in).
 */
export function edgesLinear(
  p: SectionProgram,
  g: SectionGeometry,
  Chat: Float64Array | undefined,
  W: number,
  basis: { C: Float64Array; Cpinv: Float64Array; rIn: number },
  S: Float64Array,
): Float64Array {
  const kind = linearSectionKind(p);
  if (!kind || (kind === 'mixing' && g.pIn !== 1)) throw new Error('edgesLinear: the section is not linear and position-local');
  const { C, Cpinv, rIn: r } = basis;
  const d = g.dIn;
  // q_j = (Cᵀ S C)_jj: the mean of u_j² over samples and positions.
  const SC = new Float64Array(d * r);
  for (let x = 0; x < d; x++)
    for (let y = 0; y < d; y++) {
      const v = S[x * d + y]!;
      if (v === 0) continue;
      for (let j = 0; j < r; j++) SC[x * r + j]! += v * C[y * r + j]!;
    }
  const q = new Float64Array(r);
  for (let x = 0; x < d; x++) for (let j = 0; j < r; j++) q[j]! += C[x * r + j]! * SC[x * r + j]!;
  const G = linearGradients(p, g, Chat);
  const E = new Float64Array(g.rOut * r);
  for (let k = 0; k < g.K; k++) {
    const i = k % g.rOut;
    for (let s = 0; s < g.pIn; s++) {
      const row = G.subarray((k * g.pIn + s) * d, (k * g.pIn + s + 1) * d);
      for (let j = 0; j < r; j++) {
        let h = 0;
        for (let x = 0; x < d; x++) h += row[x]! * Cpinv[j * d + x]!;
        E[i * r + j]! += h * h * q[j]!;
      }
    }
  }
  const f = (W * W) / g.pIn;
  for (let i = 0; i < E.length; i++) E[i] = E[i]! * f;
  return E;
}
