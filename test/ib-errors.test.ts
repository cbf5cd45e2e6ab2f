// Bad input to the Interaction Basis pipeline gives an IbgpuError whose message names the problem
// (and, where there is one, a hint with the fix). Config errors are found by parseConfig before
// any GPU work; model/data mismatches by buildInteractionBasis before the first dispatch.

import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/ib/config.js';
import { secondTruncation } from '../src/ib/basis.js';
import { arraySource, type DataSource } from '../src/ib/data.js';
import { layerIdentities } from '../src/ib/identities.js';
import { buildInteractionBasis } from '../src/ib/pipeline.js';
import { randomMlp } from '../src/ib/self-check.js';
import { caught, expectError } from './helpers/errors.js';
import { useEngine } from './helpers/gpu.js';
import { genericData } from './helpers/ib.js';

const NODES = ['layers.0', 'layers.1', 'output'];
const model = randomMlp([5, 8, 3], 1);
const N = 300;
const x = genericData(N, 5, 2);

describe('config errors (parseConfig)', () => {
  it('an unknown key (a typo) is named, with the known keys as the hint', async () => {
    const e = await expectError(() => parseConfig({ node_layers: NODES, truncation_treshold: 1e-6 }), 'BAD_CONFIG', /unknown config key 'truncation_treshold'/);
    expect(e.hint).toMatch(/truncation_threshold/);
  });

  it("integration_method 'gradient' with n_intervals > 0", async () => {
    await expectError(() => parseConfig({ node_layers: NODES, integration_method: 'gradient', n_intervals: 3 }), 'BAD_CONFIG', /gradient/, /n_intervals/, /3/);
    // The default method is 'gradient' too.
    await expectError(() => parseConfig({ node_layers: NODES, n_intervals: 2 }), 'BAD_CONFIG', /n_intervals/);
    // ...while an integration rule accepts intervals.
    expect(parseConfig({ node_layers: NODES, integration_method: 'trapezoidal', n_intervals: 3 }).n_intervals).toBe(3);
  });

  it("basis_formula 'neuron' with center (explicit or by default)", async () => {
    await expectError(() => parseConfig({ node_layers: NODES, basis_formula: 'neuron', center: true }), 'BAD_CONFIG', /neuron/, /cent/);
    await expectError(() => parseConfig({ node_layers: NODES, basis_formula: 'neuron' }), 'BAD_CONFIG', /neuron/);
    expect(parseConfig({ node_layers: NODES, basis_formula: 'neuron', center: false }).center).toBe(false);
  });

  it('bad values name the key and the value', async () => {
    await expectError(() => parseConfig({ node_layers: ['layers.0'] }), 'BAD_CONFIG', /node_layers/);
    await expectError(() => parseConfig({ node_layers: NODES, basis_formula: 'jacobain' }), 'BAD_CONFIG', /basis_formula/, /jacobain/);
    await expectError(() => parseConfig({ node_layers: NODES, truncation_threshold: -1 }), 'BAD_CONFIG', /truncation_threshold/);
    await expectError(() => parseConfig({ node_layers: NODES, batch_size: 0 }), 'BAD_CONFIG', /batch_size/);
    await expectError(() => parseConfig({ node_layers: NODES, center: 'yes' }), 'BAD_CONFIG', /center/);
    // Functional edges vanish at the single point α = 1 of the default 'gradient' rule.
    await expectError(() => parseConfig({ node_layers: NODES, edge_formula: 'functional' }), 'BAD_CONFIG', /functional/, /integration/);
    await expectError(() => parseConfig([NODES]), 'BAD_CONFIG', /JSON object/);
  });
});

