// Uniform params written by field name. The layout comes from the shader itself (extracted by
// scripts/gen-shaders.mjs), so a wrapper cannot write a field into another field's slot, forget
// one, or keep writing a field the shader no longer has: the compiler checks the names, and
// packParams checks the values (u32/i32 must be integers in range; positional arrays wrapped
// negative or fractional values silently).

import type { ShaderParamField, ShaderSource } from '../shaders/index.generated.js';
import type { KernelSpec } from './kernel-spec.js';

type FieldOf<S extends ShaderSource> = S['params'] extends { readonly fields: readonly (infer F)[] } ? F : never;
type FieldName<S extends ShaderSource> = FieldOf<S> extends { readonly name: infer N extends string } ? N : never;
/** Padding fields (`pad`, `pad0`, …) exist for layout only; they default to 0. */
type PadName = 'pad' | `pad${number}`;

/** The values of a shader's params struct, by WGSL field name. */
export type ParamValues<S extends ShaderSource> = { readonly [K in Exclude<FieldName<S>, PadName>]: number } & {
  readonly [K in Extract<FieldName<S>, PadName>]?: number;
};

/** The shader of a kernel (a union of kernels gives the union of their shaders). */
export type ShaderOf<K> = K extends KernelSpec<infer S> ? S : K extends ShaderSource ? K : never;

const isPad = (name: string): boolean => /^pad\d*$/.test(name);

function writeField(view: DataView, f: ShaderParamField, v: number, where: string): void {
  if (f.type === 'f32') {
    view.setFloat32(f.offset, v, true);
    return;
  }
  const [lo, hi] = f.type === 'u32' ? [0, 2 ** 32 - 1] : [-(2 ** 31), 2 ** 31 - 1];
  if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${where}: field ${f.name} (${f.type}) cannot hold ${v}`);
  if (f.type === 'u32') view.setUint32(f.offset, v, true);
  else view.setInt32(f.offset, v, true);
}

/** The bytes of a kernel's uniform params struct, laid out as its WGSL declares them. */
export function packParams<K extends KernelSpec | ShaderSource>(kernel: K, values: ParamValues<ShaderOf<K>>): Uint8Array {
  const shader: ShaderSource = 'shader' in kernel ? kernel.shader : kernel;
  const layout = shader.params;
  const where = `params of shaders/${shader.name}.wgsl`;
  if (!layout) throw new Error(`${where}: the shader binds no uniform params struct`);
  const given = values as Readonly<Record<string, number | undefined>>;
  const known = new Set(layout.fields.map((f) => f.name));
  for (const k of Object.keys(given)) {
    if (!known.has(k)) throw new Error(`${where}: struct ${layout.struct} has no field ${k} (it has ${[...known].join(', ')})`);
  }
  const bytes = new Uint8Array(layout.size);
  const view = new DataView(bytes.buffer);
  for (const f of layout.fields) {
    const v = given[f.name];
    if (v === undefined) {
      if (isPad(f.name)) continue;
      throw new Error(`${where}: field ${f.name} is missing`);
    }
    writeField(view, f, v, where);
  }
  return bytes;
}
