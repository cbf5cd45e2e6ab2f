// The transformer build's data passes in float64 on the CPU (the reference, and the build's
// `"device": "cpu"` path): node activations by the program interpreter (src/cpu/program-f64.ts),
// M′ and squared edges from exact batched VJPs with one cotangent per output (position,
// direction). Conventions: passes.ts.

import { matmulF64 } from '../cpu/matmul.js';
import { forwardF64, vjpSampleF64 } from '../cpu/program-f64.js';
import type { IntegrationPoints } from '../ib/integration.js';
import type { ModelProgram, SectionProgram } from '../model/program.js';
import { nodeActivationsF64, splitParts, tupleWidths, type NodeActs } from './forward-f64.js';
import type { EdgeInputs, NodeStatsResult, TransformerPasses } from './passes.js';
import { isStochastic, stochasticCotangents, stochasticR, type StochasticKind, type StochasticSources } from './stochastic.js';

/** The section's cotangents for one sample: per output member [K, P_out, w_j]. */
type CotangentsOf = (sample: number) => { cot: Float64Array[]; K: number };

/** Samples per interpreter batch (bounds the memory of a section's forward values). */
const CHUNK = 64;

export class PassesF64 implements TransformerPasses {
  readonly device = 'cpu (float64)';
  private acts: NodeActs[] | undefined;

  constructor(
    readonly mp: ModelProgram,
    /** Token ids [n, P]; for a model without an embedding (an MLP), its folded rows (embedTuple). */
    readonly tokens: Int32Array | Float64Array,
    readonly n: number,
    readonly P: number,
  ) {}

  /** Node-layer activations (computed once). */
  activations(): NodeActs[] {
    return (this.acts ??= nodeActivationsF64(this.mp, this.tokens, this.n, this.P));
  }

  async nodeStats(centred: boolean): Promise<NodeStatsResult[]> {
    return this.activations()
      .filter((a) => a.name !== 'output')
      .map((a) => momentsOf(a.data, this.n * a.positions, a.width, centred, a.positions));
  }

  /** Cotangents e_t ⊗ Ĉ[:, i] on each output member, [K, P_out, w_j], K = P_out·rOut (k = t·rOut + i). */
  private cotangents(sec: SectionProgram, Chat: Float64Array | undefined, rOut: number): { cot: Float64Array[]; K: number } {
    const Pout = sec.values[sec.outputs[0]!]!.positions;
    const K = Pout * rOut;
    let off = 0;
    const cot = sec.outputs.map((id) => {
      const w = sec.values[id]!.width;
      const c = new Float64Array(K * Pout * w);
      for (let t = 0; t < Pout; t++) {
        for (let i = 0; i < rOut; i++) {
          const k = t * rOut + i;
          for (let a = 0; a < w; a++) {
            c[(k * Pout + t) * w + a] = Chat ? Chat[(off + a) * rOut + i]! : off + a === i ? 1 : 0;
          }
        }
      }
      off += w;
      return c;
    });
    return { cot, K };
  }

  /** Cotangents per sample: the deterministic set (the same for all), or the sample's stochastic set. */
  private cotangentsOf(s: number, Chat: Float64Array | undefined, rOut: number, stoch: StochasticSources | undefined, kind: StochasticKind): CotangentsOf {
    const sec = this.mp.sections[s]!;
    if (!isStochastic(stoch, kind)) {
      const fixed = this.cotangents(sec, Chat, rOut);
      return () => fixed;
    }
    const Pout = sec.values[sec.outputs[0]!]!.positions;
    const widths = sec.outputs.map((id) => sec.values[id]!.width);
    const dOut = widths.reduce((a, b) => a + b, 0);
    return (sample) => {
      const { cot, K } = stochasticCotangents(stoch, kind, s, sample, Pout, dOut, rOut, Chat);
      let off = 0;
      const parts = widths.map((w) => {
        const c = new Float64Array(K * Pout * w);
        for (let r = 0; r < K * Pout; r++) for (let a = 0; a < w; a++) c[r * w + a] = cot[r * dOut + off + a]!;
        off += w;
        return c;
      });
      return { cot: parts, K };
    };
  }

  /**
   * For each sample of the section's input (optionally replaced by `inputOf`), calls `use` with
   * the integrated VJP block G = Σ_k w_k VJP(α_k f) as [K, P_in, dIn].
   */
  private forEachVjp(
    s: number,
    cotangentsOf: CotangentsOf,
    pts: IntegrationPoints,
    inputOf: ((parts: Float64Array[], B: number) => Float64Array[]) | undefined,
    use: (G: Float64Array, K: number, sample: number, inputs: Float64Array[], b: number) => void,
  ): void {
    const sec = this.mp.sections[s]!;
    const acts = this.activations()[s]!;
    const Pin = acts.positions;
    const widths = tupleWidths(sec, sec.inputs);
    const dIn = widths.reduce((x, y) => x + y, 0);
    for (let b0 = 0; b0 < this.n; b0 += CHUNK) {
      const B = Math.min(CHUNK, this.n - b0);
      let parts = acts.parts.map((p, j) => p.subarray(b0 * Pin * widths[j]!, (b0 + B) * Pin * widths[j]!));
      if (inputOf) parts = inputOf(parts, B);
      const cots = Array.from({ length: B }, (_, b) => cotangentsOf(b0 + b));
      const K = cots[0]!.K;
      const G = new Float64Array(B * K * Pin * dIn);
      for (let q = 0; q < pts.alphas.length; q++) {
        const vals = forwardF64(sec, parts, B, pts.alphas[q]);
        const wq = pts.weights[q]!;
        for (let b = 0; b < B; b++) {
          const gi = vjpSampleF64(sec, vals, b, cots[b]!.cot, K);
          let off = 0;
          gi.forEach((g, j) => {
            const w = widths[j]!;
            for (let r = 0; r < K * Pin; r++) {
              const dst = (b * K * Pin + r) * dIn + off;
              for (let a = 0; a < w; a++) G[dst + a]! += wq * g[r * w + a]!;
            }
            off += w;
          });
        }
      }
      for (let b = 0; b < B; b++) use(G.subarray(b * K * Pin * dIn, (b + 1) * K * Pin * dIn), K, b0 + b, parts, b);
    }
  }

