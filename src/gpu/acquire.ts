// Device acquisition for Node (Dawn through the `webgpu` package) and browsers (navigator.gpu).
//
// Node order for backend 'auto': a real GPU through Dawn's default backend (Vulkan/Metal/D3D12),
// then Mesa llvmpipe through Dawn's OpenGL backend (compatibility feature level; the fastest
// software path on Linux), then SwiftShader Vulkan from Debian's chromium-common.
//
// Lifetime: the object returned by Dawn's create() owns the native instance and adapters/devices
// do NOT keep it alive. If it becomes unreachable a later GC tears the instance down under our
// feet (SIGSEGV / hangs). Instances are therefore kept for the process's life, one per backend
// (dawnInstances), and GpuContext.instance names the one a context uses.

import { IbgpuError } from '../errors.js';

export type Backend = 'auto' | 'gpu' | 'vulkan' | 'opengl' | 'opengles' | 'swiftshader' | 'metal' | 'd3d12' | 'browser';

export const BACKENDS: readonly Backend[] = ['auto', 'gpu', 'vulkan', 'opengl', 'opengles', 'swiftshader', 'metal', 'd3d12', 'browser'];

export interface AcquireOptions {
  /** Which backend; defaults to env IBGPU_BACKEND, then 'auto'. */
  backend?: Backend;
  /** Features to require if the adapter has them (always optional). */
  optionalFeatures?: readonly GPUFeatureName[];
  /** Called with human-readable notes about the probing (which backends failed and why). */
  log?: (msg: string) => void;
}

export interface AdapterDescription {
  backend: Exclude<Backend, 'auto' | 'gpu'> | 'gpu';
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isSoftware: boolean;
  featureLevel: 'core' | 'compatibility';
}

export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly info: AdapterDescription;
  readonly features: ReadonlySet<string>;
  /** The Dawn instance (Node) kept alive on purpose; undefined in browsers. */
  readonly instance: unknown;
}

/** Limits we always raise to the adapter's maximum (compat devices default to tiny values). */
const RAISED_LIMITS = [
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxBindingsPerBindGroup',
] as const;

const DEFAULT_OPTIONAL_FEATURES: GPUFeatureName[] = ['timestamp-query', 'subgroups', 'shader-f16'];

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

const INSTALL_HINT =
  'install a GPU driver with Vulkan support, or a software adapter: ' +
  '`apt-get install -y libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri` (Mesa llvmpipe, used through OpenGL) ' +
  'or `apt-get install -y chromium-common libvulkan1` (SwiftShader Vulkan); ' +
  'then choose it with IBGPU_BACKEND=opengl or IBGPU_BACKEND=swiftshader';

function envBackend(): Backend | undefined {
  const g = globalThis as { process?: { env?: Record<string, string | undefined> } };
  const v = g.process?.env?.['IBGPU_BACKEND'];
  if (!v) return undefined;
  if (!(BACKENDS as readonly string[]).includes(v)) {
    throw new IbgpuError('BAD_CONFIG', `IBGPU_BACKEND=${v} is not a known backend`, `use one of ${BACKENDS.join(', ')}`);
  }
  return v as Backend;
}

function isNode(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } } };
  return typeof g.process?.versions?.node === 'string';
}

export async function acquireGpu(opts: AcquireOptions = {}): Promise<GpuContext> {
  const backend = opts.backend ?? envBackend() ?? 'auto';
  const log = opts.log ?? (() => {});
  const wanted = opts.optionalFeatures ?? DEFAULT_OPTIONAL_FEATURES;
  if (backend === 'browser' || !isNode()) return acquireBrowser(wanted);

  const order: Backend[] = backend === 'auto' ? ['gpu', 'opengl', 'swiftshader'] : [backend];
  const failures: string[] = [];
  // On Linux a real GPU is reached through Vulkan. Without any Vulkan driver manifest installed
  // the probe can only fail, and Dawn reports that failure on stderr ("vkCreateInstance: Found
  // no drivers!"), which reads like an error to users; skip it.
  if (backend === 'auto' && !(await vulkanDriverInstalled())) {
    order.shift();
    failures.push('gpu: no Vulkan driver installed');
    log('backend gpu unavailable (no Vulkan driver manifest in the standard ICD directories)');
  }
  for (const b of order) {
    try {
      const ctx = await acquireNode(b, wanted, backend === 'auto');
      if (ctx) return ctx;
      failures.push(`${b}: no adapter`);
    } catch (e) {
      failures.push(`${b}: ${(e as Error).message}`);
    }
    log(`backend ${b} unavailable (${failures[failures.length - 1]})`);
  }
  throw new IbgpuError('NO_ADAPTER', `no usable WebGPU adapter (${failures.join('; ')})`, INSTALL_HINT);
}

