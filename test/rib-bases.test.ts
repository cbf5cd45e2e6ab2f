// rib's own stored bases (its results file, torch.save of RibBuildResults) as
// interaction_matrices_path of an edges-only transformer run: the fixture file holds rib's float64
// C, C⁺, Λ and means of modadd-tiny's jacobian case (test/fixtures/torch/make.py), so the edges
// computed from them must be rib's edges of that case — to 1e-6 of the largest edge on the
// float64 passes (rib sums edges in float32) and 1e-5 on the GPU passes. A file whose recorded
// config disagrees with the run is refused naming both sides.

import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { toFloat64 } from '../src/io/tensor.js';
import { useEngine } from './helpers/gpu.js';

const FIX = join(import.meta.dirname, 'fixtures');
const TINY = join(FIX, 'synthetic-transformer', 'modadd-tiny');
const RIB_CS = join(FIX, 'torch', 'rib-cs-modadd-tiny.pt');

describe("edges from rib's stored bases", () => {
  const engine = useEngine();
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function run(cfg: Record<string, unknown>): Promise<Awaited<ReturnType<typeof buildFromConfigFile>>> {
    const d = await mkdtemp(join(tmpdir(), 'ibgpu-ribcs-'));
    dirs.push(d);
    for (const f of ['weights_f64.safetensors', 'config.json', 'inputs.npy']) await copyFile(join(TINY, f), join(d, f));
    await writeFile(join(d, 'b.json'), JSON.stringify(cfg));
    return buildFromConfigFile(await engine(), join(d, 'b.json'), {});
  }

  const CFG = {
    model: 'weights_f64.safetensors',
    arch: 'config.json',
    data: { type: 'npy', path: 'inputs.npy' },
    node_layers: ['ln1.0', 'ln2.0', 'unembed', 'output'],
    last_pos_module_type: 'add_resid1',
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

  it("refuses rib's file for another centring, cut or node-layer run, naming both sides", async () => {
    await expect(run({ ...CFG, device: 'cpu', center: false })).rejects.toThrow(/center = true, this run has false/);
    await expect(run({ ...CFG, device: 'cpu', last_pos_module_type: null })).rejects.toThrow(/last_pos_module_type = "add_resid1", this run has null/);
    await expect(run({ ...CFG, device: 'cpu', node_layers: ['ln1.0', 'unembed', 'output'] })).rejects.toThrow(/do not contain this run's node layers/);
  });
});
