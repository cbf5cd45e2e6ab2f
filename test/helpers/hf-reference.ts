// Small float64 pieces of HuggingFace-style forward passes (modeling_gpt2.py, modeling_gpt_neo.py,
// modeling_gpt_neox.py), written independently of src/ for the checkpoint-conversion tests.

/** LayerNorm over one row, ε = 1e-5. */
export function layerNorm(x: Float64Array, w: Float64Array, b: Float64Array): Float64Array {
  const mu = x.reduce((a, c) => a + c, 0) / x.length;
  const v = x.reduce((a, c) => a + (c - mu) ** 2, 0) / x.length;
  return x.map((c, i) => ((c - mu) / Math.sqrt(v + 1e-5)) * w[i]! + b[i]!);
}

/** x·Wᵀ + b for an nn.Linear weight W [out, in]. */
export function linear(x: Float64Array, W: Float64Array, b: Float64Array | undefined, nOut: number): Float64Array {
  const y = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let s = b ? b[o]! : 0;
    for (let i = 0; i < x.length; i++) s += x[i]! * W[o * x.length + i]!;
    y[o] = s;
  }
  return y;
}

/**
 * Causal attention over rows q, k, v [P][H·dh] (head-major columns): scores q·k / `divisor`, and
 * with `window` only keys u with t − u < window.
 */
export function attend(
  q: Float64Array[],
  k: Float64Array[],
  v: Float64Array[],
  H: number,
  dh: number,
  opts: { divisor: number; window?: number },
): Float64Array[] {
  return q.map((qt, t) => {
    const z = new Float64Array(H * dh);
    const keys = [...Array(t + 1).keys()].filter((u) => opts.window === undefined || t - u < opts.window);
    for (let h = 0; h < H; h++) {
      const s = keys.map((u) => {
        let dot = 0;
        for (let j = 0; j < dh; j++) dot += qt[h * dh + j]! * k[u]![h * dh + j]!;
        return dot / opts.divisor;
      });
      const mx = Math.max(...s);
      const e = s.map((x) => Math.exp(x - mx));
      const tot = e.reduce((a, b) => a + b, 0);
      keys.forEach((u, n) => {
        for (let j = 0; j < dh; j++) z[h * dh + j]! += (e[n]! / tot) * v[u]![h * dh + j]!;
      });
    }
    return z;
  });
}
