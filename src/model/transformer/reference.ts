// The plain TransformerLens forward pass on unfolded weights, in float64 (README of the
// synthetic-transformer fixtures, "The forward pass"): the oracle for "folded = unfolded"
// (SPEC-transformers §9.3.2) and for the compiled programs' node-layer contents.

import { act } from '../activations.js';
import { activationOf } from './config.js';
import type { LastPosModuleType } from './modules.js';
import type { TransformerModel } from './weights.js';

export interface ReferenceForward {
  /** Per layer: the residual before the block (hook_resid_pre), [n, P, d]. */
  residPre: Float64Array[];
  /** Per layer: after attention (hook_resid_mid, sequential models), [n, P_mid, d]. */
  residMid: Float64Array[];
  /** The final residual, [n, P_f, d]. */
  residFinal: Float64Array;
  logits: Float64Array;
  /** Positions of residMid/residFinal (1 after an add_resid1 cut). */
  positionsAfterCut: number;
  logitPositions: number;
}

function layerNormRows(x: Float64Array, rows: number, d: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let k = 0; k < d; k++) m += x[r * d + k]!;
    m /= d;
    let v = 0;
    for (let k = 0; k < d; k++) v += (x[r * d + k]! - m) ** 2;
    v /= d;
    const s = Math.sqrt(v + eps);
    for (let k = 0; k < d; k++) y[r * d + k] = (x[r * d + k]! - m) / s;
  }
  return y;
}

