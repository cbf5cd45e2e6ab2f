// `ibgpu doctor`: which adapter ibgpu gets, its limits and features, the kernel variants chosen
// for it, and a quick self-check of every kernel family against its float64 CPU reference.

import { Engine } from '../runtime/engine.js';
import type { Backend } from '../gpu/acquire.js';
import type { SelfCheckResult } from '../kernels/self-check.js';

const LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'minStorageBufferOffsetAlignment',
] as const;

type Check = (e: Engine) => Promise<SelfCheckResult>;

// Kernel families come from the registry; the two end-to-end checks (a training step, a small
// build) belong to the layers above the kernels and are named here.
async function checks(): Promise<Check[]> {
  const [{ KERNEL_FAMILIES }, train, ib] = await Promise.all([
    import('../kernels/registry.js'),
    import('../train/self-check.js'),
    import('../ib/self-check.js'),
  ]);
  const kernelChecks = KERNEL_FAMILIES.flatMap((f) => (f.selfCheck ? [f.selfCheck] : []));
  return [...kernelChecks, train.selfCheck, ib.selfCheck];
}

export interface DoctorReport {
  adapter: string;
  info: Engine['info'];
  features: string[];
  limits: Record<string, number>;
  variants: {
    matmul: string;
    matmulTuning: { source: string; size: number; ms: Record<string, number | undefined>; store: string; host?: string };
    gram: string;
    signPack: string;
    eighSolver: string;
    hostEigensolver: string;
    hostSums: string;
    inputStatistics: string;
    /** The statistics pass timed on both paths (stored for later builds' choice). */
    statsPath: { gpuMs: number; hostMs: number; what: string; chosen: string };
    /** Where squared edges run, after timing both paths (stored for later builds). */
    edges: string;
  };
  edgeTiming: { gpuMs: number; hostMs: number; what: string; agreement: number };
  checks: SelfCheckResult[];
}

/** Everything `ibgpu doctor` shows, for an engine the caller owns (also used by bench/gpu-check.ts). */
export async function doctorReport(engine: Engine): Promise<DoctorReport> {
  const limits: Record<string, number> = {};
  for (const k of LIMITS) limits[k] = (engine.limits as unknown as Record<string, number>)[k]!;
  const { chooseMatmulVariant, matmulTuning, matmulVariantFor } = await import('../kernels/matmul.js');
  await chooseMatmulVariant(engine); // measured once per adapter and CPU, then read from the tuning cache
  const results: SelfCheckResult[] = [];
  for (const c of await checks()) {
    try {
      results.push(await c(engine));
    } catch (e) {
      results.push({ name: c.name || 'check', ok: false, detail: (e as Error).message, ms: 0 });
    }
  }
  const mt = matmulTuning(engine)!;
  const { tuningStore } = await import('../runtime/tuning-store.js');
  const { chooseGramVariant } = await import('../kernels/gram.js');
  const { chooseSignPackVariant } = await import('../kernels/sign-patterns.js');
  const { chooseEighSolver } = await import('../host/eig-refine.js');
  const { SPARSE_INPUT_DENSITY } = await import('../ib/stats.js');
  const { solverThreads } = await import('../host/eigh-worker.js');
  const threads = await solverThreads();
  const { hostThreadPool } = await import('../host/pool.js');
  const hostPool = await hostThreadPool();
  const { timeStatsPaths } = await import('../ib/stats-timing.js');
  const statsTiming = await timeStatsPaths(engine);
  // Both edge paths timed on one synthetic section; later builds choose by this measurement.
  const { measureEdgePaths } = await import('../ib/edge-paths.js');
  const { chooseStagePath, recordStageTiming } = await import('../runtime/stage-paths.js');
  const edgeTiming = await measureEdgePaths(engine);
  recordStageTiming(engine, 'edges', edgeTiming);
  const edgesChoice = chooseStagePath(engine, 'edges');
  return {
    adapter: engine.adapterName,
    info: engine.info,
    features: [...engine.features].sort(),
    limits,
    variants: {
      matmul: matmulVariantFor(engine),
      matmulTuning: { source: mt.source, size: mt.size, ms: mt.ms, store: tuningStore()?.location ?? 'none (this process only)', host: tuningStore()?.host },
      gram: chooseGramVariant(engine),
      signPack: chooseSignPackVariant(engine),
      eighSolver: chooseEighSolver(engine),
      hostEigensolver: threads > 0 ? `float64 on ${threads} solver thread(s) beside the GPU` : 'float64 on the main thread',
      hostSums: hostPool
        ? `float64 on ${hostPool.size} host worker thread(s) (IBGPU_HOST_THREADS overrides; 0: the main thread)`
        : 'float64 on the main thread',
      inputStatistics: engine.info.isSoftware ? `host float64 (sparse) when <= ${SPARSE_INPUT_DENSITY * 100}% of the first batch is non-zero, else gpu` : 'gpu',
      // What later builds on this adapter and host choose from the stored timing (this engine's
      // own choice may have been fixed by a self-check's config).
      statsPath: { ...statsTiming, chosen: statsTiming.hostMs < statsTiming.gpuMs ? 'host' : 'gpu' },
      edges: `${edgesChoice.path} (${edgesChoice.how}: ${edgesChoice.note})`,
    },
    edgeTiming,
    checks: results,
  };
}

