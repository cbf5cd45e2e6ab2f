// rib's legacy formulas: the bases `(1-0)*alpha` and `(1-alpha)^2` (SPEC §4.4, §4.7, §4.8) and
// `functional` edges (SPEC §5.3), against
//   - a float64 CPU reference written from SPEC with per-datapoint loops (src/cpu/ib-legacy.ts),
//     itself checked against finite differences;
//   - the exact sum rules of SPEC §4.4 / §5.3 / §5.7;
//   - rib's own float64 output for `(1-0)*alpha` on the synthetic fixture.
// The pipeline's statistics are f32 per batch (f64 across batches); tolerances state the
// measured values on llvmpipe and the margin taken.

import { beforeAll, describe, expect, it } from 'vitest';
import { IbgpuError } from '../src/errors.js';
import type { Activation } from '../src/model/activations.js';
import { parseConfig, type BuildConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import { layerIdentities } from '../src/ib/identities.js';
import { integrationPoints, type IntegrationMethod, type IntegrationPoints } from '../src/ib/integration.js';
import { foldedWeight, type MlpModel } from '../src/model/mlp.js';
import { buildInteractionBasis, type IbResult } from '../src/ib/pipeline.js';
import { randomMlp } from '../src/ib/self-check.js';
import {
  functionalEdgesRef,
  legacyBasisRef,
  legacyGradientRef,
  legacyMoments,
  sectionHat,
  sectionJacobian,
  type LegacyFormulaRef,
  type RefBasis,
  type RefSection,
} from '../src/cpu/ib-legacy.js';
import { selfCheck as legacySelfCheck } from '../src/kernels/legacy.js';
import { useEngine } from './helpers/gpu.js';
import { columnErrUpToSign, entryRelErr, fmt, foldedActs, genericData, loadSyntheticFixture, maxAbs, readSafetensors, relErr } from './helpers/ib.js';
import { gaussian, rng } from './helpers/random.js';

const engine = useEngine();
const NODES = ['layers.0', 'layers.1', 'layers.2', 'output'];

function log(what: string, v: number): void {
  console.log(`${what}: ${fmt(v)}`);
}

function model3(act: Activation, seed: number): MlpModel {
  // 6 → 11 → 9 → 4: the first two sections are wider than their inputs, the last feeds 4 logits.
  const m = randomMlp([6, 11, 9, 4], seed);
  for (const l of m.layers.slice(0, -1)) l.activation = act;
  return m;
}

function refSection(model: MlpModel, layer: number, Cn: Float64Array | undefined, ro: number): RefSection {
  const W = foldedWeight(model, layer);
  return { Wbar: W.data, dim: W.rows, dimOut: W.cols, act: model.layers[layer]!.activation, Cn, ro };
}

/** Min over columns of |cos| between A's and B's columns (rows × cols each). */
function minAbsCos(A: ArrayLike<number>, B: ArrayLike<number>, rows: number, cols: number): number {
  let worst = 1;
  for (let j = 0; j < cols; j++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i < rows; i++) {
      ab += A[i * cols + j]! * B[i * cols + j]!;
      aa += A[i * cols + j]! ** 2;
      bb += B[i * cols + j]! ** 2;
    }
    worst = Math.min(worst, Math.abs(ab) / Math.sqrt(aa * bb));
  }
  return worst;
}

function colSums(E: { data: Float64Array; rows: number; cols: number }): Float64Array {
  const s = new Float64Array(E.cols);
  for (let i = 0; i < E.rows; i++) for (let j = 0; j < E.cols; j++) s[j]! += E.data[i * E.cols + j]!;
  return s;
}

function rowSums(E: { data: Float64Array; rows: number; cols: number }): Float64Array {
  const s = new Float64Array(E.rows);
  for (let i = 0; i < E.rows; i++) for (let j = 0; j < E.cols; j++) s[i]! += E.data[i * E.cols + j]!;
  return s;
}

// ------------------------------------------------------------------------------------ config

