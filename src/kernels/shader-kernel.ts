// Most kernels are exactly one WGSL file under its own name with default override values; this
// is that description, so that a wrapper names its shader once.

import { defineKernel, type KernelSpec } from '../runtime/kernel-spec.js';
import { SHADERS, type ShaderName } from '../shaders/index.generated.js';

/**
 * The kernel of shaders/<name>.wgsl, named `name`, with `overrides` as the defaults of its
 * `override` constants (workgroup size, flags). Checked against the shader like defineKernel.
 */
export function shaderKernel<N extends ShaderName>(name: N, overrides?: Readonly<Record<string, number>>): KernelSpec<(typeof SHADERS)[N]> {
  return defineKernel({ name, shader: SHADERS[name], ...(overrides ? { overrides } : {}) });
}
