// Naive gradient flow (rib's `naive_gradient_flow`, SPEC-transformers §9.1's oracle) on the
// fixture transformers (test/fixtures/synthetic-transformer):
// - composing consecutive sections (src/model/compose.ts) gives the same function and the same
//   VJP as running them one after the other (float64, 1e-12 relative: only the summation order of
//   the chain rule may differ);
// - NGF and the local basis agree exactly (bit for bit) on the last two node layers and differ on
//   the earlier ones;
// - the GPU passes give the float64 NGF build within the transformer GPU tolerances (leading Λ to
//   1e-4 relative, kept dimensions equal where the spectrum has a clear gap).

import { describe, expect, it } from 'vitest';
import { forwardF64, vjpF64 } from '../src/cpu/program-f64.js';
import { parseConfig, type BuildConfig } from '../src/ib/config.js';
import { composeSections, cutAtFinal } from '../src/model/compose.js';
import { compileTransformer } from '../src/model/transformer/compile.js';
import { nodeActivationsF64 } from '../src/transformer/forward-f64.js';
import { GpuPasses } from '../src/transformer/gpu-passes.js';
import { PassesF64 } from '../src/transformer/passes-f64.js';
import { planTransformer } from '../src/transformer/plan.js';
import { buildTransformer, buildTransformerF64 } from '../src/transformer/pipeline.js';
import { useEngine } from './helpers/gpu.js';
import { gaussian, rng } from './helpers/random.js';
import { load, maxAbs } from './helpers/transformer-fixtures.js';

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < b.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
  return e / (maxAbs(b) || 1);
}

async function setup(modelDir: string, kase: string, nodeLayers: string[], n?: number) {
  const l = await load(modelDir, kase, 'weights_f64.safetensors');
  const N = Math.min(n ?? l.n, l.n);
  const tokens = l.tokens.slice(0, N * l.P);
  const config: BuildConfig = { ...l.config, node_layers: nodeLayers };
  const mp = compileTransformer(l.model, nodeLayers, { positions: l.P, lastPosModuleType: config.last_pos_module_type ?? null });
  return { ...l, tokens, n: N, config, mp };
}