describe('config: legacy combinations', () => {
  const nl = { node_layers: NODES };
  const err = (raw: Record<string, unknown>): IbgpuError => {
    try {
      parseConfig({ ...nl, ...raw });
    } catch (e) {
      expect(e).toBeInstanceOf(IbgpuError);
      expect((e as IbgpuError).code).toBe('BAD_CONFIG');
      return e as IbgpuError;
    }
    throw new Error(`parseConfig accepted ${JSON.stringify(raw)}`);
  };

  it('accepts both legacy bases and functional edges with every integration rule that has points', () => {
    for (const f of ['(1-0)*alpha', '(1-alpha)^2']) {
      for (const [m, n] of [
        ['trapezoidal', 0],
        ['trapezoidal', 3],
        ['gauss-legendre', 4],
      ] as const) {
        const c = parseConfig({ ...nl, basis_formula: f, edge_formula: 'functional', integration_method: m, n_intervals: n });
        expect([c.basis_formula, c.edge_formula, c.integration_method, c.n_intervals]).toEqual([f, 'functional', m, n]);
      }
    }
    expect(parseConfig({ ...nl, basis_formula: '(1-0)*alpha' }).integration_method).toBe('gradient');
    expect(parseConfig({ ...nl, basis_formula: '(1-0)*alpha', center: false }).center).toBe(false);
  });

  it("(1-alpha)^2 and functional edges need integration points: 'gradient' (α = 1) makes them vanish", () => {
    expect(err({ basis_formula: '(1-alpha)^2' }).message).toMatch(/\(1-alpha\)\^2.*integration/s);
    expect(err({ basis_formula: '(1-alpha)^2', integration_method: 'gradient' }).hint).toMatch(/gauss-legendre/);
    expect(err({ edge_formula: 'functional' }).message).toMatch(/functional.*integration/s);
    expect(err({ basis_formula: '(1-0)*alpha', edge_formula: 'functional' }).hint).toMatch(/squared/);
  });

  it('neuron basis with centring, unknown formulas and gradient with intervals are still rejected', () => {
    expect(err({ basis_formula: 'neuron', center: true }).message).toMatch(/neuron/);
    expect(err({ basis_formula: '(1-a)^2' }).message).toMatch(/basis_formula/);
    expect(err({ edge_formula: 'functionnal' }).message).toMatch(/edge_formula/);
    expect(err({ basis_formula: '(1-0)*alpha', n_intervals: 2 }).message).toMatch(/n_intervals/);
  });
});

// ------------------------------------------------------------------------------------ kernels

describe('kernels', () => {
  it('legacy_terms (all modes) and edges_functional match f64 on random data (the doctor self-check)', async () => {
    const r = await legacySelfCheck(await engine());
    console.log(r.detail);
    expect(r.ok, r.detail).toBe(true);
  });
});

// ------------------------------------------------------------------------------------ reference