/**
 * Whether a Vulkan loader could find a driver: a manifest in the standard ICD directories (or one
 * named by the loader's environment variables). Always true off Linux, where other backends are used.
 */
async function vulkanDriverInstalled(): Promise<boolean> {
  const g = globalThis as unknown as { process: { platform: string; env: Record<string, string | undefined> } };
  if (g.process.platform !== 'linux') return true;
  const env = g.process.env;
  if (env['VK_ICD_FILENAMES'] || env['VK_DRIVER_FILES'] || env['VK_ADD_DRIVER_FILES']) return true;
  const fs = await import('node:fs');
  const path = await import('node:path');
  const bases = [
    ...(env['XDG_CONFIG_DIRS'] ?? '/etc/xdg').split(':'),
    '/etc',
    ...(env['XDG_DATA_DIRS'] ?? '/usr/local/share:/usr/share').split(':'),
    '/usr/local/share',
    '/usr/share',
    ...(env['HOME'] ? [path.join(env['HOME'], '.local', 'share')] : []),
  ];
  return bases.some((b) => {
    try {
      return fs.readdirSync(path.join(b, 'vulkan', 'icd.d')).some((f) => f.endsWith('.json'));
    } catch {
      return false;
    }
  });
}

type DawnModule = { create: (opts: string[]) => GPU; globals: Record<string, unknown> };
let dawnModule: DawnModule | undefined;

/**
 * One Dawn instance per backend (and Vulkan driver choice) for the life of the process, shared by
 * every engine on it. Dawn tears an instance down when the collector reclaims its JS object, in
 * whatever order relative to the objects of its adapters and devices (a probe's unused adapter,
 * buffers of a disposed engine): a rare SIGSEGV when the instance goes first. Kept here, no
 * instance is ever collected, and their number stays bounded by the backends tried however many
 * engines a process creates and disposes.
 */
const dawnInstances = new Map<string, GPU>();

