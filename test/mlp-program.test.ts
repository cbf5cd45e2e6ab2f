// The MLP as an instance of the model floor (src/model/mlp-program.ts): compiled into section
// programs, it runs through the same float64 passes and pipeline as the transformers
// (src/transformer/passes-f64.ts, pipeline.ts) and reproduces rib's float64 outputs on the
// synthetic MLP fixture with rib's own absolute threshold τ = 1e-10, which the f32 GPU statistics
// cannot use (test/ib-fixture.test.ts explains why).
//
// Tolerances (both sides float64; rib's per-sample edge accumulator is float32, SPEC §5.6):
//   Λ ≤ 1e-12 of the largest (measured ≤ 2.7e-14); C columns and C⁺ rows up to sign ≤ 1e-9 of
//   their norm (measured ≤ 9e-11); edges ≤ 1e-6 of the matrix maximum (measured ≤ 1.7e-7: rib's
//   float32 accumulator).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { forwardF64 } from '../src/cpu/mlp-forward.js';
import { parseConfig } from '../src/ib/config.js';
import type { IbResult } from '../src/ib/pipeline.js';
import { act } from '../src/model/activations.js';
import { compileMlp, foldedInput } from '../src/model/mlp-program.js';
import { nodeActivationsF64 } from '../src/transformer/forward-f64.js';
import { buildTransformerF64 } from '../src/transformer/pipeline.js';
import { IbgpuError } from '../src/errors.js';
import { runIbgpu } from './helpers/cli.js';
import { readSafetensors, relErr, SYNTHETIC_MLP, SYNTHETIC_MLP_NODES, writeSyntheticMlpBuild, type HostTensor } from './helpers/ib.js';
import { basisErrUpToSign, edgesBesideRib, useSyntheticFixture } from './helpers/synthetic-fixture.js';

const DIR = SYNTHETIC_MLP;
const NODES = SYNTHETIC_MLP_NODES;
const HIDDEN = NODES.slice(0, -1);

const fx = useSyntheticFixture();

describe('compileMlp', () => {
  it('node-layer activations are the folded float64 forward pass, also for a section spanning two layers', () => {
    const { model, x, n, d } = fx;
    const ref = forwardF64(model, x, n, act);
    for (const nodes of [NODES, ['layers.0', 'layers.2', 'output'], ['layers.1', 'output']]) {
      const mp = compileMlp(model, nodes);
      expect(mp.sections.map((s) => `${s.from}->${s.to}`)).toEqual(nodes.slice(1).map((t, j) => `${nodes[j]}->${t}`));
      const acts = nodeActivationsF64(mp, foldedInput(x, n, d), n, 1);
      acts.forEach((a, j) => {
        const i = nodes[j] === 'output' ? model.layers.length : model.layers.findIndex((l) => l.name === nodes[j]);
        const f = ref[i]!;
        const w = f.length / n;
        const folded = nodes[j] !== 'output';
        expect(a.width, nodes[j]).toBe(folded ? w + 1 : w);
        let err = 0;
        let one = 0;
        for (let r = 0; r < n; r++) {
          for (let k = 0; k < w; k++) err = Math.max(err, Math.abs(a.data[r * a.width + k]! - f[r * w + k]!));
          if (folded) one = Math.max(one, Math.abs(a.data[r * a.width + w]! - 1));
        }
        expect(err, nodes[j]).toBeLessThan(1e-12);
        expect(one, `${nodes[j]}: the constant slot`).toBeLessThan(1e-15);
      });
    }
  });

  it('refuses unknown, misplaced and out-of-order node layers with the valid list', () => {
    const codeOf = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(IbgpuError);
        expect((e as IbgpuError).hint).toMatch(/layers\.0, layers\.1, layers\.2, output/);
        return (e as IbgpuError).code;
      }
      return undefined;
    };
    expect(codeOf(() => compileMlp(fx.model, ['layers.0', 'layers.9']))).toBe('BAD_CONFIG');
    expect(codeOf(() => compileMlp(fx.model, ['output', 'layers.1']))).toBe('BAD_CONFIG');
    expect(codeOf(() => compileMlp(fx.model, ['layers.2', 'layers.1']))).toBe('BAD_CONFIG');
    expect(codeOf(() => compileMlp(fx.model, ['layers.1']))).toBe('BAD_CONFIG');
  });
});

