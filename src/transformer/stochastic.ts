// rib's stochastic sources for transformer sections (SPEC-transformers §5.1 table, §6.2): Rademacher
// (±1) cotangents that replace the deterministic one-per-(t, i) set. Shared by the float64 passes
// (passes-f64.ts) and the GPU passes (gpu-stochastic.ts), so both see the same draws.
//
// Cotangent sets, k the cotangent index (the first factor outer, as rib iterates):
//   M′, R_p only:   k = r·r_out + i,   φ_k[t, i′] = ε·δ_{ii′}   (ε per sample, r, i, t)
//   M′, R_h only:   k = t·R_h + r,     φ_k[t′, i] = δ_{tt′}·ε   (ε per sample, t, r, i)
//   M′, both:       k = r_p·R_h + r_h, φ_k[t, i] = ε            (ε per sample, k, t, i)
//   edges, R:       k = r·r_out + i,   φ_k[t, i′] = φ_{r,t}·δ_{ii′}, one sign per (sample, r, t)
// so that for the edge and R_p sets i = k mod r_out, as in the deterministic set. The cotangent on
// the section's output is φ_k·Ĉᵀ (Ĉ = C of the next node layer, or I).
//
// The signs come from mulberry32 streams, each seeded by a 32-bit mix of (seed, section, sample,
// estimator, r or k): a sample's draws depend only on the config seed, the section index and the
// sample's index in the dataset, never on the batch size, the K-block size or the device; and a
// block of cotangents can be drawn without the others. rib draws from torch's
// RNG, fresh per batch; those draws cannot be reproduced here (docs/DEVIATIONS.md).

import { IbgpuError } from '../errors.js';
import { mulberry32 } from '../util/mulberry32.js';

export interface StochasticSources {
  /** n_stochastic_sources_basis_pos (R_p). */
  basisPos?: number;
  /** n_stochastic_sources_basis_hidden (R_h). */
  basisHidden?: number;
  /** n_stochastic_sources_edges (R). */
  edges?: number;
  /** The config's seed (an integer; taken mod 2^32). */
  seed: number;
}

/** Which estimator a draw belongs to (separate streams, so M′ and edges never share signs). */
export type StochasticKind = 'basis' | 'edges';

/** Whether M′ (basis) or the edges of this config use stochastic cotangents. */
export function isStochastic(src: StochasticSources | undefined, kind: StochasticKind): src is StochasticSources {
  if (!src) return false;
  return kind === 'edges' ? src.edges !== undefined : src.basisPos !== undefined || src.basisHidden !== undefined;
}

/** R, the product of the source counts that are set (the extra divisor, SPEC-transformers §5.1). */
export function stochasticR(src: StochasticSources, kind: StochasticKind): number {
  return kind === 'edges' ? (src.edges ?? 1) : (src.basisPos ?? 1) * (src.basisHidden ?? 1);
}

/** Cotangents per sample of a stochastic set. */
export function stochasticK(src: StochasticSources, kind: StochasticKind, pOut: number, rOut: number): number {
  if (kind === 'edges') return src.edges! * rOut;
  const rp = src.basisPos;
  const rh = src.basisHidden;
  if (rp !== undefined && rh !== undefined) return rp * rh;
  if (rp !== undefined) return rp * rOut;
  return pOut * rh!;
}

/** 32-bit finaliser (murmur3 fmix32): spreads every input bit over the whole seed. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The mulberry32 seed of one stream: (seed, section, sample, estimator, outer), where `outer` is
 * r for the edge and R_p sets and k for the R_h and combined sets (stochasticPhiRows).
 */
export function streamSeed(seed: number, section: number, sample: number, kind: StochasticKind, outer: number): number {
  let h = fmix32((seed >>> 0) ^ 0x9e3779b9);
  h = fmix32(h ^ Math.imul(section + 1, 0x27d4eb2f));
  h = fmix32(h ^ Math.imul((sample >>> 0) + 1, 0x165667b1));
  h = fmix32(h ^ (kind === 'edges' ? 0x5bd1e995 : 0x1b873593));
  return fmix32(h ^ Math.imul(outer + 1, 0x85ebca77));
}

