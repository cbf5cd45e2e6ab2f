// Terminal summary of a degeneracy report and a modules report.

import type { DegeneracyReport, SectionReport } from './degeneracy.js';
import type { ModulesReport } from './modularity.js';

function table(rows: string[][], right: boolean[]): string[] {
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) =>
    r
      .map((cell, c) => (right[c] ? cell.padStart(w[c]!) : cell.padEnd(w[c]!)))
      .join('  ')
      .trimEnd(),
  );
}

function pct(x: number): string {
  return `${(100 * x).toFixed(x < 0.001 && x > 0 ? 3 : 1)}%`;
}

function list(xs: number[], max = 12): string {
  return xs.length <= max ? xs.join(', ') : `${xs.slice(0, max).join(', ')}, … (${xs.length})`;
}

export interface FormatOptions {
  /** Show near-synchronised pairs up to this Hamming distance (default: all stored). */
  nearMax?: number;
  /** Pairs listed per layer (default 5). */
  nearShow?: number;
}

export function formatDegeneracy(rep: DegeneracyReport, opts: FormatOptions = {}): string {
  const out: string[] = [];
  const rule = rep.rank_rule;
  const sc = rep.scope;
  const over = sc
    ? `the MLP blocks of a transformer, ${sc.rows} rows (${sc.sequences} sequences × ${sc.positions} position(s)), J w.r.t. the output at ${sc.output_positions} position(s)`
    : `${rep.dataset_size} datapoints`;
  out.push(`Degeneracy (SPEC §6) on ${over}; ranks: eigenvalues > ${rule.tau}${rule.mode === 'relative' ? '·max' : ''}`);
  const rows: string[][] = [
    ['section', 'params', 'r_G/d', 'free(a)', 'r_J/n_out', 'free(b)', 'd·n−r_G·r_J', 'live', '+k(k−1)', '+σρ', 'free (SPEC)', 'free (corr.)'],
  ];
  for (const s of rep.sections) {
    const y = s.sync;
    rows.push([
      s.section,
      String(s.params),
      `${s.activation_degeneracy.rank}/${s.d}`,
      String(s.activation_degeneracy.free),
      `${s.jacobian_degeneracy.rank}/${s.n_out}`,
      String(s.jacobian_degeneracy.free),
      String(s.combined_free),
      y ? String(y.live) : '–',
      y ? String(y.extra) : '–',
      y ? String(y.independent) : '–',
      String(s.free_spec),
      String(s.free_corrected),
    ]);
  }
  const t = rep.totals;
  rows.push(['total', String(t.covered_params), '', '', '', '', '', '', '', '', String(t.free_spec), String(t.free_corrected)]);
  out.push(...table(rows, [false, true, true, true, true, true, true, true, true, true, true, true]).map((l) => `  ${l}`));
  const ib = rep.sections
    .filter((s) => s.ib)
    .map(
      (s) => `${s.section.split(' ')[0]} k ${s.ib!.stage1_k} → r ${s.ib!.basis_dim}${s.ib!.mprime_rank !== undefined ? ` (rank M′ ${s.ib!.mprime_rank})` : ''}`,
    );
  if (ib.length) out.push(`  Interaction Basis: stage-1 k, stage-2 r (rank of M on the data), rank of M′ (whole folded input space): ${ib.join('; ')}`);
  out.push('');
  if (t.effective_scope === 'mlp_blocks') {
    // Transformers: only the MLP blocks are counted, so no whole-model estimate (src/report/transformer-degeneracy.ts).
    out.push(`  MLP blocks: ${t.covered_params} of the model's ${t.raw_params} parameters (W_in, b_in, W_out, b_out of each block)`);
    out.push(`  effective parameters of the MLP blocks ≈ ${t.effective_spec} (SPEC §6.4–6.5: free = ${t.free_spec})`);
    out.push(`                                        ≈ ${t.effective_corrected} (overlap-corrected: free = ${t.free_corrected})`);
    out.push('  NOT counted, so no whole-model total: attention, embeddings, unembedding, LayerNorm, and directions across blocks');
    if (sc && sc.jacobians) {
      out.push(
        `  cost: host float64 forward ${(sc.forward_ms / 1000).toFixed(2)} s; Jacobian Grams ${(sc.jacobians.ms / 1000).toFixed(2)} s (${sc.jacobians.vjps_per_sequence} VJPs per sequence and pass)`,
      );
    }
  } else {
    out.push(`  raw parameters ${t.raw_params}${t.complete ? '' : ` (the build covers ${t.covered_params})`}`);
    out.push(`  effective parameters ≈ ${t.effective_spec} (SPEC §6.4–6.5: free = Σ(d·n − r_G·r_J) + live ReLUs + Σ k(k−1) = ${t.free_spec})`);
    out.push(`                       ≈ ${t.effective_corrected} (overlap-corrected: free = Σ(d·n − r_G·r_J) + Σ σ_S·ρ_S = ${t.free_corrected})`);
  }
  if (rep.ground_truth) {
    const g = rep.ground_truth;
    out.push(
      `  ground truth: Gauss–Newton nullity ${g.gauss_newton_nullity} of ${g.params} (f64 ${g.method}, σ > ${g.rtol}·σ_max, gap ×${Number.isFinite(g.gap_at_cut) ? g.gap_at_cut.toPrecision(3) : '∞'} at the cut)`,
    );
    if (g.clear_gap === false) {
      const lg = g.largest_gap;
      out.push(
        `  WARNING: the spectrum has no clear gap at the cut (×${g.gap_at_cut.toPrecision(3)} < ×10): the nullity is ill-defined here and moves with the tolerance;`,
      );
      out.push(
        `           do not read the difference to the estimates as a miscount.${lg ? ` The largest gap (×${Number.isFinite(lg.ratio) ? lg.ratio.toPrecision(3) : '∞'}) would give nullity ${lg.nullity}.` : ''}`,
      );
    }
  }
  out.push('  (the counts n_out(d−r_G), d(n_out−r_J), d·n−r_G·r_J and k(k−1) are DERIVED in SPEC §6, not quoted from the paper;');
  out.push('   N_eff ≈ P − free is the quadratic approximation of SPEC §6.1. σρ: see degeneracy.json "provenance")');
  const sync = rep.sections.filter((s): s is SectionReport & { sync: NonNullable<SectionReport['sync']> } => s.sync !== undefined);
  if (sync.length) {
    out.push('');
    out.push(
      sc
        ? 'Synchronised ReLUs (identical firing patterns, one bit per (datapoint, position); sign-pattern hashes confirmed exactly)'
        : 'Synchronised ReLUs (identical firing patterns; GPU sign-pattern hashes confirmed exactly)',
    );
    for (const s of sync) {
      const y = s.sync;
      const n = rep.dataset_size;
      out.push(`  ${s.section}${sc ? ` (block ${s.layer})` : ''} (${s.n_out} neurons, ${y.live} live):`);
      out.push(`    dead: ${y.dead.length ? list(y.dead) : 'none'}; always on: ${y.always_on.length ? list(y.always_on) : 'none'}`);
      if (y.groups.length === 0) out.push('    groups: none');
      for (const g of y.groups) {
        const on = g.fire_count === n ? ' (always on)' : '';
        out.push(
          `    group {${list(g.neurons)}}: k=${g.k}, fires on ${g.fire_count}/${n}${on}; +k(k−1) = ${g.extra}; rank pre ${g.rank_pre}, rank J ${g.rank_jac} → σρ−k = ${g.extra_corrected}`,
        );
      }
      if (y.rescalings_absorbed) out.push(`    ${y.rescalings_absorbed} live neuron(s) whose rescaling is already counted in (a)/(b)`);
      const maxH = Math.min(opts.nearMax ?? Infinity, y.near_max_hamming);
      const near = y.near_pairs.filter((p) => p.hamming <= maxH);
      const total = opts.nearMax !== undefined && opts.nearMax < y.near_max_hamming ? near.length : y.near_pairs_total;
      if (total === 0) {
        out.push(`    near-synchronised pairs (Hamming ≤ ${maxH}): none`);
      } else {
        const show = near.slice(0, opts.nearShow ?? 5).map((p) => `${p.a}~${p.b} (H=${p.hamming}, J=${p.jaccard.toFixed(3)})`);
        out.push(`    near-synchronised pairs (Hamming ≤ ${maxH}): ${total}${total > show.length ? `, closest: ${show.join(', ')}` : `: ${show.join(', ')}`}`);
      }
      if (y.hash_collisions) out.push(`    ${y.hash_collisions} hash collision(s), resolved exactly`);
    }
  }
  const notes = [...rep.notes, ...rep.sections.flatMap((s) => s.notes.map((m) => `${s.section}: ${m}`))];
  if (notes.length) {
    out.push('');
    for (const m of notes) out.push(`  note: ${m}`);
  }
  return out.join('\n');
}

