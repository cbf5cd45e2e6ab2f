// `npm run gpu-check --short` on whatever adapter CI has (the software adapter): every step runs
// at small sizes and leaves its JSON record, so the command is known to work before it first
// meets a real GPU.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gpuCheck, GPU_TEST_FILES } from '../bench/gpu-check.js';

const out = mkdtempSync(join(os.tmpdir(), 'ibgpu-gpu-check-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('gpu-check (short mode)', () => {
  it('runs tests, doctor and every benchmark and writes the records', async () => {
    const s = await gpuCheck({ short: true, out, log: () => {} });
    const byStep = Object.fromEntries(s.steps.map((x) => [x.step, x]));
    for (const name of ['tests', 'doctor', 'matmul', 'gram', 'eigh', 'sign-patterns', 'ib-mnist', 'modadd']) {
      expect(byStep[name]?.status, `${name}: ${byStep[name]?.note ?? ''}`).toBe('ok');
      expect(existsSync(byStep[name]!.file!), name).toBe(true);
    }
    const modadd = JSON.parse(readFileSync(byStep['modadd']!.file!, 'utf8')) as { rows: { case: string; ms: number; note?: string }[] };
    expect(modadd.rows.map((r) => r.case)).toEqual([expect.stringMatching(/^gpu shipped example/)]);
    expect(modadd.rows[0]!.note).toMatch(/ln1\.0 \d+\/\d+/);
    const summary = JSON.parse(readFileSync(join(out, 'gpu-check.json'), 'utf8')) as typeof s;
    expect(summary.adapter).toBe(s.adapter);
    expect(summary.machine.cpus.length).toBeGreaterThan(0);
    const mm = JSON.parse(readFileSync(byStep['matmul']!.file!, 'utf8')) as { rows: { case: string; gflops?: number }[] };
    for (const v of ['reg4x4', 'tiled128', 'panel64', 'panel128']) {
      expect(
        mm.rows.some((r) => r.case.startsWith(v) && (r.gflops ?? 0) > 0),
        v,
      ).toBe(true);
    }
    const doctor = JSON.parse(readFileSync(byStep['doctor']!.file!, 'utf8')) as { checks: { ok: boolean }[]; variants: { matmul: string } };
    expect(doctor.checks.every((c) => c.ok)).toBe(true);
  }, 120_000);

  it('lists only test files that exist', () => {
    for (const f of GPU_TEST_FILES) expect(existsSync(join(__dirname, '..', f)), f).toBe(true);
  });
});
