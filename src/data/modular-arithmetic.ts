// rib's modular-arithmetic dataset and its train/test split (SPEC-transformers §3.1):
// items (a, b, p) for a = 0..p−1 (outer) and b = 0..p−1 (inner), index a·p + b; train is the first
// ⌊p²·frac_train⌋ entries of torch.randperm(p², seed) in permutation order, test the rest
// (torch.utils.data.random_split). The permutation is torch's own, reproduced bit for bit
// (src/data/torch-randperm.ts), so every modulus and seed gives rib's split.

import { IbgpuError } from '../errors.js';
import { torchRandperm } from './torch-randperm.js';

export type ModularFn = 'add' | 'subtract' | 'x2xyy2';
export type ReturnSet = 'train' | 'test' | 'all';

export interface ModularArithmeticSpec {
  modulus: number;
  fn_name: ModularFn;
  frac_train: number;
  seed: number;
  return_set: ReturnSet;
}

export interface TokenDataset {
  /** [n, P] row-major token ids. */
  tokens: Int32Array;
  n: number;
  P: number;
  /** Labels when the dataset has them (only for accuracy; never used by the build). */
  labels?: Int32Array;
  /** Where the sequences came from, for the manifest. */
  source: string;
}

function bad(msg: string, hint?: string): IbgpuError {
  return new IbgpuError('BAD_CONFIG', msg, hint);
}

/** Parses rib's `dataset` block of type modular_arithmetic (rib's defaults: add, 0.3, seed 0, train). */
export function parseModularArithmetic(raw: Record<string, unknown>, fallback: Partial<ModularArithmeticSpec> = {}): ModularArithmeticSpec {
  const modulus = raw['modulus'] ?? fallback.modulus;
  if (typeof modulus !== 'number' || !Number.isInteger(modulus) || modulus < 2)
    throw bad(`dataset.modulus must be an integer ≥ 2, got ${JSON.stringify(modulus)}`);
  const fn = raw['fn_name'] ?? fallback.fn_name ?? 'add';
  if (fn !== 'add' && fn !== 'subtract' && fn !== 'x2xyy2') throw bad(`dataset.fn_name '${String(fn)}' is not allowed`, "use 'add', 'subtract' or 'x2xyy2'");
  const frac = raw['frac_train'] ?? fallback.frac_train ?? 0.3;
  if (typeof frac !== 'number' || !(frac > 0 && frac <= 1)) throw bad(`dataset.frac_train must be in (0, 1], got ${JSON.stringify(frac)}`);
  const seed = raw['seed'] ?? fallback.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0) throw bad(`dataset.seed must be a non-negative integer, got ${JSON.stringify(seed)}`);
  const rs = raw['return_set'] ?? fallback.return_set ?? 'train';
  if (rs !== 'train' && rs !== 'test' && rs !== 'all') throw bad(`dataset.return_set '${String(rs)}' is not allowed`, "use 'train', 'test' or 'all'");
  return { modulus, fn_name: fn, frac_train: frac, seed, return_set: rs };
}

function label(fn: ModularFn, a: number, b: number, p: number): number {
  switch (fn) {
    case 'add':
      return (a + b) % p;
    case 'subtract':
      return (((a - b) % p) + p) % p;
    case 'x2xyy2':
      return (a * a + a * b + b * b) % p;
  }
}

/** The item indices of the split, in rib's order. */
export function modularSplitIndices(spec: ModularArithmeticSpec): Int32Array {
  const total = spec.modulus * spec.modulus;
  if (spec.return_set === 'all') return Int32Array.from({ length: total }, (_, i) => i);
  // Python's int(frac · len), as torch's random_split gets it from rib's train_test_split.
  const trainSize = Math.floor(spec.frac_train * total);
  const perm = torchRandperm(total, spec.seed);
  return spec.return_set === 'train' ? perm.slice(0, trainSize) : perm.slice(trainSize);
}

export function modularArithmetic(spec: ModularArithmeticSpec): TokenDataset {
  const p = spec.modulus;
  const idx = modularSplitIndices(spec);
  const n = idx.length;
  const tokens = new Int32Array(n * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const a = Math.floor(idx[i]! / p);
    const b = idx[i]! % p;
    tokens[i * 3] = a;
    tokens[i * 3 + 1] = b;
    tokens[i * 3 + 2] = p; // the "=" token
    labels[i] = label(spec.fn_name, a, b, p);
  }
  return {
    tokens,
    n,
    P: 3,
    labels,
    source: `modular_arithmetic(modulus ${p}, ${spec.fn_name}, frac_train ${spec.frac_train}, seed ${spec.seed}, ${spec.return_set})`,
  };
}
