// Dispatch-size helpers. WebGPU caps each dispatch dimension (65535 on every adapter we have
// seen); a 1-D count above the cap is folded into a near-square 2-D grid. Kernels rebuild the
// linear id as `wid.x + wid.y * nwg.x` and must bound-check it, since the fold can overshoot.

export function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

/** Folds `count` workgroups into [x, y, 1] with x, y <= maxPerDim and x*y >= count. */
export function foldWorkgroups(count: number, maxPerDim: number): [number, number, number] {
  if (!Number.isInteger(count) || count < 0) throw new Error(`bad workgroup count ${count}`);
  if (count <= maxPerDim) return [Math.max(count, 0), 1, 1];
  const y = ceilDiv(count, maxPerDim);
  if (y > maxPerDim) throw new Error(`${count} workgroups exceed ${maxPerDim}^2; split the work`);
  const x = ceilDiv(count, y);
  return [x, y, 1];
}
