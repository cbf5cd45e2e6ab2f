// The static cache: shader modules, bind-group layouts and compute pipelines, never evicted.
// Keys are the shader's content hash plus the override values, so two specs sharing a WGSL file
// with different constants get different pipelines and an edited shader never hits a stale one.

import type { KernelSpec } from './kernel-spec.js';

export interface CachedPipeline {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

export class PipelineCache {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, CachedPipeline>();
  compiled = 0;

  constructor(private readonly device: GPUDevice) {}

  static key(spec: KernelSpec, overrides: Record<string, number>): string {
    const o = Object.keys(overrides)
      .sort()
      .map((k) => `${k}=${overrides[k]}`)
      .join(',');
    return `${spec.shader.name}@${spec.shader.hash}:${spec.entryPoint ?? 'main'}[${o}]`;
  }

  get(spec: KernelSpec, overrides: Record<string, number>): CachedPipeline {
    const key = PipelineCache.key(spec, overrides);
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    let module = this.modules.get(spec.shader.hash);
    if (!module) {
      module = this.device.createShaderModule({ code: spec.shader.code, label: spec.shader.name });
      this.modules.set(spec.shader.hash, module);
    }
    const layout = this.device.createBindGroupLayout({
      label: spec.name,
      entries: spec.bindings.map((b, i) => ({
        binding: i,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.kind },
      })),
    });
    const pipeline = this.device.createComputePipeline({
      label: spec.name,
      layout: this.device.createPipelineLayout({ label: spec.name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: overrides },
    });
    this.compiled++;
    const entry = { pipeline, layout };
    this.pipelines.set(key, entry);
    return entry;
  }
}
