// A background thread for large float64 eigendecompositions, so that the host solver can run
// while the GPU works. Why: on a software adapter (llvmpipe through Dawn's OpenGL backend) every
// dispatch executes on the thread that submits it, so host work on the main thread and "GPU"
// work never overlap; during the bases stage one of a 2-core machine's cores would sit idle.
//
// Node only. The worker imports this very module (sibling `eigh.js`, or `eigh.ts` when the
// sources run through tsx/vitest, with tsx's loader passed on) and runs `eigAbsSorted`'s solver.
// Anything that goes wrong starting it — no worker_threads (a browser), no loader — makes
// `symEigInBackground` compute on the calling thread instead: same function, same result.

import { symEig, type SymEigResult } from './eigh.js';

interface Pending {
  resolve: (r: SymEigResult) => void;
  reject: (e: Error) => void;
}

interface WorkerLike {
  postMessage(msg: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(ev: string, fn: (arg: never) => void): void;
  ref(): void;
  unref(): void;
  terminate(): Promise<number>;
}

let worker: Promise<WorkerLike | undefined> | undefined;
let nextId = 1;
const pending = new Map<number, Pending>();

/** Code run in the worker: solve what it is sent with the module at `workerData.module`. */
const WORKER_SOURCE = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  try {
    if (workerData.tsx) (await import(workerData.tsx)).register();
    const m = await import(workerData.module);
    parentPort.on('message', ({ id, a, n }) => {
      try {
        const { values, vectors } = m.symEig(new Float64Array(a), n);
        parentPort.postMessage({ id, values, vectors }, [values.buffer, vectors.buffer]);
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

async function startWorker(): Promise<WorkerLike | undefined> {
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
    let started = false;
    const ok = await new Promise<boolean>((res) => {
      w.on('message', (m: { ready?: boolean; failed?: string; id?: number; values?: Float64Array; vectors?: Float64Array; error?: string }) => {
        if (m.ready) { started = true; res(true); return; }
        if (m.failed !== undefined) { res(false); return; }
        const p = m.id !== undefined ? pending.get(m.id) : undefined;
        if (!p) return;
        pending.delete(m.id!);
        if (pending.size === 0) w.unref();
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve({ values: m.values!, vectors: m.vectors! });
      });
      w.on('error', () => res(false));
      // A solver thread that dies (out of memory, killed) fails what it had; the next call starts another.
      w.on('exit', () => {
        if (started) worker = undefined; // a thread that never started is not retried
        started = false;
        for (const [id, p] of pending) { pending.delete(id); p.reject(new Error('the background eigensolver thread exited')); }
        res(false);
      });
    });
    if (!ok) {
      await w.terminate();
      return undefined;
    }
    w.unref(); // an idle solver thread never keeps the process alive (ref'd while it works)
    return w;
  } catch {
    return undefined;
  }
}

/**
 * symEig(a, n) on a background thread when one can be had (Node), else on this thread. The
 * promise settles with exactly what symEig returns; `a` is copied, never transferred.
 */
export async function symEigInBackground(a: Float64Array, n: number): Promise<SymEigResult> {
  worker ??= startWorker();
  const w = await worker;
  if (!w) return symEig(a, n);
  const id = nextId++;
  const copy = Float64Array.from(a);
  return new Promise<SymEigResult>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, a: copy.buffer, n }, [copy.buffer]);
  });
}

/** Whether the background thread is running (for tests and `ibgpu doctor`). */
export async function backgroundSolverAvailable(): Promise<boolean> {
  worker ??= startWorker();
  return (await worker) !== undefined;
}
