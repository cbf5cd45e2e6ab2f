// Command-line conventions for scripts and servers, through the real command line in processes
// of their own (from the sources): one JSON document on stdout with --json; --quiet leaves the
// result path; usage errors exit 2; the degeneracy statistics are booked as their own stage and
// listed by --plan; `report --gauss-newton` prints an estimate and progress before the result and
// warns when the spectrum has no clear gap at the cut. Progress bars on a terminal: one at a time.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeProgress } from '../src/cli/progress.js';
import { gaussNewtonNullity, largestGap } from '../src/cpu/gauss-newton.js';
import { parseArch, modelFromTensors } from '../src/model/mlp.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { runIbgpu } from './helpers/cli.js';
import { rng } from './helpers/random.js';

let d = '';
// A tiny ReLU MLP 6-5-4-3 on 64 random datapoints: 74 parameters, small enough for the float64
// Gauss–Newton ground truth in well under a second.
// Dawn's adapter-probe notes (the installed `ibgpu` filters them; these runs use the sources).
const DAWN_NOTES = /^(Warning: (vkCreateInstance|max\w+ artificially reduced).*|\s+at CheckVkSuccessImpl.*|)$/;
const stripped = (err: string) =>
  err
    .split('\n')
    .filter((l) => !DAWN_NOTES.test(l))
    .join('\n');
const SIZES = [6, 5, 4, 3];
const N = 64;

beforeAll(async () => {
  d = mkdtempSync(join(tmpdir(), 'ibgpu-cli-'));
  const r = rng(3);
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  const layers = SIZES.slice(0, -1).map((din, i) => {
    const dout = SIZES[i + 1]!;
    tensors[`l${i}.W`] = { dtype: 'F32', shape: [din, dout], data: Float32Array.from({ length: din * dout }, () => r()) };
    tensors[`l${i}.b`] = { dtype: 'F32', shape: [dout], data: Float32Array.from({ length: dout }, () => 0.3 + 0.1 * r()) };
    return { name: `layers.${i}`, in: din, out: dout, activation: i < SIZES.length - 2 ? 'relu' : 'identity', weight: `l${i}.W`, bias: `l${i}.b` };
  });
  await writeSafetensors(join(d, 'model.safetensors'), tensors);
  writeFileSync(join(d, 'arch.json'), JSON.stringify({ type: 'mlp', weight_layout: 'in_out', layers }));
  await writeSafetensors(join(d, 'x.safetensors'), {
    X: { dtype: 'F32', shape: [N, SIZES[0]!], data: Float32Array.from({ length: N * SIZES[0]! }, () => r()) },
  });
  writeFileSync(
    join(d, 'tiny.json'),
    JSON.stringify({
      node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'],
      model: 'model.safetensors',
      arch: 'arch.json',
      data: { type: 'safetensors', path: 'x.safetensors', key: 'X' },
      batch_size: 16,
      degeneracy: true,
    }),
  );
});
afterAll(() => {
  if (d) rmSync(d, { recursive: true, force: true });
});

