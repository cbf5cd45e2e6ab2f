// rib's own stored results (its results files, torch.save of RibBuildResults) in split transformer
// runs. The fixture files hold rib's float64 outputs of modadd-tiny's jacobian case
// (test/fixtures/torch/make.py):
// - as interaction_matrices_path (rib's C, C⁺, Λ, means): the edges computed from rib's bases must
//   be rib's edges of that case, to 1e-6 of the largest edge on the float64 passes (rib sums edges
//   in float32) and 1e-5 on the GPU passes;
// - as gram_matrices_path (rib's centred Grams and means): the bases computed from them must be
//   rib's (kept dimensions equal, Λ to 1e-9 relative, C columns up to sign to 1e-7 on the float64
//   passes).
// A file whose recorded config disagrees with the run is refused naming both sides.

import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { toFloat64 } from '../src/io/tensor.js';
import { fixtureWorkspace, MODADD_TINY_BUILD } from './helpers/fixture-workspace.js';
import { useEngine } from './helpers/gpu.js';

const FIX = join(import.meta.dirname, 'fixtures');
const TINY = join(FIX, 'synthetic-transformer', 'modadd-tiny');
const RIB_CS = join(FIX, 'torch', 'rib-cs-modadd-tiny.pt');
const RIB_GRAMS = join(FIX, 'torch', 'rib-grams-modadd-tiny.pt');

describe("rib's stored results in split runs", () => {
  const engine = useEngine();
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function run(cfg: Record<string, unknown>): Promise<Awaited<ReturnType<typeof buildFromConfigFile>>> {
    const d = await fixtureWorkspace('modadd-tiny', dirs, 'ibgpu-ribcs-');
    await writeFile(join(d, 'b.json'), JSON.stringify(cfg));
    return buildFromConfigFile(await engine(), join(d, 'b.json'), {});
  }

  const CFG = {
    ...MODADD_TINY_BUILD,
    interaction_matrices_path: RIB_CS,
    calculate_edges: true,
  };

  for (const [device, tol] of [
    ['cpu', 1e-6],
    ['gpu', 1e-5],
  ] as const) {
    it(`${device} passes: rib's edges from rib's bases, the bases unchanged`, async () => {
      const { result } = await run({ ...CFG, device });
      const { tensors } = await loadSafetensors(join(TINY, 'rib-reference', 'modadd-tiny_f64_jacobian.safetensors'));
      for (const name of ['ln1.0', 'ln2.0', 'unembed']) {
        expect(result.bases.get(name)!.C).toEqual(toFloat64(tensors[`${name}/C`]!));
      }
      for (const key of ['ln1.0->ln2.0', 'ln2.0->unembed', 'unembed->output']) {
        const ref = toFloat64(tensors[`edges/${key}/E_hat`]!);
        const got = result.edges.get(key)!;
        expect(got.data.length, key).toBe(ref.length);
        let scale = 0;
        let err = 0;
        for (let i = 0; i < ref.length; i++) {
          scale = Math.max(scale, Math.abs(ref[i]!));
          err = Math.max(err, Math.abs(got.data[i]! - ref[i]!));
        }
        console.log(`${device} ${key} E err / max: ${(err / scale).toExponential(2)}`);
        expect(err / scale, key).toBeLessThan(tol);
      }
    }, 40_000);
  }

  it("float64 passes: rib's bases from rib's statistics", async () => {
    const { interaction_matrices_path: _i, calculate_edges: _e, ...cfg } = CFG;
    const { result } = await run({ ...cfg, gram_matrices_path: RIB_GRAMS, device: 'cpu', truncation_threshold: 1e-10, threshold_mode: 'absolute' });
    const { tensors } = await loadSafetensors(join(TINY, 'rib-reference', 'modadd-tiny_f64_jacobian.safetensors'));
    for (const name of ['ln1.0', 'ln2.0', 'unembed']) {
      const b = result.bases.get(name)!;
      const C = toFloat64(tensors[`${name}/C`]!);
      const L = toFloat64(tensors[`${name}/Lambda`]!);
      expect(b.r, name).toBe(L.length);
      let lerr = 0;
      for (let j = 0; j < b.r; j++) lerr = Math.max(lerr, Math.abs(b.Lambda![j]! - L[j]!) / L[0]!);
      expect(lerr, name).toBeLessThan(1e-9);
      for (let j = 0; j < b.r; j++) {
        let dot = 0;
        let na = 0;
        let nb = 0;
        for (let i = 0; i < b.dim; i++) {
          const x = b.C[i * b.r + j]!;
          const y = C[i * b.r + j]!;
          dot += x * y;
          na += x * x;
          nb += y * y;
        }
        const sgn = Math.sign(dot) || 1;
        let d = 0;
        for (let i = 0; i < b.dim; i++) d = Math.max(d, Math.abs(sgn * b.C[i * b.r + j]! - C[i * b.r + j]!));
        expect(d / Math.sqrt(nb), `${name} column ${j}`).toBeLessThan(1e-7);
        expect(na).toBeGreaterThan(0);
      }
    }
  }, 40_000);

  it("refuses rib's file for another centring, cut or node-layer run, naming both sides", async () => {
    await expect(run({ ...CFG, device: 'cpu', center: false })).rejects.toThrow(/center = true, this run has false/);
    await expect(run({ ...CFG, device: 'cpu', last_pos_module_type: null })).rejects.toThrow(/last_pos_module_type = "add_resid1", this run has null/);
    await expect(run({ ...CFG, device: 'cpu', node_layers: ['ln1.0', 'unembed', 'output'] })).rejects.toThrow(/do not contain this run's node layers/);
    const { interaction_matrices_path: _i, calculate_edges: _e, ...stats } = CFG;
    await expect(run({ ...stats, device: 'cpu', gram_matrices_path: RIB_CS })).rejects.toThrow(/holds no gram_matrices/);
  });
});
