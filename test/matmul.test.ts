import { describe, expect, it } from 'vitest';
import { IbgpuError } from '../src/errors.js';
import { matmulAbsF64, matmulF64 } from '../src/cpu/matmul.js';
import {
  chooseMatmulVariant,
  matmul,
  matmulHost,
  matmulTuning,
  matmulVariantFor,
  MATMUL_VARIANTS,
  selfCheck,
  type MatmulShape,
  type MatmulVariantName,
} from '../src/kernels/matmul.js';
import { useEngine } from './helpers/gpu.js';
import { randomF32 } from './helpers/random.js';

// Tolerance: an f32 dot product of length k accumulated in any order has
// |err| <= k * u * sum_q |a_iq| |b_qj| with u = 2^-24 (Higham, gamma_k), plus one rounding each
// for the alpha scaling and the beta term. We allow 2 (k + 2) u * (|alpha| sum |a||b| + |beta c|),
// i.e. about twice the worst case; random data sits around sqrt(k) u, far below it, while any
// indexing or masking bug produces errors of order sum |a||b| itself.
const U = 2 ** -24;

function worstRatio(out: Float32Array, ref: Float64Array, scale: Float64Array, k: number): number {
  expect(out.length).toBe(ref.length);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const tol = 2 * (k + 2) * U * scale[i]! + 1e-30;
    const r = Math.abs(out[i]! - ref[i]!) / tol;
    if (!(r <= worst)) worst = Number.isNaN(r) ? Infinity : r;
  }
  return worst;
}

/** Dense sizes of A, B, C for a shape (honouring strides). */
function sizes(s: MatmulShape): [number, number, number] {
  const batch = s.batch ?? 1;
  const sa = s.strideA ?? s.m * s.k;
  const sb = s.strideB ?? s.k * s.n;
  const sc = s.strideC ?? s.m * s.n;
  return [(batch - 1) * sa + s.m * s.k, (batch - 1) * sb + s.k * s.n, (batch - 1) * sc + s.m * s.n];
}

let seed = 100;
async function check(
  e: Awaited<ReturnType<ReturnType<typeof useEngine>>>,
  shape: MatmulShape,
  variant: MatmulVariantName,
  extra: { maxBindingBytes?: number } = {},
): Promise<void> {
  const [na, nb, nc] = sizes(shape);
  const a = randomF32(na, seed++);
  const b = randomF32(nb, seed++);
  const c = (shape.beta ?? 0) !== 0 ? randomF32(nc, seed++) : undefined;
  const out = await matmulHost(e, a, b, shape, { variant, c, ...extra });
  const ref = matmulF64(a, b, shape, c);
  const scale = matmulAbsF64(a, b, shape, c);
  // matmulF64 returns dense batch x m x n; compare the matching rows of a strided C.
  const batch = shape.batch ?? 1;
  const sc = shape.strideC ?? shape.m * shape.n;
  const dense = new Float32Array(batch * shape.m * shape.n);
  for (let z = 0; z < batch; z++) dense.set(out.subarray(z * sc, z * sc + shape.m * shape.n), z * shape.m * shape.n);
  const w = worstRatio(dense, ref, scale, shape.k);
  expect(w, `${variant} ${JSON.stringify(shape)}: worst error / bound`).toBeLessThanOrEqual(1);
}

describe('matmulF64 reference', () => {
  it('matches a naive triple loop for all transposes, alpha, beta and broadcast', () => {
    const m = 5,
      n = 4,
      k = 3,
      batch = 3;
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randomF32(m * k, 1);
        const b = randomF32(batch * k * n, 2);
        const c = randomF32(batch * m * n, 3);
        const shape: MatmulShape = { batch, m, n, k, transA, transB, alpha: 1.5, beta: -2, strideA: 0 };
        const got = matmulF64(a, b, shape, c);
        for (let z = 0; z < batch; z++) {
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let q = 0; q < k; q++) {
                const av = transA ? a[q * m + i]! : a[i * k + q]!;
                const bv = transB ? b[z * k * n + j * k + q]! : b[z * k * n + q * n + j]!;
                s += av * bv;
              }
              const want = 1.5 * s - 2 * c[z * m * n + i * n + j]!;
              expect(got[z * m * n + i * n + j]).toBeCloseTo(want, 12);
            }
          }
        }
      }
    }
  });
});

