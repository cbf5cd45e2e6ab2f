// Gram and column-sum accumulation over streamed row batches (SPEC §2, precision per SPEC §8.3).
//
// GramAccumulator sums G = Σ_r (x_r − s)(x_r − s)ᵀ over every row r of every batch, for a fixed
// shift s (zero for the raw Gram, μ̃ for the centred Gram of the second pass of two-pass
// centring). ColumnSumAccumulator sums Σ_r x_r for the means of the first pass. Both return
// SUMS in float64; the caller divides by N·P.
//
// Per batch the GPU computes an f32 partial with pairwise (tree) reduction over rows; across
// batches the partials are added either
//   'host-f64' (default): each partial is read back and added into a Float64Array, so the error
//     does not grow with the number of batches (SPEC §8.3 mitigation 1);
//   'gpu-f32': the kernel adds each partial into a resident f32 buffer and there is one readback
//     at the end: faster for small batches, but the error grows linearly with the batch count.
//
// Only upper-triangle tiles are launched (a triangular workgroup index) and only entries i <= j
// are written on the GPU; the host mirrors the lower triangle when it builds the result.
//
// Batches whose binding would exceed engine.maxBindingBytes are split into row windows; each
// window is one dispatch (one partial in 'host-f64' mode).

import { checkFinite, checkShape, IbgpuError } from '../errors.js';
import { columnSumsF64, gramF64 } from '../cpu/gram.js';
import type { Engine } from '../runtime/engine.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import { ceilDiv } from '../runtime/workgroups.js';
import type { SelfCheckResult } from './self-check.js';
import { packParams } from '../runtime/params.js';
import { mulberry32 } from '../util/mulberry32.js';
import { shaderKernel } from './shader-kernel.js';

export type GramMode = 'host-f64' | 'gpu-f32';
/** 'reg': register-blocked, barrier-free (CPU adapters). 'tiled': workgroup-memory slabs (GPUs). */
export type GramVariant = 'reg' | 'tiled';

export const gramRegKernel = shaderKernel('gram_reg', { WG: 16, SHIFTED: 0, ACCUMULATE: 0 });

export const gramTiledKernel = shaderKernel('gram_tiled', { SHIFTED: 0, ACCUMULATE: 0 });

export const colsumKernel = shaderKernel('colsum_partial', { WG: 64 });

/** Rows summed sequentially in f32 before the pairwise merges (the leaf of the reduction tree). */
export const GRAM_LEAF_ROWS = 32;
/** The shaders' carry stacks hold MAX_LEVELS partials: at most 2^MAX_LEVELS − 1 leaves. */
const GRAM_MAX_LEAVES = 2 ** 12 - 1;
const COLSUM_MAX_LEAVES = 2 ** 16 - 1;
const TILED_BK = 16;
/** Rows per column-sum segment; segments are added in float64 on the host. */
const COLSUM_SEGMENT_ROWS = 1024;

/**
 * The Gram variant for an adapter. Software rasterisers run a workgroup's invocations as
 * coroutines, where every barrier is a full context switch: the register-blocked variant wins
 * there (see PLATFORM §1.4: shared-memory tiles were 2-6x slower on llvmpipe). Real GPUs get
 * the slab-tiled variant, which reuses each loaded value 16 times from workgroup memory.
 */
export function chooseGramVariant(engine: Engine): GramVariant {
  return engine.info.isSoftware ? 'reg' : 'tiled';
}

/**
 * Llvmpipe stops any loop after 65535 iterations in total per invocation (a safety counter in
 * its shader compiler, measured here: a 1-column Gram silently kept only the first ~58k rows of
 * a 65536-row dispatch). Software adapters therefore get at most this many rows per dispatch.
 */
export const SOFTWARE_MAX_DISPATCH_ROWS = 32768;

/**
 * Rows per dispatch for a variant on an adapter. On CPU adapters every workgroup streams all
 * rows of its dispatch, so one dispatch over a long batch re-reads it from DRAM once per
 * workgroup; blocks of about 4 MiB of rows stay in the CPU caches while all workgroups pass over
 * them (measured 1.4x at 16384×512 on llvmpipe). GPUs keep whole windows: their L2 and the slab
 * tiles do this job, and every extra partial costs a readback.
 */
