// A reporter that names the test files that never finished. When a test file's process dies (a
// native crash in the GPU driver or a worker thread, the out-of-memory killer), vitest reports
// only "Worker exited unexpectedly", without the file; this prints the file, the test that was
// running and how far the file got, so that a crash seen once in CI can be traced. Results reach
// the reporter in batches, so the tests a dying process finished last may still read "pending".

import type { Reporter, TestCase, TestModule } from 'vitest/node';

export default class UnfinishedFilesReporter implements Reporter {
  /** The last test each file started, by module id. */
  private readonly lastStarted = new Map<string, string>();

  onTestCaseReady(test: TestCase): void {
    this.lastStarted.set(test.module.moduleId, test.fullName);
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    for (const m of testModules) {
      const state = m.state();
      if (state !== 'pending' && state !== 'queued') continue;
      const counts = new Map<string, number>();
      let firstPending: string | undefined;
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        counts.set(s, (counts.get(s) ?? 0) + 1);
        if (s === 'pending') firstPending ??= t.fullName;
      }
      const tally = [...counts].map(([s, k]) => `${k} ${s}`).join(', ');
      const last = this.lastStarted.get(m.moduleId);
      process.stderr.write(
        `\nTest file did not finish (its process exited): ${m.relativeModuleId} (${tally})` +
          (last !== undefined ? `; last test reported started: ${last}` : '') +
          (firstPending !== undefined ? `; first test without a result: ${firstPending}` : '') +
          '\n',
      );
    }
  }
}
