// rib's split transformer runs (SPEC-transformers §8.1) through buildFromConfigFile (the library
// form of `ibgpu build`) on the fixture transformers (test/fixtures/synthetic-transformer):
// - statistics only (calculate_Cs false) -> bases from the stored statistics (gram_matrices_path)
//   -> edges from the stored bases (interaction_matrices_path) gives the one-shot build's bases
//   and edges bit for bit on the float64 passes (the same float64 numbers reach the same code),
//   and to the GPU tolerances (leading Λ 1e-4 relative) on the GPU passes;
// - a separate statistics dataset (gram_dataset, here with fewer positions than the dataset):
//   the means and Grams are those of the statistics data (checked against the float64 moments of
//   that data, 1e-13), M′ and the edges use the dataset, and its stored statistics reproduce it;
// - mismatched stored files (other model, node layers, centring, non-contiguous node layers) and
//   rib's invalid combinations are refused naming both sides.

import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tokensFromTensor } from '../src/data/tokens.js';
import { parseConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { buildInteractionBasis, type IbResult } from '../src/ib/pipeline.js';
import { randomMlp } from '../src/ib/self-check.js';
import type { Engine } from '../src/runtime/engine.js';
import { loadNpy, writeNpy } from '../src/io/npy.js';
import { loadSafetensors, parseSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { toFloat64 } from '../src/io/tensor.js';
import { compileTransformer } from '../src/model/transformer/compile.js';
import { parseTransformerConfig } from '../src/model/transformer/config.js';
import { loadTransformer } from '../src/model/transformer/weights.js';
import { nodeActivationsF64 } from '../src/transformer/forward-f64.js';
import { momentsOf } from '../src/transformer/passes-f64.js';
import { fixtureWorkspace, MODADD_TINY_BUILD } from './helpers/fixture-workspace.js';
import { useEngine } from './helpers/gpu.js';

describe('split transformer runs over stored files', () => {
  const engine = useEngine();
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const workspace = (model: string): Promise<string> => fixtureWorkspace(model, dirs, 'ibgpu-split-');

  const { node_layers: modaddNodes, last_pos_module_type: modaddCut, ...files } = MODADD_TINY_BUILD;
  const BASE = {
    ...files,
    basis_formula: 'jacobian',
    truncation_threshold: 1e-10,
    threshold_mode: 'absolute',
    device: 'cpu',
  };
  const MODADD = { ...BASE, node_layers: modaddNodes, last_pos_module_type: modaddCut };

  async function build(d: string, name: string, cfg: Record<string, unknown>, out?: string): Promise<{ result: IbResult; dir?: string }> {
    await writeFile(join(d, `${name}.json`), JSON.stringify(cfg));
    return buildFromConfigFile(await engine(), join(d, `${name}.json`), out ? { out: join(d, out) } : {});
  }

  function expectSameBases(a: IbResult, b: IbResult, exact: boolean): void {
    expect([...b.bases.keys()]).toEqual([...a.bases.keys()]);
    for (const [name, x] of a.bases) {
      const y = b.bases.get(name)!;
      expect(y.r, `${name} kept`).toBe(x.r);
      if (exact) {
        expect(y.C, `${name} C`).toEqual(x.C);
        expect(y.Cpinv, `${name} C⁺`).toEqual(x.Cpinv);
      } else if (x.Lambda) {
        for (let i = 0; i < Math.min(4, x.r); i++) expect(Math.abs(y.Lambda![i]! - x.Lambda[i]!) / x.Lambda[0]!, `${name} Λ_${i}`).toBeLessThan(1e-4);
      }
    }
  }

  it('statistics -> bases -> edges in three runs = the one-shot build (float64 passes, bit for bit)', async () => {
    const d = await workspace('modadd-tiny');
    const one = await build(d, 'one', MODADD, 'one');
    const st = await build(d, 'stats', { ...MODADD, calculate_Cs: false, calculate_edges: false }, 'stats');
    expect(st.result.bases.size).toBe(0);
    const file = await loadSafetensors(join(d, 'stats', 'grams.safetensors'));
    expect(file.metadata['format']).toBe('ibgpu-transformer-stats');
    expect(Object.keys(file.tensors).sort()).toEqual(['ln1.0/gram', 'ln1.0/mean', 'ln2.0/gram', 'ln2.0/mean', 'unembed/gram', 'unembed/mean']);
    expect(toFloat64(file.tensors['ln2.0/mean']!)).toEqual(one.result.bases.get('ln2.0')!.mean);
    const cs = await build(d, 'cs', { ...MODADD, gram_matrices_path: 'stats', calculate_edges: false }, 'cs');
    expect(cs.result.edges.size).toBe(0);
    expectSameBases(one.result, cs.result, true);
    const ed = await build(d, 'edges', { ...MODADD, interaction_matrices_path: 'cs' }, 'edges');
    expectSameBases(one.result, ed.result, true);
    expect([...ed.result.edges.keys()]).toEqual([...one.result.edges.keys()]);
    for (const [k, e] of one.result.edges) expect(ed.result.edges.get(k)!.data, k).toEqual(e.data);
    // Edges over a contiguous part of the stored node layers (rib's rule), from the file itself.
    const part = await build(d, 'part', { ...MODADD, node_layers: ['ln2.0', 'unembed'], interaction_matrices_path: 'cs/basis.safetensors' });
    expect(part.result.edges.get('ln2.0->unembed')!.rows).toBe(one.result.bases.get('unembed')!.r);
    // The edges run's result is again a usable bases file.
    const again = await build(d, 'again', { ...MODADD, interaction_matrices_path: 'edges' });
    for (const [k, e] of one.result.edges) expect(again.result.edges.get(k)!.data, k).toEqual(e.data);
  });

  it('a separate statistics dataset (fewer positions): statistics from it, M′ and edges from the dataset', async () => {
    const d = await workspace('gpt-tiny');
    const all = await loadNpy(join(d, 'inputs.npy'));
    const [N, P] = all.shape as [number, number];
    const ids = all.data as BigInt64Array;
    // Statistics data: all 256 sequences cut to 4 positions; dataset: the first 40 full sequences.
    const Pg = 4;
    const gram = BigInt64Array.from({ length: N * Pg }, (_, i) => ids[Math.floor(i / Pg) * P + (i % Pg)]!);
    await writeNpy(join(d, 'gram.npy'), { dtype: 'I64', shape: [N, Pg], data: gram });
    const cfg = { ...BASE, node_layers: ['ln1.0', 'ln2.0', 'ln1.1', 'unembed', 'output'], data: { type: 'npy', path: 'inputs.npy', count: 40 } };
    const gramDs = { type: 'npy', path: 'gram.npy' };
    const plain = await build(d, 'plain', cfg);
    const withGram = await build(d, 'gram', { ...cfg, gram_dataset: gramDs }, 'gram-out');
    // Independent float64 moments of the statistics data.
    const arch = parseTransformerConfig(JSON.parse(await readFile(join(d, 'config.json'), 'utf8')));
    const model = await loadTransformer(join(d, 'weights_f64.safetensors'), arch);
    const ds = tokensFromTensor({ dtype: 'I64', shape: [N, Pg], data: gram }, 'gram.npy', { nCtx: arch.n_ctx, vocab: arch.d_vocab });
    const mp = compileTransformer(model, cfg.node_layers, { positions: Pg });
    const acts = nodeActivationsF64(mp, ds.tokens, ds.n, Pg);
    for (const [i, name] of cfg.node_layers.slice(0, -1).entries()) {
      const m = momentsOf(acts[i]!.data, N * Pg, acts[i]!.width, true, Pg);
      const b = withGram.result.bases.get(name)!;
      const err = Math.max(...b.mean.map((x, j) => Math.abs(x - m.mean[j]!)));
      expect(err, `${name} mean from the statistics data`).toBeLessThan(1e-13);
      expect(
        Math.max(...b.mean.map((x, j) => Math.abs(x - plain.result.bases.get(name)!.mean[j]!))),
        `${name} differs from the dataset's mean`,
      ).toBeGreaterThan(1e-6);
    }
    expect(withGram.result.n).toBe(40); // M′ and the edges: the dataset's 40 sequences
    // Statistics-only run from gram_dataset alone (no dataset, as rib allows), then bases from it.
    const { data: _data, ...noData } = cfg;
    await build(d, 'stats', { ...noData, gram_dataset: gramDs, calculate_Cs: false, calculate_edges: false }, 'stats');
    const fromFile = await build(d, 'cs', { ...cfg, gram_matrices_path: 'stats' });
    expectSameBases(withGram.result, fromFile.result, true);
    for (const [k, e] of withGram.result.edges) expect(fromFile.result.edges.get(k)!.data, k).toEqual(e.data);
  }, 60_000);

  it('GPU passes: statistics file -> bases and edges agree with the one-shot GPU build', async () => {
    const d = await workspace('modadd-tiny');
    const gpu = { ...MODADD, device: 'gpu', truncation_threshold: 1e-6, threshold_mode: 'relative' };
    const one = await build(d, 'one', gpu);
    await build(d, 'stats', { ...gpu, calculate_Cs: false, calculate_edges: false }, 'stats');
    const cs = await build(d, 'cs', { ...gpu, gram_matrices_path: 'stats', calculate_edges: false }, 'cs');
    expectSameBases(one.result, cs.result, false);
    const ed = await build(d, 'edges', { ...gpu, interaction_matrices_path: 'cs' });
    for (const [k, e] of one.result.edges) {
      const g = ed.result.edges.get(k)!.data;
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < e.data.length; i++) {
        worst = Math.max(worst, Math.abs(g[i]! - e.data[i]!));
        scale = Math.max(scale, Math.abs(e.data[i]!));
      }
      expect(worst / scale, `edges ${k}`).toBeLessThan(1e-3);
    }
  }, 60_000);

  it("refuses stored files of another model, node layers or centring, and rib's invalid combinations", async () => {
    const d = await workspace('modadd-tiny');
    await build(d, 'stats', { ...MODADD, calculate_Cs: false, calculate_edges: false }, 'stats');
    await build(d, 'cs', { ...MODADD, gram_matrices_path: 'stats', calculate_edges: false }, 'cs');
    const bad = async (cfg: Record<string, unknown>, why: RegExp) => {
      await expect(build(d, 'bad', cfg)).rejects.toThrow(why);
    };
    // Another model: one weight changed.
    const w = parseSafetensors(new Uint8Array(await readFile(join(d, 'weights_f64.safetensors'))));
    const t = await w.readAll();
    const bU = toFloat64(t['unembed.b_U']!);
    bU[0] = bU[0]! + 1e-3;
    await writeSafetensors(join(d, 'other.safetensors'), { ...t, 'unembed.b_U': { ...t['unembed.b_U']!, data: bU } });
    await bad(
      { ...MODADD, model: 'other.safetensors', gram_matrices_path: 'stats' },
      /another model \(weights hash [0-9a-f]{32}; this run's model hashes to [0-9a-f]{32}\)/,
    );
    await bad({ ...MODADD, model: 'other.safetensors', interaction_matrices_path: 'cs' }, /another model/);
    await bad({ ...MODADD, center: false, gram_matrices_path: 'stats' }, /center = true, this run has false/);
    await bad({ ...MODADD, last_pos_module_type: null, gram_matrices_path: 'stats' }, /last_pos_module_type = "add_resid1", this run has null/);
    await bad(
      { ...MODADD, node_layers: ['ln1.0', 'mlp_out.0', 'unembed', 'output'], gram_matrices_path: 'stats' },
      /no statistics for node layer\(s\) mlp_out\.0 \(it has ln1\.0, ln2\.0, unembed, output/,
    );
    await bad(
      { ...MODADD, node_layers: ['ln1.0', 'unembed', 'output'], interaction_matrices_path: 'cs' },
      /\(ln1\.0, ln2\.0, unembed, output\) do not contain this run's node layers \(ln1\.0, unembed, output\) as a contiguous run/,
    );
    await bad({ ...MODADD, gram_matrices_path: 'cs' }, /not ibgpu transformer statistics/);
    await bad({ ...MODADD, interaction_matrices_path: 'stats' }, /holds only statistics/);
    await bad({ ...MODADD, gram_matrices_path: 'nowhere' }, /does not exist/);
    await bad({ ...MODADD, calculate_Cs: false }, /set "calculate_edges": false as well/);
    await bad({ ...MODADD, interaction_matrices_path: 'cs', calculate_edges: false }, /only useful to compute edges/);
    // The output may not replace the stored files the run reads.
    await expect(build(d, 'over', { ...MODADD, interaction_matrices_path: 'cs' }, 'cs')).rejects.toThrow(/an input of this command/);
  });

  it('parses the workflow keys, and MLP builds refuse them before any GPU work', async () => {
    const base = { node_layers: ['layers.0', 'layers.1'] };
    const c = parseConfig({
      ...base,
      naive_gradient_flow: true,
      calculate_Cs: false,
      gram_matrices_path: 'g',
      interaction_matrices_path: null,
      gram_dataset: { type: 'npy', path: 'x.npy' },
    });
    expect([c.naive_gradient_flow, c.calculate_Cs, c.gram_matrices_path, c.interaction_matrices_path, c.gram_dataset]).toEqual([
      true,
      false,
      'g',
      undefined,
      { type: 'npy', path: 'x.npy' },
    ]);
    expect(() => parseConfig({ ...base, naive_gradient_flow: 'yes' })).toThrow(/naive_gradient_flow must be true or false/);
    expect(() => parseConfig({ ...base, gram_dataset: [1] })).toThrow(/gram_dataset must be an object/);
    const x = new Float32Array(4 * 5).map((_, i) => Math.sin(i));
    const noEngine = undefined as unknown as Engine; // the check runs before the engine is touched
    await expect(
      buildInteractionBasis(noEngine, randomMlp([5, 8, 3], 1), arraySource(x, 4, 5), parseConfig({ ...base, naive_gradient_flow: true })),
    ).rejects.toThrow(/naive_gradient_flow is only available for transformer builds, not for MLP builds/);
    await expect(
      buildInteractionBasis(noEngine, randomMlp([5, 8, 3], 1), arraySource(x, 4, 5), parseConfig({ ...base, naive_gradient_flow: false, calculate_Cs: true })),
    ).rejects.not.toThrow(/only available for transformer builds/);
  });
});