export function forwardTransformerF64(
  model: TransformerModel,
  tokens: ArrayLike<number>,
  n: number,
  P: number,
  lastPos: LastPosModuleType | null = null,
): ReferenceForward {
  const c = model.config;
  const w = model.weights;
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m, d_vocab: V } = c;
  const ln = (x: Float64Array, rows: number): Float64Array => (c.normalization_type === null ? x : layerNormRows(x, rows, d, c.eps));
  const a = activationOf(c.act_fn);
  const residPre: Float64Array[] = [];
  const residMid: Float64Array[] = [];
  let Pc = P;
  let x: Float64Array = new Float64Array(n * P * d);
  for (let s = 0; s < n; s++) {
    for (let t = 0; t < P; t++) {
      const tok = tokens[s * P + t]!;
      for (let k = 0; k < d; k++) x[(s * P + t) * d + k] = w.WE[tok * d + k]! + (w.Wpos ? w.Wpos[t * d + k]! : 0);
    }
  }
  const attention = (xin: Float64Array, i: number, Pq: number): Float64Array => {
    const b = w.blocks[i]!;
    const out = new Float64Array(n * Pq * d);
    const local = c.use_local_attn && i % 2 === 1;
    const scale = c.use_attn_scale ? Math.sqrt(dh) : 1;
    for (let s = 0; s < n; s++) {
      for (let t = 0; t < Pq; t++) for (let k = 0; k < d; k++) out[(s * Pq + t) * d + k] = b.bO[k]!;
      for (let h = 0; h < H; h++) {
        const proj = (W: Float64Array, bias: Float64Array): Float64Array => {
          const r = new Float64Array(Pq * dh);
          for (let t = 0; t < Pq; t++) {
            for (let j = 0; j < dh; j++) {
              let acc = bias[h * dh + j]!;
              for (let k = 0; k < d; k++) acc += xin[(s * Pq + t) * d + k]! * W[(h * d + k) * dh + j]!;
              r[t * dh + j] = acc;
            }
          }
          return r;
        };
        const q = proj(b.WQ, b.bQ);
        const kk = proj(b.WK, b.bK);
        const v = proj(b.WV, b.bV);
        if (c.positional_embedding_type === 'rotary') for (const z of [q, kk]) rotateRows(z, Pq, dh, c.rotary_dim!, c.rotary_base);
        for (let t = 0; t < Pq; t++) {
          const sc: number[] = [];
          let mx = -Infinity;
          for (let u = 0; u <= t; u++) {
            if (local && u <= t - c.window_size) {
              sc.push(-Infinity);
              continue;
            }
            let dot = 0;
            for (let j = 0; j < dh; j++) dot += q[t * dh + j]! * kk[u * dh + j]!;
            sc.push(dot / scale);
            mx = Math.max(mx, dot / scale);
          }
          const e = sc.map((z) => (z === -Infinity ? 0 : Math.exp(z - mx)));
          const tot = e.reduce((p, q2) => p + q2, 0);
          const z = new Float64Array(dh);
          for (let u = 0; u <= t; u++) for (let j = 0; j < dh; j++) z[j]! += (e[u]! / tot) * v[u * dh + j]!;
          for (let j = 0; j < dh; j++) for (let k = 0; k < d; k++) out[(s * Pq + t) * d + k]! += z[j]! * b.WO[(h * dh + j) * d + k]!;
        }
      }
    }
    return out;
  };
  const mlp = (xin: Float64Array, i: number, rows: number): Float64Array => {
    const b = w.blocks[i]!;
    const out = new Float64Array(rows * d);
    for (let r = 0; r < rows; r++) {
      const hdn = new Float64Array(m);
      for (let j = 0; j < m; j++) {
        let acc = b.bin[j]!;
        for (let k = 0; k < d; k++) acc += xin[r * d + k]! * b.Win[k * m + j]!;
        hdn[j] = act(a, acc);
      }
      for (let k = 0; k < d; k++) {
        let acc = b.bout[k]!;
        for (let j = 0; j < m; j++) acc += hdn[j]! * b.Wout[j * d + k]!;
        out[r * d + k] = acc;
      }
    }
    return out;
  };
  const lastOnly = (z: Float64Array, Pz: number): Float64Array => {
    const r = new Float64Array(n * d);
    for (let s = 0; s < n; s++) r.set(z.subarray((s * Pz + Pz - 1) * d, (s * Pz + Pz) * d), s * d);
    return r;
  };
  for (let i = 0; i < c.n_layers; i++) {
    residPre.push(x);
    const att = attention(ln(x, n * Pc), i, Pc);
    let mid: Float64Array = x.map((e, j) => e + att[j]!);
    let base: Float64Array = x;
    if (lastPos === 'add_resid1') {
      mid = lastOnly(mid, Pc);
      base = lastOnly(base, Pc);
      Pc = 1;
    }
    residMid.push(mid);
    const mo = mlp(ln(c.parallel_attn_mlp ? base : mid, n * Pc), i, n * Pc);
    x = mid.map((e, j) => e + mo[j]!);
  }
  let xf: Float64Array = ln(x, n * Pc);
  let Pl = Pc;
  if (lastPos === 'unembed') {
    xf = lastOnly(xf, Pc);
    Pl = 1;
  }
  const logits = new Float64Array(n * Pl * V);
  for (let r = 0; r < n * Pl; r++) {
    for (let v = 0; v < V; v++) {
      let acc = w.bU[v]!;
      for (let k = 0; k < d; k++) acc += xf[r * d + k]! * w.WU[k * V + v]!;
      logits[r * V + v] = acc;
    }
  }
  return { residPre, residMid, residFinal: x, logits, positionsAfterCut: Pc, logitPositions: Pl };
}

/** NeoX rotary on [P, dh] rows of one head (SPEC-transformers §2.5), in place. */
function rotateRows(z: Float64Array, P: number, dh: number, rd: number, base: number): void {
  const half = rd / 2;
  for (let t = 0; t < P; t++) {
    const x = z.slice(t * dh, t * dh + rd);
    for (let cidx = 0; cidx < rd; cidx++) {
      const th = t / Math.pow(base, (cidx % half) / half);
      const rot = cidx < half ? -x[cidx + half]! : x[cidx - half]!;
      z[t * dh + cidx] = x[cidx]! * Math.cos(th) + rot * Math.sin(th);
    }
  }
}