describe('naive gradient flow', () => {
  const getEngine = useEngine();

  it('composed sections compute the same function and VJP as the sections in sequence', async () => {
    const s = await setup('gpt-tiny', 'gpt-tiny_f64_jacobian', ['ln1.0', 'attn_in.0', 'ln2.0', 'mlp_out.0', 'ln1.1', 'unembed', 'output'], 12);
    const acts = nodeActivationsF64(s.mp, s.tokens, s.n, s.P);
    for (const from of [0, 2, 4]) {
      const secs = s.mp.sections.slice(from);
      const comp = composeSections(secs);
      expect([comp.from, comp.to]).toEqual([s.mp.nodeLayers[from], 'output']);
      const vals = forwardF64(comp, acts[from]!.parts, s.n);
      const out = acts[acts.length - 1]!;
      comp.outputs.forEach((id, j) => expect(relErr(vals[id]!, out.parts[j]!), `forward ${comp.from}->output`).toBeLessThan(1e-12));
      // VJP of K = 2 random cotangents on the logits, through the composition and link by link.
      const K = 2;
      const g = gaussian(rng(7 + from));
      const last = secs[secs.length - 1]!;
      let cot: Float64Array[] = last.outputs.map((id) =>
        Float64Array.from({ length: s.n * K * last.values[id]!.positions * last.values[id]!.width }, () => g()),
      );
      const whole = vjpF64(comp, vals, cot, s.n, K);
      for (let k = secs.length - 1; k >= 0; k--) {
        const sec = secs[k]!;
        const v = forwardF64(sec, acts[from + k]!.parts, s.n);
        cot = vjpF64(sec, v, cot, s.n, K);
      }
      whole.forEach((w, j) => expect(relErr(w, cot[j]!), `VJP ${comp.from}->output member ${j}`).toBeLessThan(1e-12));
    }
  });

  it('recutting keeps the sections before ℓ and ends at the final node layer', async () => {
    const s = await setup('modadd-tiny', 'modadd-tiny_f64_jacobian', ['ln1.0', 'ln2.0', 'unembed', 'output'], 4);
    const m = cutAtFinal(s.mp, 0);
    expect(m.nodeLayers).toEqual(['ln1.0', 'output']);
    expect(m.sections.length).toBe(1);
    expect(cutAtFinal(s.mp, 2).sections[2]).toBe(s.mp.sections[2]);
    expect(() => cutAtFinal(s.mp, 3)).toThrow(/not before the final/);
    // --plan: M′ of ln1.0 and ln2.0 costs the composed program (K = 14 logits), edges stay local.
    const local = planTransformer(s.mp, 10);
    const ngf = planTransformer(s.mp, 10, { naiveGradientFlow: true });
    expect(ngf.sections.map((x) => x.edgeFlops)).toEqual(local.sections.map((x) => x.edgeFlops));
    expect(ngf.sections[2]).toEqual(local.sections[2]);
    expect(ngf.sections[0]!.mPrimeFlops).toBeGreaterThan(local.sections[0]!.mPrimeFlops);
    expect(ngf.sections[0]!.path).toMatch(/naive gradient flow through ln1\.0 -> output \(K ≤ 14\)/);
  });

  // rib's oracle (test_pythia_14m_build_graph_jacobian_stochastic_and_gradient_flow): NGF equals
  // the local basis exactly on the last two node layers and differs on the first.
  it.each([
    ['gpt-tiny', 'gpt-tiny_f64_jacobian', ['ln1.0', 'ln2.0', 'ln1.1', 'ln2.1', 'unembed']],
    ['gpt-tiny', 'gpt-tiny_f64_jacobian', ['ln1.0', 'ln1.1', 'unembed', 'output']],
    ['modadd-tiny', 'modadd-tiny_f64_jacobian', ['ln1.0', 'ln2.0', 'unembed', 'output']],
  ])('%s %j: NGF = local on the last two node layers, different before (float64)', async (modelDir, kase, nodes) => {
    const s = await setup(modelDir, kase, nodes, 32);
    const local = await buildTransformerF64(s.mp, s.tokens, s.n, s.P, s.config);
    const ngf = await buildTransformerF64(s.mp, s.tokens, s.n, s.P, { ...s.config, naive_gradient_flow: true });
    const L = nodes.length - 1;
    for (let l = 0; l <= L; l++) {
      const name = nodes[l]!;
      const a = local.bases.get(name);
      const b = ngf.bases.get(name);
      if (name === 'output') {
        expect(a).toBeUndefined();
        continue;
      }
      if (l >= L - 1) {
        expect(b!.r, name).toBe(a!.r);
        expect(b!.C, `${name} C`).toEqual(a!.C);
        expect(b!.Lambda, `${name} Λ`).toEqual(a!.Lambda);
      } else {
        const same = a!.r === b!.r && relErr(b!.Lambda!, a!.Lambda!) < 1e-6;
        expect(same, `${name}: NGF's basis should differ from the local one`).toBe(false);
      }
    }
    // Edges still join consecutive node layers.
    expect([...ngf.edges.keys()]).toEqual(nodes.slice(0, -1).map((n, i) => `${n}->${nodes[i + 1]}`));
    for (const e of ngf.edges.values()) expect(maxAbs(e.data)).toBeGreaterThan(0);
  });

  it.each([
    ['modadd-tiny', 'modadd-tiny_f64_jacobian', ['ln1.0', 'ln2.0', 'unembed', 'output'], 169],
    ['gpt-tiny', 'gpt-tiny_f64_jacobian', ['ln1.0', 'ln1.1', 'unembed', 'output'], 24],
  ])(
    '%s: GPU NGF build = float64 NGF build (leading Λ to 1e-4)',
    async (modelDir, kase, nodes, n) => {
      const engine = await getEngine();
      const s = await setup(modelDir, kase, nodes, n);
      const config = parseConfig({ ...s.config, naive_gradient_flow: true, truncation_threshold: 1e-6, threshold_mode: 'relative' });
      const cpu = await buildTransformerF64(s.mp, s.tokens, s.n, s.P, config);
      const passes = new GpuPasses(engine, s.mp, s.tokens, s.n, s.P);
      let gpu;
      try {
        gpu = await buildTransformer(passes, s.mp, config, { passesFor: async (m) => new GpuPasses(engine, m, s.tokens, s.n, s.P) });
      } finally {
        passes.dispose();
      }
      for (const name of nodes.slice(0, -1)) {
        const a = cpu.bases.get(name)!.Lambda!;
        const b = gpu.bases.get(name)!.Lambda!;
        for (let i = 0; i < 4; i++) expect(Math.abs(a[i]! - b[i]!) / a[0]!, `${name} Λ_${i}`).toBeLessThan(1e-4);
      }
      for (const [k, e] of cpu.edges) {
        const g = gpu.edges.get(k)!;
        // Edges of the leading directions (those whose Λ are well separated): same magnitude scale.
        expect(Math.abs(maxAbs(g.data) - maxAbs(e.data)) / maxAbs(e.data), `edges ${k} max`).toBeLessThan(1e-3);
      }
    },
    60_000,
  );

  it('the float64 passes on a recut model differentiate through the whole rest of the network', async () => {
    // M′ of ln1.0 by NGF equals M′ of ln1.0 in a build whose only other node layer is the final one.
    const s = await setup('modadd-tiny', 'modadd-tiny_f64_jacobian', ['ln1.0', 'ln2.0', 'unembed', 'output'], 40);
    const ngf = await buildTransformerF64(s.mp, s.tokens, s.n, s.P, { ...s.config, naive_gradient_flow: true });
    const twoNodes = compileTransformer(s.model, ['ln1.0', 'output'], { positions: s.P, lastPosModuleType: s.config.last_pos_module_type ?? null });
    const direct = await buildTransformer(new PassesF64(twoNodes, s.tokens, s.n, s.P), twoNodes, { ...s.config, node_layers: ['ln1.0', 'output'] });
    const a = ngf.bases.get('ln1.0')!;
    const b = direct.bases.get('ln1.0')!;
    expect(a.r).toBe(b.r);
    expect(relErr(a.Lambda!, b.Lambda!)).toBeLessThan(1e-10);
  });
});
