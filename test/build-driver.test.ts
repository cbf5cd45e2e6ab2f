// The build driver (src/pipeline/driver.ts) on stand-in specialisations: the order of the work
// (bases from the last node layer backwards, each from the next one's basis; edges of based
// sections started before a basis step that waits; joint passes over consecutive sections; one
// edge pass at a time), the final node layer's rule, the edges in network order, and the bases
// stage of a staged build (stored bases kept, a pending step ends it, steps that do not read the
// next basis never ask for the final width). No GPU.
import { describe, expect, it } from 'vitest';
import type { LayerBasis } from '../src/ib/basis.js';
import type { ModelProgram, SectionProgram } from '../src/model/program.js';
import { runBases, runGraph, type BasisStep, type EdgePass, type GraphBuild, type SectionSpec } from '../src/pipeline/driver.js';

/** A program whose node layers have the given widths (the sections' ops are not read by the driver). */
function program(widths: number[]): ModelProgram {
  const names = widths.map((_w, i) => `n${i}`);
  const sec = (i: number): SectionProgram => ({
    from: names[i]!,
    to: names[i + 1]!,
    values: [
      { width: widths[i]!, positions: 1, label: 'x' },
      { width: widths[i + 1]!, positions: 1, label: 'y' },
    ],
    inputs: [0],
    outputs: [1],
    ops: [],
  });
  return { pre: sec(0), sections: widths.slice(0, -1).map((_w, i) => sec(i)), nodeLayers: names };
}

/** A basis of node layer `name` whose r records what it was built from: 10·(next r) + its own index. */
function basis(name: string, r: number): LayerBasis {
  const z = new Float64Array(0);
  return {
    name,
    dim: r,
    centred: false,
    mean: z,
    gramEigenvalues: z,
    U: z,
    D: z,
    k: r,
    C: new Float64Array(r),
    Cpinv: z,
    r,
    dropped: { stage1: 0, stage2: 0 },
  };
}

