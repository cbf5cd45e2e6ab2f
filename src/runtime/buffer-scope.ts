// Buffer scopes: ownership of pooled GPU buffers tied to a block of code.
//
// A scope records every buffer allocated through it and releases those it still owns when it
// closes, on the normal path and on a throw alike, so a forgotten release cannot leak. Closing
// only *releases*: the pool keeps a released buffer out of reuse until the work recorded so far
// is submitted (buffer-pool.ts), so a kernel still pending that reads a scoped buffer is safe.
//
// Ownership moves explicitly:
//   - `keep(buf)` hands a buffer out of the scope on purpose (a result the caller owns);
//   - `adopt(buf)` / `adoptAll(bufs)` take over buffers made elsewhere (e.g. a function's returned result);
//   - `release(buf)` ends one buffer's life early (streaming loops that must not grow);
//   - `scope()` opens a child scope that closes at the latest with its parent.
// A buffer released twice, or released by the engine while a scope still owns it, makes the
// second release throw (BufferPool): the pool would otherwise hand it to two owners.
//
// Use: `engine.withScope((s) => { ... })` (closes after a returned promise settles), or
// `const s = engine.scope(); try { ... } finally { s.close(); }`, or `using s = engine.scope();`
// where the runtime has Symbol.dispose (Node >= 20.4; TypeScript lowers `using` for ES2022).
// Library code uses the first two forms: browsers without Symbol.dispose would fail on `using`.

/** What a scope needs from the engine (an interface, so this module does not import the engine). */
export interface BufferAllocator {
  alloc(bytes: number, label?: string): GPUBuffer;
  allocUniformStorage(bytes: number, label?: string): GPUBuffer;
  upload(data: ArrayBufferView, label?: string): GPUBuffer;
  release(...bufs: (GPUBuffer | undefined)[]): void;
}

export class BufferScope {
  private readonly owned = new Set<GPUBuffer>();
  private readonly children = new Set<BufferScope>();
  private open = true;

  constructor(
    private readonly allocator: BufferAllocator,
    private readonly parent?: BufferScope,
  ) {}

  /** Buffers this scope will release when it closes. */
  get size(): number {
    return this.owned.size;
  }

  get closed(): boolean {
    return !this.open;
  }

  /** A pooled storage buffer owned by this scope (see Engine.alloc). */
  alloc(bytes: number, label?: string): GPUBuffer {
    this.assertOpen();
    return this.track(this.allocator.alloc(bytes, label));
  }

  /** A storage buffer also bindable as uniform windows, owned by this scope (see Engine.allocUniformStorage). */
  allocUniformStorage(bytes: number, label?: string): GPUBuffer {
    this.assertOpen();
    return this.track(this.allocator.allocUniformStorage(bytes, label));
  }

  /** Uploads `data` into a buffer owned by this scope (see Engine.upload). */
  upload(data: ArrayBufferView, label?: string): GPUBuffer {
    this.assertOpen();
    return this.track(this.allocator.upload(data, label));
  }

  /** Takes ownership of buffers made elsewhere; undefined passes through (optional buffers). */
  adopt<T extends GPUBuffer | undefined>(buf: T): T {
    this.assertOpen();
    if (buf !== undefined) this.track(buf);
    return buf;
  }

  /** Takes ownership of every buffer of a list made elsewhere (a tuple a pass returned); returns the list. */
  adoptAll<T extends readonly (GPUBuffer | undefined)[]>(bufs: T): T {
    for (const b of bufs) this.adopt(b);
    return bufs;
  }

  /** Hands a buffer out of the scope: it is no longer released at close, the caller owns it. */
  keep<T extends GPUBuffer | undefined>(buf: T): T {
    if (buf !== undefined && !this.owned.delete(buf)) {
      throw new Error(`BufferScope.keep: buffer '${buf.label}' is not owned by this scope`);
    }
    return buf;
  }

  /** Releases owned buffers now (undefined entries are skipped); they leave the scope. */
  release(...bufs: (GPUBuffer | undefined)[]): void {
    for (const b of bufs) {
      if (b === undefined) continue;
      if (!this.owned.delete(b)) throw new Error(`BufferScope.release: buffer '${b.label}' is not owned by this scope`);
      this.allocator.release(b);
    }
  }

  /** A child scope; it is closed when this one closes, if it was not closed before. */
  scope(): BufferScope {
    this.assertOpen();
    const child = new BufferScope(this.allocator, this);
    this.children.add(child);
    return child;
  }

  /** Releases every buffer still owned (children first). Closing twice is a no-op. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    for (const c of [...this.children]) c.close();
    this.parent?.children.delete(this);
    const bufs = [...this.owned];
    this.owned.clear();
    // Release every buffer even if one fails (released twice elsewhere), then report the first.
    let first: Error | undefined;
    for (const b of bufs) {
      try {
        this.allocator.release(b);
      } catch (e) {
        first ??= e instanceof Error ? e : new Error(String(e));
      }
    }
    if (first !== undefined) throw first;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private track(buf: GPUBuffer): GPUBuffer {
    this.owned.add(buf);
    return buf;
  }

  private assertOpen(): void {
    if (!this.open) throw new Error('BufferScope: this scope is closed; allocate in an open scope');
  }
}

/**
 * Runs `fn` with a scope made by `open()` and closes it when `fn` returns, throws, or — when `fn`
 * returns a promise — when that promise settles. A close error never hides an error of `fn`.
 */
export function runScoped<T>(open: () => BufferScope, fn: (scope: BufferScope) => T): T {
  const scope = open();
  let result: T;
  try {
    result = fn(scope);
  } catch (e) {
    closeQuietly(scope);
    throw e;
  }
  if (isPromiseLike(result)) {
    return result.then(
      (v) => {
        scope.close();
        return v;
      },
      (e: unknown) => {
        closeQuietly(scope);
        throw e;
      },
    ) as T;
  }
  scope.close();
  return result;
}

function closeQuietly(scope: BufferScope): void {
  try {
    scope.close();
  } catch {
    // The error of the scoped code is the one to report; a failed release after it is a consequence.
  }
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}
