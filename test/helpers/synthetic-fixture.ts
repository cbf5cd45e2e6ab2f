// The synthetic MLP fixture (test/fixtures/synthetic-mlp) as the conformance tests use it: loaded
// once per test file, and a build's bases and edges set against rib's float64 outputs for it
// (rib-reference/*.safetensors). test/ib-fixture.test.ts (GPU and host statistics) and
// test/mlp-program.test.ts (the float64 section programs) hold their own tolerances.

import { beforeAll, expect } from 'vitest';
import type { LayerBasis } from '../../src/ib/basis.js';
import type { IbResult } from '../../src/ib/pipeline.js';
import type { MlpModel } from '../../src/model/mlp.js';
import { columnErrUpToSign, loadSyntheticFixture, rowErrUpToSign, SYNTHETIC_MLP, type HostTensor } from './ib.js';

export interface SyntheticFixture {
  model: MlpModel;
  /** The inputs, n rows of d features (f32-exact). */
  x: Float32Array;
  n: number;
  d: number;
}

/**
 * The fixture for the calling test file, loaded by a beforeAll hook this registers (through the
 * library's architecture parser and tensor loader): read its fields inside tests and hooks, not
 * while the file's tests are being collected.
 */
export function useSyntheticFixture(): SyntheticFixture {
  const fixture = {} as SyntheticFixture;
  beforeAll(async () => {
    Object.assign(fixture, await loadSyntheticFixture(SYNTHETIC_MLP));
  });
  return fixture;
}

/**
 * Basis `b` against rib's C and C⁺ of layer `layer` up to the arbitrary sign of each direction:
 * the worst column error of C and row error of C⁺, each relative to that column's (row's) norm.
 */
export function basisErrUpToSign(b: LayerBasis, ref: Map<string, HostTensor>, layer: string): { ce: number; pe: number } {
  return {
    ce: columnErrUpToSign(b.C, ref.get(`${layer}/C`)!.data, b.dim, b.r),
    pe: rowErrUpToSign(b.Cpinv, ref.get(`${layer}/C_pinv`)!.data, b.r, b.dim),
  };
}

/**
 * The edge matrix of each consecutive pair of `nodes` next to rib's E_hat for it, once their
 * shapes are checked to agree.
 */
export function edgesBesideRib(res: IbResult, ref: Map<string, HostTensor>, nodes: string[]): { key: string; got: Float64Array; want: Float64Array }[] {
  return nodes.slice(0, -1).map((from, j) => {
    const key = `${from}->${nodes[j + 1]}`;
    const E = res.edges.get(key)!;
    const rE = ref.get(`edges/${key}/E_hat`)!;
    expect([E.rows, E.cols], key).toEqual(rE.shape);
    return { key, got: E.data, want: rE.data };
  });
}
