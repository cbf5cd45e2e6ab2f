// Progress output: a redrawn bar on a terminal, plain throttled lines otherwise (CI logs, servers).

export type ProgressFn = (stage: string, done: number, total: number) => void;

export function makeProgress(stream: NodeJS.WriteStream = process.stderr, quiet = false): ProgressFn & { end(): void } {
  let lastLine = 0;
  let lastStage = '';
  let active = false;
  const tty = stream.isTTY === true;
  const fn = ((stage: string, done: number, total: number) => {
    if (quiet) return;
    const pct = total > 0 ? Math.min(100, Math.round((100 * done) / total)) : 100;
    if (tty) {
      const width = 30;
      const fill = Math.round((width * pct) / 100);
      stream.write(`\r${stage.padEnd(8)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(pct).padStart(3)}% ${done}/${total}`);
      active = true;
      if (done >= total) {
        stream.write('\n');
        active = false;
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
  };
  return fn;
}
