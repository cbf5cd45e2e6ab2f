// `ibgpu compare A B`: two builds of one model side by side against the fidelity targets (Λ within
// 1e-4 relative, basis columns |cos| ≥ 0.999, edges within 1e-3): an ibgpu result directory
// against rib's results file, or against another result directory. Exit 0 within the targets,
// 3 outside them (errors 1, usage 2).

import { compareBuilds, formatComparison, FIDELITY_TARGETS } from '../report/compare.js';
import { readBuildSide } from '../report/compare-files.js';
import { EXIT } from './exit-codes.js';

export async function compareCommand(a: string, b: string, o: { json?: boolean; minLambda?: string }): Promise<number> {
  const targets = { ...FIDELITY_TARGETS, ...(o.minLambda !== undefined ? { minLambda: Number(o.minLambda) } : {}) };
  const c = compareBuilds(await readBuildSide(a), await readBuildSide(b), targets);
  if (o.json) console.log(JSON.stringify(c, null, 2));
  else for (const line of formatComparison(c)) console.log(line);
  return c.ok ? EXIT.ok : EXIT.outsideTargets;
}
