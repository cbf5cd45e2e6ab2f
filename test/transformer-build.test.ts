// The transformer build entry: a build config whose arch is a transformer config goes through
// buildFromConfigFile (the library form of `ibgpu build`) to the transformer pipeline and the
// existing result writer. The shipped example's rib configuration (float64 passes) must keep
// rib's dimensions; the GPU configuration must agree with it on the leading Λ (f32 passes:
// 1e-4 relative). Bad transformer configs fail with clear errors.

import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { parseSafetensors } from '../src/io/safetensors.js';
import { useEngine } from './helpers/gpu.js';

const EXAMPLE = join(import.meta.dirname, '..', 'examples', 'modadd-transformer');

describe('transformer builds from config files', () => {
  const engine = useEngine();
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function workspace(): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'ibgpu-tf-'));
    dirs.push(d);
    for (const f of ['weights.safetensors', 'config.json', 'build.json', 'build-f64.json']) await copyFile(join(EXAMPLE, f), join(d, f));
    return d;
  }

  it("the example's rib configuration (float64 passes) keeps rib's dimensions and writes a result directory", async () => {
    const d = await workspace();
    const out = join(d, 'out');
    const { result, dir } = await buildFromConfigFile(await engine(), join(d, 'build-f64.json'), { out });
    expect(dir).toBe(out);
    expect([...result.bases.values()].map((b) => `${b.name}:${b.r}/${b.dim}`)).toEqual(['ln1.0:15/17', 'ln2.0:17/17', 'unembed:15/17']);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.layers['ln1.0'].rib_dim).toBe(15);
    expect(manifest.passes).toMatch(/cpu/);
    const basis = parseSafetensors(new Uint8Array(await readFile(join(out, 'basis.safetensors'))));
    expect(basis.keys()).toContain('ln2.0/Lambda');
    const edges = parseSafetensors(new Uint8Array(await readFile(join(out, 'edges.safetensors'))));
    expect(edges.info('edges/unembed->output/E_hat').shape).toEqual([14, 15]);
    expect(existsSync(join(out, 'graph.json'))).toBe(true);
  });

  it('the GPU configuration agrees with the float64 one on the leading Λ', async () => {
    const d = await workspace();
    const cfg = JSON.parse(await readFile(join(d, 'build-f64.json'), 'utf8'));
    const cpu = await buildFromConfigFile(await engine(), join(d, 'build-f64.json'));
    await writeFile(join(d, 'gpu.json'), JSON.stringify({ ...cfg, device: 'gpu' }));
    const gpu = await buildFromConfigFile(await engine(), join(d, 'gpu.json'));
    for (const name of ['ln1.0', 'ln2.0', 'unembed']) {
      const a = cpu.result.bases.get(name)!.Lambda!;
      const b = gpu.result.bases.get(name)!.Lambda!;
      for (let i = 1; i < 4; i++) expect(Math.abs(a[i]! - b[i]!) / a[i]!, `${name} Λ_${i}`).toBeLessThan(1e-4);
    }
  });

  it('rejects bad transformer configs with the fix', async () => {
    const d = await workspace();
    const cfg = JSON.parse(await readFile(join(d, 'build-f64.json'), 'utf8'));
    const bad = async (over: Record<string, unknown>, why: RegExp) => {
      await writeFile(join(d, 'bad.json'), JSON.stringify({ ...cfg, ...over }));
      await expect(buildFromConfigFile(await engine(), join(d, 'bad.json'))).rejects.toThrow(why);
    };
    await bad({ node_layers: ['ln2.0', 'ln1.0', 'output'] }, /comes before.*\n.*valid node layers, in model order: add_embed, ln1\.0/);
    await bad({ dataset: { type: 'wikitext' } }, /not built in/);
    await bad({ dataset: { ...cfg.dataset, modulus: 20 } }, /d_vocab ≥ 21/);
    await bad({ basis_formula: 'neuron', center: false }, /not available for transformers/);
    await bad({ last_pos_module_type: 'mlp_out' }, /'add_resid1', 'unembed' or null/);
  });
});

describe('transformer build plan (--plan)', () => {
  it("bounds every stage's flops from the compiled sections (SPEC-transformers §5.3) without running a pass", async () => {
    const { loadTransformerBuild } = await import('../src/transformer/build.js');
    const { compileTransformer } = await import('../src/model/transformer/compile.js');
    const { planTransformer } = await import('../src/transformer/plan.js');
    const { formatPlan } = await import('../src/pipeline/plan.js');
    const { parseConfig } = await import('../src/ib/config.js');
    const dir = join(import.meta.dirname, '..', 'examples', 'modadd-transformer');
    const config = parseConfig(JSON.parse(await readFile(join(dir, 'build.json'), 'utf8')));
    const tf = await loadTransformerBuild(config, dir);
    const mp = compileTransformer(tf.model, config.node_layers, { positions: tf.data.P, lastPosModuleType: config.last_pos_module_type ?? null });
    const p = planTransformer(mp, tf.data.n);
    const d = tf.arch.d_model;
    expect(p.sections.map((s) => [s.dIn, s.dOut, s.pIn, s.pOut])).toEqual([
      [d + 1, d + 1, 3, 1],
      [d + 1, d + 1, 1, 1],
      [d + 1, tf.arch.d_vocab, 1, 1],
    ]);
    // Attention forward (SPEC-T §5.3): 2P(d+1)(3Hd_h+H) for q, k, v, 2PH(d_h+1)(d+1) for W_O, and the
    // causal score and value products; the last two are a few percent here.
    const { n_heads: H, d_head: dh } = tf.arch;
    const linear = 2 * 3 * (d + 1) * (3 * H * dh + H) + 2 * 3 * H * (dh + 1) * (d + 1);
    expect(p.sections[0]!.forward).toBeGreaterThan(linear);
    expect(p.sections[0]!.forward).toBeLessThan(1.3 * linear);
    for (const s of p.sections) {
      expect(s.K).toBe(s.pOut * s.dOut);
      expect(s.mPrimeFlops).toBeGreaterThanOrEqual(tf.data.n * s.K * (2 * s.forward + 2 * s.pIn * s.dIn * s.dIn));
    }
    expect(p.sections.map((s) => s.path)).toEqual([
      'closed form of last-position attention (M′ and edges)',
      'gate-Gram closed form (M′), MLP edge kernels (edges)',
      'linear section: M′ and edges once for all samples',
    ]);
    // Each section's own buffer: M′ of its input node layer on the host.
    expect(p.sections.map((s) => s.items)).toEqual(
      p.sections.map((s) => [{ stage: 'bases', where: 'host', what: `M′ ${s.name} (${s.dIn}×${s.dIn} f64)`, bytes: s.mPrimeBytes }]),
    );
    expect(formatPlan(p, 'plan')).toMatch(/total ≤ [\d.]+ MFLOP/);
    // "device": "cpu": the float64 passes have no closed forms, so the plan names none; the flops are the same bounds.
    const cpu = planTransformer(mp, tf.data.n, { device: 'cpu' });
    expect(cpu.sections.map((s) => s.path)).toEqual(p.sections.map(() => 'generic per-sample VJPs (float64, CPU)'));
    expect(cpu.sections.map((s) => [s.mPrimeFlops, s.edgeFlops])).toEqual(p.sections.map((s) => [s.mPrimeFlops, s.edgeFlops]));
    expect(formatPlan(cpu, 'plan')).not.toMatch(/closed form of|gate-Gram closed form|linear section/);
  });
});
