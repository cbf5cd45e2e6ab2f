// adam_update: one Adam step (Kingma & Ba, with bias correction, no weight decay), written as
// torch.optim.Adam computes it (single-tensor path):
//   m ← β1 m + (1 − β1) g
//   v ← β2 v + (1 − β2) g²
// 1 − β1 and 1 − β2 are computed on the host in float64 and passed separately: formed in f32 from
// a rounded β2 = 0.999, 1 − β2 would be off by 1.3e-5 relative.
//   p ← p − step_size · m / (sqrt(v) / sqrt_bc2 + ε)
// with step_size = lr / (1 − β1^t) and sqrt_bc2 = sqrt(1 − β2^t), computed on the host in
// float64 for the step t (1-based) and passed rounded to f32.
//
// Bindings (@group(0)):
//   0 param  : array<f32>  read-write, n
//   1 grad   : array<f32>  read-only, n
//   2 m      : array<f32>  read-write, n (first moment; zero before step 1)
//   3 v      : array<f32>  read-write, n (second moment; zero before step 1)
//   4 params : uniform { n: u32, step_size: f32, beta1: f32, one_minus_beta1: f32, beta2: f32,
//                        one_minus_beta2: f32, eps: f32, sqrt_bc2: f32 }
// Overrides: WG (default 256).
// Dispatch: ceil(n / WG) workgroups (1-D, folded to 2-D above 65535 by the scheduler); one
//   element per invocation, no loops, no barriers, no atomics (bit-reproducible).
// Numerics: f32; a few ulp per element (sqrt and division are not correctly rounded in WGSL).

struct Params {
  n: u32, step_size: f32, beta1: f32, one_minus_beta1: f32,
  beta2: f32, one_minus_beta2: f32, eps: f32, sqrt_bc2: f32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= params.n) { return; }
  let g = grad[i];
  let m1 = params.beta1 * m[i] + params.one_minus_beta1 * g;
  let v1 = params.beta2 * v[i] + params.one_minus_beta2 * (g * g);
  m[i] = m1;
  v[i] = v1;
  param[i] = param[i] - params.step_size * m1 / (sqrt(v1) / params.sqrt_bc2 + params.eps);
}
