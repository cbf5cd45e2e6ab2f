// loop_probe: counts the iterations one invocation actually executes for a requested count.
// Used to verify engine.loopBudget (Mesa llvmpipe silently stops loops after 65535 iterations
// per invocation).
//
// Bindings (@group(0)):
//   0 out    : array<u32> read-write, 1 element: the executed iteration count
//   1 params : uniform { n: u32 }
// Workgroup: 1 invocation; dispatch 1 workgroup.

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(1)
fn main() {
  var count = 0u;
  for (var i = 0u; i < params.n; i++) {
    count += 1u;
  }
  out[0] = count;
}
