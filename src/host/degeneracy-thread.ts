// The host degeneracy observer (src/host/degeneracy.ts) on a host worker thread (pool.ts), so that
// its per-datapoint Jacobian products (on rib's MNIST MLP about as much work as the rest of the host
// statistics pass) run beside the pass instead of after each of its batches: the main thread posts
// each batch's pre-activations and goes on with the next batch. The accumulator is state held by one
// pool thread (tasks.ts HOST_STATES 'degeneracy') for the build, released by `dispose`.
//
// Where there are no threads (a browser, IBGPU_HOST_THREADS=0) `startDegeneracyThread` answers
// undefined and the caller runs the observer on its own thread: the same statistics, bit for bit
// (the same code sums in the same order).

import type { MlpModel } from '../model/mlp.js';
import type { DegeneracyStats } from '../report/degeneracy.js';
import type { HostForward } from './mlp-forward.js';
import { hostThreadPool } from './pool.js';

/** Set while a build's observer holds a thread: one at a time (a second build observes on its own thread). */
let busy = false;

/** The host degeneracy observer's interface (src/ib/stats.ts's hostObserver), on a thread. */
export interface DegeneracyObserverThread {
  readonly upTo: number;
  addBatch(f: HostForward, rows: number): void;
  result(): Promise<DegeneracyStats>;
  /** Frees the thread for the next build (after result(), or when the build gave up). */
  dispose(): void;
}

/**
 * A host degeneracy observer running on a host worker thread, or undefined when no thread can
 * be had or another build holds it (then use HostDegeneracyAccumulator directly).
 */
export async function startDegeneracyThread(model: MlpModel, layers: number[]): Promise<DegeneracyObserverThread | undefined> {
  if (busy) return undefined;
  busy = true;
  const L = model.layers.length;
  const lo = Math.min(...layers);
  let held;
  try {
    const pool = await hostThreadPool();
    held = pool ? await pool.hold('degeneracy', { model, layers }) : undefined;
  } catch {
    held = undefined;
  }
  if (!held) {
    busy = false;
    return undefined;
  }
  const h = held;
  let failure: Error | undefined;
  let owned = true;
  return {
    dispose(): void {
      if (owned) {
        busy = false;
        void h.release();
      }
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
      h.post('add', { rows, pres, acts }, transfer);
    },
    async result(): Promise<DegeneracyStats> {
      if (failure) throw failure;
      try {
        return await h.call('result');
      } catch (e) {
        failure = e as Error;
        throw failure;
      }
    },
  };
}
