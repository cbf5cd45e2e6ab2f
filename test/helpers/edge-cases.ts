// Cases for the host squared-edge pass (src/host/edges-squared.ts, edges.ts), shared by the tests
// of its JS kernel against the float64 reference (test/host-edges.test.ts) and of its WebAssembly
// kernel against the JS one (test/host-edges-wasm.test.ts): both sweep the same gate kinds, orders
// and identity-A sections over their own shape tables, and run the whole pass on the same MLP.

import { signPatternOrder } from '../../src/cpu/gate-order.js';
import type { SquaredEdgeSection } from '../../src/host/edges-squared.js';
import type { LayerBasis } from '../../src/ib/basis.js';
import type { EdgePair } from '../../src/ib/edges.js';
import { randomMlp } from '../../src/ib/self-check.js';
import { foldedWeight, type MlpModel } from '../../src/model/mlp.js';
import { genericData } from './ib.js';
import { randomF64, rng } from './random.js';

export type GateKind = 'relu' | 'smooth' | 'constant';

const GATE_KINDS: GateKind[] = ['relu', 'smooth', 'constant'];

/** ReLU firing rates from 15 % to 85 % that differ from unit to unit, so that sign-pattern order has structure to find. */
export const perUnitRate = (unit: number): number => 0.15 + (0.7 * ((unit * 7919) % 97)) / 97;

/**
 * rows × h gates: ReLU 0/1 (unit k fires with probability reluRate(k)), smooth values in
 * [−0.1, 1.1), or constant 1 (gates that never change).
 */
export function gatesOf(kind: GateKind, rows: number, h: number, seed: number, reluRate: (unit: number) => number = perUnitRate): Float64Array {
  const u = rng(seed);
  return Float64Array.from({ length: rows * h }, (_, t) => {
    if (kind === 'constant') return 1;
    if (kind === 'smooth') return 1.2 * u() - 0.1;
    return u() < reluRate(t % h) ? 1 : 0;
  });
}

/** A section's widths (h units, ro outputs, r inputs) and row count. */
export interface EdgeShape {
  h: number;
  ro: number;
  r: number;
  rows: number;
}

/** One kernel case: a shape, a gate kind, and whether A is the identity (only where ro = h). */
export interface EdgeKernelCase extends EdgeShape {
  kind: GateKind;
  identityA: boolean;
  /** The test's name, from all of the above. */
  name: string;
  /** Seed of the case's random operands (distinct across the kinds of one shape). */
  seed: number;
}

/** Every gate kind over every shape, and each square shape once more with the identity A. */
export function edgeKernelCases(shapes: EdgeShape[]): EdgeKernelCase[] {
  return shapes.flatMap((s) =>
    GATE_KINDS.flatMap((kind) =>
      (s.ro === s.h ? [false, true] : [false]).map((identityA) => ({
        ...s,
        kind,
        identityA,
        name: `h ${s.h}, ro ${s.ro}, r ${s.r}, ${s.rows} rows, ${kind} gates${identityA ? ', identity A' : ''}`,
        seed: s.h * 1000 + s.r * 10 + GATE_KINDS.indexOf(kind),
      })),
    ),
  );
}

/**
 * A case's operands: the section (unit-major A, or none for the identity; unit-major B), features
 * f (rows × r), gates g (rows × h; ReLU units firing at reluRate), and the row order: sign-pattern
 * order for ReLU gates, else a scrambled one (7 is prime to every row count the tables use).
 */
export function edgeKernelInputs(
  c: EdgeKernelCase,
  reluRate: (unit: number) => number = perUnitRate,
): { sec: SquaredEdgeSection; f: Float64Array; g: Float64Array; order: Uint32Array } {
  const { h, ro, r, rows, seed } = c;
  const sec: SquaredEdgeSection = { h, ro, r, A: c.identityA ? undefined : randomF64(h * ro, seed + 1), B: randomF64(h * r, seed + 2) };
  const f = randomF64(rows * r, seed + 3);
  const g = gatesOf(c.kind, rows, h, seed + 4, reluRate);
  const order = c.kind === 'relu' ? signPatternOrder(g, rows, h) : Uint32Array.from({ length: rows }, (_, n) => (n * 7) % rows);
  return { sec, f, g, order };
}

/** The MLP, its inputs and the edge sections of a whole host edge pass. */
export interface EdgePassSetup {
  model: MlpModel;
  x: Float32Array;
  n: number;
  pairs: EdgePair[];
}

/**
 * A 3-section MLP 9 → 17 → 13 → 5 (ReLU, then `act1`, then linear) on n inputs ~40 % zeros, with
 * random bases (the pass is linear in C, C⁺ and the next C, which need not be a basis pair for the
 * algebra).
 */
export function edgePassSetup(n: number, act1: 'relu' | 'gelu_tanh' = 'relu'): EdgePassSetup {
  const model = randomMlp([9, 17, 13, 5], 7);
  model.layers[1]!.activation = act1;
  const x = genericData(n, 9, 8).map((v, t) => ((t * 2654435761) % 10 < 4 ? 0 : v));
  const rs = [6, 11, 4];
  const ros = [7, 5, 5];
  const pairs: EdgePair[] = model.layers.map((l, i) => {
    const W = foldedWeight(model, i);
    const dim = l.dIn + 1;
    const r = rs[i]!;
    const last = i === model.layers.length - 1;
    const basis = {
      name: l.name,
      dim,
      r,
      centred: true,
      C: randomF64(dim * r, 10 + i).map((v) => v / Math.sqrt(dim)),
      Cpinv: randomF64(r * dim, 20 + i).map((v) => v / Math.sqrt(dim)),
      mean: Float64Array.from({ length: dim }, (_, k) => (k === dim - 1 ? 1 : 0.1 * k)),
    } as unknown as LayerBasis;
    return {
      layer: i,
      inName: l.name,
      outName: last ? 'output' : model.layers[i + 1]!.name,
      basis,
      formula: 'jacobian',
      Wbar: W.data,
      dimOut: W.cols,
      nextC: last ? undefined : randomF64(W.cols * ros[i]!, 30 + i),
      ro: last ? W.cols : ros[i]!,
    };
  });
  return { model, x, n, pairs };
}
