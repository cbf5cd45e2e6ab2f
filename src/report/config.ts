// The `modularity` block of a build config (validated with the rest of the config in
// src/ib/config.ts) and its translation into clustering options.

import { IbgpuError } from '../errors.js';
import { EDGE_NORMS, type EdgeNorm, type ModularityOptions } from './modularity.js';

/** Config block `modularity` (all keys optional): the clustering options under the config's snake_case names. */
export type ModularityConfig = Omit<ModularityOptions, 'includeOutput'> & { include_output?: boolean };

export function parseModularityConfig(raw: unknown): ModularityConfig {
  const bad = (m: string, hint?: string) => new IbgpuError('BAD_CONFIG', `config.modularity${m}`, hint);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(' must be an object like {"gamma": 1, "norm": "sqrt"}');
  const r = raw as Record<string, unknown>;
  const known = ['gamma', 'seed', 'iterations', 'norm', 'epsilon', 'quantile', 'include_output'];
  for (const k of Object.keys(r)) if (!known.includes(k)) throw bad(`: unknown key '${k}'`, `known keys: ${known.join(', ')}`);
  const out: ModularityConfig = {};
  const num = (k: string, ok: (v: number) => boolean, what: string): number | undefined => {
    if (!(k in r)) return undefined;
    const v = r[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw bad(`.${k} must be ${what}, got ${JSON.stringify(v)}`);
    return v;
  };
  const gamma = num('gamma', (v) => v >= 0, 'a number >= 0');
  if (gamma !== undefined) out.gamma = gamma;
  const seed = num('seed', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  if (seed !== undefined) out.seed = seed;
  const it = num('iterations', (v) => Number.isInteger(v) && v >= 1 && v <= 1000, 'an integer in [1, 1000]');
  if (it !== undefined) out.iterations = it;
  const eps = num('epsilon', (v) => v > 0, 'a positive number');
  if (eps !== undefined) out.epsilon = eps;
  const q = num('quantile', (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  if (q !== undefined) out.quantile = q;
  if ('norm' in r) {
    const v = r['norm'];
    if (typeof v !== 'string' || !(EDGE_NORMS as readonly string[]).includes(v))
      throw bad(`.norm = ${JSON.stringify(v)} is not allowed`, `use one of ${EDGE_NORMS.join(', ')}`);
    out.norm = v as EdgeNorm;
  }
  if ('include_output' in r) {
    if (typeof r['include_output'] !== 'boolean') throw bad('.include_output must be true or false');
    out.include_output = r['include_output'];
  }
  if ((out.epsilon !== undefined || out.quantile !== undefined) && (out.norm ?? 'sqrt') !== 'log') {
    throw bad(': epsilon and quantile apply to norm "log" only', 'add "norm": "log"');
  }
  return out;
}

export function modularityOptions(c: ModularityConfig | undefined): ModularityOptions {
  if (!c) return {};
  const { include_output, ...o } = c;
  return include_output === undefined ? o : { ...o, includeOutput: include_output };
}
