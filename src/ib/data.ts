// Datasets as row sources: the pipeline asks for row ranges, so a file source can stream
// batches without holding the whole dataset.

import { IbgpuError, checkFinite } from '../errors.js';

export interface DataSource {
  /** Number of datapoints. */
  readonly n: number;
  /** Features per datapoint (model input width). */
  readonly d: number;
  readonly description: string;
  /**
   * Rows [start, start + count) as a row-major count×d f32 array. The caller may keep it past
   * later reads (the host statistics pass reads batches ahead): a source never reuses the array
   * of an earlier read.
   */
  readRows(start: number, count: number): Promise<Float32Array>;
  /** Releases open files (streamed file sources); absent for in-memory sources. */
  close?(): Promise<void>;
}

/** A dataset held in memory (row-major n×d). Values are checked for NaN/Inf once. */
export function arraySource(x: Float32Array | Float64Array, n: number, d: number, description = 'array'): DataSource {
  if (x.length !== n * d) {
    throw new IbgpuError('SHAPE', `dataset has ${x.length} values, expected n*d = ${n}*${d} = ${n * d}`, 'pass the row count and width that match the array');
  }
  checkFinite('dataset', x, [n, d]);
  const f32 = x instanceof Float32Array ? x : Float32Array.from(x);
  return {
    n,
    d,
    description,
    readRows: async (start, count) => f32.subarray(start * d, (start + count) * d),
  };
}
