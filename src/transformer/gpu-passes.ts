// The transformer build's data passes on the GPU: the TransformerPasses interface (passes.ts)
// over GpuModel, gpu-stats, gpu-mdash and gpu-edges. Same conventions as the float64 reference
// (passes-f64.ts): means and Grams divided by N·P_ℓ, centring by μ̃ (the mean with its last entry
// set to 0, SPEC-transformers §4.1), every node layer except `output`.

import type { IntegrationPoints } from '../ib/integration.js';
import type { ModelProgram } from '../model/program.js';
import type { Engine } from '../runtime/engine.js';
import { edgesSquaredGpu } from './gpu-edges.js';
import { mDashGpu } from './gpu-mdash.js';
import { GpuModel } from './gpu-model.js';
import { edgesStochasticGpu, mDashStochasticGpu } from './gpu-stochastic.js';
import { centredNodeStatsGpu, nodeStatsGpu, type NodeStatsGpu } from './gpu-stats.js';
import type { EdgeInputs, NodeStatsResult, PassesFactory, TransformerPasses } from './passes.js';
import { isStochastic, type StochasticSources } from './stochastic.js';
import { tableNodeStats, tokenRowTable } from './token-table.js';
import { gateMomentsByCounts, gateMomentsFromCounts } from '../host/node-moments.js';
import { hostThreadPool } from '../host/pool.js';
import type { StageName } from '../ib/config.js';
import { chooseStagePath, type StagePathChoice, type StagePathRequest } from '../runtime/stage-paths.js';
import { edgesLocalHost, hostCofireCounts, hostGateMoments, hostMoments, hostNodeRows, hostStatsPlan, type HostNodeRows } from './host-stats.js';
import { mDashLocalActBlock, mDashLocalGpu, singleActSection } from './gpu-mdash-local.js';
import { sectionGeometry } from './gpu-section.js';

/** The config's stage_paths requests (stats, edges), for the choice between the GPU and the host paths. */
export type StagePathRequests = Partial<Record<StageName, StagePathRequest>>;

/**
 * Σ(x − a)(x − a)ᵀ from Σ(x − s)(x − s)ᵀ and Σx over n rows, in float64:
 * Σ(x − a)(x − a)ᵀ = Σ(x − s)(x − s)ᵀ + Σ(x − s)(s − a)ᵀ + (s − a)Σ(x − s)ᵀ + n(s − a)(s − a)ᵀ. The GPU shifts by
 * the f32 rounding s of the wanted shift a; this moves the result to a exactly.
 */
export function reshiftGram(g: Float64Array, sum: Float64Array, n: number, s: Float64Array, a: Float64Array): Float64Array {
  const d = sum.length;
  const out = Float64Array.from(g);
  const dx = Float64Array.from(sum, (v, i) => v - n * s[i]!); // Σ(x − s)
  const e = Float64Array.from(s, (v, i) => v - a[i]!); // s − a
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) out[i * d + j] = out[i * d + j]! + dx[i]! * e[j]! + e[i]! * dx[j]! + n * e[i]! * e[j]!;
  }
  return out;
}

/** (1/n) Σ x xᵀ from G = (1/n) Σ (x − a)(x − a)ᵀ and the mean μ: G + aμᵀ + μaᵀ − aaᵀ (a = 0 when absent). */
export function secondMoment(gram: Float64Array, mean: Float64Array, a?: Float64Array): Float64Array {
  const out = Float64Array.from(gram);
  if (!a) return out;
  const d = mean.length;
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) out[i * d + j] = out[i * d + j]! + a[i]! * mean[j]! + mean[i]! * a[j]! - a[i]! * a[j]!;
  return out;
}

