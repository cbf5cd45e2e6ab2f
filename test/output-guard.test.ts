// Nothing of the user's is ever deleted: every command that writes a directory refuses, before any
// computation and with exit code 2, to replace one that holds anything ibgpu did not write; the
// working directory, a folder holding the command's inputs or a `.git` are never replaced; an
// unusable output path fails at once. Each case runs the real command line in its own process
// (from the sources, through tsx) in a scratch project, and checks that the user's files survive.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResultDir } from '../src/io/atomic.js';
import { checkOwnedFiles, checkReplaceableDir, isTrainOutput, RESULT_FORMAT } from '../src/io/output-guard.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { checkAblationOutput } from '../src/ablate/from-result.js';
import { runIbgpu } from './helpers/cli.js';
import { writeSyntheticMlpBuild } from './helpers/ib.js';

/** Every file below `dir` with its contents, to compare before and after. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out[r] = readFileSync(join(dir, r)).toString('base64');
    }
  };
  walk('');
  return out;
}

let proj = '';

/** A user's project: a git repository, the fixture model and a config, and some notes. */
function makeProject(): string {
  const d = mkdtempSync(join(tmpdir(), 'ibgpu-guard-'));
  mkdirSync(join(d, '.git', 'objects'), { recursive: true });
  writeFileSync(join(d, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  writeSyntheticMlpBuild(d, 'ok.json', { batch_size: 512 });
  writeFileSync(join(d, 'notes.txt'), 'my notes\n');
  return d;
}

beforeAll(() => {
  proj = makeProject();
});
afterAll(() => {
  if (proj) rmSync(proj, { recursive: true, force: true });
});

describe('commands never replace what ibgpu did not write', () => {
  it("build -o DIR refuses a directory with the user's files (notes.txt, sub/thesis.tex), before computing", async () => {
    const dir = join(proj, 'paper');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'notes.txt'), 'draft\n');
    writeFileSync(join(dir, 'sub', 'thesis.tex'), '\\documentclass{article}\n');
    const before = snapshot(proj);
    const r = await runIbgpu(proj, ['build', 'ok.json', '-o', 'paper']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(dir);
    expect(r.err).toMatch(/notes\.txt/);
    expect(r.err).toMatch(/sub\/thesis\.tex/);
    expect(r.err).not.toMatch(/adapter:/); // refused before the engine was even created
    expect(snapshot(proj)).toEqual(before);
  }, 30_000);

  it('build -o . and -o .. refuse the working directory and its parents; nothing is touched', async () => {
    const before = snapshot(proj);
    for (const o of ['.', '..', proj]) {
      const r = await runIbgpu(proj, ['build', 'ok.json', '-o', o]);
      expect(r.code, o).toBe(2);
      expect(r.err).toMatch(/working directory/);
    }
    expect(snapshot(proj)).toEqual(before);
    expect(existsSync(join(proj, '.git', 'HEAD'))).toBe(true);
  }, 30_000);

  it('refuses a folder holding the config, model or data, and one holding .git', async () => {
    const sub = join(proj, 'models');
    mkdirSync(sub, { recursive: true });
    writeFileSync(
      join(sub, 'cfg.json'),
      JSON.stringify({
        ...JSON.parse(readFileSync(join(proj, 'ok.json'), 'utf8')),
        model: '../weights.safetensors',
        arch: '../arch.json',
        data: { type: 'safetensors', path: '../inputs.safetensors', key: 'X' },
      }),
    );
    const before = snapshot(proj);
    const r = await runIbgpu(proj, ['build', 'models/cfg.json', '-o', 'models']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/input of this command/);
    const repo = join(proj, 'elsewhere');
    mkdirSync(join(repo, '.git'), { recursive: true });
    const g = await runIbgpu(proj, ['build', 'ok.json', '-o', repo]);
    expect(g.code).toBe(2);
    expect(g.err).toMatch(/\.git/);
    expect(snapshot(proj)).toEqual({ ...before });
    rmSync(repo, { recursive: true });
  }, 30_000);

  it('an output path that is a file, or lies below one, fails at once', async () => {
    const r1 = await runIbgpu(proj, ['build', 'ok.json', '-o', 'notes.txt']);
    expect(r1.code).toBe(2);
    expect(r1.err).toMatch(/is a file/);
    const r2 = await runIbgpu(proj, ['build', 'ok.json', '-o', 'notes.txt/out']);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/file, not a directory/);
    for (const r of [r1, r2]) expect(r.err).not.toMatch(/adapter:/);
    expect(readFileSync(join(proj, 'notes.txt'), 'utf8')).toBe('my notes\n');
  }, 30_000);

  it('replaces its own earlier result, and refuses it once the user added a file', async () => {
    const a = await runIbgpu(proj, ['build', 'ok.json', '-o', 'res', '--quiet']);
    expect(a.code, a.err).toBe(0);
    expect(a.out.trim()).toBe(join(proj, 'res')); // --quiet still prints the result path
    const m = JSON.parse(readFileSync(join(proj, 'res', 'manifest.json'), 'utf8'));
    expect(m.format).toBe(RESULT_FORMAT);
    expect(m.files).toContain('basis.safetensors');
    const b = await runIbgpu(proj, ['build', 'ok.json', '-o', 'res', '--quiet']);
    expect(b.code, b.err).toBe(0);
    writeFileSync(join(proj, 'res', 'my-plot.png'), 'png');
    const c = await runIbgpu(proj, ['build', 'ok.json', '-o', 'res']);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/my-plot\.png/);
    expect(readFileSync(join(proj, 'res', 'my-plot.png'), 'utf8')).toBe('png');
    expect(existsSync(join(proj, 'res', 'basis.safetensors'))).toBe(true);
  }, 60_000);

  it("serve --export and train-mlp refuse the user's files; combine refuses to replace its own inputs", async () => {
    const exp = join(proj, 'site');
    mkdirSync(exp);
    writeFileSync(join(exp, 'index.html'), '<p>my page</p>');
    const s = await runIbgpu(proj, ['serve', '--export', 'site']);
    expect(s.code).toBe(2);
    expect(readFileSync(join(exp, 'index.html'), 'utf8')).toBe('<p>my page</p>');
    const mine = join(proj, 'mymodel');
    mkdirSync(mine);
    writeFileSync(join(mine, 'model.safetensors'), 'not ours');
    const t = await runIbgpu(proj, ['train-mlp', '-o', 'mymodel', '--epochs', '1']);
    expect(t.code).toBe(2);
    expect(t.err).toMatch(/model\.safetensors/);
    expect(readFileSync(join(mine, 'model.safetensors'), 'utf8')).toBe('not ours');
    const t2 = await runIbgpu(proj, ['train-mlp', '-o', 'notes.txt']);
    expect(t2.code).toBe(2);
    expect(readFileSync(join(proj, 'notes.txt'), 'utf8')).toBe('my notes\n');
    const parts = join(proj, 'parts');
    const st = await runIbgpu(proj, ['build', 'ok.json', '--stage', 'stats', '--shard', '0/1', '-o', 'parts', '--quiet']);
    expect(st.code, st.err).toBe(0);
    const partial = st.out.trim();
    const cb = await runIbgpu(proj, ['combine', partial, '-o', parts]);
    expect(cb.code).toBe(2);
    expect(existsSync(partial)).toBe(true);
  }, 60_000);

  it('train-mlp, then a build of the config kept next to its model, leaves model and config alone', async () => {
    const t = await runIbgpu(proj, ['train-mlp', '--sizes', '784,4,10', '--epochs', '1', '--train-count', '256', '--batch-size', '64', '--quiet']);
    expect(t.code, t.err).toBe(0);
    const dir = join(proj, 'out', 'train-mlp');
    expect(t.out.trim()).toBe(dir);
    expect(await isTrainOutput(dir)).toBe(true);
    writeFileSync(
      join(dir, 'build.json'),
      JSON.stringify({
        node_layers: ['layers.0', 'layers.1', 'output'],
        model: 'model.safetensors',
        arch: 'arch.json',
        data: { type: 'mnist', count: 256 },
        batch_size: 256,
      }),
    );
    const before = snapshot(dir);
    const b = await runIbgpu(proj, ['build', 'out/train-mlp/build.json', '--quiet']);
    expect(b.code, b.err).toBe(0);
    expect(b.out.trim()).toBe(`${dir}.result`); // the default output is never the config's own folder
    expect(snapshot(dir)).toEqual(before);
    const o = await runIbgpu(proj, ['build', 'out/train-mlp/build.json', '-o', 'out/train-mlp']);
    expect(o.code).toBe(2);
    expect(snapshot(dir)).toEqual(before);
    // Training again into the same folder overwrites only its own three files; build.json stays.
    const t2 = await runIbgpu(proj, ['train-mlp', '--sizes', '784,4,10', '--epochs', '1', '--train-count', '256', '--batch-size', '64', '--quiet']);
    expect(t2.code, t2.err).toBe(0);
    expect(readFileSync(join(dir, 'build.json'), 'utf8')).toBe(Buffer.from(before['build.json']!, 'base64').toString());
  }, 60_000);
});