describe('build driver', () => {
  it('builds bases backwards from the final width, runs joint edge passes over ready sections before a waiting step, and orders the edges', async () => {
    const log: string[] = [];
    const mp = program([5, 4, 3, 2, 7]);
    let resolveWait!: () => void;
    const waitFor = new Promise<void>((r) => (resolveWait = r));
    const step = (j: number, waits: boolean): BasisStep => ({
      waits,
      build: async (next) => {
        log.push(`basis ${j} from r=${next.r}${next.C ? '' : ' (identity)'}`);
        if (waits) {
          // The edges of sections 2 and 3 must have been started before this step waits.
          setTimeout(resolveWait, 5);
          await waitFor;
        }
        return basis(`n${j}`, 10 * next.r + j);
      },
    });
    const joint: EdgePass = {
      joint: true,
      inline: true,
      run: ({ lo, hi, bases, label }) => {
        log.push(`edges ${lo}..${hi - 1} (${label})`);
        const out = new Map<number, { data: Float64Array; rows: number; cols: number }>();
        for (let j = lo; j < hi; j++) {
          const bin = bases.get(`n${j}`)!;
          const bout = bases.get(`n${j + 1}`);
          out.set(j, { data: new Float64Array([j]), rows: bout ? bout.r : 7, cols: bin.r });
        }
        return Promise.resolve(out);
      },
    };
    const sections: SectionSpec[] = [0, 1, 2, 3].map((j) => ({ basis: step(j, j === 1), edges: joint }));
    const build: GraphBuild<string> = {
      program: mp,
      calculateEdges: true,
      statistics: () => Promise.resolve('stats'),
      plan: (s) => {
        log.push(`plan after ${s}`);
        return { finalBasis: () => undefined, sections };
      },
    };
    const g = await runGraph(build);
    expect(log).toEqual([
      'plan after stats',
      'basis 3 from r=7 (identity)',
      'basis 2 from r=73',
      'edges 2..3 (edges n2..n4)',
      'basis 1 from r=732',
      'basis 0 from r=7321',
      'edges 0..1 (edges n0..n2)',
    ]);
    expect(g.stats).toBe('stats');
    expect([...g.bases.keys()]).toEqual(['n3', 'n2', 'n1', 'n0']);
    expect([...g.edges.keys()]).toEqual(['n0->n1', 'n1->n2', 'n2->n3', 'n3->n4']);
    expect(g.edges.get('n3->n4')).toMatchObject({ rows: 7, cols: 73 });
    expect(g.edges.get('n0->n1')).toMatchObject({ rows: 7321, cols: 73210 });
  });

  it('runs separate passes one at a time, the last sections first, and takes a rotated final basis as the first next basis', async () => {
    const mp = program([3, 3, 3, 3]);
    const log: string[] = [];
    let running = 0;
    const single: EdgePass = {
      joint: false,
      inline: false,
      run: async ({ lo, hi }) => {
        expect(hi).toBe(lo + 1);
        expect(running++).toBe(0);
        log.push(`start ${lo}`);
        await new Promise((r) => setTimeout(r, 2));
        running--;
        return new Map([[lo, { data: new Float64Array(1), rows: 1, cols: 1 }]]);
      },
    };
    const g = await runGraph({
      program: mp,
      calculateEdges: true,
      statistics: () => Promise.resolve(0),
      plan: () => ({
        finalBasis: () => basis('n3', 2),
        sections: [0, 1, 2].map((j) => ({ basis: { waits: false, build: (next) => basis(`n${j}`, 10 * next.r + j) }, edges: single })),
      }),
    });
    expect(log).toEqual(['start 2', 'start 1', 'start 0']);
    expect([...g.bases.keys()]).toEqual(['n3', 'n2', 'n1', 'n0']);
    expect(g.bases.get('n0')!.r).toBe(2210);
  });

  it('runs only the edges from stored bases, and refuses a section without an edge pass', async () => {
    const mp = program([2, 2, 2]);
    const stored = new Map([
      ['n0', basis('n0', 1)],
      ['n1', basis('n1', 2)],
    ]);
    const pass: EdgePass = {
      joint: true,
      inline: false,
      run: ({ lo, hi, bases }) =>
        Promise.resolve(
          new Map(Array.from({ length: hi - lo }, (_x, i) => [lo + i, { data: new Float64Array(1), rows: 2, cols: bases.get(`n${lo + i}`)!.r }])),
        ),
    };
    const noStats: GraphBuild<number> = {
      program: mp,
      calculateEdges: true,
      statistics: () => Promise.reject(new Error('no statistics pass from stored bases')),
      plan: () => Promise.reject(new Error('no bases stage from stored bases')),
    };
    const g = await runGraph(noStats, { bases: stored, edges: [pass, pass] });
    expect([...g.edges.keys()]).toEqual(['n0->n1', 'n1->n2']);
    expect(g.edges.get('n1->n2')!.cols).toBe(2);
    await expect(runGraph(noStats, { bases: stored, edges: [pass] })).rejects.toThrow(/n1->n2 has no edge pass/);
  });

  it('bases stage of a staged build: keeps stored bases, builds from the last stored one, stops at a pending step', async () => {
    const names = ['n0', 'n1', 'n2', 'n3', 'n4'];
    const built: string[] = [];
    const step = (j: number): BasisStep => ({
      waits: false,
      build: (next) => {
        built.push(`n${j}`);
        return basis(`n${j}`, 10 * next.r + j);
      },
    });
    const pending: BasisStep = {
      waits: true,
      pending: true,
      usesNext: false,
      build: () => {
        throw new Error('a pending step is never built');
      },
    };
    const noWidth = () => {
      throw new Error('no final width here');
    };
    const stored = new Map([
      ['n3', basis('n3', 4)],
      ['n4', basis('n4', 9)],
    ]);
    let finals = 0;
    const plan = (sections: BasisStep[]) => ({
      finalBasis: () => {
        finals++;
        return undefined;
      },
      sections: sections.map((b) => ({ basis: b })),
    });
    const r = await runBases({ nodeLayers: names, finalWidth: noWidth, plan: plan([pending, pending, step(2), step(3)]), stored });
    // n3 and n4 are kept (n3's step not run, the final rule not asked); n2 from n3's r; n1 pending.
    expect(built).toEqual(['n2']);
    expect(finals).toBe(0);
    expect([...r.bases.keys()]).toEqual(['n3', 'n4', 'n2']);
    expect(r.bases.get('n2')!.r).toBe(42);
    expect(r.bases.get('n3')).toBe(stored.get('n3'));
    expect(r).toMatchObject({ pending: 'n1', basedFrom: 2 });

    // No stored bases and an unrotated final node layer: steps that do not read the next basis
    // never ask for its width; the first one that does, does.
    const fixed = (j: number): BasisStep => ({ waits: false, usesNext: false, build: () => basis(`n${j}`, j + 1) });
    const all = await runBases({ nodeLayers: names, finalWidth: noWidth, plan: plan([fixed(0), fixed(1), fixed(2), fixed(3)]) });
    expect([...all.bases.keys()]).toEqual(['n3', 'n2', 'n1', 'n0']);
    expect(all).toMatchObject({ basedFrom: 0 });
    expect(all.pending).toBeUndefined();
    await expect(runBases({ nodeLayers: names, finalWidth: noWidth, plan: plan([fixed(0), fixed(1), fixed(2), step(3)]) })).rejects.toThrow(/no final width/);
    const w = await runBases({ nodeLayers: names, finalWidth: () => 7, plan: plan([fixed(0), fixed(1), step(2), step(3)]) });
    expect(w.bases.get('n3')!.r).toBe(73);
    expect(w.bases.get('n2')!.r).toBe(732);
  });

  it('a pending step in a whole build: the bases built so far, the edges of the sections they join', async () => {
    const pass: EdgePass = {
      joint: false,
      inline: false,
      run: ({ lo }) => Promise.resolve(new Map([[lo, { data: new Float64Array(1), rows: 1, cols: 1 }]])),
    };
    const g = await runGraph({
      program: program([2, 2, 2, 2]),
      calculateEdges: true,
      statistics: () => Promise.resolve(0),
      plan: () => ({
        finalBasis: () => undefined,
        sections: [
          { basis: { waits: true, pending: true, usesNext: false, build: () => basis('n0', 1) }, edges: pass },
          { basis: { waits: false, build: (next) => basis('n1', next.r) }, edges: pass },
          { basis: { waits: false, build: (next) => basis('n2', next.r) }, edges: pass },
        ],
      }),
    });
    expect(g.pending).toBe('n0');
    expect([...g.bases.keys()]).toEqual(['n2', 'n1']);
    expect([...g.edges.keys()]).toEqual(['n1->n2', 'n2->n3']);
  });
});
