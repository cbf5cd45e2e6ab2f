// Progress output: a redrawn bar on a terminal, plain throttled lines otherwise (CI logs, servers).
//
// On a terminal one bar is drawn at a time on its own line: a new stage, or any message logged
// through the progress function's `end()`, first finishes the current bar's line, so bars and
// messages never share a line. When `ibgpu` runs behind its stderr filter (bin/ibgpu.js) stderr
// is a pipe; IBGPU_STDERR_TTY says the user's stderr is a terminal.

export type ProgressFn = (stage: string, done: number, total: number) => void;

function isTerminal(stream: NodeJS.WriteStream): boolean {
  return stream.isTTY === true || (stream === process.stderr && process.env['IBGPU_STDERR_TTY'] === '1');
}

export function makeProgress(stream: NodeJS.WriteStream = process.stderr, quiet = false): ProgressFn & { end(): void } {
  let lastLine = 0;
  let lastStage = '';
  let lastPct = -1;
  let active = false;
  const tty = isTerminal(stream);
  const fn = ((stage: string, done: number, total: number) => {
    if (quiet) return;
    const pct = total > 0 ? Math.min(100, Math.floor((100 * done) / total)) : 100;
    if (tty) {
      if (active && stage !== lastStage) stream.write('\n');
      if (active && stage === lastStage && pct === lastPct && done < total) return;
      const width = 30;
      const fill = Math.round((width * pct) / 100);
      stream.write(`\r${stage.padEnd(8)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(pct).padStart(3)}% ${done}/${total}\x1b[K`);
      active = true;
      lastStage = stage;
      lastPct = pct;
      if (done >= total) {
        stream.write('\n');
        active = false;
        lastPct = -1;
      }
      return;
    }
    const now = Date.now();
    if (stage !== lastStage || done >= total || now - lastLine > 2000) {
      stream.write(`${stage}: ${done}/${total} (${pct}%)\n`);
      lastLine = now;
      lastStage = stage;
    }
  }) as ProgressFn & { end(): void };
  fn.end = () => {
    if (active) stream.write('\n');
    active = false;
    lastPct = -1;
  };
  return fn;
}
