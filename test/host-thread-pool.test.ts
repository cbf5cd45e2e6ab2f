// The host worker threads (src/host/pool.ts) and the chunked attention sums they run
// (src/host/attention-sums.ts): a pool starts in Node, and the sums over random rows are the same,
// bit for bit, on the threads and on the calling thread (fixed chunks, partials added in order).

import { describe, expect, it } from 'vitest';
import { mDashSumLengths, SAMPLE_CHUNK, type AttentionShape } from '../src/host/attention-sums.js';
import { hostThreadPool, runHostTasks } from '../src/host/pool.js';
import { IbgpuError } from '../src/errors.js';
import { symEig } from '../src/cpu/eigh.js';
import { randomMlp } from '../src/ib/self-check.js';
import { gaussian, rng } from './helpers/random.js';

function shared(a: Float64Array | Float32Array, on: boolean): typeof a {
  if (!on) return a;
  const b = new (a.constructor as new (buf: SharedArrayBuffer) => typeof a)(new SharedArrayBuffer(a.byteLength));
  b.set(a);
  return b;
}

describe('host thread pool', () => {
  it('starts worker threads in Node', async () => {
    const pool = await hostThreadPool();
    expect(pool).toBeDefined();
    expect(pool!.size).toBeGreaterThanOrEqual(1);
  });

  it('returns a task result (moved back) and keeps an IbgpuError code across the thread', async () => {
    const pool = (await hostThreadPool())!;
    const a = Float64Array.from([2, 1, 0, 1, 3, 1, 0, 1, 5]);
    const r = await pool.run('eig', { a: Float64Array.from(a), n: 3 });
    const here = symEig(a, 3);
    expect(Array.from(r.values)).toEqual(Array.from(here.values));
    expect(Array.from(r.vectors)).toEqual(Array.from(here.vectors));
    const bad = pool.run('eig', { a: Float64Array.from([1, Number.NaN, Number.NaN, 1]), n: 2 });
    await expect(bad).rejects.toBeInstanceOf(IbgpuError);
    await expect(bad).rejects.toMatchObject({ code: 'NON_FINITE' });
  });

  it('holds state on the thread asked for; a failed post fails the next call; release frees it', async () => {
    const pool = (await hostThreadPool())!;
    const model = randomMlp([3, 4, 2], 5);
    const last = pool.size - 1;
    const h = await pool.hold('degeneracy', { model, layers: [0, 1] }, { thread: last });
    expect(h.thread).toBe(last);
    h.post('add', { rows: 2, pres: [], acts: [] }); // no pre-activations: the accumulator throws
    await expect(h.call('result')).rejects.toThrow();
    await h.release();
    await expect(h.call('result')).rejects.toThrow(/no held state/);
    await expect(pool.hold('degeneracy', { model, layers: [0] }, { thread: pool.size })).rejects.toMatchObject({ code: 'HOST_THREAD' });
  });

  it.each([1, 7])('attention sums (M′ and edges) over %d+ chunks: threads = calling thread, bit for bit', async (extra) => {
    const g = gaussian(rng(3 + extra));
    const sh: AttentionShape = { heads: 3, dHead: 5, dV: 4, scale: 2.2, causal: true, P: 4, m: 3 * 4 + 2 * 3 * 5, K: 6 };
    const N = SAMPLE_CHUNK * extra + 13;
    const xj = Float64Array.from({ length: N * sh.P * sh.m }, () => g());
    const u = Float64Array.from({ length: N * sh.P * 7 }, () => g());
    const DZ = Float64Array.from({ length: sh.K * sh.heads * sh.dV }, () => g());
    const A = sh.heads + 1;
    const tables = {
      r: 7,
      Yt: Float64Array.from({ length: A * sh.K * 7 }, () => g()),
      Kt: Float64Array.from({ length: sh.heads * sh.dHead * 7 }, () => g()),
      Qt: Float64Array.from({ length: sh.heads * sh.dHead * 7 }, () => g()),
    };
    const per = mDashSumLengths(sh).reduce((a, b) => a + b, 0);
    const chunks: [number, number][] = [];
    for (let n0 = 0; n0 < N; n0 += SAMPLE_CHUNK) chunks.push([n0, Math.min(N, n0 + SAMPLE_CHUNK)]);
    const results: Float64Array[][] = [];
    for (const threads of [true, false]) {
      const outM = shared(new Float64Array(chunks.length * per), threads) as Float64Array;
      const outE = shared(new Float64Array(chunks.length * sh.K * 7), threads) as Float64Array;
      const x = shared(xj, threads) as Float64Array;
      const uu = shared(u, threads) as Float64Array;
      const dz = shared(DZ, threads) as Float64Array;
      const tb = {
        r: 7,
        Yt: shared(tables.Yt, threads) as Float64Array,
        Kt: shared(tables.Kt, threads) as Float64Array,
        Qt: shared(tables.Qt, threads) as Float64Array,
      };
      await runHostTasks(
        'attention-mdash',
        chunks.map(([n0, n1], i) => ({ shape: sh, DZ: dz, alpha: 0.9, xj: x, n0, n1, out: outM.subarray(i * per, (i + 1) * per) })),
        { threads },
      );
      await runHostTasks(
        'attention-edges',
        chunks.map(([n0, n1], i) => ({
          shape: sh,
          DZ: dz,
          alpha: 0.9,
          tables: tb,
          xj: x,
          u: uu,
          n0,
          n1,
          out: outE.subarray(i * sh.K * 7, (i + 1) * sh.K * 7),
        })),
        { threads },
      );
      results.push([Float64Array.from(outM), Float64Array.from(outE)]);
    }
    expect(results[0]![0]!.some((v) => v !== 0)).toBe(true);
    expect(results[0]![1]!.some((v) => v !== 0)).toBe(true);
    expect(Array.from(results[0]![0]!)).toEqual(Array.from(results[1]![0]!));
    expect(Array.from(results[0]![1]!)).toEqual(Array.from(results[1]![1]!));
  });
});
