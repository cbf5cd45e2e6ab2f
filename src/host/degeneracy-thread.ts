// The host degeneracy observer (src/host/degeneracy.ts) on a thread of its own, so that its
// per-datapoint Jacobian products (on rib's MNIST MLP about as much work as the rest of the host
// statistics pass) run beside the pass instead of after each of its batches: the main thread posts
// each batch's pre-activations and goes on with the next batch.
//
// Node only: one worker, started on first use and kept for later builds (unref'd, so it never
// keeps the process alive). Anything that goes wrong starting it — no worker_threads (a browser),
// no loader — makes `startDegeneracyThread` answer undefined, and the caller runs the observer on
// its own thread: the same statistics, bit for bit (the same code sums in the same order).

import type { MlpModel } from '../model/mlp.js';
import type { DegeneracyStats } from '../report/degeneracy.js';
import type { HostForward } from './mlp-forward.js';

interface WorkerLike {
  postMessage(msg: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(ev: string, fn: (arg: never) => void): void;
  ref(): void;
  unref(): void;
  terminate(): Promise<number>;
}

interface Reply {
  id: number;
  error?: string;
  stats?: DegeneracyStats;
}

/** Code run in the worker: one HostDegeneracyAccumulator per build ('init'), fed batch by batch. */
const WORKER_SOURCE = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  try {
    if (workerData.tsx) (await import(workerData.tsx)).register();
    const m = await import(workerData.module);
    let acc;
    let failed;
    parentPort.on('message', (msg) => {
      const { id, op } = msg;
      try {
        if (op === 'init') { acc = new m.HostDegeneracyAccumulator(msg.model, msg.layers); failed = undefined; }
        else if (op === 'add') { if (!failed) acc.addBatch({ rows: msg.rows, acts: msg.acts, pres: msg.pres }, msg.rows); return; }
        else if (op === 'result') {
          if (failed) throw new Error(failed);
          const stats = acc.result();
          acc = undefined;
          parentPort.postMessage({ id, stats });
          return;
        } else throw new Error('unknown op ' + op);
        parentPort.postMessage({ id });
      } catch (e) {
        failed = String((e && e.message) || e);
        if (id !== undefined) parentPort.postMessage({ id, error: failed });
      }
    });
    parentPort.postMessage({ ready: true });
  } catch (e) {
    parentPort.postMessage({ failed: String((e && e.message) || e) });
  }
});
`;

interface Thread {
  w: WorkerLike;
  pending: Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>;
}

let thread: Promise<Thread | undefined> | undefined;
let nextId = 1;
/** Set while a build owns the thread (its messages must not interleave with another's). */
let busy = false;

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

async function start(): Promise<Thread | undefined> {
  if (!isNode()) return undefined;
  try {
    const { Worker } = (await import('node:worker_threads')) as unknown as {
      Worker: new (src: string, o: { eval: boolean; workerData: unknown }) => WorkerLike;
    };
    const here = import.meta.url;
    const fromSources = here.endsWith('.ts');
    const module = here.replace(/degeneracy-thread\.(ts|js)$/, 'degeneracy.$1');
    let tsx: string | undefined;
    if (fromSources) {
      // Sources (tsx, vitest): the worker registers tsx's loader before importing degeneracy.ts.
      const { createRequire } = await import('node:module');
      const { pathToFileURL } = await import('node:url');
      tsx = pathToFileURL(createRequire(here).resolve('tsx/esm/api').replace(/index\.cjs$/, 'index.mjs')).href;
    }
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, tsx } });
    const t: Thread = { w, pending: new Map() };
    let started = false;
    const ok = await new Promise<boolean>((res) => {
      w.on('message', (m: Reply & { ready?: boolean; failed?: string }) => {
        if (m.ready) { started = true; res(true); return; }
        if (m.failed !== undefined) { res(false); return; }
        const p = t.pending.get(m.id);
        if (!p) return;
        t.pending.delete(m.id);
        if (t.pending.size === 0) w.unref();
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m);
      });
      w.on('error', () => res(false));
      w.on('exit', () => {
        if (started) thread = undefined; // the next build starts another
        started = false;
        for (const [id, p] of t.pending) { t.pending.delete(id); p.reject(new Error('the degeneracy statistics thread exited')); }
        res(false);
      });
    });
    if (!ok) {
      await w.terminate();
      return undefined;
    }
    w.unref();
    return t;
  } catch {
    return undefined;
  }
}

function call(t: Thread, msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
  const id = nextId++;
  return new Promise<Reply>((resolve, reject) => {
    t.pending.set(id, { resolve, reject });
    t.w.ref();
    t.w.postMessage({ ...msg, id }, transfer);
  });
}

/** The host degeneracy observer's interface (src/ib/stats.ts's hostObserver), on a thread. */
export interface DegeneracyObserverThread {
  readonly upTo: number;
  addBatch(f: HostForward, rows: number): void;
  result(): Promise<DegeneracyStats>;
  /** Frees the thread for the next build (after result(), or when the build gave up). */
  dispose(): void;
}

/**
 * A host degeneracy observer running on the shared worker thread, or undefined when no thread can
 * be had or another build holds it (then use HostDegeneracyAccumulator directly).
 */
export async function startDegeneracyThread(model: MlpModel, layers: number[]): Promise<DegeneracyObserverThread | undefined> {
  if (busy) return undefined;
  busy = true;
  const t = await (thread ??= start());
  if (!t) {
    busy = false;
    return undefined;
  }
  const L = model.layers.length;
  const lo = Math.min(...layers);
  try {
    await call(t, { op: 'init', model, layers });
  } catch {
    busy = false;
    return undefined;
  }
  let failure: Error | undefined;
  let owned = true;
  return {
    dispose(): void {
      if (owned) busy = false;
      owned = false;
    },
    upTo: L,
    addBatch(f: HostForward, rows: number): void {
      // Copies (the pass keeps using f): the pre-activations from the lowest section up, and the
      // hidden ReLU layers' outputs.
      const pres: (Float64Array | undefined)[] = [];
      const acts: (Float64Array | undefined)[] = [];
      const transfer: ArrayBuffer[] = [];
      for (let i = lo; i < L; i++) {
        const p = f.pres[i]!.slice(0, rows * model.layers[i]!.dOut);
        pres[i] = p;
        transfer.push(p.buffer);
        if (i < L - 1 && model.layers[i]!.activation === 'relu' && layers.includes(i)) {
          const a = f.acts[i + 1]!.slice(0, rows * model.layers[i]!.dOut);
          acts[i + 1] = a;
          transfer.push(a.buffer);
        }
      }
      t.w.postMessage({ op: 'add', rows, pres, acts }, transfer);
    },
    async result(): Promise<DegeneracyStats> {
      if (failure) throw failure;
      try {
        return (await call(t, { op: 'result' })).stats!;
      } catch (e) {
        failure = e as Error;
        throw failure;
      }
    },
  };
}