export async function doctor(opts: { backend?: Backend; json?: boolean }): Promise<number> {
  const engine = await Engine.create(opts.backend ? { backend: opts.backend } : {});
  try {
    const report = await doctorReport(engine);
    const results = report.checks;
    const limits = report.limits;
    if (opts.json) {
      console.log(JSON.stringify(report, null, 2));
    } else {
      console.log(`adapter   ${report.adapter}`);
      console.log(`features  ${report.features.join(', ') || '(none)'}`);
      for (const [k, v] of Object.entries(limits)) console.log(`  ${k.padEnd(36)} ${v}`);
      const v = report.variants;
      console.log(
        `kernel choices for this adapter: matmul ${v.matmul}, gram ${v.gram}, sign packing ${v.signPack}, eigh() for library use ${v.eighSolver} (builds: host float64)`,
      );
      const times = Object.entries(v.matmulTuning.ms)
        .map(([k, ms]) => `${k} ${ms!.toFixed(0)} ms`)
        .join(', ');
      console.log(`matmul autotune (${v.matmulTuning.size}^3, ${v.matmulTuning.source === 'cache' ? 'from the tuning cache' : 'measured now'}): ${times}`);
      console.log(`tuning cache: ${v.matmulTuning.store}${v.matmulTuning.host ? ` (host ${v.matmulTuning.host})` : ''}`);
      console.log(`input-layer statistics: ${v.inputStatistics}`);
      const sp = v.statsPath;
      console.log(
        `statistics pass (${sp.what}): gpu ${sp.gpuMs.toFixed(1)} ms, host ${sp.hostMs.toFixed(1)} ms -> builds use ${sp.chosen} unless the config sets stage_paths.stats (stored in the tuning cache)`,
      );
      console.log(`host eigensolver: ${v.hostEigensolver}`);
      console.log(`transformer closed forms' per-sample sums: ${v.hostSums}; linear sections and node layer 0 with vocabulary ≤ N: host float64, no data pass`);
      const et = report.edgeTiming;
      console.log(
        `squared edges (${et.what}): gpu ${et.gpuMs.toFixed(0)} ms, host float64 ${et.hostMs.toFixed(0)} ms (paths agree to ${et.agreement.toExponential(1)} of max E); builds use ${v.edges}`,
      );
      console.log('self-checks against float64 CPU references:');
      for (const r of results) console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${r.name.padEnd(16)} ${r.ms.toFixed(0).padStart(6)} ms  ${r.detail}`);
    }
    return results.every((r) => r.ok) ? 0 : 1;
  } finally {
    engine.dispose();
  }
}