describe('CPU reference against finite differences', () => {
  // One GELU section 5 → 7 (folded 6 → 8) seen through a random 8×3 next basis.
  const g = gaussian(rng(5));
  const model = randomMlp([5, 7, 2], 9);
  model.layers[0]!.activation = 'gelu';
  const Cn = Float64Array.from({ length: 8 * 3 }, () => g());
  const s = refSection(model, 0, Cn, 3);
  const f = Float64Array.from([...Array.from({ length: 5 }, () => g()), 1]);
  const pts = integrationPoints('gauss-legendre', 4);
  const h = 1e-6;
  const fd = (phi: (u: Float64Array) => number, u: Float64Array): Float64Array =>
    u.map((_, j) => {
      const up = Float64Array.from(u);
      const dn = Float64Array.from(u);
      up[j]! += h;
      dn[j]! -= h;
      return (phi(up) - phi(dn)) / (2 * h);
    });

  it('the section Jacobian is the derivative of F̂ (and F̂(0) = 0 for a folded section)', () => {
    const J = sectionJacobian(s, f);
    for (let i = 0; i < 3; i++) {
      const num = fd((u) => sectionHat(s, u)[i]!, f);
      for (let j = 0; j < 6; j++) expect(Math.abs(J[i * 6 + j]! - num[j]!)).toBeLessThan(1e-7);
    }
    expect(maxAbs(sectionHat(s, new Float64Array(6)))).toBe(0);
  });

  it('g is Σ_k w_k ∇φ_k(α_k f) for both formulas (φ from SPEC §4.4, differentiated numerically)', () => {
    const c = sectionHat(s, f);
    for (const formula of ['(1-0)*alpha', '(1-alpha)^2'] as const) {
      const num = new Float64Array(6);
      for (let k = 0; k < pts.alphas.length; k++) {
        const a = pts.alphas[k]!;
        // (1-0)*alpha: φ(u) = ⟨F̂(u), c⟩;  (1-alpha)^2: φ(u) = −‖F̂(f) − F̂(u)‖² (gradient 2Jᵀ[c − F̂(u)]).
        const phi = (u: Float64Array): number => {
          const y = sectionHat(s, u);
          let t = 0;
          for (let i = 0; i < 3; i++) t += formula === '(1-0)*alpha' ? y[i]! * c[i]! : -((c[i]! - y[i]!) ** 2);
          return t;
        };
        const gk = fd(
          phi,
          f.map((v) => a * v),
        );
        for (let j = 0; j < 6; j++) num[j]! += pts.weights[k]! * gk[j]!;
      }
      const gref = legacyGradientRef(s, f, formula, pts);
      expect(relErr(gref, num), formula).toBeLessThan(1e-6);
    }
  });
});

// ------------------------------------------------------------------------------------ pipeline vs reference

interface Case {
  formula: LegacyFormulaRef;
  act: Activation;
  center: boolean;
  method: IntegrationMethod;
  n: number;
  edges: 'squared' | 'functional';
  seed: number;
}

/** A case's name, from its fields: formula, activation, centring, and the rule with its n. */
function caseName(c: Case): string {
  const rule = c.method === 'gradient' ? 'gradient' : `${c.method === 'gauss-legendre' ? 'GL' : 'trap'}${c.n}`;
  return `${c.formula} ${c.act} ${c.center ? 'centred' : 'uncentred'} ${rule}`;
}

const ROWS: Case[] = [
  { formula: '(1-0)*alpha', act: 'relu', center: true, method: 'gradient', n: 0, edges: 'squared', seed: 31 },
  { formula: '(1-0)*alpha', act: 'gelu', center: false, method: 'gauss-legendre', n: 4, edges: 'functional', seed: 32 },
  { formula: '(1-0)*alpha', act: 'identity', center: false, method: 'trapezoidal', n: 3, edges: 'functional', seed: 33 },
  { formula: '(1-alpha)^2', act: 'gelu', center: true, method: 'trapezoidal', n: 3, edges: 'functional', seed: 34 },
  { formula: '(1-alpha)^2', act: 'relu', center: false, method: 'gauss-legendre', n: 4, edges: 'functional', seed: 35 },
  { formula: '(1-alpha)^2', act: 'identity', center: true, method: 'gauss-legendre', n: 4, edges: 'functional', seed: 36 },
];
const CASES = ROWS.map((c) => ({ ...c, name: caseName(c) }));

const N = 601; // prime: no batch size divides it

