// Buffer scopes (src/runtime/buffer-scope.ts): release at exit and on throw, deferred reuse until
// the work reading a released buffer is submitted, nesting, handing a buffer out, and the pool's
// detection of double releases and uses after release.
import { describe, expect, it } from 'vitest';
import { axpy } from '../src/kernels/axpy.js';
import { ColumnSumAccumulator, GramAccumulator } from '../src/kernels/gram.js';
import { matmul, matmulHost } from '../src/kernels/matmul.js';
import { SignPatternAccumulator } from '../src/kernels/sign-patterns.js';
import type { Engine } from '../src/runtime/engine.js';
import { useEngine } from './helpers/gpu.js';

/** Buffers handed out and not yet recycled, after a flush has retired everything released. */
function liveAfterFlush(e: Engine): number {
  e.flush();
  return e.memory().buffersLive;
}

describe('buffer scopes', () => {
  const engine = useEngine();

  it('release every buffer they own when they close', async () => {
    const e = await engine();
    const before = liveAfterFlush(e);
    const s = e.scope();
    s.alloc(1000, 'a');
    s.upload(new Float32Array(7), 'b');
    s.allocUniformStorage(512, 'c');
    expect(s.size).toBe(3);
    expect(liveAfterFlush(e)).toBe(before + 3);
    s.close();
    expect(s.closed).toBe(true);
    expect(s.size).toBe(0);
    expect(liveAfterFlush(e)).toBe(before);
    s.close(); // closing twice is a no-op, not a double release
    expect(() => s.alloc(16, 'late')).toThrow(/closed/);
  });

  it('release on a throw, sync and async, and the error of the scoped code is the one reported', async () => {
    const e = await engine();
    const before = liveAfterFlush(e);
    expect(() =>
      e.withScope((s) => {
        s.alloc(64, 'x');
        s.alloc(64, 'y');
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(liveAfterFlush(e)).toBe(before);
    await expect(
      e.withScope(async (s) => {
        s.alloc(64, 'x');
        await Promise.resolve();
        s.alloc(64, 'y');
        throw new Error('async boom');
      }),
    ).rejects.toThrow('async boom');
    expect(liveAfterFlush(e)).toBe(before);
    // A close that fails after the scoped code threw does not hide the first error.
    expect(() =>
      e.withScope((s) => {
        const b = s.alloc(64, 'z');
        e.release(b);
        throw new Error('first');
      }),
    ).toThrow('first');
    expect(liveAfterFlush(e)).toBe(before);
  });

  it('return the value of the scoped code, after an awaited promise too', async () => {
    const e = await engine();
    const n = 33;
    const out = await e.withScope(async (s) => {
      const x = s.upload(new Float32Array(n).fill(2), 'x');
      const y = s.upload(new Float32Array(n).fill(1), 'y');
      axpy(e, x, y, n, 3);
      return e.readF32(y, n);
    });
    expect([...out]).toEqual(new Array(n).fill(7));
    expect(e.withScope(() => 42)).toBe(42);
  });

  it('do not let a buffer released at close be reused before the work reading it is submitted', async () => {
    const e = await engine();
    const n = 256;
    e.flush();
    const y = e.upload(new Float32Array(n), 'y');
    let x: GPUBuffer | undefined;
    e.withScope((s) => {
      x = s.upload(new Float32Array(n).fill(3), 'x');
      axpy(e, x, y, n, 1); // pending: reads x
    });
    const other = e.alloc(n * 4, 'other'); // same size class as x
    expect(other).not.toBe(x);
    e.write(other, new Float32Array(n).fill(-1));
    const out = await e.readF32(y, n); // submits the axpy
    expect([...out]).toEqual(new Array(n).fill(3));
    const again = e.alloc(n * 4, 'again'); // x is free now and is recycled
    expect(again).toBe(x);
    e.release(y, other, again);
  });

  it('nest: a child closes with its parent, or earlier on its own', async () => {
    const e = await engine();
    const before = liveAfterFlush(e);
    const parent = e.scope();
    const a = parent.alloc(64, 'a');
    const child = parent.scope();
    child.alloc(64, 'b');
    child.alloc(64, 'c');
    const grandchild = child.scope();
    grandchild.alloc(64, 'd');
    expect(liveAfterFlush(e)).toBe(before + 4);
    child.close(); // releases b, c and the grandchild's d; a stays
    expect(grandchild.closed).toBe(true);
    expect(liveAfterFlush(e)).toBe(before + 1);
    e.write(a, new Float32Array(16)); // still usable
    const late = parent.scope();
    late.alloc(64, 'e');
    parent.close(); // closes the still-open child too
    expect(late.closed).toBe(true);
    expect(liveAfterFlush(e)).toBe(before);
  });

  it('hand a buffer out on purpose with keep, and take one over with adopt', async () => {
    const e = await engine();
    const before = liveAfterFlush(e);
    const n = 40;
    const result = e.withScope((s) => {
      const x = s.upload(new Float32Array(n).fill(5), 'x');
      const y = s.upload(new Float32Array(n), 'y');
      axpy(e, x, y, n, 2);
      return s.keep(y);
    });
    expect(liveAfterFlush(e)).toBe(before + 1);
    expect([...(await e.readF32(result, n))]).toEqual(new Array(n).fill(10));
    // Moving a buffer from a child to its parent: keep from one, adopt into the other.
    const parent = e.scope();
    const child = parent.scope();
    const moved = parent.adopt(child.keep(child.alloc(64, 'moved')));
    child.close();
    e.write(moved, new Float32Array(16));
    parent.adopt(result); // the result's life now ends with the parent
    expect(parent.adopt(undefined)).toBeUndefined(); // optional buffers pass through
    parent.close();
    expect(liveAfterFlush(e)).toBe(before);
    expect(() => e.scope().keep(moved)).toThrow(/not owned/);
    const late = e.alloc(64, 'late');
    expect(() => parent.adopt(late)).toThrow(/closed/);
    e.release(late);
  });

  it('release single buffers early, and refuse buffers they do not own', async () => {
    const e = await engine();
    const before = liveAfterFlush(e);
    const s = e.scope();
    const a = s.alloc(64, 'a');
    s.alloc(64, 'b');
    s.release(a, undefined);
    expect(s.size).toBe(1);
    expect(liveAfterFlush(e)).toBe(before + 1);
    const stranger = e.alloc(64, 'stranger');
    expect(() => s.release(stranger)).toThrow(/not owned/);
    e.release(stranger);
    s.close();
    expect(liveAfterFlush(e)).toBe(before);
  });

  it('work with `using`', async () => {
    const e = await engine();
    const before = liveAfterFlush(e);
    {
      using s = e.scope();
      s.alloc(64, 'a');
      expect(liveAfterFlush(e)).toBe(before + 1);
    }
    expect(liveAfterFlush(e)).toBe(before);
  });
});

describe('kernel wrappers on scopes', () => {
  const engine = useEngine();

  it('leave no live buffer behind, on success and when recording throws', async () => {
    const e = await engine();
    const before = liveAfterFlush(e);
    const m = 7,
      n = 5,
      k = 3;
    const a = Float32Array.from({ length: m * k }, (_, i) => i % 5);
    const b = Float32Array.from({ length: k * n }, (_, i) => i % 3);
    const c = await matmulHost(e, a, b, { m, n, k }, { variant: 'reg4x4' });
    expect(c[0]).toBe(a[0]! * b[0]! + a[1]! * b[5]! + a[2]! * b[10]!);
    expect(liveAfterFlush(e)).toBe(before);

    const rows = 37,
      d = 11;
    const x = Float32Array.from({ length: rows * d }, (_, i) => ((i * 7) % 13) - 6);
    for (const mode of ['host-f64', 'gpu-f32'] as const) {
      const g = new GramAccumulator(e, d, { mode, shift: new Float32Array(d).fill(0.5) });
      await g.addHost(x, rows);
      await g.result();
      g.dispose();
    }
    const cs = new ColumnSumAccumulator(e, d);
    await cs.addHost(x, rows);
    await cs.result();
    cs.dispose();
    const sp = new SignPatternAccumulator(e, d, { keepWords: true });
    sp.addHost(x, rows);
    await sp.result();
    sp.dispose();
    expect(liveAfterFlush(e)).toBe(before);

    // A buffer whose size is not a 16-byte multiple (made outside the pool) is copied into a
    // padded scoped buffer; a throw after that (no room for even one batch of B) must not leak it.
    const raw = e.device.createBuffer({ size: m * k * 4, usage: 0x80 | 0x08 | 0x04, label: 'raw-a' }); // STORAGE | COPY_DST | COPY_SRC
    const bb = e.alloc(k * n * 4, 'b');
    const bc = e.alloc(m * n * 4, 'c');
    expect(() => matmul(e, raw, bb, bc, { m, n, k }, { variant: 'reg4x4', maxBindingBytes: 16 })).toThrow(/storage binding/);
    e.release(bb, bc);
    raw.destroy();
    expect(liveAfterFlush(e)).toBe(before);
  });
});

describe('released buffers', () => {
  const engine = useEngine();

  it('cannot be released twice (the pool would hand them to two owners)', async () => {
    const e = await engine();
    const b = e.alloc(64, 'twice');
    e.release(b);
    expect(() => e.release(b)).toThrow(/released twice/);
    e.flush();
    expect(() => e.release(b)).toThrow(/released twice/);
    // A scope whose buffer the engine released reports it at close, after releasing the rest.
    const before = liveAfterFlush(e);
    const s = e.scope();
    const c = s.alloc(64, 'c');
    s.alloc(64, 'd');
    e.release(c);
    expect(() => s.close()).toThrow(/released twice/);
    expect(liveAfterFlush(e)).toBe(before);
  });

  it('cannot be bound, copied, cleared or written', async () => {
    const e = await engine();
    const n = 16;
    const x = e.upload(new Float32Array(n), 'gone');
    const y = e.upload(new Float32Array(n), 'y');
    e.release(x);
    expect(() => axpy(e, x, y, n, 1)).toThrow(/'gone' was already released \(retiring\)/);
    e.flush();
    expect(() => axpy(e, x, y, n, 1)).toThrow(/'gone' was already released \(free\)/);
    expect(() => e.copy(x, 0, y, 0, 4)).toThrow(/copy source/);
    expect(() => e.copy(y, 0, x, 0, 4)).toThrow(/copy destination/);
    expect(() => e.clear(x)).toThrow(/already released/);
    expect(() => e.write(x, new Float32Array(1))).toThrow(/already released/);
    e.release(y);
  });
});