describe('ibgpu for scripts', () => {
  it('build --json: one JSON document on stdout, nothing else; degeneracy booked as its own stage', async () => {
    const r = await runIbgpu(d, ['build', 'tiny.json', '--json']);
    expect(r.code, r.err).toBe(0);
    expect(stripped(r.err)).toBe('');
    const doc = JSON.parse(r.out);
    expect(doc.result).toBe(join(d, 'out', 'tiny'));
    expect(doc.dataset_size).toBe(N);
    expect(doc.layers['layers.0'].dim).toBe(7);
    expect(doc.adapter).toMatch(/\w/);
    expect(doc.timings_ms.degeneracy).toBeGreaterThan(0);
    expect(doc.timings_ms.stats).toBeGreaterThan(0);
    const m = JSON.parse(readFileSync(join(d, 'out', 'tiny', 'manifest.json'), 'utf8'));
    expect(Object.keys(m.timings_ms)).toEqual(expect.arrayContaining(['stats', 'degeneracy', 'basis', 'edges']));
  });

  it('--plan lists the degeneracy buffers; usage errors exit 2; --help names the exit codes', async () => {
    const p = await runIbgpu(d, ['build', 'tiny.json', '--plan']);
    expect(p.code, p.err).toBe(0);
    expect(p.out).toMatch(/^degeneracy:$/m);
    expect(p.out).toMatch(/stacked output Jacobians/);
    expect(p.out).toMatch(/firing patterns layers\.0/);
    const u = await runIbgpu(d, ['build', 'tiny.json', '--no-such-option']);
    expect(u.code).toBe(2);
    const u2 = await runIbgpu(d, ['no-such-command']);
    expect(u2.code).toBe(2);
    const h = await runIbgpu(d, ['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/Exit codes:[\s\S]*0\s+success[\s\S]*1\s+failure[\s\S]*2\s+usage[\s\S]*130\s+interrupted/);
  });

  it('a reader that closes stdout early (`ibgpu --help | head -1`) ends nothing in an EPIPE crash', async () => {
    const r = await runIbgpu(d, ['--help'], { closeStdoutAfter: 0 });
    expect(stripped(r.err)).not.toMatch(/EPIPE|Unhandled/);
    expect(r.code).toBe(0);
  });

  it('report --gauss-newton: estimate and progress first, the ground truth stored, --json with the result path', async () => {
    const r = await runIbgpu(d, ['report', 'out/tiny', '--gauss-newton']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/estimate .* at the .* GFLOP\/s/);
    expect(r.err).toMatch(/gn-jacobian: 64\/64/); // plain progress lines off a terminal
    expect(r.err.indexOf('estimate')).toBeLessThan(r.err.indexOf('gn-jacobian'));
    const deg = JSON.parse(readFileSync(join(d, 'out', 'tiny', 'degeneracy.json'), 'utf8'));
    expect(deg.ground_truth.params).toBe(74); // 7·5 + 6·4 + 5·3
    expect(typeof deg.ground_truth.clear_gap).toBe('boolean');
    const j = await runIbgpu(d, ['report', 'out/tiny', '--json']);
    expect(j.code, j.err).toBe(0);
    const doc = JSON.parse(j.out);
    expect(doc.result).toBe(join(d, 'out', 'tiny'));
    expect(doc.degeneracy.ground_truth.gauss_newton_nullity).toBe(deg.ground_truth.gauss_newton_nullity);
  });

  it('warns when the Gauss–Newton spectrum has no clear gap at the cut', async () => {
    const path = join(d, 'out', 'tiny', 'degeneracy.json');
    const deg = JSON.parse(readFileSync(path, 'utf8'));
    writeFileSync(
      path,
      JSON.stringify({ ...deg, ground_truth: { ...deg.ground_truth, gap_at_cut: 1.2, clear_gap: false, largest_gap: { ratio: 3e5, nullity: 10 } } }),
    );
    const r = await runIbgpu(d, ['report', 'out/tiny', '--no-write']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/WARNING: the spectrum has no clear gap at the cut \(×1\.20 < ×10\): the nullity is ill-defined/);
    expect(r.out).toMatch(/largest gap \(×3\.00e\+5\) would give nullity 10/);
  });
});

describe('pieces', () => {
  it('gaussNewtonNullity reports progress; largestGap finds the widest ratio', async () => {
    const arch = parseArch(
      { type: 'mlp', weight_layout: 'in_out', layers: [{ name: 'a', in: 3, out: 2, activation: 'relu', weight: 'W', bias: 'b' }] },
      'inline',
    );
    const model = await modelFromTensors(arch, async (n) =>
      n === 'W'
        ? { dtype: 'F32', shape: [3, 2], data: Float32Array.from([1, 0.5, -0.25, 1, 0.75, -0.5]) }
        : { dtype: 'F32', shape: [2], data: Float32Array.from([2, 2]) },
    );
    const calls: string[] = [];
    const x = Float64Array.from({ length: 30 }, (_, i) => ((i * 37) % 11) / 11);
    for (const method of ['svd', 'gram'] as const) {
      const g = gaussNewtonNullity(model, x, 10, { method, progress: (s, dn, t) => calls.push(`${method}:${s}:${dn}/${t}`) });
      expect(g.params).toBe(8);
    }
    expect(calls).toContain('svd:jacobian:10/10');
    expect(calls).toContain('gram:jacobian:10/10');
    expect(calls).toContain('gram:eigen:1/1');
    expect(largestGap(Float64Array.from([10, 9, 8, 1e-6, 1e-7]))).toEqual({ rank: 3, ratio: 8 / 1e-6 });
    expect(largestGap(Float64Array.from([3, 2, 0, 0]))).toEqual({ rank: 2, ratio: Infinity });
  });

  it("terminal progress: a new stage or end() finishes the bar's line first; plain lines otherwise", () => {
    const chunks: string[] = [];
    const tty = {
      isTTY: true,
      write: (s: string) => {
        chunks.push(s);
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    const p = makeProgress(tty);
    p('stats', 1, 4);
    p('stats', 2, 4);
    p('edges', 1, 2); // stage changed mid-bar: the stats line is ended first
    p.end();
    const text = chunks.join('');
    const lines = text.split('\n');
    expect(lines.filter((l) => l.includes('stats')).length).toBe(1);
    expect(lines.filter((l) => l.includes('edges')).length).toBe(1);
    expect(text.endsWith('\n')).toBe(true);
    const plain: string[] = [];
    const pipe = {
      isTTY: false,
      write: (s: string) => {
        plain.push(s);
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    const q = makeProgress(pipe);
    q('stats', 1, 2);
    q('stats', 2, 2);
    expect(plain).toEqual(['stats: 1/2 (50%)\n', 'stats: 2/2 (100%)\n']);
  });
});