describe('the guard itself (src/io/output-guard.ts)', () => {
  it('accepts absent, empty and ibgpu-written directories and refuses everything else', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ibgpu-guard-unit-'));
    try {
      await expect(checkReplaceableDir(join(d, 'new', 'deep'))).resolves.toBe(join(d, 'new', 'deep'));
      mkdirSync(join(d, 'empty'));
      await checkReplaceableDir(join(d, 'empty'));
      // Stage directories: nothing but ibgpu's own safetensors files.
      mkdirSync(join(d, 'stage'));
      await writeSafetensors(
        join(d, 'stage', 'stats.safetensors'),
        { x: { dtype: 'F64', shape: [1], data: new Float64Array(1) } },
        { format: 'ibgpu-partial' },
      );
      await checkReplaceableDir(join(d, 'stage'));
      // What an interrupted atomic write leaves (a resumed staged build must not be refused for it).
      writeFileSync(join(d, 'stage', '.stats-00000-of-00001.safetensors.tmp-4242-0badcafe'), 'half');
      await checkReplaceableDir(join(d, 'stage'));
      await writeSafetensors(join(d, 'stage', 'other.safetensors'), { x: { dtype: 'F64', shape: [1], data: new Float64Array(1) } }, { format: 'pt' });
      await expect(checkReplaceableDir(join(d, 'stage'))).rejects.toMatchObject({ code: 'BAD_OUTPUT', message: expect.stringMatching(/other\.safetensors/) });
      // A manifest.json that is not ibgpu's does not make a directory ours.
      mkdirSync(join(d, 'web'));
      writeFileSync(join(d, 'web', 'manifest.json'), '{"name": "my app"}');
      await expect(checkReplaceableDir(join(d, 'web'))).rejects.toMatchObject({ code: 'BAD_OUTPUT' });
      // An empty sub-folder is something the user made, too.
      mkdirSync(join(d, 'r', 'keep'), { recursive: true });
      writeFileSync(join(d, 'r', 'manifest.json'), JSON.stringify({ format: RESULT_FORMAT, files: ['manifest.json'] }));
      await expect(checkReplaceableDir(join(d, 'r'))).rejects.toMatchObject({ message: expect.stringMatching(/keep\//) });
      // File-level: train-mlp's three files are overwritten only when an earlier train-mlp wrote them.
      mkdirSync(join(d, 'm'));
      writeFileSync(join(d, 'm', 'arch.json'), '{}');
      await expect(checkOwnedFiles(join(d, 'm'), ['arch.json'], isTrainOutput)).rejects.toMatchObject({ code: 'BAD_OUTPUT' });
      writeFileSync(join(d, 'm', 'train.json'), JSON.stringify({ format: 'ibgpu-train-mlp' }));
      await checkOwnedFiles(join(d, 'm'), ['arch.json'], isTrainOutput);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('ablation files go only into an ibgpu result, which a rebuild may then replace', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ibgpu-guard-ablate-'));
    try {
      mkdirSync(join(d, 'notes'));
      writeFileSync(join(d, 'notes', 'ablations.json'), 'mine');
      await expect(checkAblationOutput(join(d, 'notes'))).rejects.toMatchObject({ code: 'BAD_OUTPUT' });
      expect(readFileSync(join(d, 'notes', 'ablations.json'), 'utf8')).toBe('mine');
      mkdirSync(join(d, 'r'));
      writeFileSync(join(d, 'r', 'manifest.json'), JSON.stringify({ format: RESULT_FORMAT, files: ['manifest.json'] }));
      await checkAblationOutput(join(d, 'r'));
      writeFileSync(join(d, 'r', 'ablations.json'), '{}');
      writeFileSync(join(d, 'r', 'ablations.svg'), '<svg/>');
      await checkReplaceableDir(join(d, 'r'));
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('ResultDir checks again at commit: a file dropped in meanwhile is not deleted', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ibgpu-guard-commit-'));
    try {
      const target = join(d, 'run');
      const rd = await ResultDir.create(target);
      await rd.writeFile('a.txt', 'a');
      mkdirSync(target);
      writeFileSync(join(target, 'mine.txt'), 'mine');
      await expect(rd.commit()).rejects.toMatchObject({ code: 'BAD_OUTPUT' });
      await rd.abort();
      expect(readFileSync(join(target, 'mine.txt'), 'utf8')).toBe('mine');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
