// Shared activation functions, spliced into a kernel by `//!include activations.wgsl` (see
// scripts/gen-shaders.mjs). The including shader declares `override ACT: u32` with the codes
// 0 identity, 1 relu, 2 gelu (erf), 3 gelu_tanh. The same definitions as src/model/activations.ts.
// Numerics: relu'(0) = 0 as in torch. erf uses Abramowitz–Stegun 7.1.26 (|err| < 1.5e-7, below
// f32 resolution of the result).

fn erf_approx(z: f32) -> f32 {
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return select(y, -y, z < 0.0);
}

fn act(p: f32) -> f32 {
  switch ACT {
    case 0u: { return p; }
    case 1u: { return max(p, 0.0); }
    case 2u: { return 0.5 * p * (1.0 + erf_approx(p * 0.70710678118654752)); }
    default: {
      let u = 0.7978845608028654 * (p + 0.044715 * p * p * p);
      return 0.5 * p * (1.0 + tanh(u));
    }
  }
}

fn act_grad(p: f32) -> f32 {
  switch ACT {
    case 0u: { return 1.0; }
    case 1u: { return select(0.0, 1.0, p > 0.0); }
    case 2u: {
      let cdf = 0.5 * (1.0 + erf_approx(p * 0.70710678118654752));
      let pdf = exp(-0.5 * p * p) * 0.3989422804014327;
      return cdf + p * pdf;
    }
    default: {
      let k = 0.7978845608028654;
      let t = tanh(k * (p + 0.044715 * p * p * p));
      return 0.5 * (1.0 + t) + 0.5 * p * (1.0 - t * t) * k * (1.0 + 0.134145 * p * p);
    }
  }
}
