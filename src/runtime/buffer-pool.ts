// Pooled GPU buffers. Buffers are bucketed by usage and a rounded size class so that the streamed
// batches of a pipeline keep reusing the same allocations. A released buffer is NOT reusable at
// once: the pending (unsubmitted) encoder may still reference it, and a queue.writeBuffer into it
// would land before that work runs. It waits in `retiring` until the scheduler's next submit.
// Each buffer's state (live → retiring → free → live …) is tracked so that a second release of
// the same buffer — which would put it in the free list twice and hand it to two owners — and a
// use of a released buffer are caught where they happen instead of corrupting results later.

/** Where a pooled buffer is in its life: handed out, released but maybe still referenced by unsubmitted work, or idle. */
export type PooledState = 'live' | 'retiring' | 'free';

export interface PoolStats {
  buffersLive: number;
  bytesLive: number;
  bytesPeak: number;
  bytesPooled: number;
  allocations: number;
  reuses: number;
}

/** Size classes: 256 B minimum, then 8 classes per power of two (waste < 12.5 %). */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = Math.floor(Math.log2(bytes));
  const step = 2 ** Math.max(p - 3, 8);
  return Math.ceil(bytes / step) * step;
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private retiring: GPUBuffer[] = [];
  private readonly meta = new WeakMap<GPUBuffer, { key: string; size: number; state: PooledState }>();
  readonly stats: PoolStats = { buffersLive: 0, bytesLive: 0, bytesPeak: 0, bytesPooled: 0, allocations: 0, reuses: 0 };

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
  ) {}

  acquire(bytes: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer {
    const size = sizeClass(Math.max(bytes, 4));
    if (size > this.maxBufferSize && bytes <= this.maxBufferSize) {
      return this.allocate(alignUp(bytes, 4), usage, label, `${usage}:${alignUp(bytes, 4)}`);
    }
    const key = `${usage}:${size}`;
    const list = this.free.get(key);
    const buf = list?.pop();
    if (buf) {
      this.meta.get(buf)!.state = 'live';
      buf.label = label; // errors and validation messages then name the new owner's buffer
      this.stats.reuses++;
      this.stats.bytesPooled -= size;
      this.stats.buffersLive++;
      this.stats.bytesLive += size;
      this.stats.bytesPeak = Math.max(this.stats.bytesPeak, this.stats.bytesLive);
      return buf;
    }
    return this.allocate(size, usage, label, key);
  }

  private allocate(size: number, usage: GPUBufferUsageFlags, label: string, key: string): GPUBuffer {
    const buf = this.device.createBuffer({ size, usage, label });
    this.meta.set(buf, { key, size, state: 'live' });
    this.stats.allocations++;
    this.stats.buffersLive++;
    this.stats.bytesLive += size;
    this.stats.bytesPeak = Math.max(this.stats.bytesPeak, this.stats.bytesLive);
    return buf;
  }

  /** Gives a buffer back; it becomes reusable after the next submit. Releasing it twice throws. */
  release(buf: GPUBuffer): void {
    const m = this.meta.get(buf);
    if (!m) throw new Error(`buffer ${buf.label} was not allocated by this pool`);
    if (m.state !== 'live') throw new Error(`buffer '${buf.label}' released twice (it is already ${m.state}): two owners would share it`);
    m.state = 'retiring';
    this.retiring.push(buf);
  }

  /** Called by the scheduler right after queue.submit(). */
  onSubmitted(): void {
    for (const buf of this.retiring) {
      const m = this.meta.get(buf)!;
      m.state = 'free';
      let list = this.free.get(m.key);
      if (!list) this.free.set(m.key, (list = []));
      list.push(buf);
      this.stats.buffersLive--;
      this.stats.bytesLive -= m.size;
      this.stats.bytesPooled += m.size;
    }
    this.retiring = [];
  }

  /** The buffer's state, or undefined for a buffer this pool did not allocate. */
  stateOf(buf: GPUBuffer): PooledState | undefined {
    return this.meta.get(buf)?.state;
  }

  /** Frees every pooled (idle) buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.stats.bytesPooled = 0;
  }
}

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