describe('matmul kernels', () => {
  const engine = useEngine();

  const shapes: MatmulShape[] = [
    { m: 1, n: 1, k: 1 },
    { m: 7, n: 13, k: 5 },
    { m: 127, n: 131, k: 129 },
    { m: 33, n: 65, k: 17, alpha: -0.5 },
    { m: 128, n: 64, k: 96 }, // tile and vec4 aligned
    { m: 130, n: 4, k: 260 }, // skinny, crosses a 128-row tile edge
  ];

  for (const variant of MATMUL_VARIANTS) {
    describe(variant, () => {
      it('random shapes (1x1x1, primes, non-multiples of tiles)', async () => {
        const e = await engine();
        for (const s of shapes) await check(e, s, variant);
      });

      it('all four transpose combinations, aligned and unaligned', async () => {
        const e = await engine();
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            await check(e, { m: 37, n: 41, k: 23, transA, transB }, variant);
            await check(e, { m: 72, n: 68, k: 40, transA, transB }, variant); // vec4 loads on both operands
          }
        }
      });

      it('alpha and beta', async () => {
        const e = await engine();
        await check(e, { m: 29, n: 31, k: 19, alpha: 0.25, beta: 1.5 }, variant);
        await check(e, { m: 16, n: 16, k: 16, alpha: -2, beta: -1, transA: true }, variant);
      });

      it('batches with broadcast and padded strides', async () => {
        const e = await engine();
        await check(e, { batch: 3, m: 19, n: 23, k: 11 }, variant);
        await check(e, { batch: 4, m: 20, n: 12, k: 8, strideA: 0 }, variant); // one A for all
        await check(e, { batch: 3, m: 9, n: 17, k: 13, strideB: 0, transB: true }, variant); // one B for all
        await check(e, { batch: 2, m: 8, n: 8, k: 8, strideA: 65, strideB: 70, strideC: 67, beta: 0.5 }, variant); // unaligned batch offsets
      });

      it('splits into row blocks when an operand exceeds the binding limit', async () => {
        const e = await engine();
        // A batch of A is 18000 B and of C 12000 B: 8 KiB windows give 3 row blocks per batch.
        // With Aᵀ each window spans almost all of A (its columns are C's rows), so there the
        // 20 KiB limit fits A but not C (24000 B), again forcing row blocks.
        const cases: [MatmulShape, number][] = [
          [{ batch: 2, m: 150, n: 20, k: 30, beta: 1 }, 8 * 1024],
          [{ batch: 2, m: 150, n: 40, k: 30, transA: true, transB: true, beta: 1 }, 20 * 1024],
        ];
        for (const [shape, maxBindingBytes] of cases) {
          const before = e.counters.dispatches;
          await check(e, shape, variant, { maxBindingBytes });
          expect(e.counters.dispatches - before).toBeGreaterThanOrEqual(4);
        }
      });
    });
  }

  // The panel variants (src/kernels/matmul-panel.ts) split C into 256 x 256 (panel64) or
  // 128 x 128 (panel128) blocks and k into chunks of 64 / 128, each a separate dispatch; these
  // shapes cross several blocks and chunks with ragged edges in every dimension.
  for (const variant of ['panel64', 'panel128'] as const) {
    it(`${variant}: several row blocks, column blocks and k-chunks, ragged edges`, async () => {
      const e = await engine();
      await check(e, { m: 263, n: 301, k: 389, alpha: 0.5, beta: 0.25 }, variant);
      await check(e, { m: 130, n: 129, k: 257, transA: true, transB: true }, variant);
      await check(e, { m: 1, n: 257, k: 129 }, variant);
    }, 60_000);
  }

  it('handles buffers whose size is not a multiple of 16 bytes', async () => {
    const e = await engine();
    const m = 7,
      n = 3,
      k = 5; // A 140 B, B 60 B, C 84 B
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const a = randomF32(m * k, 11);
    const b = randomF32(k * n, 12);
    const ba = e.device.createBuffer({ size: 140, usage });
    const bb = e.device.createBuffer({ size: 60, usage });
    const bc = e.device.createBuffer({ size: 84, usage });
    e.write(ba, a);
    e.write(bb, b);
    for (const variant of MATMUL_VARIANTS) {
      matmul(e, ba, bb, bc, { m, n, k }, { variant });
      const out = await e.readF32(bc, m * n);
      expect(worstRatio(out, matmulF64(a, b, { m, n, k }), matmulAbsF64(a, b, { m, n, k }), k)).toBeLessThanOrEqual(1);
    }
    ba.destroy();
    bb.destroy();
    bc.destroy();
  });

  it('rejects bad input with clear errors', async () => {
    const e = await engine();
    const a = new Float32Array(6 * 4);
    const b = new Float32Array(4 * 5);
    const err = async (p: Promise<unknown>, code: string, re: RegExp): Promise<void> => {
      const x = await p.then(
        () => undefined,
        (er: unknown) => er,
      );
      expect(x).toBeInstanceOf(IbgpuError);
      expect((x as IbgpuError).code).toBe(code);
      expect((x as IbgpuError).message).toMatch(re);
    };
    await err(matmulHost(e, a, b, { m: 6, n: 5, k: 5 }), 'SHAPE', /A has 24 elements, the shape needs 30/);
    await err(matmulHost(e, a, b, { m: 6, n: 6, k: 4 }), 'SHAPE', /B has 20 elements, the shape needs 24/);
    await err(matmulHost(e, a, b, { m: 6, n: 5, k: 0 }), 'SHAPE', /k = 0 is not a positive integer/);
    await err(matmulHost(e, a, b, { m: 2.5, n: 5, k: 4 }), 'SHAPE', /m = 2.5/);
    await err(matmulHost(e, a, b, { m: 6, n: 5, k: 4, beta: 1 }), 'SHAPE', /needs an input C/);
    await err(matmulHost(e, a, b, { batch: 2, m: 3, n: 5, k: 4, strideA: 12, strideB: 0, strideC: 0 }), 'SHAPE', /strideC = 0/);
    const nan = a.slice();
    nan[7] = NaN;
    await err(matmulHost(e, nan, b, { m: 6, n: 5, k: 4 }), 'NON_FINITE', /matmul A contains NaN at flat index 7/);
    const inf = b.slice();
    inf[3] = -Infinity;
    await err(matmulHost(e, a, inf, { m: 6, n: 5, k: 4 }), 'NON_FINITE', /matmul B contains -Infinity/);

    const ba = e.upload(a);
    const bb = e.upload(b);
    const small = e.device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE, label: 'tiny-c' });
    expect(() => matmul(e, ba, bb, small, { m: 6, n: 5, k: 4 })).toThrow(/buffer C \(tiny-c\) holds 4 floats, the shape needs 30/);
    expect(() => matmul(e, ba, bb, small, { m: 6, n: 5, k: 4 })).toThrow(IbgpuError);
    expect(() => matmul(e, ba, bb, ba, { m: 2, n: 2, k: 2 })).toThrow(/must not be the same buffer/);
    const c = e.alloc(30 * 4);
    // B (4 x 5 floats) cannot fit a 64-byte binding even when A and C are split by rows.
    expect(() => matmul(e, ba, bb, c, { m: 6, n: 5, k: 4 }, { maxBindingBytes: 64 })).toThrow(/LIMIT|does not fit one storage binding/);
    try {
      matmul(e, ba, bb, c, { m: 6, n: 5, k: 4 }, { maxBindingBytes: 64 });
    } catch (x) {
      expect((x as IbgpuError).code).toBe('LIMIT_EXCEEDED');
    }
    small.destroy();
    e.release(ba, bb, c);
  });

  it('autotunes once per engine and reports the choice', async () => {
    const e = await engine();
    const v = await chooseMatmulVariant(e);
    expect(MATMUL_VARIANTS).toContain(v);
    expect(matmulVariantFor(e)).toBe(v);
    const t = matmulTuning(e)!;
    expect(Object.keys(t.ms).sort()).toEqual([...MATMUL_VARIANTS].sort());
    for (const ms of Object.values(t.ms)) expect(ms).toBeGreaterThan(0);
    expect(t.ms[v]).toBe(Math.min(...Object.values(t.ms)));
    const again = performance.now();
    expect(await chooseMatmulVariant(e)).toBe(v); // cached: no second timing run
    expect(performance.now() - again).toBeLessThan(50);
    await check(e, { m: 45, n: 50, k: 33, transB: true }, matmulVariantFor(e));
  });

  it('selfCheck passes', async () => {
    const e = await engine();
    const r = await selfCheck(e);
    expect(r.name).toBe('matmul');
    expect(r.ok, r.detail).toBe(true);
    expect(r.detail).toMatch(/reg4x4 err\/bound .*tiled128 err\/bound/);
  });
});