export function formatModules(rep: ModulesReport): string {
  const out: string[] = [];
  const norm =
    rep.norm === 'log'
      ? `log10(|E|/ε)${
          rep.epsilons
            ? ` (ε per pair: ${Object.entries(rep.epsilons)
                .map(([k, v]) => `${k} ${v.toExponential(2)}`)
                .join(', ')})`
            : ''
        }`
      : rep.norm === 'identity'
        ? '|E|'
        : rep.norm === 'sqrt'
          ? '√|E|'
          : rep.norm === 'abs'
            ? '|E|/Σ|E|'
            : '|E|/max|E|';
  out.push(`Modules (Leiden, γ = ${rep.gamma}, seed ${rep.seed}, ${rep.iterations} iterations; edge weight ${norm})`);
  out.push(
    `  graph: ${rep.nodes} nodes (${rep.excluded.length} constant direction(s) left out${rep.include_output ? '' : ', output layer left out'}), ${rep.edges} edges`,
  );
  const small = rep.count - rep.count_nontrivial;
  out.push(`  ${rep.count_nontrivial} module(s) of size >= 2${small ? ` and ${small} singleton(s)` : ''}; sizes ${list(rep.sizes, 16)}`);
  out.push(`  Q_γ = ${rep.quality_gamma.toFixed(4)}, Newman Q = ${rep.modularity.toFixed(4)}`);
  out.push(`  cross-module edge mass: ${pct(rep.cross_module.weight_fraction)} of the normalised weight, ${pct(rep.cross_module.raw_fraction)} of Σ|E|`);
  for (const [k, v] of Object.entries(rep.cross_module.per_pair)) {
    out.push(`    ${k}: ${pct(v.weight_fraction)} normalised, ${pct(v.raw_fraction)} raw`);
  }
  const shown = rep.modules.filter((m) => m.size >= 2).slice(0, 8);
  for (const m of shown) {
    const parts = Object.entries(m.nodes).map(([l, idx]) => `${l}[${list(idx, 8)}]`);
    out.push(`  module ${m.id} (${m.size}): ${parts.join(' ')}`);
  }
  if (rep.count_nontrivial > shown.length) out.push(`  … ${rep.count_nontrivial - shown.length} more in modules.json`);
  return out.join('\n');
}