  async mPrime(s: number, Chat: Float64Array | undefined, rOut: number, pts: IntegrationPoints, stoch?: StochasticSources): Promise<Float64Array> {
    const acts = this.activations()[s]!;
    const dIn = acts.width;
    const Pin = acts.positions;
    const M = new Float64Array(dIn * dIn);
    this.forEachVjp(s, this.cotangentsOf(s, Chat, rOut, stoch, 'basis'), pts, undefined, (G, K) => {
      for (let r = 0; r < K * Pin; r++) {
        const o = r * dIn;
        for (let i = 0; i < dIn; i++) {
          const gi = G[o + i]!;
          if (gi === 0) continue;
          for (let j = i; j < dIn; j++) M[i * dIn + j]! += gi * G[o + j]!;
        }
      }
    });
    const div = this.n * Pin * (isStochastic(stoch, 'basis') ? stochasticR(stoch, 'basis') : 1);
    for (let i = 0; i < dIn; i++) {
      for (let j = i; j < dIn; j++) {
        const v = M[i * dIn + j]! / div;
        M[i * dIn + j] = v;
        M[j * dIn + i] = v;
      }
    }
    return M;
  }

  async edges(
    s: number,
    input: EdgeInputs,
    Chat: Float64Array | undefined,
    rOut: number,
    pts: IntegrationPoints,
    stoch?: StochasticSources,
  ): Promise<Float64Array> {
    const sec = this.mp.sections[s]!;
    const acts = this.activations()[s]!;
    const dIn = acts.width;
    const Pin = acts.positions;
    const { C, Cpinv, rIn } = input;
    const widths = tupleWidths(sec, sec.inputs);
    const E = new Float64Array(rOut * rIn);
    let U: Float64Array = new Float64Array(0); // u = f·C of the current chunk, [B·P_in, rIn]
    const project = (parts: Float64Array[], B: number): Float64Array[] => {
      const f = concat(parts, widths, B * Pin);
      U = matmulF64(f, C, { m: B * Pin, n: rIn, k: dIn });
      const fp = matmulF64(U, Cpinv, { m: B * Pin, n: dIn, k: rIn });
      return splitParts(fp, widths, B, Pin);
    };
    // Deterministic: k = t·rOut + i; stochastic: k = r·rOut + i (stochastic.ts). Both: i = k mod rOut.
    this.forEachVjp(s, this.cotangentsOf(s, Chat, rOut, stoch, 'edges'), pts, project, (G, K, _sample, _inputs, b) => {
      // ∂F̂/∂u_{s,j} = Σ_a G[k, s, a] C⁺[j, a]
      const H = matmulF64(G, Cpinv, { m: K * Pin, n: rIn, k: dIn, transB: true });
      const u = U.subarray(b * Pin * rIn, (b + 1) * Pin * rIn);
      for (let k = 0; k < K; k++) {
        const i = k % rOut;
        for (let j = 0; j < rIn; j++) {
          let a = 0;
          for (let sp = 0; sp < Pin; sp++) a += H[(k * Pin + sp) * rIn + j]! * u[sp * rIn + j]!;
          E[i * rIn + j]! += a * a;
        }
      }
    });
    const div = this.n * Pin * (isStochastic(stoch, 'edges') ? stochasticR(stoch, 'edges') : 1);
    for (let i = 0; i < E.length; i++) E[i] = E[i]! / div;
    return E;
  }
}

function concat(parts: readonly Float64Array[], widths: readonly number[], rows: number): Float64Array {
  const W = widths.reduce((a, b) => a + b, 0);
  const out = new Float64Array(rows * W);
  let off = 0;
  parts.forEach((p, j) => {
    const w = widths[j]!;
    for (let r = 0; r < rows; r++) for (let a = 0; a < w; a++) out[r * W + off + a] = p[r * w + a]!;
    off += w;
  });
  return out;
}

/** Mean and Gram over `rows` = N·P_ℓ rows: centred with μ̃ (the mean with its last entry 0), or raw. */
export function momentsOf(x: Float64Array, rows: number, dim: number, centred: boolean, positions: number): NodeStatsResult {
  const mean = new Float64Array(dim);
  for (let r = 0; r < rows; r++) for (let a = 0; a < dim; a++) mean[a]! += x[r * dim + a]!;
  for (let a = 0; a < dim; a++) mean[a] = mean[a]! / rows;
  const shift = new Float64Array(dim);
  if (centred) {
    shift.set(mean);
    shift[dim - 1] = 0;
  }
  const G = new Float64Array(dim * dim);
  const c = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    for (let a = 0; a < dim; a++) c[a] = x[r * dim + a]! - shift[a]!;
    for (let i = 0; i < dim; i++) {
      const ci = c[i]!;
      if (ci === 0) continue;
      for (let j = i; j < dim; j++) G[i * dim + j]! += ci * c[j]!;
    }
  }
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      const v = G[i * dim + j]! / rows;
      G[i * dim + j] = v;
      G[j * dim + i] = v;
    }
  }
  return { mean, gram: G, dim, positions };
}
