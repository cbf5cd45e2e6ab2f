// Threads for the host edge pass (src/host/edges.ts). On a software adapter the edge pass runs on
// the host in float64 and a 2-core machine has its second core idle otherwise (the adapter does
// nothing meanwhile). Each thread imports src/host/edges-squared.ts (the sibling `.js`, or the
// `.ts` through tsx's loader when the sources run under tsx/vitest) and runs runs of rows on
// shared memory (SharedArrayBuffer): the sections' operands are posted once per pass, each
// block's f̂, gates and visiting order once per block, and every thread adds into the partial E
// of the run it was given; nothing is copied back.
//
// The pool is started on first use and kept for the life of the process (across batches and
// builds); it is unref'd while idle, so it never keeps the process alive. Node only: where
// threads cannot be had (a browser, no loader) `edgeThreads` resolves to undefined and the pass
// runs on the calling thread, with the same result bit for bit (the runs, not the threads,
// decide the arithmetic).

import type { SquaredEdgeSection } from './edges-squared.js';

interface WorkerLike {
  postMessage(msg: unknown): void;
  on(ev: string, fn: (arg: never) => void): void;
  ref(): void;
  unref(): void;
  terminate(): Promise<number>;
}

interface Reply { id: number; error?: string; updates?: number; ready?: boolean; failed?: string }

/** One run of rows of one section: order[from..to) of a block, added into E (a shared ro × r view). */
export interface EdgeRun {
  section: number;
  E: Float64Array;
  fhat: Float64Array;
  gates: Float64Array;
  order: Uint32Array;
  from: number;
  to: number;
}

/** Threads the host edge pass may use at most (the pass splits each block into this many runs). */
export const MAX_EDGE_THREADS = 4;

const WORKER_SOURCE = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  try {
    if (workerData.tsx) (await import(workerData.tsx)).register();
    const m = await import(workerData.module);
    const sections = new Map();
    parentPort.on('message', (msg) => {
      const { id, op } = msg;
      try {
        if (op === 'sections') {
          msg.sections.forEach((s, k) => sections.set(msg.pass + ':' + k, { sec: s, J: new Float64Array(s.ro * s.r) }));
          parentPort.postMessage({ id });
        } else if (op === 'drop') {
          for (const k of [...sections.keys()]) if (k.startsWith(msg.pass + ':')) sections.delete(k);
          parentPort.postMessage({ id });
        } else if (op === 'run') {
          const s = sections.get(msg.pass + ':' + msg.section);
          const updates = m.accumulateSquaredEdges(s.sec, msg.E, s.J, msg.fhat, msg.gates, msg.order, msg.from, msg.to);
          parentPort.postMessage({ id, updates });
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

class EdgeThread {
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  dead = false;

  constructor(private readonly w: WorkerLike) {
    w.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m);
    });
    w.on('exit', () => {
      this.dead = true;
      for (const [id, p] of this.pending) { this.pending.delete(id); p.reject(new Error('a host edge thread exited')); }
    });
  }

  call(msg: Record<string, unknown>): Promise<Reply> {
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      if (this.dead) { reject(new Error('a host edge thread exited')); return; }
      this.pending.set(id, { resolve, reject });
      this.w.ref(); // busy: keeps the process alive until it answers
      this.w.postMessage({ ...msg, id });
    });
  }
}

/** Threads started so far (slot k holds thread k). */
const threads: (Promise<EdgeThread | undefined> | undefined)[] = [];

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

async function startThread(slot: number): Promise<EdgeThread | undefined> {
  if (!isNode()) return undefined;
  try {
    const { Worker } = (await import('node:worker_threads')) as unknown as {
      Worker: new (src: string, o: { eval: boolean; workerData: unknown }) => WorkerLike;
    };
    const here = import.meta.url;
    const fromSources = here.endsWith('.ts');
    const module = here.replace(/edge-threads\.(ts|js)$/, 'edges-squared.$1');
    let tsx: string | undefined;
    if (fromSources) {
      const { createRequire } = await import('node:module');
      const { pathToFileURL } = await import('node:url');
      const req = createRequire(here);
      tsx = pathToFileURL(req.resolve('tsx/esm/api').replace(/index\.cjs$/, 'index.mjs')).href;
    }
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, tsx } });
    const ok = await new Promise<boolean>((res) => {
      const onStart = (m: Reply): void => {
        if (m.ready) res(true);
        else if (m.failed !== undefined) res(false);
      };
      w.on('message', onStart);
      w.on('error', () => res(false));
      w.on('exit', () => {
        threads[slot] = undefined; // a thread that dies is replaced on the next use
        res(false);
      });
    });
    if (!ok) {
      await w.terminate();
      return undefined;
    }
    w.unref();
    return new EdgeThread(w);
  } catch {
    return undefined;
  }
}

function threadAt(slot: number): Promise<EdgeThread | undefined> {
  return (threads[slot] ??= startThread(slot));
}

let cores: Promise<number> | undefined;

/** The machine's cores (1 where unknown), at most MAX_EDGE_THREADS. */
export function edgeThreadBudget(): Promise<number> {
  return (cores ??= import('node:os')
    .then((os) => Math.max(1, Math.min(MAX_EDGE_THREADS, os.availableParallelism())))
    .catch(() => 1));
}

/** A set of edge threads loaded with one pass's sections. */
export interface EdgeThreadSet {
  readonly count: number;
  /** Runs `run` on thread `t` (0 ≤ t < count); resolves with its number of rank-1 updates. */
  run(t: number, run: EdgeRun): Promise<number>;
  /** Lets the threads drop the pass's sections (the threads stay for the next pass). */
  close(): Promise<void>;
}

let nextPass = 1;

/**
 * Whether shared memory exists here: always in Node; in a browser only on cross-origin isolated
 * pages, and there are no edge threads there anyway.
 */
const hasShared = typeof SharedArrayBuffer === 'function';

/** `bytes` of zeroed memory the edge threads can share (plain memory where there is none). */
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

/**
 * Up to `want` threads (default: the machine's cores, at most MAX_EDGE_THREADS), loaded with
 * `sections` (their arrays must be shared, see sharedF64); undefined when none can be had.
 * Passes may share the pool: each pass's sections are held under its own id until `close`.
 */
export async function edgeThreads(sections: SquaredEdgeSection[], want?: number): Promise<EdgeThreadSet | undefined> {
  const n = Math.max(0, Math.min(MAX_EDGE_THREADS, want ?? (await edgeThreadBudget())));
  const pool: EdgeThread[] = [];
  for (let t = 0; t < n; t++) {
    const th = await threadAt(t);
    if (th) pool.push(th);
  }
  if (pool.length === 0) return undefined;
  const pass = nextPass++;
  try {
    await Promise.all(pool.map((th) => th.call({ op: 'sections', pass, sections })));
  } catch {
    return undefined;
  }
  return {
    count: pool.length,
    run: async (t, r) => (await pool[t]!.call({ op: 'run', pass, ...r })).updates ?? 0,
    close: async () => {
      await Promise.all(pool.map((th) => th.call({ op: 'drop', pass }).catch(() => undefined)));
    },
  };
}
