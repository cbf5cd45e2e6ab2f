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
// The signs come from mulberry32, seeded per (seed, section, sample, estimator) by a 32-bit mix:
// a sample's draws depend only on the config seed, the section index and the sample's index in
// the dataset, never on the batch size, the K-block size or the device. rib draws from torch's
// RNG, fresh per batch; those draws cannot be reproduced here (docs/DEVIATIONS.md).

import { IbgpuError } from '../errors.js';
import { mulberry32 } from '../cpu/mulberry32.js';

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
  return kind === 'edges' ? src.edges ?? 1 : (src.basisPos ?? 1) * (src.basisHidden ?? 1);
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

/** The mulberry32 seed of one (seed, section, sample, estimator) stream. */
export function streamSeed(seed: number, section: number, sample: number, kind: StochasticKind): number {
  let h = fmix32((seed >>> 0) ^ 0x9e3779b9);
  h = fmix32(h ^ Math.imul(section + 1, 0x27d4eb2f));
  h = fmix32(h ^ Math.imul((sample >>> 0) + 1, 0x165667b1));
  return fmix32(h ^ (kind === 'edges' ? 0x5bd1e995 : 0x1b873593));
}

/**
 * The coefficients φ of one sample's stochastic cotangents in the r_out basis, [K, P_out, r_out]
 * row-major (layout in the header). Draw order: the φ entries that are ±1, in the order of the
 * loops below; `u < 0.5 → −1` (rib: rand > 0.5 → +1).
 */
export function stochasticPhi(src: StochasticSources, kind: StochasticKind, section: number, sample: number, pOut: number, rOut: number): { phi: Float64Array; K: number } {
  const K = stochasticK(src, kind, pOut, rOut);
  const phi = new Float64Array(K * pOut * rOut);
  const u = mulberry32(streamSeed(src.seed, section, sample, kind));
  const sign = () => (u() < 0.5 ? -1 : 1);
  const at = (k: number, t: number, i: number) => (k * pOut + t) * rOut + i;
  if (kind === 'edges') {
    for (let r = 0; r < src.edges!; r++) {
      for (let t = 0; t < pOut; t++) {
        const e = sign();
        for (let i = 0; i < rOut; i++) phi[at(r * rOut + i, t, i)] = e;
      }
    }
    return { phi, K };
  }
  const rp = src.basisPos;
  const rh = src.basisHidden;
  if (rp !== undefined && rh !== undefined) {
    for (let i = 0; i < phi.length; i++) phi[i] = sign();
  } else if (rp !== undefined) {
    for (let r = 0; r < rp; r++) for (let i = 0; i < rOut; i++) for (let t = 0; t < pOut; t++) phi[at(r * rOut + i, t, i)] = sign();
  } else {
    for (let t = 0; t < pOut; t++) for (let r = 0; r < rh!; r++) for (let i = 0; i < rOut; i++) phi[at(t * rh! + r, t, i)] = sign();
  }
  return { phi, K };
}

/**
 * One sample's cotangents on the section output, φ·Ĉᵀ: [K, P_out, d_out] row-major (Ĉ is
 * d_out × r_out; undefined: the identity, d_out = r_out). Rows whose φ is zero stay zero.
 */
export function stochasticCotangents(
  src: StochasticSources, kind: StochasticKind, section: number, sample: number, pOut: number, dOut: number, rOut: number, Chat: Float64Array | undefined,
): { cot: Float64Array; K: number } {
  const { phi, K } = stochasticPhi(src, kind, section, sample, pOut, rOut);
  if (!Chat) return { cot: phi, K };
  const cot = new Float64Array(K * pOut * dOut);
  for (let row = 0; row < K * pOut; row++) {
    for (let i = 0; i < rOut; i++) {
      const p = phi[row * rOut + i]!;
      if (p === 0) continue;
      for (let a = 0; a < dOut; a++) cot[row * dOut + a] += p * Chat[a * rOut + i]!;
    }
  }
  return { cot, K };
}

/** Refuses stochastic sources where they are not implemented (everything but transformer builds). */
export function refuseStochastic(src: { n_stochastic_sources_basis_pos?: number; n_stochastic_sources_basis_hidden?: number; n_stochastic_sources_edges?: number }, what: string): void {
  const set = (['n_stochastic_sources_basis_pos', 'n_stochastic_sources_basis_hidden', 'n_stochastic_sources_edges'] as const).filter((k) => src[k] !== undefined);
  if (set.length) {
    throw new IbgpuError('BAD_CONFIG', `${set.join(', ')} ${set.length > 1 ? 'are' : 'is'} only available for transformer builds, not for ${what}`,
      `remove ${set.join(' and ')}: ${what} are built exactly (rib uses stochastic sources for transformers only)`);
  }
}
