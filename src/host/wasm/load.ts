// Loads the host's WebAssembly modules (src/host/wasm/*.wat, assembled into
// modules.generated.ts by scripts/gen-wasm.mjs): compiled once per thread, synchronously, so that
// worker threads and the calling thread set up their kernels without awaiting anything. A module is
// unusable where WebAssembly or its SIMD is missing (validate fails), where synchronous compilation
// is refused (a browser's main thread limits it to small modules), or when IBGPU_HOST_WASM=0; the
// callers then run their JS loops, which give the same bits.

import { WASM_MODULES, type WasmModuleName } from './modules.generated.js';

const compiled = new Map<WasmModuleName, WebAssembly.Module | null>();

function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** False when IBGPU_HOST_WASM=0 (read on every call, so that a test or a user can switch). */
export function hostWasmEnabled(): boolean {
  const env = typeof process !== 'undefined' ? process.env : undefined;
  return env?.['IBGPU_HOST_WASM'] !== '0';
}

/** The compiled module `name` on this thread, or null where it cannot run (see the module comment). */
export function hostWasmModule(name: WasmModuleName): WebAssembly.Module | null {
  if (!hostWasmEnabled()) return null;
  let m = compiled.get(name);
  if (m !== undefined) return m;
  m = null;
  if (typeof WebAssembly === 'object') {
    try {
      const bytes = decodeBase64(WASM_MODULES[name].base64);
      if (WebAssembly.validate(bytes)) m = new WebAssembly.Module(bytes);
    } catch {
      m = null;
    }
  }
  compiled.set(name, m);
  return m;
}

/**
 * A fresh instance of `name` whose memory holds at least `bytes` (grown once here; the caller's
 * views stay valid because it never grows again), or undefined where the module cannot run or
 * the memory cannot be had. Layouts past 2 GiB are refused: offsets are passed as i32.
 */
export function hostWasmInstance<T>(name: WasmModuleName, bytes: number): (T & { memory: WebAssembly.Memory }) | undefined {
  const mod = hostWasmModule(name);
  if (!mod || bytes > 2 ** 31) return undefined;
  try {
    const ex = new WebAssembly.Instance(mod, {}).exports as unknown as T & { memory: WebAssembly.Memory };
    const have = ex.memory.buffer.byteLength;
    if (bytes > have) ex.memory.grow(Math.ceil((bytes - have) / 65536));
    return ex;
  } catch {
    return undefined;
  }
}

/** Byte offsets of consecutive 16-byte-aligned regions, for a kernel's memory layout. */
export class WasmLayout {
  top = 0;
  region(bytes: number): number {
    const at = this.top;
    this.top = Math.ceil((this.top + Math.max(0, bytes)) / 16) * 16;
    return at;
  }
}
