// Datasets and models on disk, streamed: every source reads row ranges with positioned reads
// (file handle + offset), so host memory is bounded by one batch, never by the dataset size.
//
//   - `.npy` (C or Fortran order, any numeric dtype; src/io/npy.ts readRows);
//   - one tensor of a safetensors file (SafetensorsFile.readRows);
//   - a data index (JSON) listing shard files in order with their row counts:
//       {"format": "ibgpu-data-index", "features": 784,
//        "shards": [{"path": "part-000.npy", "rows": 500000},
//                   {"path": "part-001.safetensors", "key": "X", "rows": 500000}]}
//     Paths are relative to the index file. Row counts are checked against every shard's header
//     when the index is opened; a read that spans two shards is stitched from both.
//   - model weights split over several safetensors files with a Hugging Face style
//     `model.safetensors.index.json` ({"weight_map": {"layers.0.W": "model-00001-of-00002.safetensors", …}}).

import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { IbgpuError } from '../errors.js';
import { openNpy, type NpyFile } from '../io/npy.js';
import { openSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { openTensorFile } from '../io/tensor-file.js';
import { dtypeSize, toFloat32 } from '../io/tensor.js';
import type { DataSpec } from './config.js';
import type { DataSource } from './data.js';

/** A DataSource backed by open files; close() releases them. */
export interface FileDataSource extends DataSource {
  close(): Promise<void>;
  /** Bytes of one datapoint as stored (for plans). */
  readonly bytesPerRow: number;
}

interface RowFile {
  path: string;
  rows: number;
  d: number;
  bytesPerRow: number;
  read(start: number, count: number): Promise<Float32Array>;
  close(): Promise<void>;
}

function badData(path: string, msg: string, hint?: string): IbgpuError {
  return new IbgpuError('BAD_FILE', `${path}: ${msg}`, hint);
}

async function openNpyRows(path: string): Promise<RowFile> {
  const f: NpyFile = await openNpy(path);
  if (f.shape.length !== 2) {
    await f.close();
    throw new IbgpuError('SHAPE', `${path}: data must be a 2-D array [N, features], got shape [${f.shape.join(', ')}]`);
  }
  return {
    path,
    rows: f.rows,
    d: f.rowLength,
    bytesPerRow: f.rowLength * dtypeSize(f.dtype),
    read: (start, count) => f.readRows(start, count),
    close: () => f.close(),
  };
}

async function openSafetensorsRows(path: string, key: string): Promise<RowFile> {
  const st: SafetensorsFile = await openSafetensors(path);
  try {
    const info = st.info(key);
    if (info.shape.length !== 2) throw new IbgpuError('SHAPE', `${path}: tensor ${key} must be 2-D [N, features], got [${info.shape.join(', ')}]`);
    const d = info.shape[1]!;
    const rows = info.shape[0]!;
    return {
      path,
      rows,
      d,
      bytesPerRow: rows > 0 ? (info.dataOffsets[1] - info.dataOffsets[0]) / rows : 0,
      read: async (start, count) => toFloat32(await st.readRows(key, start, count)),
      close: () => st.close(),
    };
  } catch (e) {
    await st.close();
    throw e;
  }
}

function checkRowsFinite(path: string, rows: Float32Array, d: number, start: number): void {
  for (let i = 0; i < rows.length; i++) {
    if (!Number.isFinite(rows[i]!)) {
      throw new IbgpuError('NON_FINITE', `${path}: row ${start + Math.floor(i / d)} holds ${rows[i]}`, 'clean the data before building');
    }
  }
}

/** The parsed data index (see the header comment). */
export interface DataIndex {
  format: 'ibgpu-data-index';
  features?: number;
  shards: { path: string; rows: number; key?: string }[];
}

export function parseDataIndex(raw: unknown, where: string): DataIndex {
  const bad = (m: string) =>
    new IbgpuError(
      'BAD_CONFIG',
      `${where}: ${m}`,
      'a data index is {"format": "ibgpu-data-index", "shards": [{"path": "part-0.npy", "rows": 1000}, …]} (README: "Large datasets and many machines")',
    );
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('must be a JSON object');
  const r = raw as Record<string, unknown>;
  if (r['format'] !== 'ibgpu-data-index') throw bad(`format must be "ibgpu-data-index" (got ${JSON.stringify(r['format'])})`);
  if (!Array.isArray(r['shards']) || r['shards'].length === 0) throw bad('shards must be a non-empty list');
  const shards = (r['shards'] as unknown[]).map((s, i) => {
    if (typeof s !== 'object' || s === null) throw bad(`shards[${i}] must be an object {path, rows}`);
    const o = s as Record<string, unknown>;
    if (typeof o['path'] !== 'string') throw bad(`shards[${i}].path must be a string`);
    if (!Number.isSafeInteger(o['rows']) || (o['rows'] as number) < 0) throw bad(`shards[${i}].rows must be a non-negative integer`);
    return { path: o['path'], rows: o['rows'] as number, ...(typeof o['key'] === 'string' ? { key: o['key'] } : {}) };
  });
  const out: DataIndex = { format: 'ibgpu-data-index', shards };
  if ('features' in r) {
    if (!Number.isSafeInteger(r['features'])) throw bad('features must be an integer');
    out.features = r['features'] as number;
  }
  return out;
}

async function openRowFile(path: string, key: string | undefined): Promise<RowFile> {
  return path.endsWith('.npy') ? openNpyRows(path) : openSafetensorsRows(path, key ?? 'X');
}

/** Opens the data of a build config as a streamed source (not for data.type 'mnist'). */
export async function openDataSource(spec: DataSpec, base: string): Promise<FileDataSource> {
  const path = resolve(base, spec.path!);
  let files: RowFile[];
  let label: string;
  if (spec.type === 'index') {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      throw new IbgpuError('BAD_CONFIG', `cannot read the data index ${path}: ${(e as Error).message}`, 'check config.data.path');
    }
    const idx = parseDataIndex(raw, path);
    files = [];
    try {
      for (const s of idx.shards) {
        const f = await openRowFile(resolve(dirname(path), s.path), s.key ?? spec.key);
        files.push(f);
        if (f.rows !== s.rows)
          throw badData(
            path,
            `shard ${s.path} has ${f.rows} rows, the index says ${s.rows}`,
            'regenerate the index (or the shard): a shard was replaced or cut off',
          );
        if (f.d !== files[0]!.d) throw badData(path, `shard ${s.path} has ${f.d} features, shard ${idx.shards[0]!.path} has ${files[0]!.d}`);
        if (idx.features !== undefined && f.d !== idx.features) throw badData(path, `shard ${s.path} has ${f.d} features, the index says ${idx.features}`);
      }
    } catch (e) {
      for (const f of files) await f.close().catch(() => undefined);
      throw e;
    }
    label = `${basename(path)} (${files.length} shards)`;
  } else {
    files = [spec.type === 'npy' ? await openNpyRows(path) : await openSafetensorsRows(path, spec.key ?? 'X')];
    label = spec.type === 'npy' ? basename(path) : `${basename(path)}:${spec.key ?? 'X'}`;
  }
  const total = files.reduce((a, f) => a + f.rows, 0);
  const n = Math.min(total, spec.count ?? Infinity);
  const d = files[0]!.d;
  const starts: number[] = [];
  let acc = 0;
  for (const f of files) {
    starts.push(acc);
    acc += f.rows;
  }
  return {
    n,
    d,
    description: `${label} (${n}×${d})`,
    bytesPerRow: files[0]!.bytesPerRow,
    readRows: async (start, count) => {
      if (start < 0 || count < 0 || start + count > n)
        throw new IbgpuError('SHAPE', `${path}: rows [${start}, ${start + count}) are outside the ${n} datapoints`);
      const out = files.length === 1 ? undefined : new Float32Array(count * d);
      let done = 0;
      for (let k = 0; k < files.length && done < count; k++) {
        const f = files[k]!;
        const s0 = starts[k]!;
        const lo = Math.max(start + done, s0);
        const hi = Math.min(start + count, s0 + f.rows);
        if (hi <= lo) continue;
        const rows = await f.read(lo - s0, hi - lo);
        checkRowsFinite(f.path, rows, d, lo - s0);
        if (!out) return rows;
        out.set(rows, (lo - start) * d);
        done = hi - start;
      }
      return out ?? new Float32Array(0);
    },
    close: async () => {
      for (const f of files) await f.close();
    },
  };
}

