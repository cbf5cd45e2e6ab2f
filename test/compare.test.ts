// `ibgpu compare`: an ibgpu build against rib's results file (torch.save of RibBuildResults, here
// holding rib's float64 outputs for the synthetic MLP fixture) and the fidelity targets it applies.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareBuilds, FIDELITY_TARGETS, type BuildSide } from '../src/report/compare.js';
import { readBuildSide } from '../src/report/compare-files.js';
import { runIbgpu } from './helpers/cli.js';
import { writeSyntheticMlpBuild } from './helpers/ib.js';

const RIB = resolve(import.meta.dirname, 'fixtures', 'torch', 'rib-results-synthetic.pt');

let dir = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ibgpu-compare-'));
  writeSyntheticMlpBuild(dir, 'b.json', { truncation_threshold: 1e-10, threshold_mode: 'absolute', batch_size: 256 });
  const r = await runIbgpu(dir, ['build', 'b.json', '--out', 'res', '--quiet']);
  if (r.code !== 0) throw new Error(`build failed: ${r.err}`);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A deep copy of a side, so a test can perturb it. */
function clone(s: BuildSide): BuildSide {
  const bases = new Map([...s.bases].map(([k, b]) => [k, { ...b, C: b.C.slice(), ...(b.Lambda ? { Lambda: b.Lambda.slice() } : {}) }]));
  const edges = new Map([...s.edges].map(([k, e]) => [k, { ...e, data: e.data.slice() }]));
  return { ...s, nodeLayers: [...s.nodeLayers], bases, edges };
}

describe('ibgpu compare', () => {
  it("reads rib's results file: the GPU build is within the targets, exit 0", async () => {
    const r = await runIbgpu(dir, ['compare', 'res', RIB]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/within the targets/);
    for (const l of ['layers.0', 'layers.1', 'layers.2']) expect(r.out).toMatch(new RegExp(`ok +${l.replace('.', '\\.')} `));
    const j = await runIbgpu(dir, ['compare', 'res', RIB, '--json']);
    const c = JSON.parse(j.out);
    expect(c.ok).toBe(true);
    expect(c.layers.map((l: { layer: string }) => l.layer)).toEqual(['layers.0', 'layers.1', 'layers.2']);
    expect(c.edges.map((e: { key: string }) => e.key)).toEqual(['layers.0->layers.1', 'layers.1->layers.2', 'layers.2->output']);
    for (const l of c.layers) {
      expect(l.lambdaRel).toBeLessThan(FIDELITY_TARGETS.lambdaRel);
      expect(l.minCosHeld).toBeGreaterThan(FIDELITY_TARGETS.minCos);
    }
  }, 30_000);

  it('finds a changed eigenvalue, a swapped pair of directions, a changed edge and a missing layer; column signs do not matter', async () => {
    const ref = await readBuildSide(RIB);
    const res = await readBuildSide(join(dir, 'res'));
    expect(compareBuilds(res, ref).ok).toBe(true);

    const flipped = clone(res);
    const b0 = flipped.bases.get('layers.1')!;
    for (let i = 0; i < b0.dim; i++) b0.C[i * b0.r]! *= -1;
    expect(compareBuilds(flipped, ref).ok).toBe(true);

    const lam = clone(res);
    lam.bases.get('layers.0')!.Lambda![1]! *= 1.001;
    const cl = compareBuilds(lam, ref);
    expect(cl.ok).toBe(false);
    expect(cl.layers.find((l) => l.layer === 'layers.0')!.ok).toBe(false);
    expect(cl.layers.find((l) => l.layer === 'layers.1')!.ok).toBe(true);

    const swapped = clone(res);
    const b2 = swapped.bases.get('layers.2')!;
    for (let i = 0; i < b2.dim; i++) [b2.C[i * b2.r], b2.C[i * b2.r + 1]] = [b2.C[i * b2.r + 1]!, b2.C[i * b2.r]!];
    const cs = compareBuilds(swapped, ref);
    expect(cs.layers.find((l) => l.layer === 'layers.2')!.minCosHeld!).toBeLessThan(0.5);

    const edge = clone(res);
    const e = edge.edges.get('layers.1->layers.2')!;
    let at = 0;
    for (let i = 1; i < e.data.length; i++) if (Math.abs(e.data[i]!) > Math.abs(e.data[at]!)) at = i;
    e.data[at]! *= 1.01;
    const ce = compareBuilds(edge, ref);
    expect(ce.edges.find((x) => x.key === 'layers.1->layers.2')!.ok).toBe(false);
    expect(ce.edges.find((x) => x.key === 'layers.0->layers.1')!.ok).toBe(true);

    const missing = clone(res);
    missing.bases.delete('layers.1');
    const cm = compareBuilds(missing, ref);
    expect(cm.ok).toBe(false);
    expect(cm.missing.join('\n')).toMatch(/layers\.1: a basis only in/);
  });

  it('exits 3 outside the targets, and names a file that is not a results file', async () => {
    // The same model built without centring: rib's centred results are another basis.
    writeFileSync(join(dir, 'nc.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(dir, 'b.json'), 'utf8')), center: false }));
    const b = await runIbgpu(dir, ['build', 'nc.json', '--out', 'nocenter', '--quiet']);
    expect(b.code, b.err).toBe(0);
    const r = await runIbgpu(dir, ['compare', 'nocenter', RIB]);
    expect(r.code, r.err).toBe(3);
    expect(r.out).toMatch(/DIFF +layers\.0 /);
    expect(r.out).toMatch(/outside the targets/);
    const bad = await runIbgpu(dir, ['compare', 'res', resolve(import.meta.dirname, 'fixtures', 'torch', 'various.pt')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/holds no interaction_rotations/);
  }, 40_000);
});
