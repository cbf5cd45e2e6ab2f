// Kernels described as data. A KernelSpec names a WGSL file (one entry point), its bindings in
// @group(0) order and the defaults of its `override` constants. The scheduler is generic over
// specs: it builds explicit bind-group layouts from `bindings`, caches one pipeline per
// (shader hash, override values), and validates what a wrapper passes at dispatch time.

import type { ShaderSource } from '../shaders/index.generated.js';

export type BindingKind = 'storage' | 'read-only-storage' | 'uniform';

export interface BindingSpec {
  readonly name: string;
  readonly kind: BindingKind;
}

export interface KernelSpec {
  /** Human name, used as the label of every GPU object made for it. */
  readonly name: string;
  readonly shader: ShaderSource;
  readonly entryPoint?: string;
  /** @binding(i) of @group(0) is bindings[i]. */
  readonly bindings: readonly BindingSpec[];
  /** Defaults of the shader's `override` constants (workgroup size, tile sizes, flags). */
  readonly overrides?: Readonly<Record<string, number>>;
}

/** A storage binding may be a whole buffer or a window of one (offset must respect alignment). */
export interface BufferWindow {
  readonly buffer: GPUBuffer;
  readonly offset?: number;
  readonly size?: number;
}

/** Uniform data is passed as a typed array; the scheduler owns the uniform buffer. */
export type BindingValue = GPUBuffer | BufferWindow | ArrayBufferView;

export function defineKernel(spec: KernelSpec): KernelSpec {
  const names = new Set<string>();
  for (const b of spec.bindings) {
    if (names.has(b.name)) throw new Error(`kernel ${spec.name}: duplicate binding ${b.name}`);
    names.add(b.name);
  }
  return Object.freeze({ entryPoint: 'main', ...spec });
}
