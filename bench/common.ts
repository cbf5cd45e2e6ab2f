// Shared benchmark plumbing: benny suites whose cases are async GPU or CPU jobs, plus a results
// file per suite and adapter (bench/results/<adapter-slug>/<suite>.json) with the machine.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import benny from 'benny';
import type { Engine } from '../src/runtime/engine.js';

export interface BenchRow {
  case: string;
  /** Median wall-clock milliseconds per run (benny). */
  ms: number;
  /** Useful work per run, for GFLOP/s. */
  flops?: number;
  gflops?: number;
  /** GPU-side milliseconds from timestamp queries, when the adapter has them. */
  gpuMs?: number;
  /** GPU time divided by CPU reference time for the same case, when both ran. */
  speedupVsCpu?: number;
  note?: string;
}

export interface BenchRecord {
  suite: string;
  date: string;
  adapter: string;
  backend: string;
  machine: {
    cpus: string;
    cores: number;
    memGiB: number;
    platform: string;
    node: string;
    loadAvg1m?: number;
    /** /proc/cpuinfo family / model / stepping and the vector extensions llvmpipe can use. */
    cpu?: CpuId;
    /** llvmpipe settings from the environment (LP_NUM_THREADS, LP_NATIVE_VECTOR_WIDTH). */
    env?: Record<string, string>;
  };
  rows: BenchRow[];
}

export interface CpuId {
  vendor: string;
  family: number;
  model: number;
  stepping: number;
  /** Vector extensions present (of avx, avx2, fma, avx512f, avx512vl, avx512bw, avx512dq). */
  vector: string[];
}

/** CPU identification from /proc/cpuinfo (Linux); undefined elsewhere. */
export function cpuId(): CpuId | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  const first = text.split('\n\n')[0] ?? '';
  const field = (name: string): string => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(first)?.[1]?.trim() ?? '';
  const flags = new Set(field('flags').split(/\s+/));
  return {
    vendor: field('vendor_id'),
    family: Number(field('cpu family')),
    model: Number(field('model')),
    stepping: Number(field('stepping')),
    vector: ['avx', 'avx2', 'fma', 'avx512f', 'avx512vl', 'avx512bw', 'avx512dq'].filter((f) => flags.has(f)),
  };
}

/** The llvmpipe / gallivm environment settings that change generated code or threading. */
export function softwareRendererEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['LP_NUM_THREADS', 'LP_NATIVE_VECTOR_WIDTH', 'LP_DEBUG', 'GALLIVM_DEBUG', 'LP_PERF']) {
    const v = process.env[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

export function machineInfo(): BenchRecord['machine'] {
  const cpus = os.cpus();
  return {
    cpus: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    // Other work on the machine skews CPU-adapter timings: recorded so a noisy run is visible.
    loadAvg1m: Math.round(os.loadavg()[0]! * 100) / 100,
    cpu: cpuId(),
    env: softwareRendererEnv(),
  };
}

export function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60);
}

const here = dirname(fileURLToPath(import.meta.url));
const benchRoot = here.endsWith('dist/bench') ? join(here, '..', '..', 'bench') : here;

/**
 * Times `fn` with benny (benchmark.js underneath: adaptive sample count, outlier-robust stats)
 * and returns the median milliseconds per call. `fn` returns a promise for GPU jobs.
 */
/**
 * Caps on every timeCase in this process (a smoke run such as `gpu-check --short` wants one
 * sample per case, not statistics).
 */
export const benchLimits: { maxTime?: number; minSamples?: number } = {};

export async function timeCase(name: string, fn: () => unknown, opts: { minSamples?: number; maxTime?: number } = {}): Promise<number> {
  let ms = NaN;
  if (benchLimits.maxTime !== undefined) opts = { ...opts, maxTime: Math.min(opts.maxTime ?? 2, benchLimits.maxTime) };
  if (benchLimits.minSamples !== undefined) opts = { ...opts, minSamples: Math.min(opts.minSamples ?? 3, benchLimits.minSamples) };
  await benny.suite(
    name,
    benny.add(
      name,
      async () => {
        await fn();
      },
      { minSamples: opts.minSamples ?? 3, maxTime: opts.maxTime ?? 2, delay: 0 },
    ),
    benny.complete((summary) => {
      const r = summary.results[0] as unknown as { details?: { median?: number } } | undefined;
      ms = (r?.details?.median ?? NaN) * 1000;
    }),
  );
  return ms;
}

export function saveRecord(suite: string, engine: Pick<Engine, 'adapterName' | 'info'> | undefined, rows: BenchRow[]): string {
  const rec: BenchRecord = {
    suite,
    date: new Date().toISOString(),
    adapter: engine?.adapterName ?? 'cpu only',
    backend: engine?.info.backend ?? 'cpu',
    machine: machineInfo(),
    rows,
  };
  const file = join(benchRoot, 'results', slug(rec.adapter), `${suite}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(rec, null, 2) + '\n');
  return file;
}

export function printRows(suite: string, rows: BenchRow[]): void {
  console.log(`\n${suite}`);
  console.table(
    rows.map((r) => ({
      case: r.case,
      ms: r.ms.toFixed(2),
      'GFLOP/s': r.gflops?.toFixed(2) ?? '',
      'gpu ms': r.gpuMs?.toFixed(2) ?? '',
      'x vs CPU': r.speedupVsCpu?.toFixed(1) ?? '',
      note: r.note ?? '',
    })),
  );
}

/** The build fields rib's benchmark jobs (its mnist.yaml and modular_arithmetic.yaml) share. */
export const RIB_JOB_BUILD = {
  basis_formula: 'jacobian',
  edge_formula: 'squared',
  integration_method: 'gradient',
  n_intervals: 0,
  center: true,
  truncation_threshold: 1e-10,
  rotate_final_node_layer: false,
};

/**
 * rib's MNIST job (its mnist.yaml, as time_mnist.sh runs it): the build fields the side-by-side and
 * host-edge benchmarks share; they add the model, data and their own switches.
 */
export const RIB_MNIST_BUILD = {
  ...RIB_JOB_BUILD,
  node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'],
  rib_compat: true,
  batch_size: 1000,
  calculate_edges: true,
};
