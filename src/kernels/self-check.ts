/** Outcome of a kernel's quick self-test against its CPU reference (printed by `ibgpu doctor`). */
export interface SelfCheckResult {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
}