describe.each(CASES)('$name', (c) => {
  const model = model3(c.act, c.seed);
  const x = genericData(N, 6, 100 + c.seed);
  const pts = integrationPoints(c.method, c.n);
  let res: IbResult;
  let acts: Float64Array[];
  const ref = new Map<string, RefBasis>();
  const next = (j: number): { C: Float64Array | undefined; r: number } => {
    const b = res.bases.get(NODES[j + 1]!);
    return { C: b?.C, r: b ? b.r : foldedWeight(model, j).cols };
  };

  beforeAll(async () => {
    const config: BuildConfig = parseConfig({
      node_layers: NODES,
      basis_formula: c.formula,
      edge_formula: c.edges,
      integration_method: c.method,
      n_intervals: c.n,
      center: c.center,
      batch_size: 128,
    });
    res = await buildInteractionBasis(await engine(), model, arraySource(x, N, 6), config);
    acts = foldedActs(model, x, N).acts;
    // The reference chain, from the output backwards, through its own next-layer bases.
    let Cn: Float64Array | undefined;
    let ro = model.layers[2]!.dOut;
    for (let j = 2; j >= 0; j--) {
      const s = refSection(model, j, Cn, ro);
      const { Mp, Lp } = legacyMoments(s, acts[j]!, N, c.formula, pts);
      const b = legacyBasisRef(acts[j]!, N, s.dim, c.center, 1e-6, Mp, Lp);
      ref.set(NODES[j]!, b);
      Cn = b.C;
      ro = b.r;
    }
  });

  it('Λ, the kept dimension and the basis columns match the f64 reference', () => {
    // f32 statistics: Λ measured ≤ 2e-6 of max Λ, columns |cos| ≥ 1 − 1e-8; bounds 1e-4 and 0.999.
    for (const name of NODES.slice(0, -1)) {
      const b = res.bases.get(name)!;
      const rb = ref.get(name)!;
      expect(b.r, name).toBe(rb.r);
      const e = relErr(b.Lambda!, rb.Lambda);
      const cos = minAbsCos(b.C, rb.C, b.dim, b.r);
      log(`[${c.name}] ${name} Λ err / max`, e);
      log(`[${c.name}] ${name} 1 − min |cos|`, 1 - cos);
      expect(e, name).toBeLessThan(1e-4);
      expect(cos, name).toBeGreaterThan(0.999);
      expect(b.dropped.stage2).toBeGreaterThanOrEqual(0);
    }
  });

  it('C⁺C = I and CᵀG_raw C = diag(Λ) on the build statistics', () => {
    for (const [name, b] of res.bases) {
      const id = layerIdentities(b, res.stats.nodes.get(name)!, c.formula);
      expect(id.pinvResidual, name).toBeLessThan(1e-9);
      expect(id.gramDiagResidual, name).toBeLessThan(1e-9);
    }
  });

  it.runIf(c.edges === 'functional')('functional edges match the f64 per-datapoint reference', () => {
    // Evaluated with the pipeline's own bases, so only the edge pass is compared. Measured ≤ 3e-6
    // of the matrix maximum; bound 1e-3.
    for (let j = 0; j < 3; j++) {
      const key = `${NODES[j]}->${NODES[j + 1]}`;
      const E = res.edges.get(key)!;
      const b = res.bases.get(NODES[j]!)!;
      const nx = next(j);
      const s = refSection(model, j, nx.C, nx.r);
      expect([E.rows, E.cols]).toEqual([nx.r, b.r]);
      const Er = functionalEdgesRef(s, b, acts[j]!, N, pts);
      const e = relErr(E.data, Er);
      log(`[${c.name}] ${key} functional E err / max`, e);
      expect(e, key).toBeLessThan(1e-3);
      expect(maxAbs(E.data), key).toBeGreaterThan(0);
    }
  });

  it.runIf(c.formula === '(1-alpha)^2' && c.edges === 'functional')('SPEC §5.7: |Σ_i E_ij| = Λ_j with the same integration points', () => {
    // An identity between two passes (basis at f, edges at the projected point, both f32 on the
    // GPU). Measured ≤ 1e-6 of max Λ; bound 1e-4.
    for (let j = 0; j < 3; j++) {
      const E = res.edges.get(`${NODES[j]}->${NODES[j + 1]}`)!;
      const lam = res.bases.get(NODES[j]!)!.Lambda!;
      const sums = colSums(E).map(Math.abs);
      const e = relErr(sums, lam);
      log(`[${c.name}] ${NODES[j]} |Σ_i E_ij| vs Λ_j`, e);
      expect(e, NODES[j]).toBeLessThan(1e-4);
    }
  });

  it.runIf(c.act === 'identity' || (c.act === 'relu' && c.method === 'gradient'))(
    "SPEC §4.4 sum identities: tr Λ' = E⟨f̂(f), f̂(f) − f̂(0)⟩ (= E‖f̂(f) − f̂(0)‖²), and = Σ_k Λ_k on a linear network",
    () => {
      // Exact here: the integrand is linear in α (identity activations) or the folded ReLU section
      // is positively homogeneous (gradient = IG). F̂(0) = 0 for folded sections. f32 statistics:
      // measured ≤ 1e-6 relative; bound 1e-5.
      for (let j = 0; j < 3; j++) {
        const b = res.bases.get(NODES[j]!)!;
        const nx = next(j);
        const s = refSection(model, j, nx.C, nx.r);
        expect(maxAbs(sectionHat(s, new Float64Array(s.dim)))).toBe(0);
        let target = 0;
        for (let row = 0; row < N; row++) {
          const y = sectionHat(s, acts[j]!.subarray(row * s.dim, (row + 1) * s.dim));
          for (const v of y) target += (v * v) / N;
        }
        let tr = 0;
        for (let a = 0; a < b.dim; a++) tr += b.LambdaPrime![a * b.dim + a]!;
        const e1 = Math.abs(tr - target) / target;
        log(`[${c.name}] ${NODES[j]} tr Λ' vs E‖f̂(f)‖²`, e1);
        expect(e1, NODES[j]).toBeLessThan(1e-5);
        if (c.act === 'identity') {
          const sum = b.Lambda!.reduce((p, q) => p + q, 0);
          const e2 = Math.abs(sum - target) / target;
          log(`[${c.name}] ${NODES[j]} Σ Λ_k vs E‖f̂(f)‖²`, e2);
          expect(e2, NODES[j]).toBeLessThan(1e-5);
        }
      }
    },
  );

  it.runIf(c.act === 'identity' && c.edges === 'functional')('SPEC §5.3: Σ_j E_ij = E[(F̂_i(u) − F̂_i(0))²] on a linear network', () => {
    // The integrand is linear in α, so both rules integrate it exactly. Measured ≤ 1e-6; bound 1e-5.
    for (let j = 0; j < 3; j++) {
      const E = res.edges.get(`${NODES[j]}->${NODES[j + 1]}`)!;
      const nx = next(j);
      const s = refSection(model, j, nx.C, nx.r);
      const target = new Float64Array(nx.r);
      for (let row = 0; row < N; row++) {
        const y = sectionHat(s, acts[j]!.subarray(row * s.dim, (row + 1) * s.dim));
        for (let i = 0; i < nx.r; i++) target[i]! += (y[i]! * y[i]!) / N;
      }
      const e = relErr(rowSums(E), target);
      log(`[${c.name}] ${NODES[j]} row sums vs E[F̂_i²]`, e);
      expect(e, NODES[j]).toBeLessThan(1e-5);
    }
  });
});

