// rib's legacy `functional` edges (SPEC §5.3), a streamed pass like the squared edges:
//   E_ij = (2/N) Σ_n Σ_k w_k [F̂_i(u) − F̂_i(α_k u)] · ∂F̂_i/∂u_j(α_k u) · u_j,   u = f̂(x_n),
// with F̂(u) = Ĉᵀ σ(Qᵀu), Q = C⁺W̄ (the section evaluated at the projected point C⁺ᵀu, SPEC §5.1).
// For an MLP section ∂F̂_i/∂u_j(αu) = Σ_h Ĉ_hi σ'(α p'_h) Q_jh with p' = Qᵀu the folded
// pre-activation (constant unit included), so per batch and point:
//   D_k = σ(p') − σ(α_k p')                         (legacy_terms, MODE 0)
//   S_k = D_k Ĉ                                      (matmul; F̂(u) − F̂(α_k u))
//   g_k = w_k σ'(α_k p')                             (legacy_terms, MODE 1)
//   part_ij += Σ_n S_k[n,i] (Σ_h Ĉ_hi g_k[n,h] Q_jh) f̂_j(n)   (edges_functional)
// Partials are read back once per batch and summed on the host in f64; the result is signed.
// Exact integration gives Σ_j E_ij = E[(F̂_i(u) − F̂_i(0))²]; with the `(1-alpha)^2` basis and the
// same points, |Σ_i E_ij| = Λ_j (SPEC §5.7).

import { pad8 } from '../kernels/edges.js';
import { legacyDifference, legacyGated, recordEdgesFunctional, type PreactArgs } from '../kernels/legacy.js';
import { matmul } from '../kernels/matmul.js';
import { ceilDiv } from '../runtime/workgroups.js';
import type { Engine } from '../runtime/engine.js';
import type { DataSource } from './data.js';
import { addPartials, projectBatch, uploadSectionOperands, type EdgePair, type EdgePassOptions } from './edges.js';
import { sectionInputs } from './activation-cache.js';
import { edgeChunkRows } from '../kernels/edges.js';
import type { GpuMlp } from './gpu-model.js';
import type { IntegrationPoints } from './integration.js';
import { uploadPoints } from './legacy.js';
import type { Progress } from './stats.js';

export async function computeFunctionalEdges(
  engine: Engine,
  mlp: GpuMlp,
  data: DataSource,
  pairs: EdgePair[],
  batchSize: number,
  pts: IntegrationPoints,
  progress: Progress = () => {},
  { shard, cache }: EdgePassOptions = {},
): Promise<Map<string, Float64Array>> {
  const r0 = shard?.start ?? 0;
  const r1 = shard?.end ?? data.n;
  const divisor = shard?.divisor ?? data.n;
  const layers = pairs.map((p) => p.layer);
  const npts = pts.alphas.length;
  const sections = await engine.withScope(async (pass) => {
    const gp = pairs.map((p) => uploadSectionOperands(pass, p));
    const points = uploadPoints(pass, pts);
    const reads: Promise<void>[] = [];
    for (let start = r0; start < r1; start += batchSize) {
      const rows = Math.min(batchSize, r1 - start);
      const batch = pass.scope();
      const inputs = await sectionInputs(batch, mlp, data, layers, start, rows, cache);
      for (const g of gp) {
        const p = g.p;
        const ro8 = pad8(p.ro);
        const H = p.dimOut;
        const sec = batch.scope();
        const { fhat, pre } = projectBatch(engine, sec, g, inputs.at(p.layer), rows);
        const a: PreactArgs = {
          x: pre,
          bias: g.zeroBias,
          rows,
          cols: H,
          xcols: H,
          rho: 0,
          activation: mlp.model.layers[p.layer]!.activation,
          points,
          npts,
        };
        const D = sec.alloc(rows * H * 4, 'fedges.D');
        const S = sec.alloc(rows * ro8 * 4, 'fedges.S');
        const G = sec.alloc(rows * H * 4, 'fedges.G');
        const chunks = Math.max(1, ceilDiv(rows, edgeChunkRows(engine, H)));
        const part = sec.alloc(chunks * p.ro * g.r * 4, 'fedges.partial');
        for (let k = 0; k < npts; k++) {
          legacyDifference(engine, a, D, k, 1);
          matmul(engine, D, g.at, S, { m: rows, n: ro8, k: H });
          legacyGated(engine, a, G, { k0: k, k1: k + 1, scale: 1 });
          recordEdgesFunctional(engine, { fhat, gates: G, s: S, at: g.at, bt: g.bt, rows, r: g.r, ro: p.ro, h: H }, part, k > 0);
        }
        reads.push(addPartials(engine, g, part, chunks));
        sec.close();
      }
      batch.close();
      if (reads.length > 2 * gp.length) await Promise.all(reads.splice(0, reads.length - gp.length));
      progress('edges', start + rows - r0, r1 - r0);
    }
    await Promise.all(reads);
    return gp;
  });
  const out = new Map<string, Float64Array>();
  for (const g of sections)
    out.set(
      `${g.p.inName}->${g.p.outName}`,
      g.sum.map((v) => (2 * v) / divisor),
    );
  return out;
}
