// load_cost: a microbenchmark kernel that separates the cost of arithmetic from the cost of a
// memory load on an adapter (bench/load-cost.bench.ts). Every invocation runs `steps` loop
// steps; each step obtains one value v (from registers or from memory, per MODE) and then does
// K fused multiply-adds that all use v, alternating between two independent accumulators:
//   a = fma(a, v, 0.25), b = fma(b, v, -0.125), ...   (|v| <= 0.5, so |a|, |b| stay below 0.5)
// so K is "FMAs per loaded value". The result a + b (summed over the 4 components for vec4) is
// written per invocation and checked against the float64 reference src/cpu/load-cost.ts, so a
// loop that llvmpipe cut short (65535-iteration cap) or code the compiler removed shows up.
//
// Bindings (@group(0)):
//   0 data   : array<vec4<f32>> read-only, LEN = 65536 elements (1 MiB; stays in L2)
//   1 out    : array<f32> read-write, one value per invocation (global linear id)
//   2 params : uniform { steps: u32 }
//   3 table  : uniform array<vec4<f32>, 4096> (64 KiB): the first 4096 elements of data
// Overrides:
//   MODE   0 reg        v from registers: v = ((i + gid) & 255) / 512 - 0.25 (no memory)
//          1 strided    v = data[(gid * 64 + i) & MASK]   (each invocation walks its own row)
//          2 coalesced  v = data[(gid + i * 256) & MASK]  (neighbouring invocations, neighbouring
//                                                          addresses)
//          3 uniform    v = data[i & MASK]                (one address for all invocations)
//          4 workgroup  wg[lid] = data[gid & MASK]; barrier; v = wg[(lid + i) & 255]
//          5 ubo        v = table[(gid + i * 256) & 4095]  (a uniform buffer, coalesced pattern)
//          6 ubo-uniform v = table[i & 4095]               (a uniform buffer, one address)
//   SCALAR 0: v and the accumulators are vec4 (8 flops per FMA); 1: f32, v = the .x component
//          of the same element (2 flops per FMA)
//   K      FMAs per step (1..32); the inner loop has a constant trip count
//   WG     invocations per workgroup (the workgroup mode needs WG <= 256)
// Dispatch: any number of workgroups along x (the bench uses 64); gid = wid.x * WG + lid.
// Invariants: steps * (K + 1) < 65535 so that llvmpipe's per-invocation loop cap is never hit
//   (the wrapper checks it); all indices are masked into range, so no bounds checks are needed.

struct Params { steps: u32 }

override MODE: u32 = 0u;
override SCALAR: bool = false;
override K: u32 = 1u;
override WG: u32 = 256u;
const MASK: u32 = 65535u;

@group(0) @binding(0) var<storage, read> data: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
@group(0) @binding(3) var<uniform> table: array<vec4<f32>, 4096>;

var<workgroup> wg: array<vec4<f32>, 256>;

fn fetch(i: u32, gid: u32, lid: u32) -> vec4<f32> {
  switch MODE {
    case 1u: { return data[(gid * 64u + i) & MASK]; }
    case 2u: { return data[(gid + i * 256u) & MASK]; }
    case 3u: { return data[i & MASK]; }
    case 4u: { return wg[(lid + i) & 255u]; }
    case 5u: { return table[(gid + i * 256u) & 4095u]; }
    case 6u: { return table[i & 4095u]; }
    default: { return vec4<f32>(f32((i + gid) & 255u) / 512.0 - 0.25); }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let gid = wid.x * WG + lid;
  if (MODE == 4u) {
    wg[lid & 255u] = data[gid & MASK];
    workgroupBarrier();
  }
  let steps = params.steps;
  if (SCALAR) {
    var a = 0.0;
    var b = 0.0;
    for (var i = 0u; i < steps; i++) {
      let v = fetch(i, gid, lid).x;
      for (var j = 0u; j < K; j += 2u) {
        a = fma(a, v, 0.25);
        if (j + 1u < K) { b = fma(b, v, -0.125); }
      }
    }
    out[gid] = a + b;
  } else {
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    for (var i = 0u; i < steps; i++) {
      let v = fetch(i, gid, lid);
      for (var j = 0u; j < K; j += 2u) {
        a = fma(a, v, vec4<f32>(0.25));
        if (j + 1u < K) { b = fma(b, v, vec4<f32>(-0.125)); }
      }
    }
    let s = a + b;
    out[gid] = s.x + s.y + s.z + s.w;
  }
}