/**
 * A GELU model3 (seed) on N inputs (seed 100 + seed) built with functional edges and Gauss–Legendre
 * n = 2 over NODES, or as `extra` says; with the integration points and the folded float64
 * activations that the per-datapoint references need.
 */
async function geluFunctionalBuild(
  seed: number,
  extra: Record<string, unknown>,
): Promise<{ model: MlpModel; pts: IntegrationPoints; res: IbResult; acts: Float64Array[] }> {
  const model = model3('gelu', seed);
  const x = genericData(N, 6, 100 + seed);
  const pts = integrationPoints('gauss-legendre', 2);
  const config = parseConfig({
    node_layers: NODES,
    edge_formula: 'functional',
    integration_method: 'gauss-legendre',
    n_intervals: 2,
    batch_size: 256,
    ...extra,
  });
  const res = await buildInteractionBasis(await engine(), model, arraySource(x, N, 6), config);
  return { model, pts, res, acts: foldedActs(model, x, N).acts };
}

describe('rotated final node layer (PCA of layers.2, no output node)', () => {
  // The section into a PCA-rotated node layer sees Ĉ = its (unscaled) PCA basis through P = ĈĈᵀ.
  it('layers.1 and layers.0 match the reference built through the same final basis', async () => {
    const { model, pts, res, acts } = await geluFunctionalBuild(43, {
      node_layers: NODES.slice(0, 3),
      rotate_final_node_layer: true,
      basis_formula: '(1-alpha)^2',
    });
    let Cn = res.bases.get('layers.2')!.C;
    let ro = res.bases.get('layers.2')!.r;
    for (let j = 1; j >= 0; j--) {
      const s = refSection(model, j, Cn, ro);
      const { Mp, Lp } = legacyMoments(s, acts[j]!, N, '(1-alpha)^2', pts);
      const rb = legacyBasisRef(acts[j]!, N, s.dim, true, 1e-6, Mp, Lp);
      const b = res.bases.get(NODES[j]!)!;
      expect(b.r).toBe(rb.r);
      const e = relErr(b.Lambda!, rb.Lambda);
      log(`[rotated final] ${NODES[j]} Λ err / max`, e);
      expect(e).toBeLessThan(1e-4);
      expect(minAbsCos(b.C, rb.C, b.dim, b.r)).toBeGreaterThan(0.999);
      const E = res.edges.get(`${NODES[j]}->${NODES[j + 1]}`)!;
      const Er = functionalEdgesRef(s, b, acts[j]!, N, pts);
      expect(relErr(E.data, Er)).toBeLessThan(1e-3);
      Cn = rb.C;
      ro = rb.r;
    }
  });
});