async function loadDawn(): Promise<DawnModule> {
  if (dawnModule) return dawnModule;
  const name = 'webgpu';
  try {
    // The specifier lives in a variable so browser bundlers leave the Node-only addon alone.
    dawnModule = (await import(/* @vite-ignore */ name)) as DawnModule;
  } catch (e) {
    throw new IbgpuError('NO_ADAPTER', `cannot load the 'webgpu' package (${(e as Error).message})`, 'run `npm install webgpu`');
  }
  // GPUBufferUsage, GPUMapMode, ... as globals, the way browsers provide them.
  for (const [k, v] of Object.entries(dawnModule.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  return dawnModule;
}

async function acquireNode(backend: Backend, wanted: readonly GPUFeatureName[], auto: boolean): Promise<GpuContext | null> {
  const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
  const dawn = await loadDawn();
  let createOpts: string[];
  let featureLevel: 'core' | 'compatibility' = 'core';
  switch (backend) {
    case 'gpu':
      createOpts = [];
      break;
    case 'vulkan':
      createOpts = ['backend=vulkan'];
      break;
    case 'metal':
      createOpts = ['backend=metal'];
      break;
    case 'd3d12':
      createOpts = ['backend=d3d12'];
      break;
    case 'opengl':
    case 'opengles':
      // Without a display, Mesa's EGL needs the surfaceless platform or eglInitialize fails.
      env['EGL_PLATFORM'] ??= 'surfaceless';
      createOpts = [`backend=${backend}`];
      featureLevel = 'compatibility'; // Dawn's GL backend offers compatibility only.
      break;
    case 'swiftshader': {
      const fs = await import('node:fs');
      if (!env['VK_ICD_FILENAMES']) {
        if (!fs.existsSync(SWIFTSHADER_ICD)) {
          throw new IbgpuError('NO_ADAPTER', `SwiftShader ICD not found at ${SWIFTSHADER_ICD}`, '`apt-get install -y chromium-common libvulkan1`');
        }
        env['VK_ICD_FILENAMES'] = SWIFTSHADER_ICD;
      }
      if (!env['XDG_RUNTIME_DIR']) {
        const os = await import('node:os');
        const path = await import('node:path');
        env['XDG_RUNTIME_DIR'] = fs.mkdtempSync(path.join(os.tmpdir(), 'ibgpu-xdg-'));
      }
      createOpts = ['backend=vulkan'];
      break;
    }
    default:
      throw new IbgpuError('BAD_CONFIG', `backend ${backend} is not available in Node`);
  }
  const key = `${backend} ${createOpts.join(' ')} ${env['VK_ICD_FILENAMES'] ?? ''}`;
  let instance = dawnInstances.get(key);
  if (!instance) {
    instance = dawn.create(createOpts);
    dawnInstances.set(key, instance);
  }
  const adapter = await instance.requestAdapter({ featureLevel, powerPreference: 'high-performance' });
  if (!adapter) return null;
  const info = describe(adapter, backend, featureLevel);
  // In 'auto' mode a real GPU is wanted first; a fallback (software) Vulkan adapter is tried later
  // explicitly as 'swiftshader' (after the faster llvmpipe).
  if (auto && backend === 'gpu' && info.isSoftware) return null;
  const device = await requestDevice(adapter, wanted);
  return { device, adapter, info, features: new Set(device.features), instance };
}

async function acquireBrowser(wanted: readonly GPUFeatureName[]): Promise<GpuContext> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!nav?.gpu) {
    throw new IbgpuError('NO_ADAPTER', 'this browser has no navigator.gpu', 'use a WebGPU-enabled browser (Chromium: --enable-unsafe-webgpu on Linux)');
  }
  const adapter = await nav.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new IbgpuError('NO_ADAPTER', 'navigator.gpu.requestAdapter() returned null', 'enable WebGPU in the browser');
  const device = await requestDevice(adapter, wanted);
  return { device, adapter, info: describe(adapter, 'browser', 'core'), features: new Set(device.features), instance: undefined };
}

async function requestDevice(adapter: GPUAdapter, wanted: readonly GPUFeatureName[]): Promise<GPUDevice> {
  const requiredLimits: Record<string, number> = {};
  const al = adapter.limits as unknown as Record<string, number>;
  for (const k of RAISED_LIMITS) {
    if (typeof al[k] === 'number') requiredLimits[k] = al[k];
  }
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  return adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'ibgpu' });
}

function describe(adapter: GPUAdapter, backend: Backend, featureLevel: 'core' | 'compatibility'): AdapterDescription {
  const i = adapter.info;
  const device = i?.device ?? '';
  const description = i?.description ?? '';
  const architecture = i?.architecture ?? '';
  const text = `${i?.vendor} ${architecture} ${device} ${description}`.toLowerCase();
  const software =
    (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    (i as unknown as { isFallbackAdapter?: boolean })?.isFallbackAdapter === true ||
    /llvmpipe|swiftshader|lavapipe|softpipe|warp/.test(text);
  return {
    backend: backend === 'auto' ? 'gpu' : backend,
    vendor: i?.vendor ?? '',
    architecture,
    device,
    description,
    isSoftware: software,
    featureLevel,
  };
}

/** One line naming the adapter, e.g. for benchmark records and log headers. */
export function adapterName(info: AdapterDescription): string {
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length > 0);
  return `${parts.join(' / ') || 'unknown adapter'} [${info.backend}${info.isSoftware ? ', software' : ''}]`;
}
