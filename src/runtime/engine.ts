// The Engine: one device, one pending command encoder, explicit flush points.
//
// Work is recorded into a single pending encoder (one open compute pass while consecutive
// dispatches need nothing else). It is submitted ("flushed") only at these points:
//   - before a readback (read*), which must see the results;
//   - before a host write into a buffer the pending work already references (write());
//   - every `maxDispatchesPerSubmit` dispatches, so long streams keep the GPU fed;
//   - on flush() / sync() / dispose().
// Released buffers return to the pool only after the submit that used them (BufferPool).
// Buffers are owned by scopes (scope() / withScope(), buffer-scope.ts) that release them at exit;
// recording work on a buffer that was already released throws (a use after release).

import { IbgpuError } from '../errors.js';
import { acquireGpu, adapterName, type AcquireOptions, type AdapterDescription, type GpuContext } from '../gpu/acquire.js';
import { BufferPool, alignUp, type PoolStats } from './buffer-pool.js';
import { BufferScope, runScoped } from './buffer-scope.js';
import type { BindingValue, BufferWindow, KernelSpec } from './kernel-spec.js';
import { PipelineCache } from './pipeline-cache.js';
import { foldWorkgroups } from './workgroups.js';

export interface EngineOptions extends AcquireOptions {
  /** Record per-dispatch GPU time with timestamp queries when the adapter supports them. */
  profile?: boolean;
  maxDispatchesPerSubmit?: number;
}

export interface EngineCounters {
  submits: number;
  dispatches: number;
  bytesUploaded: number;
  bytesDownloaded: number;
  readbacks: number;
}

export interface DispatchOptions {
  /** One value per binding of the spec, by name. */
  bindings: Record<string, BindingValue>;
  /** Workgroup counts; a single number above the per-dimension cap is folded into 2-D. */
  workgroups: number | readonly [number, number?, number?];
  overrides?: Record<string, number>;
  label?: string;
}

export interface ProfileRecord {
  label: string;
  ms: number;
}

const STORAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC (numeric: usable before globals load)
const MAP_READ_DST = 0x01 | 0x08; // MAP_READ | COPY_DST
const UNIFORM_DST = 0x40 | 0x08; // UNIFORM | COPY_DST
const STORAGE_UNIFORM = STORAGE | 0x40; // also bindable as a uniform buffer (see allocUniformStorage)

export class Engine {
  readonly device: GPUDevice;
  readonly info: AdapterDescription;
  readonly features: ReadonlySet<string>;
  readonly limits: GPUSupportedLimits;
  readonly counters: EngineCounters = { submits: 0, dispatches: 0, bytesUploaded: 0, bytesDownloaded: 0, readbacks: 0 };
  readonly pipelines: PipelineCache;
  private readonly pool: BufferPool;
  private ctx: GpuContext | undefined; // holds the Dawn instance alive (see gpu/acquire.ts)
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private pendingDispatches = 0;
  private readonly inFlight = new Set<GPUBuffer>();
  private readonly transient: GPUBuffer[] = [];
  private lostReason: string | undefined;
  private readonly errors: string[] = [];
  private readonly maxDispatchesPerSubmit: number;
  // Profiling: one query pair per dispatch, resolved at flush, read asynchronously.
  private readonly querySet: GPUQuerySet | undefined;
  private queryLabels: string[] = [];
  private readonly profileReads: Promise<ProfileRecord[]>[] = [];
  private static readonly QUERY_CAPACITY = 512;

