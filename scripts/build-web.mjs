#!/usr/bin/env node
// Browser build: `npm run build:web` -> dist/web/
//   ibgpu.js    the library for pages (src/browser.ts), one ESM file, WGSL shaders inlined as strings
//   viewer.js   the result viewer (web/viewer.ts), which loads ./ibgpu.js only for "run in the page"
//   index.html  the viewer page (web/index.html)
//   meta.json   esbuild's module graph of both bundles
//
// Node-only code must not be reachable from the browser entry. The plugin below enforces it:
//   - a static import of a Node builtin (node:fs, path, ...) or of the Dawn `webgpu` package fails
//     the build, naming the importing file, unless the importer is one of NODE_FILE_MODULES: the
//     file readers/writers whose Node-only functions (openSafetensors, writeSafetensors, ...) sit
//     next to byte/Blob-based ones the browser uses. For those the builtin is replaced by a module
//     whose every export throws "Node-only" when called (never, in a page).
//   - dynamic import('node:...') stays a runtime import (only executed on Node code paths).
// A final check rejects any bundle that still contains a static import of a builtin.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv.slice(2).find((a) => !a.startsWith('--'));
const out = resolve(outArg ?? join(root, 'dist/web'));
// The readers (safetensors, npy, torch.save) open files only through src/io/open-input.ts.
const NODE_FILE_MODULES = ['src/io/open-input.ts', 'src/io/atomic.ts', 'src/io/output-guard.ts'];
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

execFileSync(process.execPath, [join(root, 'scripts/gen-shaders.mjs')], { stdio: 'inherit' });
execFileSync(process.execPath, [join(root, 'scripts/gen-wasm.mjs')], { stdio: 'inherit' });
// The viewer is not part of the library's tsconfig (tsc would emit it over dist/web/viewer.js).
if (!process.argv.includes('--no-typecheck')) {
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'web')], { stdio: 'inherit' });
}

const nodeGuard = {
  name: 'ibgpu-node-guard',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      const isBuiltin = builtins.has(args.path);
      if (!isBuiltin && args.path !== 'webgpu') return undefined;
      if (args.kind === 'dynamic-import') return { path: args.path, external: true };
      const importer = relative(root, args.importer);
      if (isBuiltin && NODE_FILE_MODULES.includes(importer)) {
        return { path: args.path.replace(/^node:/, ''), namespace: 'node-only-stub' };
      }
      return { errors: [{ text: `Node-only import '${args.path}' from ${importer} is reachable from the browser entry` }] };
    });
    b.onLoad({ filter: /.*/, namespace: 'node-only-stub' }, async (args) => {
      const real = await import(`node:${args.path}`);
      const names = Object.keys(real).filter((k) => k !== 'default' && /^[A-Za-z_$][\w$]*$/.test(k));
      const lines = [
        `const nodeOnly = (what) => function () { throw new Error(what + ' is Node-only and not available in the browser build of ibgpu'); };`,
        ...names.map((k) => `export const ${k} = nodeOnly(${JSON.stringify(`node:${args.path}.${k}`)});`),
        `export default {};`,
      ];
      return { contents: lines.join('\n'), loader: 'js' };
    });
  },
};

mkdirSync(out, { recursive: true });
const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  plugins: [nodeGuard],
};
const lib = await build({ ...common, entryPoints: [join(root, 'src/browser.ts')], outfile: join(out, 'ibgpu.js') });
const viewer = await build({
  ...common,
  entryPoints: [join(root, 'web/viewer.ts')],
  outfile: join(out, 'viewer.js'),
  external: ['./ibgpu.js'],
});
copyFileSync(join(root, 'web/index.html'), join(out, 'index.html'));
writeFileSync(join(out, 'meta.json'), JSON.stringify({ ibgpu: lib.metafile, viewer: viewer.metafile }));

for (const f of ['ibgpu.js', 'viewer.js']) {
  const text = readFileSync(join(out, f), 'utf8');
  const bad = text.match(/^\s*import\s[^;]*?from\s*["'](node:[^"']+|webgpu)["']/m) ?? text.match(/\brequire\(["']node:/);
  if (bad) throw new Error(`${f} still imports a Node module statically: ${bad[0]}`);
}
const kb = (f) => (readFileSync(join(out, f)).length / 1024).toFixed(0);
console.log(`ibgpu: browser build in ${relative(process.cwd(), out) || '.'}: ibgpu.js ${kb('ibgpu.js')} KiB, viewer.js ${kb('viewer.js')} KiB`);