export function gramDispatchRows(engine: Engine, variant: GramVariant, d: number): number {
  if (!engine.info.isSoftware) return Infinity;
  const cacheRows = variant === 'reg' ? Math.max(256, Math.floor(2 ** 20 / d / 256) * 256) : Infinity;
  return Math.min(cacheRows, SOFTWARE_MAX_DISPATCH_ROWS);
}

/** Output rows per gram_reg workgroup (RI in the shader). */
const REG_ROWS = 16;

/**
 * gram_reg invocations per workgroup for width d. Narrow layers want small tiles (less work
 * wasted below the diagonal); wide ones amortise the uniform row loads over more lanes.
 * Measured on llvmpipe, 1024-2048 rows: d=128-256 WG 8 ~1.2-1.3x faster than 16, d=1024 WG 16
 * ~1.15x faster than 8, d=512 equal.
 */
function regWorkgroup(d: number): number {
  return d <= 512 ? 8 : 16;
}

function gramTile(variant: GramVariant, d: number): number {
  return variant === 'reg' ? 4 * regWorkgroup(d) : 64;
}

// ------------------------------------------------------------------------------- row windows

/** A window of a row-major rows×d f32 buffer, bound at an aligned byte offset. */
export interface RowWindow {
  readonly buffer: GPUBuffer;
  /** Byte offset of the binding (a multiple of minStorageBufferOffsetAlignment). */
  readonly offset: number;
  /** Byte size of the binding. */
  readonly size: number;
  /** Element index of the window's first row inside the binding. */
  readonly base: number;
  readonly rows: number;
}

/**
 * Splits rows [rowOffset, rowOffset + rows) of `buf` into windows that each fit one storage
 * binding. `maxRows` caps the rows per window further (tests use it to force the split).
 */
export function rowWindows(engine: Engine, buf: GPUBuffer, d: number, rows: number, rowOffset = 0, maxRows = Infinity): RowWindow[] {
  const align = engine.limits.minStorageBufferOffsetAlignment;
  const fit = Math.floor((engine.maxBindingBytes - align) / (4 * d));
  if (fit < 1) {
    throw new IbgpuError('LIMIT_EXCEEDED', `one row of ${d} floats does not fit a storage binding (${engine.maxBindingBytes} bytes)`, 'reduce the layer width');
  }
  const per = Math.max(1, Math.min(fit, Math.floor(maxRows)));
  const out: RowWindow[] = [];
  for (let r = 0; r < rows; r += per) {
    const wr = Math.min(per, rows - r);
    const byte = (rowOffset + r) * d * 4;
    const offset = Math.floor(byte / align) * align;
    const base = (byte - offset) / 4;
    out.push({ buffer: buf, offset, size: (base + wr * d) * 4, base, rows: wr });
  }
  return out;
}

function checkBatch(what: string, x: GPUBuffer, rows: number, d: number, rowOffset: number): void {
  checkShape(Number.isInteger(rows) && rows >= 0, `${what}: rows must be a non-negative integer, got ${rows}`);
  checkShape(Number.isInteger(rowOffset) && rowOffset >= 0, `${what}: rowOffset must be a non-negative integer, got ${rowOffset}`);
  const need = (rowOffset + rows) * d * 4;
  checkShape(
    x.size >= need,
    `${what}: buffer '${x.label}' holds ${x.size} bytes, but rows ${rowOffset}..${rowOffset + rows} of width d=${d} need ${need}`,
    'pass the row count of this batch and the width the accumulator was created with',
  );
}

function checkHost(what: string, x: Float32Array, rows: number, d: number): void {
  checkShape(Number.isInteger(rows) && rows >= 0, `${what}: rows must be a non-negative integer, got ${rows}`);
  checkShape(
    x.length === rows * d,
    `${what}: x has ${x.length} values, expected rows*d = ${rows}*${d} = ${rows * d}`,
    "pass a row-major rows×d Float32Array of this accumulator's width",
  );
  checkFinite(what, x, [rows, d]);
}

