// Float64 references of the transformer kernels (shaders/tf_*.wgsl), op by op, in the kernels'
// batched layouts: forward values [B·P, width]; cotangent blocks [B·K·P, width] (sample, cotangent,
// position) with the forward broadcast over k. They are the kernels' test oracles; the whole-
// program float64 interpreter is src/cpu/program-f64.ts. The definitions follow
// src/model/program.ts.

import { act, actGrad, type Activation } from '../model/activations.js';
import type { AttentionHeads } from '../model/program.js';

type Arr = ArrayLike<number>;

/** Forward row of cotangent row r = (b·K + k)·P + p: b·P + p. */
export function forwardRow(r: number, K: number, P: number): number {
  return Math.floor(r / (K * P)) * P + (r % P);
}

/** (cos θ, sin θ) for θ = t · base^(−2i/rotaryDim), t < P, i < rotaryDim/2: [P, rotaryDim/2, 2]. */
export function rotaryTable(P: number, rotaryDim: number, base: number): Float64Array {
  const half = rotaryDim / 2;
  const out = new Float64Array(P * half * 2);
  for (let t = 0; t < P; t++) {
    for (let i = 0; i < half; i++) {
      const th = t * Math.pow(base, (-2 * i) / rotaryDim);
      out[(t * half + i) * 2] = Math.cos(th);
      out[(t * half + i) * 2 + 1] = Math.sin(th);
    }
  }
  return out;
}

export function gatherF64(table: Arr, width: number, src: (r: number) => number, rows: number): Float64Array {
  const out = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) out[r * width + c] = table[src(r) * width + c]!;
  return out;
}

export function actF64(x: Arr, a: Activation): Float64Array {
  return Float64Array.from(x, (v) => act(a, v));
}

export function actVjpF64(x: Arr, dy: Arr, B: number, K: number, P: number, width: number, a: Activation): Float64Array {
  const out = new Float64Array(B * K * P * width);
  for (let r = 0; r < B * K * P; r++) {
    const f = forwardRow(r, K, P);
    for (let c = 0; c < width; c++) out[r * width + c] = dy[r * width + c]! * actGrad(a, x[f * width + c]!);
  }
  return out;
}

function rowMean(x: Arr, o: number, d: number): number {
  let s = 0;
  for (let c = 0; c < d; c++) s += x[o + c]!;
  return s / d;
}

export function lnVarF64(x: Arr, rows: number, width: number, d: number): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const m = rowMean(x, r * width, d);
    let q = 0;
    for (let c = 0; c < d; c++) q += (x[r * width + c]! - m) ** 2;
    y[r] = q / d;
  }
  return y;
}

export function lnDivF64(v: Arr, x: Arr, rows: number, d: number, eps: number): Float64Array {
  const w = d + 1;
  const y = new Float64Array(rows * w);
  for (let r = 0; r < rows; r++) {
    const m = rowMean(x, r * w, d);
    const s = Math.sqrt(v[r]! + eps);
    for (let c = 0; c < d; c++) y[r * w + c] = (x[r * w + c]! - m) / s;
    y[r * w + d] = x[r * w + d]!;
  }
  return y;
}

export function lnVarVjpF64(x: Arr, dy: Arr, B: number, K: number, P: number, width: number, d: number): Float64Array {
  const out = new Float64Array(B * K * P * width);
  for (let r = 0; r < B * K * P; r++) {
    const f = forwardRow(r, K, P);
    const m = rowMean(x, f * width, d);
    for (let c = 0; c < d; c++) out[r * width + c] = (dy[r]! * 2 * (x[f * width + c]! - m)) / d;
  }
  return out;
}

export function lnDivVjpF64(v: Arr, x: Arr, dy: Arr, B: number, K: number, P: number, d: number, eps: number): { dx: Float64Array; dvar: Float64Array } {
  const w = d + 1;
  const rows = B * K * P;
  const dx = new Float64Array(rows * w);
  const dvar = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const f = forwardRow(r, K, P);
    const m = rowMean(x, f * w, d);
    const mg = rowMean(dy, r * w, d);
    const s = Math.sqrt(v[f]! + eps);
    let t = 0;
    for (let c = 0; c < d; c++) {
      const g = dy[r * w + c]!;
      dx[r * w + c] = (g - mg) / s;
      t += g * (x[f * w + c]! - m);
    }
    dx[r * w + d] = dy[r * w + d]!;
    dvar[r] = (-0.5 * t) / (s * s * s);
  }
  return { dx, dvar };
}