export class GpuPasses implements TransformerPasses {
  readonly device: string;
  readonly model: GpuModel;
  /** The path each pass took, by stage and section (the result manifest's `stage_paths`). */
  readonly paths: Record<string, string> = {};
  /** Per node layer (index), the second moment (1/(N·P)) Σ f fᵀ from the last nodeStats call. */
  private readonly secondMoments = new Map<number, Float64Array>();
  /** The host statistics pass's rows and act inputs (host-stats.ts), when it ran. */
  private host: HostNodeRows | undefined;
  /** One-activation ReLU section → its co-firing counts, started when the host statistics pass made its act inputs. */
  private readonly cofire = new Map<number, Promise<Float64Array>>();

  constructor(
    private readonly engine: Engine,
    readonly mp: ModelProgram,
    readonly tokens: ArrayLike<number>,
    readonly n: number,
    readonly P: number,
    private readonly requests: StagePathRequests = {},
  ) {
    this.device = `${engine.adapterName} (f32, float64 sums)`;
    this.model = new GpuModel(engine, mp, P);
    // Start the host worker threads now, so their start-up overlaps the statistics pass
    // instead of delaying the first closed form that needs them.
    void hostThreadPool().catch(() => undefined); // a bad IBGPU_HOST_THREADS is reported where the pool is used
  }

  private statNodes(): number[] {
    return this.model.nodes.map((L, i) => (L.name === 'output' ? -1 : i)).filter((i) => i >= 0);
  }

  async nodeStats(centred: boolean): Promise<NodeStatsResult[]> {
    const all = this.statNodes();
    // Node layer 0 from its per-(token, position) table when there is one (token-table.ts).
    const L0 = this.model.nodes[0]!;
    const table = all.includes(0) ? tokenRowTable(this.model, 0, this.n, L0.width) : undefined;
    let first: NodeStatsResult | undefined;
    if (table) {
      const centre = (mean: Float64Array): Float64Array => {
        const m = Float64Array.from(mean);
        m[m.length - 1] = 0;
        return m;
      };
      const t = tableNodeStats(table, L0.width, this.tokens, this.model.mp.embed!.vocab, this.model.P, this.n, centred ? centre : undefined);
      this.secondMoments.set(0, secondMoment(t.gram, t.mean, t.shift));
      this.paths['stats ' + L0.name] = 'float64 from per-(token, position) tables and token counts, no data pass';
      first = { mean: t.mean, gram: t.gram, dim: L0.width, positions: L0.positions };
    }
    const nodes = table ? all.filter((i) => i !== 0) : all;
    if (nodes.length === 0) return first ? [first] : [];
    const hostRest = await this.hostStats(nodes, centred);
    if (hostRest) return first ? [first, ...hostRest] : hostRest;
    let stats: NodeStatsGpu[];
    let wanted: Float64Array[] | undefined;
    if (centred) {
      const mu = new Map<number, Float64Array>();
      stats = await centredNodeStatsGpu(this.engine, this.model, this.tokens, this.n, {
        nodes,
        keepInModel: true,
        shiftFor: (sum, rows, node) => {
          const m = sum.map((v) => v / rows);
          m[m.length - 1] = 0;
          mu.set(node, m);
          return m;
        },
      });
      wanted = nodes.map((i) => mu.get(i)!);
    } else {
      stats = await nodeStatsGpu(this.engine, this.model, this.tokens, this.n, { nodes });
    }
    const rest = stats.map((s, k) => {
      const g = wanted ? reshiftGram(s.gram!, s.sum, s.rows, s.shift, wanted[k]!) : s.gram!;
      for (let i = 0; i < g.length; i++) g[i] = g[i]! / s.rows;
      const mean = s.sum.map((v) => v / s.rows);
      this.secondMoments.set(nodes[k]!, secondMoment(g, mean, wanted?.[k]));
      return { mean, gram: g, dim: s.width, positions: s.positions };
    });
    return first ? [first, ...rest] : rest;
  }