describe('functional edges on a jacobian basis (gelu, centred, gauss-legendre n = 2)', () => {
  // Edges do not depend on how the basis was made: the same per-datapoint reference applies.
  it('match the f64 reference (measured ≤ 1.9e-6 of the maximum; bound 1e-3)', async () => {
    const { model, pts, res, acts } = await geluFunctionalBuild(42, {});
    for (let j = 0; j < 3; j++) {
      const key = `${NODES[j]}->${NODES[j + 1]}`;
      const nb = res.bases.get(NODES[j + 1]!);
      const s = refSection(model, j, nb?.C, nb ? nb.r : foldedWeight(model, j).cols);
      const e = relErr(res.edges.get(key)!.data, functionalEdgesRef(s, res.bases.get(NODES[j]!)!, acts[j]!, N, pts));
      log(`[jacobian + functional] ${key} E err / max`, e);
      expect(e, key).toBeLessThan(1e-3);
    }
  });
});

describe('linear network: both legacy formulas give the jacobian basis (uncentred)', () => {
  // For F̂ = A f, g = AᵀA f under either formula (symmetric rules), so M = K² and R⁺Λ'R = K with
  // K = R⁺AᵀAR⁺ᵀ, whose eigenvalues are the jacobian Λ.
  it('Λ and C agree with the jacobian build', async () => {
    const model = model3('identity', 41);
    const x = genericData(N, 6, 141);
    const build = async (extra: Record<string, unknown>) =>
      buildInteractionBasis(await engine(), model, arraySource(x, N, 6), parseConfig({ node_layers: NODES, center: false, batch_size: 200, ...extra }));
    const jac = await build({});
    const leg = await build({ basis_formula: '(1-alpha)^2', integration_method: 'trapezoidal', n_intervals: 1 });
    for (const name of NODES.slice(0, -1)) {
      const a = jac.bases.get(name)!;
      const b = leg.bases.get(name)!;
      expect(b.r, name).toBe(a.r);
      expect(relErr(b.Lambda!, a.Lambda!), name).toBeLessThan(1e-5);
      expect(minAbsCos(b.C, a.C, a.dim, a.r), name).toBeGreaterThan(0.9999);
    }
  });
});

// ------------------------------------------------------------------------------------ rib