  private constructor(ctx: GpuContext, opts: EngineOptions) {
    this.ctx = ctx;
    this.device = ctx.device;
    this.info = ctx.info;
    this.features = ctx.features;
    this.limits = ctx.device.limits;
    this.pipelines = new PipelineCache(this.device);
    this.pool = new BufferPool(this.device, this.limits.maxBufferSize);
    this.maxDispatchesPerSubmit = opts.maxDispatchesPerSubmit ?? 128;
    if (opts.profile && this.features.has('timestamp-query')) {
      this.querySet = this.device.createQuerySet({ type: 'timestamp', count: Engine.QUERY_CAPACITY, label: 'ibgpu-profile' });
    }
    void this.device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
    });
    this.device.addEventListener('uncapturederror', (ev) => {
      this.errors.push(ev.error.message);
    });
  }

  static async create(opts: EngineOptions = {}): Promise<Engine> {
    return new Engine(await acquireGpu(opts), opts);
  }

  get adapterName(): string {
    return adapterName(this.info);
  }

  get profiling(): boolean {
    return this.querySet !== undefined;
  }

  /**
   * Most loop iterations one invocation may execute in total. Mesa llvmpipe caps every shader
   * invocation at 65535 loop iterations (summed over all its loops) and then silently leaves the
   * loops, so kernels whose per-invocation work is data-sized must split it below this budget.
   * Infinity on other adapters.
   */
  get loopBudget(): number {
    return /llvmpipe/i.test(`${this.info.device} ${this.info.description} ${this.info.architecture}`) ? 65535 : Infinity;
  }

  /** Largest storage binding in bytes (a 4-byte multiple). */
  get maxBindingBytes(): number {
    return Math.floor(this.limits.maxStorageBufferBindingSize / 4) * 4;
  }

  memory(): PoolStats {
    return { ...this.pool.stats };
  }

  // ---------------------------------------------------------------- buffers

  /** A pooled storage buffer (STORAGE | COPY_SRC | COPY_DST) of at least `bytes` bytes. */
  /**
   * A storage buffer that can also be bound as a uniform buffer, window by window (offsets
   * multiple of minUniformBufferOffsetAlignment, at most maxUniformBufferBindingSize bytes).
   * Kernels write packed panels into it and later kernels read them as uniforms: on llvmpipe a
   * uniform-buffer load is a plain gather while a storage load costs a store-forwarding stall
   * per element and lane (bench/RESULTS.notes.md).
   */
  allocUniformStorage(bytes: number, label = 'buffer'): GPUBuffer {
    return this.acquire(bytes, STORAGE_UNIFORM, label, 'use smaller operands, or an adapter with larger limits');
  }

  alloc(bytes: number, label = 'buffer'): GPUBuffer {
    return this.acquire(bytes, STORAGE, label, 'use a smaller batch_size, or an adapter with larger limits');
  }

  /** A pooled buffer of `usage`, refused (with `hint`) above the adapter's maxBufferSize. */
  private acquire(bytes: number, usage: GPUBufferUsageFlags, label: string, hint: string): GPUBuffer {
    this.assertAlive();
    if (bytes > this.limits.maxBufferSize) {
      throw new IbgpuError('LIMIT_EXCEEDED', `${label}: ${bytes} bytes exceed the adapter's maxBufferSize (${this.limits.maxBufferSize})`, hint);
    }
    return this.pool.acquire(bytes, usage, label);
  }

  /** Returns a buffer to the pool; it is reused only after the work recorded so far is submitted. */
  release(...bufs: (GPUBuffer | undefined)[]): void {
    for (const b of bufs) if (b) this.pool.release(b);
  }

  /** A new buffer scope: buffers allocated through it are released when it closes (buffer-scope.ts). */
  scope(): BufferScope {
    return new BufferScope(this);
  }

  /**
   * Runs `fn` with a fresh scope and closes it when `fn` returns or throws — after the returned
   * promise settles when `fn` is async. Hand a result out with `scope.keep(buf)`.
   */
  withScope<T>(fn: (scope: BufferScope) => T): T {
    return runScoped(() => this.scope(), fn);
  }

  /**
   * Throws when `buf` was released: recording work on it could race its next owner. `what` names
   * the operation, or the kernel when `binding` is given (the message is built only on failure).
   */
  private assertUsable(buf: GPUBuffer, what: string, binding?: string): void {
    const state = this.pool.stateOf(buf);
    if (state === 'retiring' || state === 'free') {
      const where = binding === undefined ? what : `kernel ${what}: binding '${binding}'`;
      throw new Error(`${where}: buffer '${buf.label}' was already released (${state}); release a buffer only after its last use`);
    }
  }

  /** Allocates a buffer and fills it with `data` (padded to 4 bytes). */
  upload(data: ArrayBufferView, label = 'upload'): GPUBuffer {
    const buf = this.alloc(alignUp(data.byteLength, 4), label);
    this.write(buf, data);
    return buf;
  }

  /** Host write. Flushes first when pending work references `buf`, so that work sees old data. */
  write(buf: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.assertAlive();
    this.assertUsable(buf, 'write');
    if (this.inFlight.has(buf)) this.flush();
    const bytes = data.byteLength;
    if (bytes % 4 === 0) {
      this.device.queue.writeBuffer(buf, byteOffset, data.buffer, data.byteOffset, bytes);
    } else {
      const padded = new Uint8Array(alignUp(bytes, 4));
      padded.set(new Uint8Array(data.buffer, data.byteOffset, bytes));
      this.device.queue.writeBuffer(buf, byteOffset, padded);
    }
    this.counters.bytesUploaded += bytes;
  }

  /** Records a buffer-to-buffer copy in the pending encoder. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.assertAlive();
    this.assertUsable(src, 'copy source');
    this.assertUsable(dst, 'copy destination');
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.inFlight.add(src).add(dst);
  }

  /** Records a zero-fill of `buf` (whole or a range). */
  clear(buf: GPUBuffer, offset = 0, size?: number): void {
    this.assertAlive();
    this.assertUsable(buf, 'clear');
    this.endPass();
    this.getEncoder().clearBuffer(buf, offset, size);
    this.inFlight.add(buf);
  }

  // ---------------------------------------------------------------- dispatch

  dispatch(spec: KernelSpec, opts: DispatchOptions): void {
    this.assertAlive();
    const overrides = { ...(spec.overrides ?? {}), ...(opts.overrides ?? {}) };
    const { pipeline, layout } = this.pipelines.get(spec, overrides);
    const entries: GPUBindGroupEntry[] = spec.bindings.map((b, i) => {
      const v = opts.bindings[b.name];
      if (v === undefined) throw new Error(`kernel ${spec.name}: binding '${b.name}' not given`);
      if (b.kind === 'uniform' && !ArrayBuffer.isView(v)) {
        // A window of a buffer made by allocUniformStorage (device-resident uniform data).
        const w: BufferWindow = 'buffer' in v ? v : { buffer: v };
        const size = w.size ?? w.buffer.size - (w.offset ?? 0);
        if (size > this.limits.maxUniformBufferBindingSize || (w.offset ?? 0) % this.limits.minUniformBufferOffsetAlignment !== 0) {
          throw new IbgpuError(
            'LIMIT_EXCEEDED',
            `kernel ${spec.name}: uniform '${b.name}' window of ${size} bytes at ${w.offset ?? 0} breaks the uniform binding limits`,
            `bind at most ${this.limits.maxUniformBufferBindingSize} bytes at a multiple of ${this.limits.minUniformBufferOffsetAlignment}`,
          );
        }
        this.assertUsable(w.buffer, spec.name, b.name);
        this.inFlight.add(w.buffer);
        return { binding: i, resource: { buffer: w.buffer, offset: w.offset ?? 0, size } };
      }
      if (b.kind === 'uniform') {
        if (!ArrayBuffer.isView(v)) throw new Error(`kernel ${spec.name}: uniform '${b.name}' must be a typed array`);
        const ub = this.pool.acquire(alignUp(Math.max(v.byteLength, 16), 16), UNIFORM_DST, `${spec.name}.${b.name}`);
        this.device.queue.writeBuffer(ub, 0, v.buffer, v.byteOffset, v.byteLength);
        this.transient.push(ub);
        return { binding: i, resource: { buffer: ub, size: alignUp(v.byteLength, 16) } };
      }
      if (ArrayBuffer.isView(v)) throw new Error(`kernel ${spec.name}: storage binding '${b.name}' must be a buffer`);
      const w: BufferWindow = 'buffer' in v ? v : { buffer: v };
      const size = w.size ?? w.buffer.size - (w.offset ?? 0);
      if (size > this.limits.maxStorageBufferBindingSize) {
        throw new IbgpuError(
          'LIMIT_EXCEEDED',
          `kernel ${spec.name}: binding '${b.name}' is ${size} bytes, over maxStorageBufferBindingSize ${this.limits.maxStorageBufferBindingSize}`,
          'bind a window of the buffer (split the work into row blocks)',
        );
      }
      this.assertUsable(w.buffer, spec.name, b.name);
      this.inFlight.add(w.buffer);
      return { binding: i, resource: { buffer: w.buffer, offset: w.offset ?? 0, size } };
    });
    const bindGroup = this.device.createBindGroup({ label: spec.name, layout, entries });
    const groups =
      typeof opts.workgroups === 'number'
        ? foldWorkgroups(opts.workgroups, this.limits.maxComputeWorkgroupsPerDimension)
        : ([opts.workgroups[0], opts.workgroups[1] ?? 1, opts.workgroups[2] ?? 1] as [number, number, number]);
    const cap = this.limits.maxComputeWorkgroupsPerDimension;
    if (groups.some((g) => g > cap)) {
      throw new IbgpuError('LIMIT_EXCEEDED', `kernel ${spec.name}: dispatch ${groups.join('x')} exceeds ${cap} per dimension`);
    }
    if (groups[0] * groups[1] * groups[2] === 0) return;
    const pass = this.getPass(opts.label ?? spec.name);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    if (this.querySet) this.endPass(); // one pass per dispatch so each gets its own timestamps
    this.counters.dispatches++;
    if (++this.pendingDispatches >= this.maxDispatchesPerSubmit) this.flush();
  }

  private getEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'ibgpu' });
    return this.encoder;
  }

  private getPass(label: string): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    const enc = this.getEncoder();
    let desc: GPUComputePassDescriptor = { label };
    if (this.querySet) {
      if (this.queryLabels.length * 2 >= Engine.QUERY_CAPACITY) {
        this.flush();
        return this.getPass(label);
      }
      const i = this.queryLabels.length;
      this.queryLabels.push(label);
      desc = { label, timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
    }
    this.pass = enc.beginComputePass(desc);
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = undefined;
    }
  }

  /** Submits all pending work. */
  flush(): void {
    this.assertAlive();
    this.endPass();
    if (!this.encoder) {
      // Nothing recorded since the last submit, so nothing pending references the retiring
      // buffers: they are reusable now (queue writes into them are ordered after submitted work).
      this.pool.onSubmitted();
      return;
    }
    let profileRead: Promise<ProfileRecord[]> | undefined;
    if (this.querySet && this.queryLabels.length > 0) {
      const n = this.queryLabels.length * 2;
      const resolve = this.pool.acquire(n * 8, 0x200 | 0x04, 'ibgpu-profile-resolve'); // QUERY_RESOLVE | COPY_SRC
      const staging = this.pool.acquire(n * 8, MAP_READ_DST, 'ibgpu-profile-staging');
      this.encoder.resolveQuerySet(this.querySet, 0, n, resolve, 0);
      this.encoder.copyBufferToBuffer(resolve, 0, staging, 0, n * 8);
      const labels = this.queryLabels;
      this.queryLabels = [];
      this.pool.release(resolve);
      profileRead = staging.mapAsync(GPUMapMode.READ, 0, n * 8).then(() => {
        const t = new BigUint64Array(staging.getMappedRange(0, n * 8).slice(0));
        staging.unmap();
        this.pool.release(staging);
        return labels.map((label, i) => ({ label, ms: Number(t[2 * i + 1]! - t[2 * i]!) / 1e6 }));
      });
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = undefined;
    this.counters.submits++;
    this.pendingDispatches = 0;
    this.inFlight.clear();
    for (const ub of this.transient) this.pool.release(ub);
    this.transient.length = 0;
    this.pool.onSubmitted();
    if (profileRead) this.profileReads.push(profileRead);
  }

  /** Flushes and waits until the GPU has finished everything; surfaces async device errors. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.throwDeviceErrors();
  }

  /** GPU time per dispatch since the last call (empty unless created with profile: true). */
  async takeProfile(): Promise<ProfileRecord[]> {
    this.flush();
    const reads = this.profileReads.splice(0);
    return (await Promise.all(reads)).flat();
  }

  // ---------------------------------------------------------------- readback

  /** Copies `bytes` bytes from `buf` at `offset` to the host. Flushes pending work first. */
  async read(buf: GPUBuffer, offset = 0, bytes?: number): Promise<ArrayBuffer> {
    this.assertAlive();
    const n = bytes ?? buf.size - offset;
    const padded = alignUp(n, 4);
    const staging = this.pool.acquire(padded, MAP_READ_DST, 'ibgpu-staging');
    this.copy(buf, offset, staging, 0, padded);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, padded);
    } catch (e) {
      this.assertAlive();
      throw new IbgpuError('DEVICE_ERROR', `readback of ${buf.label} failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange(0, padded).slice(0, n);
    staging.unmap();
    this.pool.release(staging);
    this.counters.bytesDownloaded += n;
    this.counters.readbacks++;
    this.throwDeviceErrors();
    return out;
  }

  async readF32(buf: GPUBuffer, count: number, offsetElems = 0): Promise<Float32Array> {
    return new Float32Array(await this.read(buf, offsetElems * 4, count * 4));
  }

  async readU32(buf: GPUBuffer, count: number, offsetElems = 0): Promise<Uint32Array> {
    return new Uint32Array(await this.read(buf, offsetElems * 4, count * 4));
  }

  // ---------------------------------------------------------------- lifetime

  private assertAlive(): void {
    if (!this.ctx) throw new IbgpuError('DISPOSED', 'this engine was disposed', 'create a new Engine');
    if (this.lostReason !== undefined) {
      throw new IbgpuError(
        'DEVICE_LOST',
        `the GPU device was lost (${this.lostReason})`,
        'create a new Engine and run the stage again; inputs on the host are unchanged and no partial result was written',
      );
    }
  }

  private throwDeviceErrors(): void {
    if (this.errors.length === 0) return;
    const msgs = this.errors.splice(0);
    throw new IbgpuError(
      'DEVICE_ERROR',
      `WebGPU reported: ${msgs.join(' | ')}`,
      'this is a bug in ibgpu or an adapter limit; please report it with `ibgpu doctor` output',
    );
  }

  /** Destroys the device (the Dawn instance stays with the process: src/gpu/acquire.ts). The engine is unusable afterwards. */
  dispose(): void {
    if (!this.ctx) return;
    try {
      this.endPass();
      this.encoder = undefined;
      this.pool.trim();
      this.querySet?.destroy();
      this.device.destroy();
    } finally {
      this.ctx = undefined;
    }
  }
}