// ------------------------------------------------------------------------------- Gram kernel

/**
 * Records the upper triangle (i <= j) of Σ_r (x_r − s)(x_r − s)ᵀ over one window into `out`
 * (d×d row-major), overwriting it or, with `accumulate`, adding to it. `shift` null: no shift.
 */
export function recordGramWindow(
  engine: Engine,
  variant: GramVariant,
  win: RowWindow,
  d: number,
  shift: GPUBuffer | null,
  out: GPUBuffer,
  accumulate: boolean,
): void {
  const spec = variant === 'reg' ? gramRegKernel : gramTiledKernel;
  const tile = gramTile(variant, d);
  const ntiles = ceilDiv(d, tile);
  const npairs = (ntiles * (ntiles + 1)) / 2;
  const groupsPerPair = variant === 'reg' ? tile / REG_ROWS : 1;
  let chunk = Math.max(GRAM_LEAF_ROWS, ceilDiv(win.rows, GRAM_MAX_LEAVES));
  if (variant === 'tiled') chunk = ceilDiv(chunk, TILED_BK) * TILED_BK;
  const params = packParams(spec, { rows: win.rows, d, base: win.base, ntiles, npairs, chunk });
  const xw = { buffer: win.buffer, offset: win.offset, size: win.size };
  engine.dispatch(spec, {
    bindings: {
      x: xw,
      // Never read when SHIFTED = 0; x again (read-only twice is legal, unlike aliasing `out`).
      shift: shift ?? xw,
      out,
      params,
    },
    workgroups: npairs * groupsPerPair,
    overrides: {
      SHIFTED: shift ? 1 : 0,
      ACCUMULATE: accumulate ? 1 : 0,
      ...(variant === 'reg' ? { WG: regWorkgroup(d) } : {}),
    },
    label: spec.name,
  });
}

export interface GramOptions {
  /** How batch partials are combined; default 'host-f64'. */
  mode?: GramMode;
  /** Subtracted from every row before the outer product (rounded to f32 on upload). */
  shift?: Float32Array | Float64Array;
  /** Kernel variant; default chooseGramVariant(engine). */
  variant?: GramVariant;
  /** Upper bound on rows per dispatch window (default: what fits one binding). */
  windowRows?: number;
}

/**
 * Streams row batches into Σ (x − s)(x − s)ᵀ. In 'host-f64' mode addBatch returns a promise
 * that settles when the batch's partial has been added on the host; callers may keep a batch or
 * two in flight to overlap the GPU and the readback (each in-flight batch holds d*d*4 bytes of
 * staging). result() waits for everything outstanding.
 */
export class GramAccumulator {
  readonly d: number;
  readonly mode: GramMode;
  readonly variant: GramVariant;
  /** The shift actually applied (the f32 rounding of opts.shift), or undefined. */
  readonly shift: Float32Array | undefined;
  private readonly engine: Engine;
  private readonly buffers: BufferScope; // the shift and the resident Gram, released by dispose()
  private readonly windowRows: number;
  private readonly shiftBuf: GPUBuffer | null;
  private readonly sum: Float64Array | undefined; // host-f64: upper triangle used
  private readonly resident: GPUBuffer | undefined; // gpu-f32: upper triangle used
  private pending: Promise<void>[] = [];
  private seen = 0;
  private disposed = false;

