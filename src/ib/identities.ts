// Exact identities every build must satisfy (SPEC §9.2), evaluated in f64 on the build's own
// statistics. They go into every manifest, so a result carries evidence of its own consistency.

import { matmulHost } from '../host/matmul.js';
import { nodeGram, type LayerBasis, type NodeStats } from './basis.js';

export interface LayerIdentities {
  /** max |C⁺C − I_r| */
  pinvResidual: number;
  /** max |CᵀG_raw C − diag(expected)| / max(expected): expected Λ (jacobian, legacy) or D (svd/pca). */
  gramDiagResidual: number;
}

export function layerIdentities(b: LayerBasis, s: NodeStats, formula: string): LayerIdentities {
  const { dim, r } = b;
  const P = matmulHost(b.Cpinv, b.C, { m: r, n: r, k: dim });
  let pinv = 0;
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) pinv = Math.max(pinv, Math.abs(P[i * r + j]! - (i === j ? 1 : 0)));
  let gramDiag = NaN;
  if (formula === 'jacobian' || formula === '(1-0)*alpha' || formula === '(1-alpha)^2' || formula === 'svd' || formula === 'pca') {
    // C = R V Λ^{1/2} with RᵀG_raw R = I: CᵀG_raw C = diag(Λ) for every Λ-scaled basis (SPEC §9.2.2).
    // A build's rotated final node layer has no next layer to scale by: its basis is PCA-like
    // (no Λ) whatever the build's formula, and is checked as one.
    const jac = formula !== 'svd' && formula !== 'pca' && b.Lambda !== undefined;
    // Raw G for every formula: a centred basis's C = Y U carries the shift Y itself, and
    // Yᵀ G_raw Y is the centred Gram stage 1 decomposed (so CᵀG_raw C = diag(D) for svd/pca).
    const G = nodeGram(s, false);
    const CtGC = matmulHost(matmulHost(b.C, G, { m: r, n: dim, k: dim, transA: true }), b.C, { m: r, n: r, k: dim });
    const expect = jac ? b.Lambda! : b.D.subarray(0, r);
    let scale = 0;
    for (let i = 0; i < r; i++) scale = Math.max(scale, Math.abs(expect[i]!));
    let err = 0;
    for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) err = Math.max(err, Math.abs(CtGC[i * r + j]! - (i === j ? expect[i]! : 0)));
    gramDiag = err / (scale || 1);
  }
  return { pinvResidual: pinv, gramDiagResidual: gramDiag };
}
