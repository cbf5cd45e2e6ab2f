// Shapes shared by the GPU VJP passes of a section (gpu-mdash.ts, gpu-mdash-local.ts,
// gpu-edges.ts): the section's tuple geometry and the sample-independent cotangent blocks
// φ_(t,i) = e_t ⊗ Ĉ[:, i] (SPEC-transformers §5.1).

import { checkShape } from '../errors.js';
import type { IntegrationPoints } from '../ib/integration.js';
import type { Engine } from '../runtime/engine.js';
import type { GpuModel } from './gpu-model.js';

export interface SectionVjpOptions {
  /** Ĉ, d_out × r_out row-major; absent: the identity (r_out = d_out). */
  Chat?: Float64Array;
  rOut?: number;
  points: IntegrationPoints;
  /** Samples per batch / cotangents per block (defaults from the batch buffer budget). */
  batch?: number;
  kBlock?: number;
  /** Always run the per-sample VJPs, even where a closed form applies (for cross-checks). */
  generic?: boolean;
  /** Told which path the pass takes (for the result manifest's `stage_paths`). */
  onPath?: (path: string) => void;
}

export interface SectionGeometry {
  dIn: number;
  dOut: number;
  pIn: number;
  pOut: number;
  rOut: number;
  widthsIn: number[];
  widthsOut: number[];
  /** Cotangents per sample: pOut · rOut. */
  K: number;
}

/**
 * The samples one pass over section s reads: node s → node s + 1 of the GPU model at the first N
 * samples of `tokens`, with the section's geometry. The closed forms (gpu-mdash-local.ts,
 * gpu-edges-local.ts, gpu-attention-closed.ts) and their batch helpers all take one.
 */
export interface SectionSamples {
  engine: Engine;
  model: GpuModel;
  s: number;
  tokens: ArrayLike<number>;
  N: number;
  g: SectionGeometry;
}

export function sectionGeometry(model: GpuModel, s: number, Chat?: Float64Array, rOut?: number): SectionGeometry {
  checkShape(Number.isInteger(s) && s >= 0 && s < model.sections.length, `section index ${s} outside 0..${model.sections.length - 1}`);
  const a = model.nodes[s]!;
  const b = model.nodes[s + 1]!;
  const r = Chat ? (rOut ?? -1) : b.width;
  checkShape(
    !Chat || (Number.isInteger(r) && r >= 1 && Chat.length === b.width * r),
    `section ${a.name}->${b.name}: Ĉ has ${Chat?.length} entries, expected ${b.width} × rOut (rOut = ${rOut})`,
    'pass Chat as d_out × r_out row-major with rOut',
  );
  return { dIn: a.width, dOut: b.width, pIn: a.positions, pOut: b.positions, rOut: r, widthsIn: a.widths, widthsOut: b.widths, K: b.positions * r };
}

/** Cotangent block k ∈ [k0, k0 + kb): row (k, t) is Ĉ[:, i]ᵀ at t = k / rOut, zero elsewhere; [kb·pOut, dOut]. */
export function cotangentBlock(g: SectionGeometry, Chat: Float64Array | undefined, k0: number, kb: number): Float32Array {
  const out = new Float32Array(kb * g.pOut * g.dOut);
  for (let kk = 0; kk < kb; kk++) {
    const k = k0 + kk;
    const t = Math.floor(k / g.rOut);
    const i = k % g.rOut;
    const row = (kk * g.pOut + t) * g.dOut;
    for (let c = 0; c < g.dOut; c++) out[row + c] = Chat ? Chat[c * g.rOut + i]! : c === i ? 1 : 0;
  }
  return out;
}