  constructor(engine: Engine, d: number, opts: GramOptions = {}) {
    checkShape(Number.isInteger(d) && d >= 1, `GramAccumulator: d must be a positive integer, got ${d}`);
    const bytes = d * d * 4;
    if (bytes > engine.maxBindingBytes) {
      throw new IbgpuError(
        'LIMIT_EXCEEDED',
        `GramAccumulator: a ${d}×${d} f32 Gram (${bytes} bytes) exceeds the adapter's storage binding limit (${engine.maxBindingBytes} bytes)`,
        `use an adapter with a larger maxStorageBufferBindingSize, or a layer narrower than ${Math.floor(Math.sqrt(engine.maxBindingBytes / 4))}`,
      );
    }
    this.engine = engine;
    this.buffers = engine.scope();
    this.d = d;
    this.mode = opts.mode ?? 'host-f64';
    checkShape(this.mode === 'host-f64' || this.mode === 'gpu-f32', `GramAccumulator: unknown mode '${String(this.mode)}'`, "use 'host-f64' or 'gpu-f32'");
    this.variant = opts.variant ?? chooseGramVariant(engine);
    checkShape(this.variant === 'reg' || this.variant === 'tiled', `GramAccumulator: unknown variant '${String(this.variant)}'`, "use 'reg' or 'tiled'");
    const wr = opts.windowRows ?? Infinity;
    checkShape(wr >= 1, `GramAccumulator: windowRows must be >= 1, got ${wr}`);
    this.windowRows = Math.min(wr, gramDispatchRows(engine, this.variant, d));
    if (opts.shift) {
      checkShape(opts.shift.length === d, `GramAccumulator: shift has length ${opts.shift.length}, expected d = ${d}`);
      checkFinite('GramAccumulator shift', opts.shift);
      this.shift = Float32Array.from(opts.shift);
      this.shiftBuf = this.buffers.upload(this.shift, 'gram.shift');
    } else {
      this.shift = undefined;
      this.shiftBuf = null;
    }
    if (this.mode === 'host-f64') {
      this.sum = new Float64Array(d * d);
    } else {
      this.resident = this.buffers.alloc(bytes, 'gram.resident');
      engine.clear(this.resident, 0, bytes);
    }
  }

  /** Rows added so far. */
  get rows(): number {
    return this.seen;
  }

  /** Adds rows [rowOffset, rowOffset + rows) of the row-major rows×d f32 buffer `x`. */
  addBatch(x: GPUBuffer, rows: number, rowOffset = 0): Promise<void> | void {
    this.assertLive();
    checkBatch('GramAccumulator.addBatch', x, rows, this.d, rowOffset);
    const wins = rowWindows(this.engine, x, this.d, rows, rowOffset, this.windowRows);
    this.seen += rows;
    if (this.resident) {
      for (const w of wins) recordGramWindow(this.engine, this.variant, w, this.d, this.shiftBuf, this.resident, true);
      return;
    }
    const done: Promise<void>[] = [];
    for (const w of wins) {
      // readF32 records the copy and submits synchronously; the partial can be recycled at once.
      const read = withPartial(this.engine, this.d * this.d * 4, 'gram.partial', (part) => {
        recordGramWindow(this.engine, this.variant, w, this.d, this.shiftBuf, part, false);
        return this.engine.readF32(part, this.d * this.d);
      });
      done.push(read.then((p) => addUpper(this.sum!, p, this.d)));
    }
    const all = Promise.all(done).then(() => undefined);
    all.catch(() => undefined); // surfaced by result(); avoids an unhandled rejection meanwhile
    this.pending.push(all);
    return all;
  }

  /** Uploads, checks (finite, rows×d) and adds a host batch. */
  async addHost(x: Float32Array, rows: number): Promise<void> {
    this.assertLive();
    checkHost('GramAccumulator.addHost', x, rows, this.d);
    if (rows === 0) return;
    await this.engine.withScope(async (s) => this.addBatch(s.upload(x, 'gram.host-batch'), rows));
  }

  /** The full symmetric d×d SUM (not divided by N), row-major, float64. */
  async result(): Promise<Float64Array> {
    this.assertLive();
    const d = this.d;
    let upper: ArrayLike<number>;
    if (this.resident) {
      upper = await this.engine.readF32(this.resident, d * d);
    } else {
      const pending = this.pending;
      this.pending = [];
      await Promise.all(pending);
      upper = this.sum!;
    }
    const g = new Float64Array(d * d);
    for (let i = 0; i < d; i++) {
      for (let j = i; j < d; j++) {
        const v = upper[i * d + j]!;
        g[i * d + j] = v;
        g[j * d + i] = v;
      }
    }
    for (let k = 0; k < g.length; k++) {
      if (!Number.isFinite(g[k])) {
        throw new IbgpuError(
          'NON_FINITE',
          `Gram sum entry [${Math.floor(k / d)}, ${k % d}] is ${g[k]}: a batch held NaN/Inf, or values so large that their products overflow f32`,
          'check batches with checkFinite before addBatch (addHost does), and rescale inputs beyond ~1e18',
        );
      }
    }
    return g;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.buffers.close();
  }