/** Rotates rows (position r % P); transpose = the inverse rotation (the VJP). */
export function rotaryF64(x: Arr, rows: number, P: number, heads: number, dHead: number, rotaryDim: number, base: number, transpose: boolean): Float64Array {
  const table = rotaryTable(P, rotaryDim, base);
  const half = rotaryDim / 2;
  const w = heads * dHead;
  const sg = transpose ? -1 : 1;
  const y = Float64Array.from({ length: rows * w }, (_, e) => x[e]!);
  for (let r = 0; r < rows; r++) {
    const t = r % P;
    for (let h = 0; h < heads; h++) {
      const o = r * w + h * dHead;
      for (let i = 0; i < half; i++) {
        const cos = table[(t * half + i) * 2]!;
        const sin = sg * table[(t * half + i) * 2 + 1]!;
        const a = x[o + i]!;
        const b = x[o + i + half]!;
        y[o + i] = a * cos - b * sin;
        y[o + i + half] = b * cos + a * sin;
      }
    }
  }
  return y;
}

/** An attention op's heads over B samples of P positions (the kernels' AttentionShape). */
export interface AttentionDims extends AttentionHeads {
  /** Samples. */
  B: number;
  /** Positions. */
  P: number;
}

export function attentionAllowed(a: AttentionDims, t: number, u: number): boolean {
  if (a.causal && u > t) return false;
  if (a.window && Math.abs(t - u) >= a.window) return false;
  return true;
}

/** z [B·P, heads·dV] and probabilities [B·heads, P, P]. */
export function attentionF64(q: Arr, k: Arr, v: Arr, a: AttentionDims): { z: Float64Array; probs: Float64Array } {
  const { B, P, heads: H, dHead: dh, dV: dv } = a;
  const z = new Float64Array(B * P * H * dv);
  const probs = new Float64Array(B * H * P * P);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < P; t++) {
        const s = new Float64Array(P).fill(-Infinity);
        let m = -Infinity;
        for (let u = 0; u < P; u++) {
          if (!attentionAllowed(a, t, u)) continue;
          let dot = 0;
          for (let c = 0; c < dh; c++) dot += q[(b * P + t) * H * dh + h * dh + c]! * k[(b * P + u) * H * dh + h * dh + c]!;
          s[u] = dot / a.scale;
          m = Math.max(m, s[u]!);
        }
        let l = 0;
        for (let u = 0; u < P; u++) l += Number.isFinite(s[u]!) ? Math.exp(s[u]! - m) : 0;
        const po = ((b * H + h) * P + t) * P;
        for (let u = 0; u < P; u++) {
          const p = Number.isFinite(s[u]!) ? Math.exp(s[u]! - m) / l : 0;
          probs[po + u] = p;
          for (let c = 0; c < dv; c++) z[(b * P + t) * H * dv + h * dv + c]! += p * v[(b * P + u) * H * dv + h * dv + c]!;
        }
      }
    }
  }
  return { z, probs };
}

/** dq, dk, dv for cotangents dz [B·K·P, heads·dV] (SPEC-transformers §5.2). */
export function attentionVjpF64(q: Arr, k: Arr, v: Arr, dz: Arr, K: number, a: AttentionDims): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, P, heads: H, dHead: dh, dV: dvw } = a;
  const { probs } = attentionF64(q, k, v, a);
  const dq = new Float64Array(B * K * P * H * dh);
  const dk = new Float64Array(B * K * P * H * dh);
  const dv = new Float64Array(B * K * P * H * dvw);
  for (let b = 0; b < B; b++) {
    for (let kk = 0; kk < K; kk++) {
      const row = (p: number): number => (b * K + kk) * P + p;
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < P; t++) {
          const po = ((b * H + h) * P + t) * P;
          const dp = new Float64Array(P);
          let dot = 0;
          for (let u = 0; u < P; u++) {
            for (let c = 0; c < dvw; c++) dp[u]! += dz[row(t) * H * dvw + h * dvw + c]! * v[(b * P + u) * H * dvw + h * dvw + c]!;
            dot += probs[po + u]! * dp[u]!;
          }
          for (let u = 0; u < P; u++) {
            const p = probs[po + u]!;
            const ds = p * (dp[u]! - dot);
            for (let c = 0; c < dh; c++) {
              dq[row(t) * H * dh + h * dh + c]! += (ds * k[(b * P + u) * H * dh + h * dh + c]!) / a.scale;
              dk[row(u) * H * dh + h * dh + c]! += (ds * q[(b * P + t) * H * dh + h * dh + c]!) / a.scale;
            }
            for (let c = 0; c < dvw; c++) dv[row(u) * H * dvw + h * dvw + c]! += p * dz[row(t) * H * dvw + h * dvw + c]!;
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/** out[k, j] = Σ_b (Σ_s h[b·hs + (k·P + s)·r + j] · u[b·P + s, j])², hs = K·P·r or 0 when shared (tf_edge_square's reference). */
export function edgeSquareF64(h: Arr, u: Arr, B: number, K: number, P: number, r: number, hShared = false): Float64Array {
  const hs = hShared ? 0 : K * P * r;
  const out = new Float64Array(K * r);
  for (let k = 0; k < K; k++) {
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let b = 0; b < B; b++) {
        let e = 0;
        for (let s = 0; s < P; s++) e += h[b * hs + (k * P + s) * r + j]! * u[(b * P + s) * r + j]!;
        acc += e * e;
      }
      out[k * r + j] = acc;
    }
  }
  return out;
}
