// Transformer datasets: torch.randperm reproduced bit for bit (rib's modular-arithmetic split,
// SPEC-transformers §3.1), token .npy loading with its errors, and rib's text windows (§3.2).

import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { modularArithmetic, parseModularArithmetic } from '../src/data/modular-arithmetic.js';
import { textWindows, tokensFromTensor } from '../src/data/tokens.js';
import { Mt19937, torchRandperm } from '../src/data/torch-randperm.js';
import { loadNpy } from '../src/io/npy.js';

// rib's modular-addition data beside the repository (../shared), when present; never committed.
const RIB_MODADD = resolve(import.meta.dirname, '..', '..', 'shared', 'data', 'rib-modadd', 'inputs.npy');

describe('torch.randperm', () => {
  it('MT19937 matches the reference generator (seed 5489: first output 3499211612, 10000th 4123659995)', () => {
    const g = new Mt19937(5489);
    expect(g.next()).toBe(3499211612);
    for (let i = 1; i < 9999; i++) g.next();
    expect(g.next()).toBe(4123659995);
  });

  it("reproduces rib's modadd split (p = 113, seed 0): first train and test indices, train sum", () => {
    const perm = torchRandperm(12769, 0);
    expect(Array.from(perm.slice(0, 10))).toEqual([4182, 2608, 269, 825, 4847, 9224, 6227, 116, 5276, 2052]);
    expect(Array.from(perm.slice(3830, 3833))).toEqual([6270, 7906, 1486]);
    let s = 0;
    for (let i = 0; i < 3830; i++) s += perm[i]!;
    expect(s).toBe(24359580);
    expect(new Set(perm).size).toBe(12769);
  });

  it.skipIf(!existsSync(RIB_MODADD))("equals rib-modadd's inputs.npy row for row (3830 train triples)", async () => {
    const t = await loadNpy(RIB_MODADD);
    const want = tokensFromTensor(t, RIB_MODADD, { nCtx: 3, vocab: 114 });
    const ds = modularArithmetic(parseModularArithmetic({ modulus: 113, fn_name: 'add', frac_train: 0.3, seed: 0 }));
    expect(ds.n).toBe(3830);
    expect(Array.from(ds.tokens)).toEqual(Array.from(want.tokens));
  });
});

describe('modular arithmetic', () => {
  it('items, labels and the split sizes', () => {
    const tr = modularArithmetic(parseModularArithmetic({ modulus: 113 }));
    expect(tr.n).toBe(3830);
    expect(Array.from(tr.tokens.slice(0, 3))).toEqual([37, 1, 113]); // 4182 = 37·113 + 1
    expect(tr.labels![0]).toBe(38);
    const te = modularArithmetic(parseModularArithmetic({ modulus: 113, return_set: 'test' }));
    expect(te.n).toBe(8939);
    const all = modularArithmetic(parseModularArithmetic({ modulus: 5, return_set: 'all', fn_name: 'subtract' }));
    expect(all.n).toBe(25);
    expect(Array.from(all.tokens.slice(3 * 7, 3 * 7 + 3))).toEqual([1, 2, 5]);
    expect(all.labels![7]).toBe(4); // (1 − 2) mod 5
    const x = modularArithmetic(parseModularArithmetic({ modulus: 7, return_set: 'all', fn_name: 'x2xyy2' }));
    expect(x.labels![3 * 7 + 4]).toBe((9 + 12 + 16) % 7);
  });

  it('rejects bad fields with the allowed values', () => {
    expect(() => parseModularArithmetic({ modulus: 113, fn_name: 'mul' })).toThrow(/'add', 'subtract' or 'x2xyy2'/);
    expect(() => parseModularArithmetic({})).toThrow(/modulus/);
    expect(() => parseModularArithmetic({ modulus: 13, return_set: 'val' })).toThrow(/'train', 'test' or 'all'/);
  });
});

describe('token files', () => {
  const t64 = (shape: number[], vals: number[]) => ({ dtype: 'I64' as const, shape, data: BigInt64Array.from(vals.map(BigInt)) });
  it('reads int64 and int32 [N, P]', () => {
    const a = tokensFromTensor(t64([2, 3], [1, 2, 3, 4, 5, 6]), 'x.npy', { nCtx: 3, vocab: 7 });
    expect(a).toMatchObject({ n: 2, P: 3 });
    const b = tokensFromTensor({ dtype: 'I32', shape: [1, 2], data: Int32Array.from([0, 6]) }, 'y.npy', { nCtx: 3, vocab: 7 });
    expect(Array.from(b.tokens)).toEqual([0, 6]);
  });
  it('refuses ids out of range, P > n_ctx and float files, naming the problem', () => {
    expect(() => tokensFromTensor(t64([1, 3], [1, 9, 2]), 'x.npy', { nCtx: 3, vocab: 7 })).toThrow(
      /token id 9 \(sequence 0, position 1\) is outside the vocabulary 0\.\.6/,
    );
    expect(() => tokensFromTensor(t64([1, 4], [1, 2, 3, 4]), 'x.npy', { nCtx: 3, vocab: 7 })).toThrow(/4 tokens exceed the model's n_ctx 3/);
    expect(() => tokensFromTensor({ dtype: 'F32', shape: [1, 2], data: new Float32Array(2) }, 'f.npy', { nCtx: 3, vocab: 7 })).toThrow(/int32 or int64/);
  });
  it("cuts a stream into windows, dropping the last even when full (rib's quirk)", () => {
    expect(
      textWindows(
        Int32Array.from({ length: 10 }, (_, i) => i),
        3,
      ).n,
    ).toBe(3);
    expect(
      textWindows(
        Int32Array.from({ length: 9 }, (_, i) => i),
        3,
      ).n,
    ).toBe(2);
    const w = tokensFromTensor(t64([7], [0, 1, 2, 3, 4, 5, 6]), 's.npy', { nCtx: 3, vocab: 7, windowCtx: 2 });
    expect(w).toMatchObject({ n: 3, P: 2 });
    expect(Array.from(w.tokens)).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