  private assertLive(): void {
    if (this.disposed) throw new IbgpuError('DISPOSED', 'GramAccumulator was disposed', 'create a new accumulator');
  }
}

/** acc[i, j] += p[i, j] for i <= j (the entries the Gram kernels write). */
function addUpper(acc: Float64Array, p: Float32Array, d: number): void {
  for (let i = 0; i < d; i++) {
    const o = i * d;
    for (let k = o + i; k < o + d; k++) acc[k]! += p[k]!;
  }
}

// ------------------------------------------------------------------------------- column sums

/** Records per-segment column sums of one window into out[s * d + j]; returns the segment count. */
export function recordColumnSumWindow(engine: Engine, win: RowWindow, d: number, out: GPUBuffer, segRows: number): number {
  const nseg = ceilDiv(win.rows, segRows);
  const chunk = Math.max(GRAM_LEAF_ROWS, ceilDiv(segRows, COLSUM_MAX_LEAVES));
  const wg = colsumKernel.overrides!['WG'] ?? 64;
  engine.dispatch(colsumKernel, {
    bindings: {
      x: { buffer: win.buffer, offset: win.offset, size: win.size },
      out,
      params: packParams(colsumKernel, { rows: win.rows, d, base: win.base, seg: segRows, chunk }),
    },
    workgroups: [ceilDiv(d, wg), nseg],
  });
  return nseg;
}

export interface ColumnSumOptions {
  /** Upper bound on rows per dispatch window (default: what fits one binding). */
  windowRows?: number;
}

/**
 * Streams row batches into float64 column sums Σ_r x_r (for the means of the first pass of
 * two-pass centring). Per batch the GPU produces one f32 partial per segment of 1024 rows
 * (pairwise inside); the host adds the partials in float64.
 */
export class ColumnSumAccumulator {
  readonly d: number;
  private readonly engine: Engine;
  private readonly windowRows: number;
  private readonly sum: Float64Array;
  private pending: Promise<void>[] = [];
  private seen = 0;

  constructor(engine: Engine, d: number, opts: ColumnSumOptions = {}) {
    checkShape(Number.isInteger(d) && d >= 1, `ColumnSumAccumulator: d must be a positive integer, got ${d}`);
    const wr = opts.windowRows ?? Infinity;
    checkShape(wr >= 1, `ColumnSumAccumulator: windowRows must be >= 1, got ${wr}`);
    this.engine = engine;
    this.d = d;
    this.windowRows = wr;
    this.sum = new Float64Array(d);
  }

  get rows(): number {
    return this.seen;
  }

  /** Adds rows [rowOffset, rowOffset + rows) of the row-major rows×d f32 buffer `x`. */
  addBatch(x: GPUBuffer, rows: number, rowOffset = 0): Promise<void> {
    const d = this.d;
    checkBatch('ColumnSumAccumulator.addBatch', x, rows, d, rowOffset);
    const cap = this.engine.limits.maxComputeWorkgroupsPerDimension;
    const done: Promise<void>[] = [];
    for (const w of rowWindows(this.engine, x, d, rows, rowOffset, this.windowRows)) {
      const segRows = Math.max(COLSUM_SEGMENT_ROWS, ceilDiv(w.rows, cap));
      const read = withPartial(this.engine, ceilDiv(w.rows, segRows) * d * 4, 'colsum.partial', (part) => {
        const nseg = recordColumnSumWindow(this.engine, w, d, part, segRows);
        return this.engine.readF32(part, nseg * d);
      });
      done.push(
        read.then((p) => {
          for (let k = 0; k < p.length; k++) this.sum[k % d]! += p[k]!;
        }),
      );
    }
    this.seen += rows;
    const all = Promise.all(done).then(() => undefined);
    all.catch(() => undefined);
    this.pending.push(all);
    return all;
  }