  /**
   * Node layers `nodes` (all but 0) on the host (host-stats.ts) when the stats stage path is the
   * host and the model's sections up to the last of them have host closed forms; else undefined.
   */
  private async hostStats(nodes: number[], centred: boolean): Promise<NodeStatsResult[] | undefined> {
    const choice = chooseStagePath(this.engine, 'stats', this.requests.stats ?? 'auto');
    if (choice.path !== 'host') return undefined;
    const plan = hostStatsPlan(this.model, this.n, Math.max(...nodes));
    if ('reason' in plan) {
      if (this.requests.stats === 'host') this.paths['stats'] = `GPU: stage_paths.stats = 'host', but ${plan.reason}`;
      return undefined;
    }
    const host = await hostNodeRows(this.model, this.tokens, this.n, plan);
    this.host = host;
    // The node layers' moments on the host threads side by side, then the ReLU sections'
    // co-firing counts (M′ needs them only after the later node layers' bases).
    const moments = nodes.map((i) => {
      const L = this.model.nodes[i]!;
      return hostMoments(host.rows.get(i)!, this.n * L.positions, L.width, centred);
    });
    for (const [s, pre] of host.pre) {
      const act = singleActSection(this.model.sections[s]!.program);
      if (act?.op.act !== 'relu') continue;
      const rows = this.n * sectionGeometry(this.model, s).pIn;
      const counts = hostCofireCounts(pre, rows, pre.length / rows);
      // A failure surfaces where M′ awaits the counts; until then it must not be unhandled.
      counts.catch(() => undefined);
      this.cofire.set(s, counts);
    }
    const done = await Promise.all(moments);
    return nodes.map((i, k) => {
      const L = this.model.nodes[i]!;
      const t = done[k]!;
      this.secondMoments.set(i, secondMoment(t.gram, t.mean, t.shift));
      this.paths['stats ' + L.name] = `host float64 forward over the closed forms from node layer 0's token table (${describe(choice)})`;
      return { mean: t.mean, gram: t.gram, dim: L.width, positions: L.positions };
    });
  }

  /**
   * Second moments from statistics computed elsewhere over the same data (a staged build's
   * combined statistics), for the linear closed forms of later edge passes: the same values
   * nodeStats keeps (centred on the mean with its constant slot at 0).
   */
  useStatistics(stats: readonly NodeStatsResult[], centred: boolean): void {
    stats.forEach((s, i) => {
      let a: Float64Array | undefined;
      if (centred) {
        a = Float64Array.from(s.mean);
        a[a.length - 1] = 0;
      }
      this.secondMoments.set(i, secondMoment(s.gram, s.mean, a));
    });
  }

  async mPrime(s: number, Chat: Float64Array | undefined, rOut: number, pts: IntegrationPoints, stoch?: StochasticSources): Promise<Float64Array> {
    const pre = this.host?.pre.get(s);
    if (pre && !isStochastic(stoch, 'basis')) {
      // One-activation section after the host statistics pass: its gate moments from the act inputs kept there.
      const act = singleActSection(this.model.sections[s]!.program)!;
      const g = sectionGeometry(this.model, s, Chat, rOut);
      const gates = await hostGateMoments(act.op, pre, this.n * g.pIn, pts, this.cofire.get(s));
      const path =
        act.op.act === 'relu' && pts.alphas.every((a) => a > 0)
          ? 'ReLU co-firing counts from the host statistics pass (float64)'
          : 'gate Gram from the host statistics pass (float64)';
      this.paths[`m_prime ${this.sectionName(s)}`] = `gate closed form, ${path}`;
      return mDashLocalGpu(
        { engine: this.engine, model: this.model, s, tokens: this.tokens, N: this.n, g },
        { ...(Chat ? { Chat } : {}), rOut, points: pts },
        act,
        gates,
      );
    }
    if (isStochastic(stoch, 'basis'))
      return mDashStochasticGpu(this.engine, this.model, s, this.tokens, this.n, { Chat, rOut, points: pts, stochastic: stoch });
    return mDashGpu(this.engine, this.model, s, this.tokens, this.n, {
      Chat,
      rOut,
      points: pts,
      onPath: (p) => {
        this.paths[`m_prime ${this.sectionName(s)}`] = p;
      },
    });
  }

