// Host worker threads for the float64 sums that run per sample on the host (tasks.ts), so that
// they use every core instead of one. Why: on a software adapter the "GPU" is idle while the
// host sums (all work of the closed forms after one batch readback), and on a real GPU the host
// has cores to spare; the sums are independent per chunk of samples.
//
// Node only: each worker imports the sibling tasks module (tasks.js, or tasks.ts with tsx's
// loader when the sources run through tsx/vitest), as src/cpu/eigh-worker.ts does. Where no
// worker can be started (a browser, no loader) `hostThreadPool` resolves to undefined and the
// callers run the same tasks on the calling thread, in the same chunks, with the same result.

import { HOST_TASKS, type HostTaskArgs, type HostTaskName } from './tasks.js';

interface WorkerLike {
  postMessage(msg: unknown): void;
  on(ev: string, fn: (arg: never) => void): void;
  ref(): void;
  unref(): void;
  terminate(): Promise<number>;
}

interface Slot {
  w: WorkerLike;
  busy: boolean;
  done?: { resolve: () => void; reject: (e: Error) => void };
}

const WORKER_SOURCE = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  try {
    if (workerData.tsx) (await import(workerData.tsx)).register();
    const { HOST_TASKS } = await import(workerData.module);
    parentPort.on('message', ({ task, args }) => {
      try {
        HOST_TASKS[task](args);
        parentPort.postMessage({});
      } catch (e) {
        parentPort.postMessage({ error: String((e && e.message) || e) });
      }
    });
    parentPort.postMessage({ ready: true });
  } catch (e) {
    parentPort.postMessage({ failed: String((e && e.message) || e) });
  }
});
`;

/** At most this many threads (the sums are memory-light; more cores rarely help these sizes). */
const MAX_THREADS = 8;

export class HostThreadPool {
  private readonly queue: { task: HostTaskName; args: unknown; resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(private readonly slots: Slot[]) {}

  get size(): number {
    return this.slots.length;
  }

  /** Runs one task on the next free thread; resolves when it has written its result. */
  run<T extends HostTaskName>(task: T, args: HostTaskArgs<T>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ task, args, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    for (const s of this.slots) {
      if (this.queue.length === 0) return;
      if (s.busy) continue;
      const job = this.queue.shift()!;
      s.busy = true;
      s.done = {
        resolve: () => { s.busy = false; s.done = undefined; if (!this.slots.some((x) => x.busy)) this.unrefAll(); job.resolve(); this.pump(); },
        reject: (e) => { s.busy = false; s.done = undefined; job.reject(e); this.pump(); },
      };
      s.w.ref();
      s.w.postMessage({ task: job.task, args: job.args });
    }
  }

  private unrefAll(): void {
    for (const s of this.slots) s.w.unref();
  }
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

async function startWorker(): Promise<Slot | undefined> {
  const { Worker } = (await import('node:worker_threads')) as unknown as {
    Worker: new (src: string, o: { eval: boolean; workerData: unknown }) => WorkerLike;
  };
  const here = import.meta.url;
  const fromSources = here.endsWith('.ts');
  const module = here.replace(/thread-pool\.(ts|js)$/, 'tasks.$1');
  let tsx: string | undefined;
  if (fromSources) {
    const { createRequire } = await import('node:module');
    const { pathToFileURL } = await import('node:url');
    tsx = pathToFileURL(createRequire(here).resolve('tsx/esm/api').replace(/index\.cjs$/, 'index.mjs')).href;
  }
  const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, tsx } });
  const slot: Slot = { w, busy: false };
  const ok = await new Promise<boolean>((res) => {
    w.on('message', (m: { ready?: boolean; failed?: string; error?: string }) => {
      if (m.ready) { res(true); return; }
      if (m.failed !== undefined) { res(false); return; }
      const d = slot.done;
      if (!d) return;
      if (m.error !== undefined) d.reject(new Error(m.error));
      else d.resolve();
    });
    w.on('error', () => res(false));
    // A thread that dies fails its task; the pool keeps its other threads.
    w.on('exit', () => {
      slot.done?.reject(new Error('a host worker thread exited'));
      slot.busy = true; // never handed work again
      res(false);
    });
  });
  if (!ok) {
    await w.terminate();
    return undefined;
  }
  w.unref();
  return slot;
}

let pool: Promise<HostThreadPool | undefined> | undefined;

/**
 * The process's host thread pool (one thread per core, at most MAX_THREADS), started on first
 * use; undefined where threads cannot be had (a browser) or `IBGPU_HOST_THREADS=0`.
 */
export function hostThreadPool(): Promise<HostThreadPool | undefined> {
  return (pool ??= (async () => {
    if (!isNode()) return undefined;
    try {
      const os = await import('node:os');
      const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.['IBGPU_HOST_THREADS'];
      const want = env !== undefined && env !== '' ? Math.max(0, Math.floor(Number(env))) : Math.min(MAX_THREADS, os.availableParallelism());
      if (!(want >= 1)) return undefined;
      const slots = (await Promise.all(Array.from({ length: want }, () => startWorker().catch(() => undefined)))).filter((s): s is Slot => s !== undefined);
      return slots.length > 0 ? new HostThreadPool(slots) : undefined;
    } catch {
      return undefined;
    }
  })());
}

/**
 * Runs `task` over `chunks` argument sets: on the pool's threads when there is one (argument
 * arrays must then live in shared memory), else one after another on this thread.
 */
export async function runHostTasks<T extends HostTaskName>(task: T, chunks: readonly HostTaskArgs<T>[], opts: { threads?: boolean } = {}): Promise<void> {
  const p = opts.threads === false ? undefined : await hostThreadPool();
  if (!p) {
    const fn = HOST_TASKS[task] as (a: HostTaskArgs<T>) => void;
    for (const c of chunks) fn(c);
    return;
  }
  await Promise.all(chunks.map((c) => p.run(task, c)));
}
