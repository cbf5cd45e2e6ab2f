#!/usr/bin/env node
// ibgpu command line. Runs the compiled library in dist/ (`npm run build` makes it).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'dist', 'src', 'cli', 'main.js');
if (!existsSync(main)) {
  console.error('ibgpu: dist/ is missing; run `npm run build` in ' + root);
  process.exit(2);
}
const { runCli } = await import(pathToFileURL(main).href);
process.exitCode = await runCli(process.argv);