describe('what the program passes do not compute', () => {
  it('functional edges are refused, not silently replaced by squared ones', async () => {
    const config = parseConfig({ node_layers: NODES, edge_formula: 'functional', integration_method: 'gauss-legendre', n_intervals: 2, device: 'cpu' });
    await expect(buildTransformerF64(compileMlp(fx.model, NODES), foldedInput(fx.x.subarray(0, 64 * fx.d), 64, fx.d), 64, 1, config)).rejects.toThrow(
      /edge_formula 'functional' is not available/,
    );
  });
});

const CASES = [
  { name: 'synthetic_f64_jacobian', extra: {}, jacobian: true },
  { name: 'synthetic_f64_jacobian_nocenter', extra: { center: false }, jacobian: true },
  { name: 'synthetic_f64_svd', extra: { basis_formula: 'svd' }, jacobian: false },
];

describe.each(CASES)('the float64 program pipeline on the MLP reproduces rib: $name', (c) => {
  let res: IbResult;
  let ref: Map<string, HostTensor>;

  beforeAll(async () => {
    ref = await readSafetensors(`${DIR}/rib-reference/${c.name}.safetensors`);
    // rib's own configuration: batch 256, absolute τ = 1e-10, squared edges, gradient integration.
    const config = parseConfig({ node_layers: NODES, batch_size: 256, truncation_threshold: 1e-10, threshold_mode: 'absolute', device: 'cpu', ...c.extra });
    res = await buildTransformerF64(compileMlp(fx.model, NODES), foldedInput(fx.x, fx.n, fx.d), fx.n, 1, config);
  });

  it("keeps rib's dimensions", () => {
    for (const l of HIDDEN) expect(res.bases.get(l)!.r, l).toBe(ref.get(`${l}/C`)!.shape[1]);
  });

  it.runIf(c.jacobian)('Λ equals rib to 1e-12 of the largest', () => {
    for (const l of HIDDEN) {
      const e = relErr(res.bases.get(l)!.Lambda!, ref.get(`${l}/Lambda`)!.data);
      console.log(`${c.name} ${l} Λ err / max: ${e.toExponential(2)}`);
      expect(e, l).toBeLessThan(1e-12);
    }
  });

  it('C columns and C⁺ rows equal rib up to sign (≤ 1e-9 of their norm)', () => {
    for (const l of HIDDEN) {
      const { ce, pe } = basisErrUpToSign(res.bases.get(l)!, ref, l);
      console.log(`${c.name} ${l} C col err ${ce.toExponential(2)}, C⁺ row err ${pe.toExponential(2)}`);
      expect(ce, l).toBeLessThan(1e-9);
      expect(pe, l).toBeLessThan(1e-9);
    }
  });

  it('edges equal rib (≤ 1e-6 of the matrix maximum: rib accumulates them in float32)', () => {
    for (const { key, got, want } of edgesBesideRib(res, ref, NODES)) {
      const e = relErr(got, want);
      console.log(`${c.name} ${key} E err / max: ${e.toExponential(2)}`);
      expect(e, key).toBeLessThan(1e-6);
    }
  });
});

describe('ibgpu build with "device": "cpu" on an MLP', () => {
  it("runs the float64 program passes: rib's dimensions and Λ, adapter and stage paths named in the manifest; the degeneracy report is refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibgpu-mlp-cpu-'));
    try {
      const cfg = { truncation_threshold: 1e-10, threshold_mode: 'absolute', device: 'cpu' };
      writeSyntheticMlpBuild(dir, 'b.json', cfg);
      const r = await runIbgpu(dir, ['build', 'b.json', '--out', 'res', '--quiet']);
      expect(r.code, r.err).toBe(0);
      const manifest = JSON.parse(readFileSync(join(dir, 'res', 'manifest.json'), 'utf8'));
      expect(manifest.adapter).toBe('cpu (float64)');
      expect(manifest.stage_paths.stats).toMatch(/float64 section-program/);
      const ref = await readSafetensors(`${DIR}/rib-reference/synthetic_f64_jacobian.safetensors`);
      const got = await readSafetensors(join(dir, 'res', 'basis.safetensors'));
      for (const l of HIDDEN) expect(relErr(got.get(`${l}/Lambda`)!.data, ref.get(`${l}/Lambda`)!.data), l).toBeLessThan(1e-12);

      writeSyntheticMlpBuild(dir, 'd.json', { ...cfg, degeneracy: true });
      const bad = await runIbgpu(dir, ['build', 'd.json', '--out', 'deg']);
      expect(bad.code).not.toBe(0);
      expect(bad.err).toMatch(/degeneracy report is not available with "device": "cpu"/);
      expect(existsSync(join(dir, 'deg'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