describe('rib conformance: synthetic_f64_1-0alpha (centred, gradient, squared edges)', () => {
  const DIR = new URL('./fixtures/synthetic-mlp', import.meta.url).pathname;
  let res: IbResult;
  let ref: Map<string, { shape: number[]; data: Float64Array }>;

  beforeAll(async () => {
    const { model, x, n, d } = await loadSyntheticFixture(DIR);
    ref = await readSafetensors(`${DIR}/rib-reference/synthetic_f64_1-0alpha.safetensors`);
    const config = parseConfig({ node_layers: NODES, basis_formula: '(1-0)*alpha', batch_size: 256, truncation_threshold: 1e-6 });
    res = await buildInteractionBasis(await engine(), model, arraySource(x, n, d), config);
  });

  it("keeps rib's dimensions (15 / 30 / 8) and matches its Λ, C and C⁺", () => {
    // Relative τ = 1e-6 (see test/ib-fixture.test.ts for why rib's absolute 1e-10 cannot be used
    // with f32 statistics). Measured on llvmpipe: Λ ≤ 2.5e-8 of max and ≤ 7e-7 per entry above
    // 1e-3·max; column/row directions 1 − |cos| ≤ 1e-12. The smallest Λ (6.2e-7 of max at
    // layers.1) carries the f32 noise of the large ones (4e-4 relative, 2.4e-10 absolute), which
    // scales its C column by √Λ: column errors up to sign are therefore held only for columns
    // with Λ above 1e-4·max (measured ≤ 4e-6).
    expect(NODES.slice(0, -1).map((l) => res.bases.get(l)!.r)).toEqual([15, 30, 8]);
    for (const l of NODES.slice(0, -1)) {
      const b = res.bases.get(l)!;
      expect(b.r, l).toBe(ref.get(`${l}/C`)!.shape[1]);
      const rl = ref.get(`${l}/Lambda`)!.data;
      const rC = ref.get(`${l}/C`)!.data;
      const rP = ref.get(`${l}/C_pinv`)!.data;
      const e = relErr(b.Lambda!, rl);
      const pe = entryRelErr(b.Lambda!, rl, 1e-3);
      const big = Array.from({ length: b.r }, (_, j) => j).filter((j) => rl[j]! > 1e-4 * rl[0]!);
      const pick = (A: ArrayLike<number>): Float64Array => {
        const out = new Float64Array(b.dim * big.length);
        for (let i = 0; i < b.dim; i++)
          big.forEach((j, m) => {
            out[i * big.length + m] = A[i * b.r + j]!;
          });
        return out;
      };
      const ce = columnErrUpToSign(pick(b.C), pick(rC), b.dim, big.length);
      const cosC = minAbsCos(b.C, rC, b.dim, b.r);
      const cosP = minAbsCos(transposeOf(b.Cpinv, b.r, b.dim), transposeOf(rP, b.r, b.dim), b.dim, b.r);
      log(`rib 1-0alpha ${l} Λ err / max`, e);
      log(`rib 1-0alpha ${l} Λ per-entry (> 1e-3 max)`, pe);
      log(`rib 1-0alpha ${l} C col err (Λ > 1e-4 max)`, ce);
      log(`rib 1-0alpha ${l} 1 − min |cos| C cols, C⁺ rows`, Math.max(1 - cosC, 1 - cosP));
      expect(e, l).toBeLessThan(1e-6);
      expect(pe, l).toBeLessThan(1e-5);
      expect(ce, l).toBeLessThan(1e-4);
      expect(1 - cosC, l).toBeLessThan(1e-8);
      expect(1 - cosP, l).toBeLessThan(1e-8);
    }
  });

  it("matches rib's squared edges (≤ 1e-5 of the matrix maximum; measured ≤ 2.3e-6)", () => {
    for (let j = 0; j < 3; j++) {
      const key = `${NODES[j]}->${NODES[j + 1]}`;
      const E = res.edges.get(key)!;
      const rE = ref.get(`edges/${key}/E_hat`)!;
      expect([E.rows, E.cols], key).toEqual(rE.shape);
      const e = relErr(E.data, rE.data);
      log(`rib 1-0alpha ${key} E err / max`, e);
      expect(e, key).toBeLessThan(1e-5);
    }
  });
});

function transposeOf(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}
