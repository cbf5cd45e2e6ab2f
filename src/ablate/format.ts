// Text summaries of ablation results for `ibgpu ablate` and `ibgpu report`.

import type { AblationRun, AblationsFile } from './from-result.js';
import { formatSparsity } from '../report/sparsity.js';

/** A short text summary of ablation runs (also used by `ibgpu report`). */
export function formatAblationSummary(runs: AblationRun[]): string {
  const lines: string[] = [];
  for (const r of runs) {
    lines.push(
      `${r.ablation_type} ablation (${r.config.schedule.schedule_type}, ${r.eval_type}; unablated ${r.no_ablation_result.toFixed(4)}, rows ${r.dataset_rows[0]}..${r.dataset_rows[1]})`,
    );
    for (const l of r.node ?? []) {
      const byKept = new Map(l.points.map((p) => [p.kept, p]));
      const pts = [...byKept.values()].filter((p) => p.kept <= 64 || p.kept === l.basis_size).sort((a, b) => a.kept - b.kept);
      lines.push(`  ${l.node_layer} (${l.basis_size} of ${l.dim} directions): ${pts.map((p) => `${p.kept}:${p.score.toFixed(3)}`).join(' ')}`);
    }
    for (const l of r.edge ?? []) {
      const req = l.required.map((q) => `Δ${q.score_target_difference}: ${q.n_edges_required}`).join(', ');
      lines.push(`  ${l.node_layer} -> ${l.next_node_layer} (${l.countable_edges} edges): edges needed ${req || '–'}`);
    }
  }
  return lines.join('\n');
}

/** ablations.json as `ibgpu report` prints it: every stored run, then the sparsity table. */
export function formatAblationsFile(f: AblationsFile): string {
  const runs = (['ib', 'pca', 'neuron', 'edge'] as const).map((t) => f.runs[t]).filter((r): r is AblationRun => r !== undefined);
  const parts = [`Ablations (ablations.json; score per directions kept, "kept:score")`, formatAblationSummary(runs)];
  if (f.sparsity) parts.push('', formatSparsity(f.sparsity.rows));
  return parts.join('\n');
}
