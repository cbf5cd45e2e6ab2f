// The `ibgpu` command line run from the sources in a Node process of its own, for the tests of
// its conventions (exit codes, output, what it may write).

import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '..', '..');
const TSX = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const MAIN = pathToFileURL(join(ROOT, 'src', 'cli', 'main.ts')).href;

export interface CliRun {
  code: number;
  out: string;
  err: string;
  /** Wall time of the whole process, start-up included. */
  ms: number;
}

/** Runs `ibgpu ...args` in `cwd` (absolute paths to the sources, so any cwd works). */
export function runIbgpu(cwd: string, args: string[], opts: { closeStdoutAfter?: number } = {}): Promise<CliRun> {
  const script = `import { runCli } from ${JSON.stringify(MAIN)}; process.exitCode = await runCli(['node', 'ibgpu', ...process.argv.slice(1)]);`;
  const t0 = performance.now();
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ['--import', TSX, '--input-type=module', '-e', script, '--', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    if (opts.closeStdoutAfter === 0) p.stdout.destroy();
    let out = '';
    let err = '';
    p.stdout.on('data', (c) => {
      out += c;
      // A reader that stops early, like `| head`: the process then writes into a closed pipe.
      if (opts.closeStdoutAfter !== undefined && out.length >= opts.closeStdoutAfter) p.stdout.destroy();
    });
    p.stderr.on('data', (c) => {
      err += c;
    });
    p.on('error', rej);
    p.on('close', (code) => res({ code: code ?? -1, out, err, ms: performance.now() - t0 }));
  });
}