describe('build errors (buildInteractionBasis)', () => {
  const engine = useEngine();
  const build = async (cfg: Record<string, unknown>, data: DataSource = arraySource(x, N, 5)) =>
    buildInteractionBasis(await engine(), model, data, parseConfig({ batch_size: 128, ...cfg }));

  it('non-adjacent node layers', async () => {
    const m3 = randomMlp([5, 8, 6, 3], 2);
    const e = await caught(async () =>
      buildInteractionBasis(await engine(), m3, arraySource(x, N, 5), parseConfig({ node_layers: ['layers.0', 'layers.2', 'output'] })),
    );
    expect(e.code).toBe('BAD_CONFIG');
    expect(e.message).toMatch(/'layers.0' and 'layers.2' are not adjacent/);
  });

  it("an unknown node layer, and 'output' not last", async () => {
    const e = await expectError(() => build({ node_layers: ['layers.0', 'layers.7', 'output'] }), 'BAD_CONFIG', /'layers.7' is not a layer of the model/);
    expect(e.hint).toMatch(/layers\.0, layers\.1, output/);
    await expectError(() => build({ node_layers: ['output', 'layers.0'] }), 'BAD_CONFIG', /'output' must be the last/);
  });

  it('data width that does not match the first layer', async () => {
    const x4 = genericData(N, 4, 3);
    await expectError(() => build({ node_layers: NODES }, arraySource(x4, N, 4)), 'SHAPE', /4 features/, /takes 5/);
  });

  it('NaN in the data: in memory (with its index) and in a streamed source', async () => {
    const bad = Float32Array.from(x);
    bad[123 * 5 + 2] = NaN;
    await expectError(() => arraySource(bad, N, 5), 'NON_FINITE', /NaN/, /\[123, 2\]/);
    // A source that streams a NaN in a later batch (not pre-checked like arraySource).
    const stream: DataSource = { n: N, d: 5, description: 'stream', readRows: async (s, c) => bad.subarray(s * 5, (s + c) * 5) };
    await expectError(() => build({ node_layers: NODES }, stream), 'NON_FINITE', /NaN/);
  });

  it('a data array whose length does not match n·d', async () => {
    await expectError(() => arraySource(x, N + 1, 5), 'SHAPE', /expected n\*d/);
  });

  it('rotating the output node layer with center = true', async () => {
    await expectError(() => build({ node_layers: NODES, rotate_final_node_layer: true, center: true }), 'BAD_CONFIG', /output/, /center/);
  });

  it('the same configs without the mistake build (the errors are not spurious)', async () => {
    const res = await build({ node_layers: NODES, rotate_final_node_layer: true, center: false });
    expect(res.bases.get('output')!.r).toBeGreaterThan(0);
    // The manifest's identity checks of a rotated final layer (a PCA-like basis without Λ, in a
    // jacobian build) hold, as they do for a centred rotated hidden final layer and a centred svd build.
    const centredFinal = await build({ node_layers: ['layers.0', 'layers.1'], rotate_final_node_layer: true, center: true });
    const centredSvd = await build({ node_layers: NODES, basis_formula: 'svd', center: true });
    for (const r of [res, centredFinal, centredSvd]) {
      for (const [name, b] of r.bases) {
        const id = layerIdentities(b, r.stats.nodes.get(name)!, r.config.basis_formula);
        expect(id.pinvResidual, `${name} C⁺C`).toBeLessThan(1e-9);
        expect(id.gramDiagResidual, `${name} CᵀGC`).toBeLessThan(1e-9);
      }
    }
    const res2 = await build({ node_layers: ['layers.0', 'layers.1'] });
    expect(res2.edges.get('layers.0->layers.1')!.cols).toBe(res2.bases.get('layers.0')!.r);
  });
});

describe("rib_compat (rib's truncation rules)", () => {
  const engine = useEngine();

  it('switches to absolute thresholds and rejects an explicit relative mode', async () => {
    const c = parseConfig({ node_layers: NODES, rib_compat: true });
    expect(c.threshold_mode).toBe('absolute');
    expect(parseConfig({ node_layers: NODES }).rib_compat).toBe(false);
    await expectError(() => parseConfig({ node_layers: NODES, rib_compat: true, threshold_mode: 'relative' }), 'BAD_CONFIG', /rib_compat/, /relative/);
  });

  it("counts a masked Λ below τ among the dropped ones, as rib's n_small does (SPEC §4.8)", () => {
    const lam = [5, 3, 0.5, 1e-3];
    const order = [0, 1, 2, 3];
    const th = { tau: 1e-2, mode: 'absolute' as const };
    expect(secondTruncation(th, lam, order, 1e-3)).toEqual([0, 1, 2]);
    expect(secondTruncation({ ...th, countMasked: true }, lam, order, 1e-3)).toEqual([0, 1]);
    expect(secondTruncation({ ...th, countMasked: true }, lam, order, 1)).toEqual([0, 1, 2]);
    expect(secondTruncation({ ...th, countMasked: true }, lam, order, 1e-2)).toEqual([0, 1, 2]); // Λ == τ is kept
  });

  it('a build in rib_compat mode with a τ above the constant direction keeps one direction fewer', async () => {
    const e = await engine();
    const base = { node_layers: NODES, batch_size: 128, threshold_mode: 'absolute', truncation_threshold: 1e-12 };
    const plain = await buildInteractionBasis(e, model, arraySource(x, N, 5), parseConfig(base));
    // layers.1 is built first (its next layer, the output, is the same in both modes). τ just
    // above Λ of its constant direction (Λ[0], which ibgpu always keeps).
    const tau = plain.bases.get('layers.1')!.Lambda![0]! * 1.0001;
    const ours = (await buildInteractionBasis(e, model, arraySource(x, N, 5), parseConfig({ ...base, truncation_threshold: tau }))).bases.get('layers.1')!;
    const rib = (await buildInteractionBasis(e, model, arraySource(x, N, 5), parseConfig({ ...base, truncation_threshold: tau, rib_compat: true }))).bases.get(
      'layers.1',
    )!;
    expect(ours.Lambda![0]!).toBeLessThan(tau);
    expect(ours.r).toBeGreaterThanOrEqual(2); // the constant direction and at least one more
    expect(rib.r).toBe(ours.r - 1);
    // The same directions otherwise: rib's basis is ibgpu's without its smallest kept column.
    expect(Array.from(rib.Lambda!)).toEqual(Array.from(ours.Lambda!.slice(0, rib.r)));
  });
});
