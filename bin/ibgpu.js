#!/usr/bin/env node
// ibgpu command line. Runs the compiled library in dist/ (`npm run build` makes it; a packed
// package ships it).
//
// Dawn, the native WebGPU implementation, prints notes from its adapter probe straight to file
// descriptor 2 ("Warning: vkCreateInstance: Found no drivers!", a C++ source location, "…
// artificially reduced …"). They are harmless but read like a failure, and Node cannot redirect
// a native library's fd 2 in-process. So the command runs in a child process whose stderr passes
// through a filter that drops exactly those known lines; everything else (errors, progress,
// Dawn's real validation errors) is forwarded unchanged and at once. `--verbose` or
// IBGPU_VERBOSE=1 runs it in this process with nothing filtered.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'dist', 'src', 'cli', 'main.js');
if (!existsSync(main)) {
  console.error('ibgpu: dist/ is missing; run `npm run build` in ' + root);
  process.exit(1);
}

/** Dawn's adapter-probe notes (one line each; a source location line and a blank line may follow). */
const NOISE = [
  /^Warning: vkCreateInstance: Found no drivers!\s*$/,
  /^Warning: vkCreateInstance failed with VK_ERROR_\w+\s*$/,
  /^\s+at CheckVkSuccessImpl \(.*\)\s*$/,
  /^Warning: max\w+ artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\s*$/,
];

const verbose = process.argv.includes('--verbose') || process.env.IBGPU_VERBOSE === '1';
if (verbose || process.env.IBGPU_CLI_CHILD === '1') {
  const { runCli } = await import(pathToFileURL(main).href);
  process.exitCode = await runCli(process.argv);
} else {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'pipe'],
    env: {
      ...process.env,
      IBGPU_CLI_CHILD: '1',
      // The child's stderr is a pipe; progress bars still belong on the user's terminal.
      ...(process.stderr.isTTY ? { IBGPU_STDERR_TTY: '1', IBGPU_COLUMNS: String(process.stderr.columns ?? 80) } : {}),
    },
  });
  let pending = '';
  let droppedLocation = false;
  const forward = (line) => {
    if (NOISE.some((re) => re.test(line))) {
      droppedLocation = /CheckVkSuccessImpl/.test(line);
      return;
    }
    if (droppedLocation && line.trim() === '') {
      droppedLocation = false;
      return;
    }
    droppedLocation = false;
    process.stderr.write(`${line}\n`);
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      forward(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
    // A redrawn progress bar ('\r…' without a newline) is shown at once, not held back.
    if (pending.includes('\r')) {
      process.stderr.write(pending);
      pending = '';
    }
  });
  // Ctrl-C reaches the whole process group: the child gets it too and this process only waits.
  // A signal sent to this process alone is passed on when the child has not ended shortly after.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      }, 200).unref();
    });
  }
  child.on('close', (code, signal) => {
    if (pending) forward(pending);
    // A child ended by a signal exits like a shell reports it: 128 + the signal number (Ctrl-C: 130).
    process.exitCode = signal ? 128 + (constants.signals[signal] ?? 1) : (code ?? 1);
  });
}
