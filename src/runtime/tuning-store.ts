// Where measured kernel choices (autotuning) are remembered between runs. The kernels ask the
// installed store; with none installed (browsers, tests, library use without opting in) the
// choices live only as long as the engine. Node entry points install the on-disk store of
// src/runtime/tuning-store-node.ts, which keys every entry by the adapter AND the host CPU
// model: on software adapters the best variant depends on the CPU (bench/RESULTS.notes.md).

export interface TuningStore {
  /** Where the entries live, for messages (`ibgpu doctor`). */
  readonly location: string;
  /** The host the entries are keyed by (CPU model, cores), for messages. */
  readonly host: string;
  get(key: string): unknown;
  set(key: string, value: unknown): void;
}

let installed: TuningStore | undefined;

export function setTuningStore(store: TuningStore | undefined): void {
  installed = store;
}

export function tuningStore(): TuningStore | undefined {
  return installed;
}
