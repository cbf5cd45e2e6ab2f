// Batched f32 matmul: C[b] = alpha * op(A[b]) @ op(B[b]) (+ beta * C[b]), row-major.
//
// Two kernel variants (shaders/matmul_reg.wgsl, shaders/matmul_tiled.wgsl) share one binding
// layout and one uniform block:
//   reg4x4   barrier-free, 4 x 4 outputs per invocation, no workgroup memory: for CPU adapters,
//            where barriers cost a coroutine switch per invocation;
//   tiled128 128 x 128 workgroup tiles, 8-deep double-buffered slabs in workgroup memory, 8 x 8
//            outputs per invocation: for real GPUs.
//   panel64 / panel128  operands packed into 64 KiB panels read as uniform buffers, 8 x 8 outputs
//            per invocation (src/kernels/matmul-panel.ts): for llvmpipe, where every storage
//            or workgroup-memory load element costs a store-forwarding stall.
// The variant is chosen per engine by a small autotuner (chooseMatmulVariant), with an adapter
// heuristic until it has run. Operands larger than one storage binding are split into row
// blocks of C, each binding a window of the buffers.

import { checkFinite, checkShape, IbgpuError } from '../errors.js';
import { alignUp } from '../runtime/buffer-pool.js';
import type { Engine } from '../runtime/engine.js';
import { defineKernel, type BufferWindow, type KernelSpec } from '../runtime/kernel-spec.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { SHADERS } from '../shaders/index.generated.js';
import { matmulAbsF64, matmulF64, type MatmulShape } from '../cpu/matmul.js';
import type { SelfCheckResult } from './self-check.js';
import { panelBytes, recordPanelMatmul, type PanelProduct } from './matmul-panel.js';
import { tuningStore } from '../runtime/tuning-store.js';
import { packParams } from '../runtime/params.js';
import { mulberry32 } from '../util/mulberry32.js';

export type { MatmulShape } from '../cpu/matmul.js';

export type MatmulVariantName = 'reg4x4' | 'tiled128' | 'panel64' | 'panel128';

export interface MatmulOptions {
  /** Force a kernel variant instead of the engine's tuned choice. */
  variant?: MatmulVariantName;
  /** Pretend storage bindings are at most this many bytes (exercises the row-block split). */
  maxBindingBytes?: number;
}

const FLAGS = { TRANS_A: 0, TRANS_B: 0, VEC_A: 0, VEC_B: 0 };

export const matmulRegKernel = defineKernel({
  name: 'matmul_reg',
  shader: SHADERS.matmul_reg,
  // 32 x 2 invocations (a 8 x 128 tile of C): on llvmpipe wide, short workgroups measured about
  // 1.7x faster than 8 x 8 at 512^3 (fewer workgroup launches; the 8-wide SIMD rows of
  // invocations share their A rows).
  overrides: { ...FLAGS, WG_X: 32, WG_Y: 2 },
});

export const matmulTiledKernel = defineKernel({
  name: 'matmul_tiled',
  shader: SHADERS.matmul_tiled,
  overrides: FLAGS,
});

interface Variant {
  readonly kernel: KernelSpec;
  /** Rows and columns of C per workgroup. */
  readonly tileM: number;
  readonly tileN: number;
}

const VARIANTS: Readonly<Record<Exclude<MatmulVariantName, PanelVariantName>, Variant>> = {
  reg4x4: { kernel: matmulRegKernel, tileM: 8, tileN: 128 },
  tiled128: { kernel: matmulTiledKernel, tileM: 128, tileN: 128 },
};

type PanelVariantName = 'panel64' | 'panel128';
const PANEL_KB: Readonly<Record<PanelVariantName, 64 | 128>> = { panel64: 64, panel128: 128 };

export const MATMUL_VARIANTS: MatmulVariantName[] = ['reg4x4', 'tiled128', 'panel64', 'panel128'];

// ------------------------------------------------------------------------------ shape checks

