// Kernels described as data. A KernelSpec names a WGSL file (one entry point), its bindings in
// @group(0) order and the defaults of its `override` constants. The scheduler is generic over
// specs: it builds explicit bind-group layouts from `bindings`, caches one pipeline per
// (shader hash, override values), and validates what a wrapper passes at dispatch time.
// The WGSL file is the one source of a kernel's interface: scripts/gen-shaders.mjs extracts its
// @binding declarations, and defineKernel takes the bindings from them (a wrapper names them in
// camelCase when it dispatches). A TS `bindings` list, where one is still written, is refused when
// it disagrees (so a renamed, reordered or re-accessed binding fails when the module loads, not
// on a GPU).

import type { ShaderBinding, ShaderSource } from '../shaders/index.generated.js';

export type BindingKind = 'storage' | 'read-only-storage' | 'uniform';

export interface BindingSpec {
  readonly name: string;
  readonly kind: BindingKind;
}

export interface KernelSpec<S extends ShaderSource = ShaderSource> {
  /** Human name, used as the label of every GPU object made for it. */
  readonly name: string;
  readonly shader: S;
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

/** The TS name of a WGSL binding: snake_case becomes camelCase (`grad_out` is `gradOut`). */
export function tsBindingName(wgslName: string): string {
  return wgslName.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Every way `bindings` disagrees with the shader's declarations; empty when they agree. */
export function bindingMismatches(bindings: readonly BindingSpec[], declared: readonly ShaderBinding[]): string[] {
  const out: string[] = [];
  if (bindings.length !== declared.length) out.push(`${bindings.length} bindings listed, the shader declares ${declared.length}`);
  for (let i = 0; i < Math.max(bindings.length, declared.length); i++) {
    const b = bindings[i];
    const d = declared[i];
    if (!b || !d) {
      out.push(b ? `bindings[${i}] ${b.name} has no @binding(${i}) in the shader` : `@binding(${i}) ${d!.name} (${d!.kind}) is missing from bindings`);
      continue;
    }
    if (b.name !== tsBindingName(d.name)) out.push(`bindings[${i}] is named ${b.name}, @binding(${i}) is ${d.name}`);
    if (b.kind !== d.kind) out.push(`bindings[${i}] ${b.name} is ${b.kind}, the shader declares ${d.kind}`);
  }
  return out;
}

/** A kernel as a wrapper describes it: without `bindings`, they are the shader's declarations. */
export type KernelDefinition<S extends ShaderSource = ShaderSource> = Omit<KernelSpec<S>, 'bindings'> & { readonly bindings?: readonly BindingSpec[] };

/** The bindings a shader declares, in @binding order, with their TS (camelCase) names. */
export function shaderBindings(shader: ShaderSource): BindingSpec[] {
  return shader.bindings.map((d, i) => {
    if (d.index !== i) throw new Error(`shaders/${shader.name}.wgsl: @binding(${d.index}) where @binding(${i}) was expected (bindings must be 0, 1, 2, …)`);
    return { name: tsBindingName(d.name), kind: d.kind };
  });
}

/** Freezes a kernel description after checking it against its shader's declared interface. */
export function defineKernel<S extends ShaderSource>(def: KernelDefinition<S>): KernelSpec<S> {
  const spec: KernelSpec<S> = { ...def, bindings: def.bindings ?? shaderBindings(def.shader) };
  const names = new Set<string>();
  for (const b of spec.bindings) {
    if (names.has(b.name)) throw new Error(`kernel ${spec.name}: duplicate binding ${b.name}`);
    names.add(b.name);
  }
  const entryPoint = spec.entryPoint ?? 'main';
  const problems = bindingMismatches(spec.bindings, spec.shader.bindings ?? []);
  if (spec.shader.entryPoints && !spec.shader.entryPoints.includes(entryPoint)) {
    problems.push(`entry point ${entryPoint} is not in shaders/${spec.shader.name}.wgsl (it has ${spec.shader.entryPoints.join(', ')})`);
  }
  if (problems.length) {
    throw new Error(
      `kernel ${spec.name}: its bindings disagree with shaders/${spec.shader.name}.wgsl:\n  ${problems.join('\n  ')}\n` +
        `The WGSL declarations are the source of truth; make the TS list match them (then run npm run gen:shaders).`,
    );
  }
  return Object.freeze({ entryPoint, ...spec });
}