  reluInputMPrime(s: number, counts: Float64Array, pts: IntegrationPoints): Float64Array | undefined {
    const p = this.model.sections[s]!.program;
    const act = singleActSection(p);
    if (act?.op.act !== 'relu' || !gateMomentsByCounts(act.op.act, pts)) return undefined;
    const h = p.values[act.op.x]!.width;
    if (counts.length !== h * h) throw new Error(`reluInputMPrime: ${counts.length} counts for the ${h} inputs of section ${this.sectionName(s)}'s ReLU`);
    const g = sectionGeometry(this.model, s);
    const M = mDashLocalActBlock(p, act, g, { rOut: g.dOut }, gateMomentsFromCounts(counts, h, pts), this.n);
    if (M)
      this.paths[`m_prime ${this.sectionName(s)}`] =
        "gate closed form on the ReLU's input block, co-firing counts handed over from a float64 forward over the same data";
    return M;
  }

  /**
   * On the host statistics path the float64 forward is a fraction of what the edge passes save with
   * its rows (the carried-Jacobian host edges, the attention and linear closed forms' second
   * moments), so an edges-only run computes the statistics first; on the GPU path it does not.
   */
  async prepareEdges(centred: boolean): Promise<void> {
    if (this.host || chooseStagePath(this.engine, 'stats', this.requests.stats ?? 'auto').path !== 'host') return;
    await this.nodeStats(centred);
  }

  edges(s: number, input: EdgeInputs, Chat: Float64Array | undefined, rOut: number, pts: IntegrationPoints, stoch?: StochasticSources): Promise<Float64Array> {
    if (isStochastic(stoch, 'edges'))
      return edgesStochasticGpu(this.engine, this.model, s, this.tokens, this.n, { ...input, Chat, rOut, points: pts, stochastic: stoch });
    const f = this.host?.rows.get(s);
    const act = f ? singleActSection(this.model.sections[s]!.program) : undefined;
    const g = act ? sectionGeometry(this.model, s, Chat, rOut) : undefined;
    if (f && act && g && g.pIn === g.pOut) {
      const choice = chooseStagePath(this.engine, 'edges', this.requests.edges ?? 'auto');
      if (choice.path === 'host') {
        this.paths[`edges ${this.sectionName(s)}`] =
          `carried-Jacobian sums on the host (float64, ${act.op.act === 'relu' ? 'ReLU switches only' : 'per row'}) from the host statistics pass's rows (${describe(choice)})`;
        return edgesLocalHost(this.model, s, f, this.n, g, { ...input, ...(Chat ? { Chat } : {}), rOut, points: pts }, act, this.host?.forms.get(s));
      }
    }
    const S = this.secondMoments.get(s);
    return edgesSquaredGpu(this.engine, this.model, s, this.tokens, this.n, {
      ...input,
      Chat,
      rOut,
      points: pts,
      ...(S ? { secondMoment: S } : {}),
      onPath: (p) => {
        this.paths[`edges ${this.sectionName(s)}`] = p;
      },
    });
  }

  private sectionName(s: number): string {
    return `${this.model.nodes[s]!.name}->${this.model.nodes[s + 1]!.name}`;
  }

  stagePaths(): Record<string, string> {
    return { ...this.paths };
  }

  dispose(): void {
    this.model.dispose();
  }
}

function describe(c: StagePathChoice): string {
  return `stage path ${c.how}: ${c.note}`;
}

/** A PassesFactory running on `engine`; `requests`: the config's stage_paths. */
export function gpuPassesFactory(engine: Engine, requests: StagePathRequests = {}): PassesFactory {
  return async (mp, tokens, n, P) => new GpuPasses(engine, mp, tokens, n, P, requests);
}