  /** Uploads, checks (finite, rows×d) and adds a host batch. */
  async addHost(x: Float32Array, rows: number): Promise<void> {
    checkHost('ColumnSumAccumulator.addHost', x, rows, this.d);
    if (rows === 0) return;
    await this.engine.withScope(async (s) => this.addBatch(s.upload(x, 'colsum.host-batch'), rows));
  }

  /** Float64 column sums (not divided by the row count). */
  async result(): Promise<Float64Array> {
    const pending = this.pending;
    this.pending = [];
    await Promise.all(pending);
    for (let j = 0; j < this.d; j++) {
      if (!Number.isFinite(this.sum[j])) {
        throw new IbgpuError(
          'NON_FINITE',
          `column sum ${j} is ${this.sum[j]}: a batch held NaN/Inf`,
          'check batches with checkFinite before addBatch (addHost does)',
        );
      }
    }
    return Float64Array.from(this.sum);
  }

  dispose(): void {
    this.pending = [];
  }
}

/**
 * Runs `record` (which records work into a fresh partial buffer and starts its readback) and
 * releases the partial as soon as `record` returns: the readback's copy is already submitted,
 * so the pool may recycle the buffer before the read resolves.
 */
function withPartial<T>(engine: Engine, bytes: number, label: string, record: (part: GPUBuffer) => Promise<T>): Promise<T> {
  const scope = engine.scope();
  try {
    return record(scope.alloc(bytes, label));
  } finally {
    scope.close();
  }
}

// ------------------------------------------------------------------------------- self-check

/** Random 150×37 stream in two batches (shifted by its mean) against the float64 reference. */
export async function selfCheck(engine: Engine): Promise<SelfCheckResult> {
  const t0 = performance.now();
  const rows = 150;
  const d = 37;
  const rand = mulberry32(12345);
  const x = new Float32Array(rows * d);
  for (let k = 0; k < x.length; k++) x[k] = (rand() - 0.5) * 4 + ((k % d) % 3);
  let detail = '';
  let ok = true;
  const cs = new ColumnSumAccumulator(engine, d);
  const gram = (shift?: Float32Array): GramAccumulator => new GramAccumulator(engine, d, { shift });
  try {
    await cs.addHost(x.subarray(0, 61 * d), 61);
    await cs.addHost(x.subarray(61 * d), rows - 61);
    const sums = await cs.result();
    const refSums = columnSumsF64(x, rows, d);
    const mean = Float32Array.from(sums, (s) => s / rows);
    const g = gram(mean);
    await g.addHost(x.subarray(0, 61 * d), 61);
    await g.addHost(x.subarray(61 * d), rows - 61);
    const got = await g.result();
    g.dispose();
    const ref = gramF64(x, rows, d, mean);
    const absRef = gramF64(
      Float32Array.from(x, (v, k) => Math.abs(v - mean[k % d]!)),
      rows,
      d,
    );
    let worst = 0;
    for (let k = 0; k < got.length; k++) worst = Math.max(worst, Math.abs(got[k]! - ref[k]!) / (absRef[k]! * 2 ** -24 * 64));
    let worstSum = 0;
    for (let j = 0; j < d; j++) worstSum = Math.max(worstSum, Math.abs(sums[j]! - refSums[j]!) / (1e-6 * (1 + Math.abs(refSums[j]!))));
    ok = worst <= 1 && worstSum <= 1;
    detail = `${rows}x${d} shifted Gram: worst error ${(worst * 64).toFixed(2)} ulp·Σ|x_i x_j| (limit 64); column sums ${worstSum <= 1 ? 'ok' : 'off'}`;
  } catch (e) {
    ok = false;
    detail = (e as Error).message;
  } finally {
    cs.dispose();
  }
  return { name: 'gram', ok, detail, ms: performance.now() - t0 };
}
