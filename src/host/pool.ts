// The host worker threads: the one place ibgpu starts threads. Every host computation that runs
// off the main thread is a task or a held state of the registry in tasks.ts and runs here: the
// transformer attention sums (attention-sums.ts), the MLP squared-edge pass (edges.ts), the MLP
// degeneracy observer (degeneracy-thread.ts) and the host eigensolver (eigh-worker.ts). Why
// threads at all: on a software adapter the "GPU" runs on the thread that submits to it, so host
// sums on the main thread never overlap it and the other cores sit idle; on a real GPU the host
// sums are the critical path and the machine has cores to spare.
//
// How many threads: one per core (os.availableParallelism(), at most MAX_THREADS), or
// IBGPU_HOST_THREADS (0: none, everything on the calling thread). Users never start threads of
// their own and split one job over at most `size` threads, so ibgpu runs at most one thread per
// core besides the main thread, however many passes overlap (they queue here instead of
// oversubscribing the cores).
//
// Properties every user relies on:
// - Same bits on any thread count: users split work in fixed chunks decided by the work, not by
//   the threads, and combine the chunks in a fixed order; the calling-thread fallback runs the
//   same chunks in the same order.
// - Lazy start: the threads start on first use (`hostThreadPool()`), all at once, and are kept
//   for the life of the process (across batches and builds).
// - Never keeps the process alive: a thread is ref'd only while it has calls outstanding, so a
//   process exits as soon as its own work is done.
// - A thread that dies (out of memory, killed) fails what it had with a HOST_THREAD error and is
//   replaced on the next use; its held states are lost.
// - Node only: in a browser (or wherever a worker cannot import tasks.ts) `hostThreadPool()`
//   resolves to undefined and callers run the same registry functions on the calling thread.
//
// Shared memory: large arguments are typed arrays over a SharedArrayBuffer (sharedBytes,
// sharedF64), read and written in place by the threads; other arguments are copied (structured
// clone) or moved (the `transfer` lists); typed arrays a task returns are moved back.

import { IbgpuError } from '../errors.js';
import { HOST_TASKS, type HostState, type HostStateArgs, type HostStateName, type HostTaskArgs, type HostTaskName, type HostTaskResult } from './tasks.js';

