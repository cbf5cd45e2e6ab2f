// The three data passes of a transformer build, as an interface the pipeline (pipeline.ts) drives:
// node statistics, M′ per section and squared edges per section. Bases are computed on the host
// in float64 in between (basis.ts). passes-f64.ts implements them in float64 on the CPU (the
// reference); a GPU implementation runs the same ModelProgram.
//
// Conventions (SPEC-transformers §4.1, §5.1, §6.1):
//   means/Grams: divisor N·P_ℓ (samples and positions of that node layer);
//   M′ = (1/(N·P_in)) Σ_n Σ_s g_s g_sᵀ, g = Σ_k w_k VJP at α_k f of the cotangent e_t ⊗ Ĉ[:, i], one
//     cotangent per (t, i): Σ_t inside the VJP, Σ_s outside the outer product;
//   E_ij = (1/(N·P_in)) Σ_n Σ_t (Σ_k w_k Σ_s ∂F̂_{t,i}/∂u_{s,j}(α_k u) u_{s,j})², at the projected
//     point f = u·C⁺ with u = f·C.
// With stochastic sources (stochastic.ts) the cotangents are the sample's Rademacher set instead
// and both divisors gain the factor R (SPEC-transformers §5.1, §6.2).

import type { IntegrationPoints } from '../ib/integration.js';
import type { ModelProgram } from '../model/program.js';
import type { StochasticSources } from './stochastic.js';

export interface NodeStatsResult {
  mean: Float64Array;
  gram: Float64Array;
  dim: number;
  positions: number;
}

export interface EdgeInputs {
  /** C of the section's input node layer, [dIn, rIn]. */
  C: Float64Array;
  /** C⁺, [rIn, dIn]. */
  Cpinv: Float64Array;
  rIn: number;
}

export interface TransformerPasses {
  /** Human-readable, for the manifest ('cpu-f64', the adapter name, …). */
  readonly device: string;
  readonly n: number;
  /** Means and (centred) Grams of every node layer except `output`, in node-layer order. */
  nodeStats(centred: boolean): Promise<NodeStatsResult[]>;
  /**
   * M′ of section `s` (node layer s → s+1), dIn×dIn, divided by N·P_in. `Chat` is C of node
   * layer s+1 ([dOut, rOut]) or undefined for the identity (unrotated output).
   */
  mPrime(s: number, Chat: Float64Array | undefined, rOut: number, pts: IntegrationPoints, stoch?: StochasticSources): Promise<Float64Array>;
  /** Squared edges of section `s`, [rOut, rIn], divided by N·P_in (·R when stochastic). */
  edges(s: number, input: EdgeInputs, Chat: Float64Array | undefined, rOut: number, pts: IntegrationPoints, stoch?: StochasticSources): Promise<Float64Array>;
  /**
   * Before an edges-only run (stored bases, no statistics pass): computes what the edge passes'
   * faster paths read (the host statistics pass's rows, second moments) where that is cheap; a
   * no-op where it is not.
   */
  prepareEdges?(centred: boolean): Promise<void>;
  /**
   * The block of M′ (unrotated output: Ĉ = I) on the input of section `s`'s single ReLU, from
   * co-firing counts of that input over this data's N·P_in rows computed elsewhere (h × h, h its
   * width, firing counts on the diagonal; the degeneracy report's float64 forward over the same
   * data, src/transformer/degeneracy.ts), without a data pass; undefined where the section is
   * not of that form (one ReLU reading the section's first input, points α > 0). Passes without
   * the gate closed form (the float64 reference) leave it out.
   */
  reluInputMPrime?(s: number, counts: Float64Array, pts: IntegrationPoints): Float64Array | undefined;
  /** How each stage and section was computed (closed form, host or GPU), for the manifest. */
  stagePaths?(): Record<string, string>;
  dispose?(): void;
}

export type PassesFactory = (mp: ModelProgram, tokens: Int32Array, n: number, P: number) => Promise<TransformerPasses>;
