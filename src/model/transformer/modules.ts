// rib's flat module list of a SequentialTransformer and node-layer validation
// (SPEC-transformers §1.1–1.2, §7).

import { IbgpuError } from '../../errors.js';
import type { TransformerConfig } from './config.js';

export const BLOCK_MODULES = ['ln1', 'ln1_out', 'attn_in', 'attn_out', 'add_resid1', 'ln2', 'ln2_out', 'mlp_in', 'mlp_act', 'mlp_out', 'add_resid2'] as const;
export type BlockModule = (typeof BLOCK_MODULES)[number];

/** rib's module ids in model order: embedding, 11 per block, then ln_final, ln_final_out, unembed. */
export function moduleIds(c: Pick<TransformerConfig, 'n_layers' | 'positional_embedding_type'>): string[] {
  const ids = c.positional_embedding_type === 'rotary' ? ['embed'] : ['embed', 'pos_embed', 'add_embed'];
  for (let i = 0; i < c.n_layers; i++) for (const m of BLOCK_MODULES) ids.push(`${m}.${i}`);
  ids.push('ln_final', 'ln_final_out', 'unembed');
  return ids;
}

/** The module type of an id ('ln1.3' → 'ln1'). */
export function moduleType(id: string): string {
  const dot = id.indexOf('.');
  return dot < 0 ? id : id.slice(0, dot);
}

export type LastPosModuleType = 'add_resid1' | 'unembed';

export function parseLastPosModuleType(v: unknown): LastPosModuleType | null {
  if (v === undefined || v === null) return null;
  if (v === 'add_resid1' || v === 'unembed') return v;
  throw new IbgpuError('BAD_CONFIG', `last_pos_module_type ${JSON.stringify(v)} is not allowed`, "use 'add_resid1', 'unembed' or null (rib's two)");
}

/**
 * rib's validate_node_layers: at least one node layer; not starting at embed/pos_embed; no
 * duplicates; every id exists; ids in model order; 'output' only last. Errors list the valid ids.
 */
export function validateNodeLayers(c: Pick<TransformerConfig, 'n_layers' | 'positional_embedding_type'>, nodeLayers: readonly string[]): void {
  const ids = moduleIds(c);
  const listing = `valid node layers, in model order: ${ids.filter((i) => i !== 'embed' && i !== 'pos_embed').join(', ')}, output (last only)`;
  const fail = (msg: string): never => {
    throw new IbgpuError('BAD_CONFIG', `node_layers: ${msg}`, listing);
  };
  if (nodeLayers.length === 0) fail('at least one node layer is needed');
  const real = nodeLayers[nodeLayers.length - 1] === 'output' ? nodeLayers.slice(0, -1) : nodeLayers.slice();
  if (real.length === 0) fail("'output' alone is not a node layer list");
  if (real.includes('output')) fail("'output' may only be the last node layer");
  if (real[0] === 'embed' || real[0] === 'pos_embed') fail(`the first node layer may not be '${real[0]}'`);
  const seen = new Set<string>();
  let last = -1;
  for (const n of real) {
    if (seen.has(n)) fail(`'${n}' appears twice`);
    seen.add(n);
    const at = ids.indexOf(n);
    if (at < 0) fail(`'${n}' is not a module of this ${c.n_layers}-layer model`);
    if (at === 0 || (at === 1 && c.positional_embedding_type === 'standard')) fail(`'${n}' cannot be a node layer`);
    if (at <= last) fail(`'${n}' comes before '${ids[last]}' in the model`);
    last = at;
  }
}