interface Resolved {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  strideA: number;
  strideB: number;
  strideC: number;
  lda: number;
  ldb: number;
  ldc: number;
  /** Elements each operand must hold: (batch - 1) * stride + matrix size. */
  needA: number;
  needB: number;
  needC: number;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

function resolveShape(s: MatmulShape): Resolved {
  const batch = s.batch ?? 1;
  for (const [name, v] of [
    ['m', s.m],
    ['n', s.n],
    ['k', s.k],
    ['batch', batch],
  ] as const) {
    checkShape(isCount(v), `matmul: ${name} = ${String(v)} is not a positive integer`, 'pass positive integer dimensions');
  }
  const { m, n, k } = s;
  const alpha = s.alpha ?? 1;
  const beta = s.beta ?? 0;
  checkShape(Number.isFinite(alpha) && Number.isFinite(beta), `matmul: alpha = ${alpha} and beta = ${beta} must be finite`);
  const strideA = s.strideA ?? m * k;
  const strideB = s.strideB ?? k * n;
  const strideC = s.strideC ?? m * n;
  for (const [name, v] of [
    ['strideA', strideA],
    ['strideB', strideB],
    ['strideC', strideC],
  ] as const) {
    checkShape(Number.isInteger(v) && v >= 0, `matmul: ${name} = ${v} is not a non-negative integer`);
  }
  checkShape(
    batch === 1 || strideC >= m * n,
    `matmul: strideC = ${strideC} is smaller than one ${m}x${n} output, so batches would overwrite each other`,
    `use strideC >= ${m * n} (0 broadcasts inputs only, never the output)`,
  );
  const transA = s.transA ?? false;
  const transB = s.transB ?? false;
  return {
    batch,
    m,
    n,
    k,
    transA,
    transB,
    alpha,
    beta,
    strideA,
    strideB,
    strideC,
    lda: transA ? m : k,
    ldb: transB ? k : n,
    ldc: n,
    needA: (batch - 1) * strideA + m * k,
    needB: (batch - 1) * strideB + k * n,
    needC: (batch - 1) * strideC + m * n,
  };
}

function describe(r: Resolved): string {
  const op = (t: boolean, name: string): string => (t ? `${name}ᵀ` : name);
  return `${r.batch > 1 ? `${r.batch} x ` : ''}${op(r.transA, 'A')}(${r.m}x${r.k}) @ ${op(r.transB, 'B')}(${r.k}x${r.n})`;
}

// ------------------------------------------------------------------------------ recording

// matmul_reg and matmul_tiled share one Params struct (checked in test/kernel-interface.test.ts).
function params(r: Resolved, rows: number, offA: number, offB: number, offC: number, strides: [number, number, number]): Uint8Array {
  return packParams(matmulRegKernel, {
    m: rows,
    n: r.n,
    k: r.k,
    use_beta: r.beta !== 0 ? 1 : 0,
    lda: r.lda,
    ldb: r.ldb,
    ldc: r.ldc,
    stride_a: strides[0],
    stride_b: strides[1],
    stride_c: strides[2],
    off_a: offA,
    off_b: offB,
    off_c: offC,
    alpha: r.alpha,
    beta: r.beta,
  });
}

interface Win {
  window: BufferWindow;
  /** Element offset of `lo` inside the window. */
  off: number;
  bytes: number;
}

/** A window of `buf` covering elements [lo, hi), starting at an allowed offset, whole vec4s long. */
function bindWindow(buf: GPUBuffer, lo: number, hi: number, align: number): Win {
  const offset = Math.floor((lo * 4) / align) * align;
  const bytes = Math.min(alignUp(hi * 4 - offset, 16), buf.size - offset);
  return { window: { buffer: buf, offset, size: bytes }, off: lo - offset / 4, bytes };
}

/** vec4 loads need every 4-run of the stored rows to be a whole, aligned vec4. */
function vecOk(ld: number, stride: number, off: number): boolean {
  return ld % 4 === 0 && stride % 4 === 0 && off % 4 === 0;
}

/**
 * Records C[b] = alpha * op(A[b]) @ op(B[b]) (+ beta * C[b]) for b < batch. Buffers hold f32
 * row-major data (A: m x k or, with transA, k x m; B: k x n or n x k; C: m x n), batches
 * `stride*` elements apart. Validates buffer sizes against the shape; does not submit.
 */
export function matmul(engine: Engine, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, shape: MatmulShape, opts: MatmulOptions = {}): void {
  const r = resolveShape(shape);
  const what = describe(r);
  for (const [name, buf, need] of [
    ['A', a, r.needA],
    ['B', b, r.needB],
    ['C', c, r.needC],
  ] as const) {
    checkShape(
      buf.size >= need * 4,
      `matmul ${what}: buffer ${name} (${buf.label}) holds ${Math.floor(buf.size / 4)} floats, the shape needs ${need}`,
      `allocate at least ${need * 4} bytes for ${name}, or fix the shape/strides`,
    );
  }
  checkShape(c !== a && c !== b, `matmul ${what}: C must not be the same buffer as A or B`, 'write the product into a separate buffer');
  const chosen = opts.variant ?? matmulVariantFor(engine);
  checkShape(MATMUL_VARIANTS.includes(chosen), `matmul: unknown variant '${String(chosen)}'`, `use one of ${MATMUL_VARIANTS.join(', ')}`);
  const maxBytes = Math.min(opts.maxBindingBytes ?? engine.maxBindingBytes, engine.maxBindingBytes);
  if (chosen in PANEL_KB) {
    const kb = PANEL_KB[chosen as PanelVariantName];
    const pb = panelBytes(r, kb);
    const fits = [a.size, b.size, c.size, pb.a, pb.b].every((x) => x <= maxBytes);
    if (fits) {
      for (let z = 0; z < r.batch; z++) {
        // Product z of the batch: the shape's own fields, its operands z strides in.
        const product: PanelProduct = { ...r, offA: z * r.strideA, offB: z * r.strideB, offC: z * r.strideC };
        recordPanelMatmul(engine, a, b, c, product, kb);
      }
      return;
    }
    // Operands past one storage binding: the row-block split of the register-blocked kernel.
  }
  const variantName: Exclude<MatmulVariantName, PanelVariantName> = chosen in PANEL_KB ? 'reg4x4' : (chosen as Exclude<MatmulVariantName, PanelVariantName>);
  const variant = VARIANTS[variantName];
  const align = Math.max(engine.limits.minStorageBufferOffsetAlignment, 16);
  const maxZ = engine.limits.maxComputeWorkgroupsPerDimension;
  const gx = ceilDiv(r.n, variant.tileN);
  if (gx > maxZ) {
    throw new IbgpuError('LIMIT_EXCEEDED', `matmul ${what}: n = ${r.n} needs ${gx} workgroups across, over the cap ${maxZ}`, 'split the columns of B and C');
  }

  // Operands are bound as vec4 arrays; a buffer whose size is not a 16-byte multiple (never a
  // pooled one) is copied into a padded pooled buffer so its last floats stay addressable.
  // Padded copies live until the dispatches are recorded; the pool keeps them until they run.
  engine.withScope((temps) => {
    const padded = (buf: GPUBuffer): GPUBuffer => {
      if (buf.size % 16 === 0) return buf;
      const p = temps.alloc(alignUp(buf.size, 16), `${buf.label}-padded`);
      engine.copy(buf, 0, p, 0, buf.size);
      return p;
    };
    const pa = padded(a);
    const pb = padded(b);

    const record = (wa: Win, wb: Win, wc: Win, rows: number, batches: number, strides: [number, number, number]): void => {
      const overrides = {
        TRANS_A: r.transA ? 1 : 0,
        TRANS_B: r.transB ? 1 : 0,
        VEC_A: vecOk(r.lda, strides[0], wa.off) ? 1 : 0,
        VEC_B: vecOk(r.ldb, strides[1], wb.off) ? 1 : 0,
      };
      engine.dispatch(variant.kernel, {
        bindings: { a: wa.window, b: wb.window, c: wc.window, params: params(r, rows, wa.off, wb.off, wc.off, strides) },
        workgroups: [gx, ceilDiv(rows, variant.tileM), batches],
        overrides,
        label: `matmul_${variantName}`,
      });
    };

    const maxRowsPerDispatch = maxZ * variant.tileM;
    const whole = [bindWindow(pa, 0, r.needA, align), bindWindow(pb, 0, r.needB, align), bindWindow(c, 0, r.needC, align)] as const;
    if (whole.every((w) => w.bytes <= maxBytes) && r.m <= maxRowsPerDispatch) {
      // Common case: one dispatch (per 65535 batches), the batch index is workgroup_id.z.
      for (let z0 = 0; z0 < r.batch; z0 += maxZ) {
        const nz = Math.min(maxZ, r.batch - z0);
        const [wa, wb, wc] = whole;
        record({ ...wa, off: wa.off + z0 * r.strideA }, { ...wb, off: wb.off + z0 * r.strideB }, { ...wc, off: wc.off + z0 * r.strideC }, r.m, nz, [
          r.strideA,
          r.strideB,
          r.strideC,
        ]);
      }
    } else {
      recordRowBlocks(r, what, pa, pb, c, maxBytes, align, maxRowsPerDispatch, variant.tileM, record);
    }
  });
}

/**
 * Split path: one dispatch per (batch, block of C rows), each binding only the windows it needs:
 * the block's rows of A (or, for Aᵀ, the span of its columns), all of B[b] and the block's rows of C.
 */
function recordRowBlocks(
  r: Resolved,
  what: string,
  a: GPUBuffer,
  b: GPUBuffer,
  c: GPUBuffer,
  maxBytes: number,
  align: number,
  maxRowsPerDispatch: number,
  tileM: number,
  record: (wa: Win, wb: Win, wc: Win, rows: number, batches: number, strides: [number, number, number]) => void,
): void {
  const slack = align + 16; // window start rounding plus vec4 rounding at the end
  const usable = Math.floor((maxBytes - slack) / 4); // elements per window
  const limit = (msg: string, hint: string): IbgpuError => new IbgpuError('LIMIT_EXCEEDED', `matmul ${what}: ${msg} (binding limit ${maxBytes} bytes)`, hint);
  if (r.k * r.n > usable) {
    throw limit(`one batch of B (${r.k}x${r.n}) does not fit one storage binding`, 'split the product along n (columns of B and C) or k and add the parts');
  }
  const rowsA = r.transA ? usable - (r.k - 1) * r.m : Math.floor(usable / r.k);
  const rowsC = Math.floor(usable / r.n);
  if (rowsA < 1)
    throw limit(`Aᵀ (${r.k}x${r.m}) does not fit one storage binding even for one row block`, 'pass A untransposed (m x k) so it can be split by rows');
  if (rowsC < 1) throw limit(`one row of C (${r.n} floats) does not fit one storage binding`, 'split the product along n');
  let rows = Math.min(rowsA, rowsC, r.m, maxRowsPerDispatch);
  if (rows > tileM) rows -= rows % tileM; // whole workgroup tiles per block
  for (let z = 0; z < r.batch; z++) {
    const oa = z * r.strideA;
    const ob = z * r.strideB;
    const oc = z * r.strideC;
    const wb = bindWindow(b, ob, ob + r.k * r.n, align);
    for (let r0 = 0; r0 < r.m; r0 += rows) {
      const nr = Math.min(rows, r.m - r0);
      const wa = r.transA ? bindWindow(a, oa + r0, oa + (r.k - 1) * r.m + r0 + nr, align) : bindWindow(a, oa + r0 * r.k, oa + (r0 + nr) * r.k, align);
      const wc = bindWindow(c, oc + r0 * r.n, oc + (r0 + nr) * r.n, align);
      record(wa, wb, wc, nr, 1, [0, 0, 0]);
    }
  }
}

// ------------------------------------------------------------------------------ host helper

/**
 * Uploads A and B (and C when beta != 0), runs the product, reads C back and releases the
 * buffers. Returns the (batch - 1) * strideC + m * n floats of C (dense batch x m x n by default).
 */
export async function matmulHost(
  engine: Engine,
  a: Float32Array,
  b: Float32Array,
  shape: MatmulShape,
  opts: MatmulOptions & { c?: Float32Array } = {},
): Promise<Float32Array> {
  const r = resolveShape(shape);
  const what = describe(r);
  checkShape(a.length >= r.needA, `matmul ${what}: A has ${a.length} elements, the shape needs ${r.needA}`, 'fix the shape or pass the whole A');
  checkShape(b.length >= r.needB, `matmul ${what}: B has ${b.length} elements, the shape needs ${r.needB}`, 'fix the shape or pass the whole B');
  if (r.beta !== 0) {
    checkShape(
      opts.c !== undefined && opts.c.length >= r.needC,
      `matmul ${what}: beta = ${r.beta} needs an input C of ${r.needC} elements`,
      'pass opts.c, or beta = 0',
    );
  }
  checkFinite('matmul A', a);
  checkFinite('matmul B', b);
  if (r.beta !== 0) checkFinite('matmul C', opts.c!);
  if (!opts.variant) await chooseMatmulVariant(engine);
  return engine.withScope(async (s) => {
    const ba = s.upload(a, 'matmul-a');
    const bb = s.upload(b, 'matmul-b');
    const bc = r.beta !== 0 ? s.upload(opts.c!.subarray(0, r.needC), 'matmul-c') : s.alloc(r.needC * 4, 'matmul-c');
    matmul(engine, ba, bb, bc, shape, opts);
    return engine.readF32(bc, r.needC);
  });
}

// ------------------------------------------------------------------------------ autotuning

export interface MatmulTuning {
  variant: MatmulVariantName;
  /** Problem size used (size^3), and the measured milliseconds per variant. */
  size: number;
  ms: Partial<Record<MatmulVariantName, number>>;
  /** 'measured' in this process, or 'cache' (the tuning store, keyed by adapter and host CPU). */
  source: 'measured' | 'cache';
  /** Where a cached or stored tuning lives, when a store is installed. */
  store?: string;
}

const tuned = new WeakMap<Engine, MatmulTuning>();
const tuning = new WeakMap<Engine, Promise<MatmulTuning>>();

/**
 * The variant `matmul` uses on this engine: the tuned choice, else a guess from the adapter.
 * The guess follows the measurements in bench/results: on llvmpipe the panel kernel (operands
 * through uniform buffers) beats the storage-load kernels by 5-30x on hosts where a storage load
 * is expensive (bench/RESULTS.notes.md); other software adapters (SwiftShader) are
 * barrier-averse and get the register-blocked kernel; GPUs the tiled kernel.
 */
export function matmulVariantFor(engine: Engine): MatmulVariantName {
  const llvmpipe = /llvmpipe/i.test(`${engine.info.device} ${engine.info.description}`);
  const guess = llvmpipe ? 'panel128' : engine.info.isSoftware ? 'reg4x4' : 'tiled128';
  let t = tuned.get(engine);
  if (!t) {
    // A stored tuning for this adapter and CPU costs nothing to use; timing is left to
    // chooseMatmulVariant (`ibgpu doctor`, benches) so that a one-shot build pays no tuning.
    t = fromStore(engine);
    if (t) tuned.set(engine, t);
  }
  return t?.variant ?? guess;
}

/** The autotuner's record for this engine, if it has run. */
export function matmulTuning(engine: Engine): MatmulTuning | undefined {
  return tuned.get(engine);
}

/**
 * Chooses the variant once per engine: from the installed tuning store (src/runtime/
 * tuning-store.ts; keyed by adapter, host CPU and the variant list) when it has an entry, else
 * by timing every variant on a medium square product (512^3 on software adapters, 1024^3 on
 * GPUs) and storing the result. Later calls return the cached choice. The size must give every
 * variant enough workgroups to fill the device: at 256^3 the 128 x 128 tiles leave only 4
 * workgroups, which under-reports the tiled kernel even on a 2-core CPU adapter.
 */
export function chooseMatmulVariant(engine: Engine): Promise<MatmulVariantName> {
  let p = tuning.get(engine);
  if (!p) {
    p = tune(engine).then((t) => {
      tuned.set(engine, t);
      return t;
    });
    tuning.set(engine, p);
    p.catch(() => tuning.delete(engine)); // a failed tuning may be retried
  }
  return p.then((t) => t.variant);
}

function tuningKey(engine: Engine): string {
  return `matmul ${MATMUL_VARIANTS.join(',')} on ${engine.adapterName}`;
}

function fromStore(engine: Engine): MatmulTuning | undefined {
  const store = tuningStore();
  const v = store?.get(tuningKey(engine)) as Partial<MatmulTuning> | undefined;
  if (!v || !MATMUL_VARIANTS.includes(v.variant as MatmulVariantName) || typeof v.size !== 'number' || typeof v.ms !== 'object') return undefined;
  return { variant: v.variant!, size: v.size, ms: v.ms, source: 'cache', store: store!.location };
}

async function tune(engine: Engine): Promise<MatmulTuning> {
  const cached = fromStore(engine);
  if (cached) return cached;
  const size = engine.info.isSoftware ? 512 : 1024;
  const data = new Float32Array(size * size);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 7919) % 1009) / 1009 - 0.5;
  const shape: MatmulShape = { m: size, n: size, k: size };
  const ms: Partial<Record<MatmulVariantName, number>> = {};
  let bestSoFar = Infinity;
  await engine.withScope(async (s) => {
    const a = s.upload(data, 'matmul-tune-a');
    const b = s.upload(data, 'matmul-tune-b');
    const c = s.alloc(data.byteLength, 'matmul-tune-c');
    for (const v of MATMUL_VARIANTS) {
      // The first run compiles and warms up; a variant already 4x slower than the best one is
      // not timed again (on a slow-load host the storage-load kernels take seconds at 512^3).
      const t0 = performance.now();
      matmul(engine, a, b, c, shape, { variant: v });
      await engine.sync();
      let best = performance.now() - t0;
      const reps = best > 4 * bestSoFar ? 0 : 2;
      for (let rep = 0; rep < reps; rep++) {
        const t1 = performance.now();
        matmul(engine, a, b, c, shape, { variant: v });
        await engine.sync();
        best = Math.min(best, performance.now() - t1);
      }
      ms[v] = best;
      bestSoFar = Math.min(bestSoFar, best);
    }
  });
  const variant = MATMUL_VARIANTS.reduce((x, y) => (ms[y]! < ms[x]! ? y : x));
  const store = tuningStore();
  store?.set(tuningKey(engine), { variant, size, ms, date: new Date().toISOString() });
  return { variant, size, ms, source: 'measured', store: store?.location };
}