/**
 * Coefficients φ_k of cotangents k ∈ [k0, k0 + kb) of one sample in the r_out basis,
 * [kb, P_out, r_out] row-major (layout in the header); without k0/kb all K of them. Each stream
 * gives `u < 0.5 → −1, else +1` (rib: rand > 0.5 → +1) in this order: edges, stream r: one sign
 * per t; R_p, stream r: signs for (i, t), i outer; R_h, stream k: one sign per i; both, stream k:
 * signs for (t, i), t outer. Any block of k can be generated alone, so memory stays bounded by the
 * block.
 */
export function stochasticPhiRows(
  src: StochasticSources,
  kind: StochasticKind,
  section: number,
  sample: number,
  pOut: number,
  rOut: number,
  k0 = 0,
  kb = stochasticK(src, kind, pOut, rOut) - k0,
): Float64Array {
  const K = stochasticK(src, kind, pOut, rOut);
  if (!(Number.isInteger(k0) && Number.isInteger(kb) && k0 >= 0 && kb >= 0 && k0 + kb <= K)) {
    throw new IbgpuError('SHAPE', `stochastic cotangents [${k0}, ${k0 + kb}) outside 0..${K}`);
  }
  const phi = new Float64Array(kb * pOut * rOut);
  const at = (kk: number, t: number, i: number) => (kk * pOut + t) * rOut + i;
  const stream = (outer: number) => {
    const u = mulberry32(streamSeed(src.seed, section, sample, kind, outer));
    return () => (u() < 0.5 ? -1 : 1);
  };
  const rp = src.basisPos;
  const rh = src.basisHidden;
  for (let kk = 0; kk < kb; kk++) {
    const k = k0 + kk;
    if (kind === 'edges' || (rh === undefined && rp !== undefined)) {
      const r = Math.floor(k / rOut);
      const i = k % rOut;
      const sign = stream(r);
      if (kind !== 'edges') for (let skip = 0; skip < i * pOut; skip++) sign();
      for (let t = 0; t < pOut; t++) phi[at(kk, t, i)] = sign();
    } else if (rp === undefined) {
      const t = Math.floor(k / rh!);
      const sign = stream(k);
      for (let i = 0; i < rOut; i++) phi[at(kk, t, i)] = sign();
    } else {
      const sign = stream(k);
      for (let j = 0; j < pOut * rOut; j++) phi[kk * pOut * rOut + j] = sign();
    }
  }
  return phi;
}

/**
 * Cotangents k ∈ [k0, k0 + kb) of one sample on the section output, φ·Ĉᵀ: [kb, P_out, d_out]
 * row-major (Ĉ is d_out × r_out; undefined: the identity, d_out = r_out). Rows whose φ is zero
 * stay zero. Without k0/kb: all K.
 */
export function stochasticCotangents(
  src: StochasticSources,
  kind: StochasticKind,
  section: number,
  sample: number,
  pOut: number,
  dOut: number,
  rOut: number,
  Chat: Float64Array | undefined,
  k0 = 0,
  kb?: number,
): { cot: Float64Array; K: number } {
  const K = stochasticK(src, kind, pOut, rOut);
  const n = kb ?? K - k0;
  const phi = stochasticPhiRows(src, kind, section, sample, pOut, rOut, k0, n);
  if (!Chat) return { cot: phi, K };
  const cot = new Float64Array(n * pOut * dOut);
  for (let row = 0; row < n * pOut; row++) {
    for (let i = 0; i < rOut; i++) {
      const p = phi[row * rOut + i]!;
      if (p === 0) continue;
      for (let a = 0; a < dOut; a++) cot[row * dOut + a]! += p * Chat[a * rOut + i]!;
    }
  }
  return { cot, K };
}
