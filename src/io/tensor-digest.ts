// A content digest of a set of named tensors (names, dtypes, shapes and bytes, in name order),
// stored in ibgpu's partial and statistics files so that a damaged or swapped file is refused.

import { createHash } from 'node:crypto';
import type { Tensor } from './tensor.js';

export function tensorDigest(tensors: Record<string, Tensor>): string {
  const h = createHash('sha256');
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name]!;
    h.update(`${name}\0${t.dtype}\0${t.shape.join(',')}\0`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return `sha256:${h.digest('hex')}`;
}
