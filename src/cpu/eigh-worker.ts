// Solver threads for large float64 eigendecompositions, so that the host solver runs while the
// GPU works, and on several cores at once. Why: on a software adapter (llvmpipe through Dawn's
// OpenGL backend) every dispatch executes on the thread that submits it, so host work on the main
// thread and "GPU" work never overlap; during the bases stage one of a 2-core machine's cores
// would sit idle. On a real GPU the host eigensolve is the bases stage's critical path, and a
// GPU server has cores to spare for it.
//
// Node only. Each worker imports the solver module (sibling `eigh.js`, or `eigh.ts` when the
// sources run through tsx/vitest, with tsx's loader passed on). Problems of order
// >= PARALLEL_EIG_MIN_ORDER run the phased solver of eigh.ts over a pool of threads sharing the
// vectors through a SharedArrayBuffer; smaller ones run symEig whole on the first thread.
// Anything that goes wrong starting a thread — no worker_threads (a browser), no loader — makes
// `symEigInBackground` compute on fewer threads or on the calling one: same result, bit for bit.

import {
  symEig, symEigAssemble, type ReducedEig, type RotationLog, type SymEigResult,
} from './eigh.js';

interface WorkerLike {
  postMessage(msg: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(ev: string, fn: (arg: never) => void): void;
  ref(): void;
  unref(): void;
  terminate(): Promise<number>;
}

/** One solver thread: its pending calls (ref'd while any is pending). */
interface Solver {
  w: WorkerLike;
  pending: Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>;
}

interface Reply {
  id: number;
  error?: string;
  values?: Float64Array;
  vectors?: Float64Array;
  reduced?: ReducedEig;
}

/** Solver threads, started on demand: the first for background solves, more for parallel ones. */
const solvers: (Promise<Solver | undefined> | undefined)[] = [];
let nextId = 1;

/** At most this many threads share one eigenproblem (the phases scale to a few cores). */
const MAX_THREADS = 4;
/** Below this order a parallel solve costs more in hand-offs than it saves. */
export const PARALLEL_EIG_MIN_ORDER = 192;

/**
 * Code run in the worker: the ops of src/cpu/eigh.ts's phased solver, with the module at
 * `workerData.module`. Shared arrays (SharedArrayBuffer) are written in place; nothing is copied back.
 */
const WORKER_SOURCE = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  try {
    if (workerData.tsx) (await import(workerData.tsx)).register();
    const m = await import(workerData.module);
    parentPort.on('message', (msg) => {
      const { id, op } = msg;
      try {
        if (op === 'eig') {
          const { values, vectors } = m.symEig(new Float64Array(msg.a), msg.n);
          parentPort.postMessage({ id, values, vectors }, [values.buffer, vectors.buffer]);
        } else if (op === 'reduce') {
          const r = m.symEigReduce(new Float64Array(msg.a), msg.n);
          if (r.done) {
            parentPort.postMessage({ id, values: r.done.values, vectors: r.done.vectors }, [r.done.values.buffer, r.done.vectors.buffer]);
          } else {
            const x = r.reduced, t = x.rotations;
            parentPort.postMessage({ id, reduced: x }, [x.d.buffer, x.w.buffer, x.beta.buffer, t.lo.buffer, t.hi.buffer, t.at.buffer, t.c.buffer, t.s.buffer]);
          }
        } else if (op === 'accumulate') {
          m.symEigAccumulate(msg.reduced, msg.zt, msg.part, msg.parts);
          parentPort.postMessage({ id });
        } else if (op === 'rotate') {
          m.symEigRotate(msg.reduced, msg.zt, msg.part, msg.parts);
          parentPort.postMessage({ id });
        } else {
          throw new Error('unknown op ' + op);
        }
      } catch (e) {
        parentPort.postMessage({ id, error: String((e && e.message) || e) });
      }
    });
    parentPort.postMessage({ ready: true });
  } catch (e) {
    parentPort.postMessage({ failed: String((e && e.message) || e) });
  }
});
`;

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

async function startSolver(slot: number): Promise<Solver | undefined> {
  if (!isNode()) return undefined;
  try {
    const { Worker } = (await import('node:worker_threads')) as unknown as {
      Worker: new (src: string, o: { eval: boolean; workerData: unknown; execArgv?: string[] }) => WorkerLike;
    };
    const here = import.meta.url;
    const fromSources = here.endsWith('.ts');
    const module = here.replace(/eigh-worker\.(ts|js)$/, `eigh.$1`);
    // Sources (tsx, vitest): the worker registers tsx's loader before importing eigh.ts.
    let tsx: string | undefined;
    if (fromSources) {
      const { createRequire } = await import('node:module');
      const { pathToFileURL } = await import('node:url');
      const req = createRequire(here);
      tsx = pathToFileURL(req.resolve('tsx/esm/api').replace(/index\.cjs$/, 'index.mjs')).href;
    }
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, tsx } });
    const solver: Solver = { w, pending: new Map() };
    let started = false;
    const ok = await new Promise<boolean>((res) => {
      w.on('message', (m: Reply & { ready?: boolean; failed?: string }) => {
        if (m.ready) { started = true; res(true); return; }
        if (m.failed !== undefined) { res(false); return; }
        const p = solver.pending.get(m.id);
        if (!p) return;
        solver.pending.delete(m.id);
        if (solver.pending.size === 0) w.unref();
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m);
      });
      w.on('error', () => res(false));
      // A solver thread that dies (out of memory, killed) fails what it had; the next call starts another.
      w.on('exit', () => {
        if (started) solvers[slot] = undefined; // a thread that never started is not retried
        started = false;
        for (const [id, p] of solver.pending) { solver.pending.delete(id); p.reject(new Error('the background eigensolver thread exited')); }
        res(false);
      });
    });
    if (!ok) {
      await w.terminate();
      return undefined;
    }
    w.unref(); // an idle solver thread never keeps the process alive (ref'd while it works)
    return solver;
  } catch {
    return undefined;
  }
}

function solverAt(slot: number): Promise<Solver | undefined> {
  return (solvers[slot] ??= startSolver(slot));
}

function call(s: Solver, msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
  const id = nextId++;
  return new Promise<Reply>((resolve, reject) => {
    s.pending.set(id, { resolve, reject });
    s.w.ref();
    s.w.postMessage({ ...msg, id }, transfer);
  });
}

let cores: Promise<number> | undefined;

/** Threads one eigenproblem may use: the machine's cores, at most MAX_THREADS. */
function threadBudget(): Promise<number> {
  return (cores ??= import('node:os').then((os) => Math.max(1, Math.min(MAX_THREADS, os.availableParallelism()))).catch(() => 1));
}

/** A copy of `a` in shared memory (read by every solver thread, never copied per thread). */
function shared<T extends Float64Array | Int32Array>(a: T): T {
  const b = new (a.constructor as new (buf: SharedArrayBuffer) => T)(new SharedArrayBuffer(a.byteLength));
  b.set(a);
  return b;
}

/**
 * symEig(a, n) off this thread when threads can be had (Node), else on it. Large problems
 * (n >= PARALLEL_EIG_MIN_ORDER) are split over up to `threads` solver threads (default: the
 * machine's cores, at most 4) with the phased solver of src/cpu/eigh.ts. Whichever way, the
 * promise settles with exactly what symEig returns (bit for bit); `a` is copied, never transferred.
 */
export async function symEigInBackground(a: Float64Array, n: number, opts: { threads?: number } = {}): Promise<SymEigResult> {
  const first = await solverAt(0);
  if (!first) return symEig(a, n);
  const copy = Float64Array.from(a);
  const want = n >= PARALLEL_EIG_MIN_ORDER ? Math.min(MAX_THREADS, opts.threads ?? (await threadBudget())) : 1;
  const pool = [first];
  for (let t = 1; t < want; t++) {
    const s = await solverAt(t);
    if (s) pool.push(s);
  }
  if (pool.length < 2) {
    const r = await call(first, { op: 'eig', a: copy.buffer, n }, [copy.buffer]);
    return { values: r.values!, vectors: r.vectors! };
  }
  const red = await call(first, { op: 'reduce', a: copy.buffer, n }, [copy.buffer]);
  if (!red.reduced) return { values: red.values!, vectors: red.vectors! }; // the zero matrix
  const r = red.reduced;
  const rot: RotationLog = r.rotations;
  const parts = pool.length;
  const zt = new Float64Array(new SharedArrayBuffer(n * n * 8));
  const forAccumulate = { n, w: shared(r.w), beta: shared(r.beta) };
  await Promise.all(pool.map((s, part) => call(s, { op: 'accumulate', reduced: forAccumulate, zt, part, parts })));
  const forRotate = {
    n, rotations: { sweeps: rot.sweeps, lo: shared(rot.lo), hi: shared(rot.hi), at: shared(rot.at), c: shared(rot.c), s: shared(rot.s) },
  };
  await Promise.all(pool.map((s, part) => call(s, { op: 'rotate', reduced: forRotate, zt, part, parts })));
  return symEigAssemble(r, zt);
}

/** Whether a solver thread is running (for tests and `ibgpu doctor`). */
export async function backgroundSolverAvailable(): Promise<boolean> {
  return (await solverAt(0)) !== undefined;
}

/**
 * Starts the solver threads a large eigenproblem would use (the machine's cores, at most 4 or
 * `max`) and
 * says how many are running: 0 where there are none (a browser). Call it early so that thread
 * start-up overlaps other work.
 */
export async function solverThreads(max?: number): Promise<number> {
  if (!(await backgroundSolverAvailable())) return 0;
  const budget = Math.min(await threadBudget(), max ?? MAX_THREADS);
  const pool = await Promise.all(Array.from({ length: budget }, (_, t) => solverAt(t)));
  return pool.filter((s) => s !== undefined).length;
}