interface WorkerLike {
  postMessage(msg: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(ev: string, fn: (arg: never) => void): void;
  ref(): void;
  unref(): void;
  terminate(): Promise<number>;
}

interface Reply {
  id: number;
  result?: unknown;
  error?: string;
  name?: string;
  code?: string;
  hint?: string;
}

/** At most this many threads (the host sums scale to a few cores; more rarely help these sizes). */
const MAX_THREADS = 8;

/**
 * The worker: imports the registry (tasks.ts, with tsx's loader when the sources run through
 * tsx/vitest) and answers each message in order: 'run' a task, 'hold' a state under a handle,
 * 'call' a held state's method, 'release' it.
 */
const WORKER_SOURCE = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  try {
    if (workerData.tsx) (await import(workerData.tsx)).register();
    const { HOST_TASKS, HOST_STATES } = await import(workerData.module);
    const held = new Map();
    // The non-shared buffers of the typed arrays in a result: moved back instead of copied.
    const movable = (v, out, depth) => {
      if (depth > 4 || v === null || typeof v !== 'object') return out;
      if (ArrayBuffer.isView(v)) { if (v.buffer instanceof ArrayBuffer) out.add(v.buffer); return out; }
      const xs = v instanceof Map ? [...v.values()] : Array.isArray(v) ? v : Object.values(v);
      for (const x of xs) movable(x, out, depth + 1);
      return out;
    };
    parentPort.on('message', ({ id, op, name, handle, args }) => {
      try {
        let result;
        if (op === 'run') result = HOST_TASKS[name](args);
        else if (op === 'hold') held.set(handle, HOST_STATES[name](args));
        else if (op === 'call') {
          const s = held.get(handle);
          if (!s) throw new Error('no held state ' + handle + ' on this thread');
          result = s[name](args);
        } else if (op === 'release') held.delete(handle);
        else throw new Error('unknown op ' + op);
        parentPort.postMessage({ id, result }, [...movable(result, new Set(), 0)]);
      } catch (e) {
        parentPort.postMessage({ id, error: String((e && e.message) || e), name: e && e.name, code: e && e.code, hint: e && e.hint });
      }
    });
    parentPort.postMessage({ ready: true });
  } catch (e) {
    parentPort.postMessage({ failed: String((e && e.message) || e) });
  }
});
`;

/** An error answered by a thread, as the same kind of error here (IbgpuError keeps its code). */
function errorFrom(m: Reply): Error {
  if (m.name === 'IbgpuError' && m.code !== undefined) {
    const e = new IbgpuError(m.code as IbgpuError['code'], '', m.hint);
    e.message = m.error ?? '';
    return e;
  }
  return new Error(m.error);
}

function exitError(index: number, code: number, during: string): IbgpuError {
  return new IbgpuError(
    'HOST_THREAD',
    `host worker thread ${index} exited (code ${code}) during ${during}; what it held is lost`,
    'the thread most likely ran out of memory or was killed: rerun (a new thread starts), lower the batch or problem size, or set IBGPU_HOST_THREADS=0 to run host work on the main thread',
  );
}

/** One worker thread: its outstanding calls, answered in the order they were posted. */
class HostThread {
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; what: string }>();
  private nextId = 1;
  dead: IbgpuError | undefined;
  /** Held states on this thread (to place new ones on the least loaded thread). */
  holds = 0;
  /** Set once a replacement for this dead thread has been asked for. */
  replacement: Promise<void> | undefined;

  constructor(
    public index: number,
    private readonly w: WorkerLike,
    private readonly onIdle: () => void,
  ) {
    w.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      if (m.error !== undefined) p.reject(errorFrom(m));
      else p.resolve(m.result);
      if (this.pending.size === 0) this.onIdle();
    });
    w.on('exit', (code: number) => {
      const what = [...this.pending.values()].map((p) => p.what).join(', ') || 'no work';
      this.dead = exitError(this.index, code, what);
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(this.dead);
      }
      this.onIdle(); // the pool fails its queue if no thread is left
    });
  }

  get idle(): boolean {
    return !this.dead && this.pending.size === 0;
  }

  send(msg: { op: string; name?: string; handle?: number; args?: unknown }, transfer: readonly ArrayBuffer[] = []): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.dead) {
        reject(this.dead);
        return;
      }
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject, what: `${msg.op} ${msg.name ?? ''}`.trim() });
      this.w.ref(); // busy: keeps the process alive until it answers
      this.w.postMessage({ ...msg, id }, transfer);
    });
  }
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

async function startThread(index: number, onIdle: () => void): Promise<HostThread | undefined> {
  try {
    const { Worker } = (await import('node:worker_threads')) as unknown as {
      Worker: new (src: string, o: { eval: boolean; workerData: unknown }) => WorkerLike;
    };
    const here = import.meta.url;
    const module = here.replace(/pool\.(ts|js)$/, 'tasks.$1');
    let tsx: string | undefined;
    if (here.endsWith('.ts')) {
      // Sources (tsx, vitest): the worker registers tsx's loader before importing tasks.ts.
      const { createRequire } = await import('node:module');
      const { pathToFileURL } = await import('node:url');
      tsx = pathToFileURL(
        createRequire(here)
          .resolve('tsx/esm/api')
          .replace(/index\.cjs$/, 'index.mjs'),
      ).href;
    }
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, tsx } });
    const ok = await new Promise<boolean>((res) => {
      w.on('message', (m: { ready?: boolean; failed?: string }) => {
        if (m.ready) res(true);
        else if (m.failed !== undefined) res(false);
      });
      w.on('error', () => res(false));
      w.on('exit', () => res(false));
    });
    if (!ok) {
      await w.terminate();
      return undefined;
    }
    w.unref(); // idle: never keeps the process alive
    return new HostThread(index, w, onIdle);
  } catch {
    return undefined;
  }
}

type MethodOf<K extends HostStateName> = keyof HostState<K> & string;
type MethodArgs<K extends HostStateName, M extends MethodOf<K>> = HostState<K>[M] extends (...a: infer A) => unknown ? A[0] : never;
type MethodResult<K extends HostStateName, M extends MethodOf<K>> = HostState<K>[M] extends (...a: never[]) => infer R ? R : never;

/** State of registry kind K held by one thread (tasks.ts HOST_STATES) until `release`. */
export interface HeldState<K extends HostStateName> {
  /** The thread that holds it (0 ≤ thread < pool size). */
  readonly thread: number;
  /** Calls a method of the state on its thread; resolves with what it returns. */
  call<M extends MethodOf<K>>(method: M, args?: MethodArgs<K, M>, transfer?: readonly ArrayBuffer[]): Promise<MethodResult<K, M>>;
  /**
   * Calls a method without waiting for it (a stream of inputs): its failure is kept and fails
   * every later `call`, so the first error is reported where the caller next waits.
   */
  post<M extends MethodOf<K>>(method: M, args?: MethodArgs<K, M>, transfer?: readonly ArrayBuffer[]): void;
  /** Drops the state on its thread (the thread stays for other work). */
  release(): Promise<void>;
}

let nextHandle = 1;

export class HostThreadPool {
  private readonly queue: { name: HostTaskName; args: unknown; transfer: readonly ArrayBuffer[]; resolve: (v: unknown) => void; reject: (e: Error) => void }[] =
    [];

  constructor(private readonly threads: HostThread[]) {}

  /** Threads in the pool (dead ones included until replaced): the most any job may split over. */
  get size(): number {
    return this.threads.length;
  }

  /**
   * Slots (0 … size − 1) of the live threads with nothing queued or running right now: a hint for
   * work that would rather start at once on fewer threads than wait behind a long task (a
   * background eigensolve) on a busy one.
   */
  idleThreads(): number[] {
    return this.threads.flatMap((t, i) => (t.idle ? [i] : []));
  }

  /** Runs `task` on the next idle thread (first come, first served). */
  async run<T extends HostTaskName>(task: T, args: HostTaskArgs<T>, transfer: readonly ArrayBuffer[] = []): Promise<HostTaskResult<T>> {
    await this.revive();
    if (!this.threads.some((t) => !t.dead)) return (HOST_TASKS[task] as (a: HostTaskArgs<T>) => HostTaskResult<T>)(args);
    return new Promise<unknown>((resolve, reject) => {
      this.queue.push({ name: task, args, transfer, resolve, reject });
      this.pump();
    }) as Promise<HostTaskResult<T>>;
  }

  /**
   * State of kind `kind` held by one thread until released: thread `opts.thread`, or the thread
   * holding the fewest states (the last among equals, so that thread 0 stays free longest).
   */
  async hold<K extends HostStateName>(kind: K, args: HostStateArgs<K>, opts: { thread?: number } = {}): Promise<HeldState<K>> {
    await this.revive();
    let th: HostThread | undefined;
    if (opts.thread !== undefined) th = this.threads[opts.thread];
    else for (const t of this.threads) if (!t.dead && (th === undefined || t.holds <= th.holds)) th = t;
    if (!th) {
      throw new IbgpuError(
        'HOST_THREAD',
        `no host worker thread ${opts.thread === undefined ? 'is alive' : `${opts.thread} exists`} to hold ${kind}`,
        `the pool has ${this.size} thread(s) (0 … ${this.size - 1}); ask for one of those, or none to get the least loaded`,
      );
    }
    const t = th;
    const handle = nextHandle++;
    await t.send({ op: 'hold', name: kind, handle, args });
    t.holds++;
    let failure: Error | undefined;
    let released = false;
    return {
      thread: t.index,
      call: async (method, a, transfer = []) => {
        const r = await t.send({ op: 'call', name: method, handle, args: a }, transfer);
        if (failure) throw failure; // replies come in order: an earlier post's failure is known by now
        return r as never;
      },
      post: (method, a, transfer = []) => {
        t.send({ op: 'call', name: method, handle, args: a }, transfer).catch((e: Error) => {
          failure ??= e;
        });
      },
      release: async () => {
        if (released) return;
        released = true;
        t.holds--;
        await t.send({ op: 'release', handle }).catch(() => undefined); // a dead thread held nothing
      },
    };
  }

  /** Hands queued tasks to idle threads (called again whenever a thread goes idle). */
  pump(): void {
    if (this.queue.length > 0 && this.threads.every((t) => t.dead)) {
      // Every thread died while work waited: fail it (the next run starts replacements).
      for (const job of this.queue.splice(0)) job.reject(this.threads[0]!.dead!);
      return;
    }
    for (const t of this.threads) {
      if (this.queue.length === 0) return;
      if (!t.idle) continue;
      const job = this.queue.shift()!;
      t.send({ op: 'run', name: job.name, args: job.args }, job.transfer).then(job.resolve, job.reject);
    }
  }

  /** Replaces threads that died (once per death; a replacement that cannot start leaves the slot dead). */
  private async revive(): Promise<void> {
    const dead = this.threads.filter((t) => t.dead);
    if (dead.length === 0) return;
    await Promise.all(
      dead.map(
        (t) =>
          (t.replacement ??= startThread(t.index, () => this.pump()).then((n) => {
            if (n) this.threads[t.index] = n;
          })),
      ),
    );
  }
}

let pool: Promise<HostThreadPool | undefined> | undefined;

/** Threads wanted: IBGPU_HOST_THREADS when set, else one per core (at most MAX_THREADS). */
async function wantedThreads(): Promise<number> {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.['IBGPU_HOST_THREADS'];
  if (env !== undefined && env !== '') {
    const n = Math.floor(Number(env));
    if (!(n >= 0))
      throw new IbgpuError(
        'BAD_CONFIG',
        `IBGPU_HOST_THREADS=${env} is not a whole number of threads`,
        'set it to 0 (host work on the main thread) or a positive count, or unset it (one per core)',
      );
    return n;
  }
  const os = await import('node:os');
  return Math.min(MAX_THREADS, os.availableParallelism());
}

/**
 * The process's host thread pool, started on first use; undefined where threads cannot be had
 * (a browser, no loader) or IBGPU_HOST_THREADS=0.
 */
export function hostThreadPool(): Promise<HostThreadPool | undefined> {
  return (pool ??= (async () => {
    if (!isNode()) return undefined;
    const want = await wantedThreads();
    if (want < 1) return undefined;
    // The threads call back into the pool (made below) whenever they go idle.
    const made: { pool?: HostThreadPool } = {};
    const started = await Promise.all(Array.from({ length: want }, (_, i) => startThread(i, () => made.pool?.pump())));
    const threads = started.filter((t): t is HostThread => t !== undefined);
    if (threads.length === 0) return undefined;
    threads.forEach((t, i) => {
      t.index = i;
    }); // dense numbering when some failed to start
    made.pool = new HostThreadPool(threads);
    return made.pool;
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

/**
 * Whether shared memory exists here: always in Node; in a browser only on cross-origin isolated
 * pages, and there are no host threads there anyway.
 */
const hasShared = typeof SharedArrayBuffer === 'function';

/** `bytes` of zeroed memory the host threads can share (plain memory where there is none). */
export function sharedBytes(bytes: number): ArrayBuffer | SharedArrayBuffer {
  return hasShared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
}

/** A copy of `a` in shared memory (or `a` itself when it is already shared). */
export function sharedF64(a: Float64Array): Float64Array {
  if (hasShared && a.buffer instanceof SharedArrayBuffer) return a;
  const b = new Float64Array(sharedBytes(a.byteLength));
  b.set(a);
  return b;
}