// ------------------------------------------------------------------------------ self-check

/** f32 error bound used by selfCheck and the tests: 2 (k + 2) 2^-24 sum |a||b| (+ |beta c|). */
export function matmulTolerance(absRef: number, k: number): number {
  return 2 * (k + 2) * 2 ** -24 * absRef + 1e-30;
}

/** Runs a small random batched product on every variant against the f64 reference. */
export async function selfCheck(engine: Engine): Promise<SelfCheckResult> {
  const t0 = performance.now();
  const shape: MatmulShape = { batch: 2, m: 37, n: 29, k: 45, transB: true, alpha: 0.75, beta: -0.5 };
  const uniform = mulberry32(12345);
  const rand = (): number => uniform() - 0.5;
  const a = Float32Array.from({ length: 2 * 37 * 45 }, rand);
  const b = Float32Array.from({ length: 2 * 29 * 45 }, rand);
  const c = Float32Array.from({ length: 2 * 37 * 29 }, rand);
  const ref = matmulF64(a, b, shape, c);
  const scale = matmulAbsF64(a, b, shape, c);
  const parts: string[] = [];
  let ok = true;
  try {
    for (const variant of MATMUL_VARIANTS) {
      const out = await matmulHost(engine, a, b, shape, { variant, c });
      let worst = 0; // largest error as a fraction of the allowed bound
      for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(out[i]! - ref[i]!) / matmulTolerance(scale[i]!, shape.k));
      ok &&= worst <= 1;
      parts.push(`${variant} err/bound ${worst.toFixed(3)}`);
    }
  } catch (e) {
    ok = false;
    parts.push(`error: ${(e as Error).message}`);
  }
  const t = tuned.get(engine);
  parts.push(`uses ${matmulVariantFor(engine)}${t ? ` (tuned, ${t.source === 'cache' ? 'from the tuning cache' : 'measured now'})` : ' (default)'}`);
  return { name: 'matmul', ok, detail: parts.join('; '), ms: performance.now() - t0 };
}
