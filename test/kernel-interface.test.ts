// One source for each kernel's interface: the WGSL declarations. These tests need no GPU: they
// check what scripts/gen-shaders.mjs extracted against every kernel in the registry, that
// defineKernel refuses a TS bindings list that drifted, that the generator refuses a header that
// disagrees with the code, and that packParams writes each field where the shader reads it.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KERNEL_FAMILIES, kernelFamilyOf } from '../src/kernels/registry.js';
import { bindingMismatches, defineKernel, shaderBindings, type BindingSpec } from '../src/runtime/kernel-spec.js';
import { packParams } from '../src/runtime/params.js';
import { SHADERS, type ShaderName } from '../src/shaders/index.generated.js';
import { matmulRegKernel, matmulTiledKernel } from '../src/kernels/matmul.js';
import { signPackAtomicKernel, signPackBallotKernel, signPackKernel } from '../src/kernels/sign-patterns.js';
import { edgesSquaredKernel } from '../src/kernels/edges.js';

const root = join(import.meta.dirname, '..');
const allKernels = KERNEL_FAMILIES.flatMap((f) => f.kernels);

describe('kernel interfaces', () => {
  it('every shader belongs to exactly one registered kernel, and its bindings agree with the WGSL', () => {
    const byShader = new Map<string, string[]>();
    for (const k of allKernels) byShader.set(k.shader.name, [...(byShader.get(k.shader.name) ?? []), k.name]);
    for (const name of Object.keys(SHADERS) as ShaderName[]) {
      expect(byShader.get(name), `shaders/${name}.wgsl has no kernel in src/kernels/registry.ts`).toHaveLength(1);
    }
    for (const k of allKernels) {
      expect(bindingMismatches(k.bindings, k.shader.bindings), k.name).toEqual([]);
      expect(k.shader.entryPoints).toContain(k.entryPoint);
    }
    expect(new Set(allKernels.map((k) => k.name)).size).toBe(allKernels.length);
    expect(kernelFamilyOf('edges_squared')?.name).toBe('edges');
  });

  it("defineKernel without a bindings list takes the shader's, in @binding order and camelCase", () => {
    const k = defineKernel({ name: 'derived', shader: SHADERS.act_backward });
    expect(k.bindings).toEqual([
      { name: 'x', kind: 'read-only-storage' },
      { name: 'bias', kind: 'read-only-storage' },
      { name: 'gradOut', kind: 'read-only-storage' },
      { name: 'gradIn', kind: 'storage' },
      { name: 'params', kind: 'uniform' },
    ]);
    const gap = { ...SHADERS.act_backward, bindings: SHADERS.act_backward.bindings.slice(1) };
    expect(() => shaderBindings(gap)).toThrow(/@binding\(1\) where @binding\(0\) was expected/);
  });

  it('defineKernel throws on a renamed, re-accessed, missing or extra binding', () => {
    const good = edgesSquaredKernel.bindings;
    const define = (bindings: readonly BindingSpec[]): unknown => defineKernel({ name: 'drifted', shader: SHADERS.edges_squared, bindings });
    expect(() => define(good)).not.toThrow();
    const renamed = good.map((b, i) => (i === 2 ? { ...b, name: 'aT' } : b));
    expect(() => define(renamed)).toThrow(/bindings\[2\] is named aT, @binding\(2\) is at/);
    const reaccessed = good.map((b, i) => (i === 0 ? { ...b, kind: 'storage' as const } : b));
    expect(() => define(reaccessed)).toThrow(/bindings\[0\] fhat is storage, the shader declares read-only-storage/);
    expect(() => define(good.slice(0, -1))).toThrow(/5 bindings listed, the shader declares 6/);
    expect(() => define([...good, { name: 'extra', kind: 'storage' }])).toThrow(/bindings\[6\] extra has no @binding\(6\)/);
    const swapped = [good[1]!, good[0]!, ...good.slice(2)];
    expect(() => define(swapped)).toThrow(/shaders\/edges_squared\.wgsl/);
    expect(() => defineKernel({ name: 'x', shader: SHADERS.edges_squared, bindings: good, entryPoint: 'other' })).toThrow(/entry point other/);
  });

  it('the extracted params layout is the WGSL struct (u32/i32/f32 fields, 4 bytes each, size in 16-byte units)', () => {
    const p = SHADERS.edges_squared.params;
    expect(p.binding).toBe('params');
    expect(p.fields.map((f) => [f.name, f.offset])).toEqual([
      ['rows', 0],
      ['r', 4],
      ['ro', 8],
      ['h', 12],
      ['r4', 16],
      ['ro8', 20],
      ['chunk_rows', 24],
      ['blocks_j', 28],
    ]);
    expect(p.size).toBe(32);
    expect(SHADERS.vec_axpy.params.size).toBe(16);
    expect(SHADERS.vec_axpy.params.fields[1]).toEqual({ name: 'alpha', type: 'f32', offset: 4 });
    // Kernels that share one params writer must share one struct.
    expect(matmulTiledKernel.shader.params).toEqual(matmulRegKernel.shader.params);
    expect(signPackAtomicKernel.shader.params).toEqual(signPackKernel.shader.params);
    expect(signPackBallotKernel.shader.params).toEqual(signPackKernel.shader.params);
  });

  it('packParams writes fields at their offsets and refuses unknown, missing or unrepresentable values', () => {
    const bytes = packParams(SHADERS.vec_axpy, { n: 7, alpha: 0.1 });
    expect(bytes.byteLength).toBe(16);
    expect(new Uint32Array(bytes.buffer, 0, 1)[0]).toBe(7);
    expect(new Float32Array(bytes.buffer, 4, 1)[0]).toBe(Math.fround(0.1));
    const mm = packParams(matmulRegKernel, {
      m: 1,
      n: 2,
      k: 3,
      use_beta: 1,
      lda: 4,
      ldb: 5,
      ldc: 6,
      stride_a: 7,
      stride_b: 8,
      stride_c: 9,
      off_a: 10,
      off_b: 11,
      off_c: 12,
      alpha: 2,
      beta: -1,
    });
    const u = new Uint32Array(mm.buffer);
    expect([...u.subarray(0, 16)]).toEqual([1, 2, 3, 1, 4, 5, 6, 0, 7, 8, 9, 0, 10, 11, 12, 0]);
    expect([...new Float32Array(mm.buffer, 64, 2)]).toEqual([2, -1]);
    // @ts-expect-error: the compiler knows the field names too
    expect(() => packParams(SHADERS.vec_axpy, { n: 1, alpha: 1, beta: 2 })).toThrow(/has no field beta/);
    // @ts-expect-error: alpha missing
    expect(() => packParams(SHADERS.vec_axpy, { n: 1 })).toThrow(/field alpha is missing/);
    expect(() => packParams(SHADERS.vec_axpy, { n: -1, alpha: 0 })).toThrow(/n \(u32\) cannot hold -1/);
    expect(() => packParams(SHADERS.vec_axpy, { n: 1.5, alpha: 0 })).toThrow(/cannot hold 1.5/);
    expect(() => packParams(SHADERS.vec_axpy, { n: 2 ** 32, alpha: 0 })).toThrow(/cannot hold/);
    expect(() => packParams(SHADERS.matmul_panel, { m: 0, n: 0, ldc: 0, offC: 0, row0: 0, col0: 0, first: 0, useBeta: 0, alpha: 0, beta: 0 })).not.toThrow();
  });

  it('the generator refuses a header comment that disagrees with the code', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibgpu-gen-'));
    try {
      const shaders = join(dir, 'shaders');
      mkdirSync(shaders);
      cpSync(join(root, 'shaders', 'include'), join(shaders, 'include'), { recursive: true });
      const gen = (): string => {
        try {
          execFileSync(process.execPath, [join(root, 'scripts', 'gen-shaders.mjs'), shaders, join(dir, 'out.ts')], { stdio: 'pipe' });
          return 'ok';
        } catch (e) {
          return String((e as { stderr: Buffer }).stderr);
        }
      };
      const src = readFileSync(join(root, 'shaders', 'edges_squared.wgsl'), 'utf8');
      writeFileSync(join(shaders, 'edges_squared.wgsl'), src);
      expect(gen()).toBe('ok');
      // The drift this check was written for: header ro4, struct ro8.
      writeFileSync(join(shaders, 'edges_squared.wgsl'), src.replace('r4, ro8, chunk_rows', 'r4, ro4, chunk_rows'));
      expect(gen()).toMatch(/header lists \{ rows, r, ro, h, r4, ro4, chunk_rows, blocks_j \}, struct Params has/);
      writeFileSync(join(shaders, 'edges_squared.wgsl'), src.replace('//   3 bt ', '//   3 bq '));
      expect(gen()).toMatch(/header row 3 is "3 bq", the code has @binding\(3\) bt/);
      writeFileSync(
        join(shaders, 'edges_squared.wgsl'),
        src.replace('//   4 part   : array<f32>       read-write', '//   4 part   : array<f32>       read-only'),
      );
      expect(gen()).toMatch(/binding part: the header says read-only-storage, the code declares storage/);
      writeFileSync(join(shaders, 'edges_squared.wgsl'), src.replace('var<storage, read_write> part', 'var<storage, read> part'));
      expect(gen()).toMatch(/binding part: the header says storage, the code declares read-only-storage/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