/**
 * A tensor getter for model weights: one safetensors file, or a Hugging Face style
 * `*.safetensors.index.json` whose weight_map names the shard holding each tensor.
 */
export async function openWeights(path: string): Promise<{ get(name: string): Promise<{ shape: number[]; data: Float32Array }>; close(): Promise<void> }> {
  if (!path.endsWith('.json')) {
    const st = await openTensorFile(path); // safetensors or a torch.save checkpoint
    return { get: (name) => st.readF32(name), close: () => st.close() };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new IbgpuError('BAD_CONFIG', `cannot read the weight index ${path}: ${(e as Error).message}`, 'check config.model');
  }
  const wm = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm) || !Object.values(wm).every((v) => typeof v === 'string')) {
    throw new IbgpuError(
      'BAD_CONFIG',
      `${path}: a weight index needs "weight_map": {tensor name: shard file}`,
      'as written by transformers / safetensors (model.safetensors.index.json)',
    );
  }
  const map = wm as Record<string, string>;
  const open = new Map<string, SafetensorsFile>();
  return {
    get: async (name) => {
      const file = map[name];
      if (file === undefined)
        throw new IbgpuError('MISSING_TENSOR', `${path}: the weight_map has no tensor '${name}'`, 'check the weight/bias names in the architecture file');
      const p = resolve(dirname(path), file);
      let st = open.get(p);
      if (!st) {
        st = await openSafetensors(p);
        open.set(p, st);
      }
      return st.readF32(name);
    },
    close: async () => {
      for (const st of open.values()) await st.close();
    },
  };
}
