// The source tree's imports run one way (docs/ARCHITECTURE.md): each folder of src/ has a floor,
// and a module may import only from its own floor or below. Also no import cycles between modules.
// Reads the import statements of src/**/*.ts (static and dynamic); needs no GPU.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const src = join(import.meta.dirname, '..', 'src');

/** Floors, lowest first. Folders on one floor may import each other's modules. */
const FLOORS: string[][] = [
  ['errors.ts', 'version.ts', 'util'],
  ['io', 'gpu', 'shaders'],
  ['data', 'runtime'],
  ['model'],
  ['cpu'], // float64 references (test oracles)
  ['kernels'],
  ['host', 'report', 'train'], // host algorithms, pure analysis of results, training
  ['ib', 'pipeline'], // the MLP pipeline; the build driver both model kinds run through
  ['transformer', 'ablate'],
  ['build'], // builds from files, for any model kind
  ['cli', 'browser.ts', 'index.ts'],
];

function floorOf(rel: string): number {
  const top = rel.split(sep)[0]!;
  const f = FLOORS.findIndex((names) => names.includes(top));
  if (f < 0) throw new Error(`src/${top} has no floor in test/import-layers.test.ts: add it`);
  return f;
}

function listTs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? listTs(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

const IMPORT = /(?:from\s*|import\(\s*)'(\.{1,2}\/[^']+)'/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => normalize(join(dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
}

const files = listTs(src);
const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => t.startsWith(src))]));

describe('import layers', () => {
  it('every import goes to the same floor or below', () => {
    const up: string[] = [];
    for (const [f, targets] of graph) {
      const a = floorOf(relative(src, f));
      for (const t of targets) {
        const b = floorOf(relative(src, t));
        if (b > a) up.push(`${relative(src, f)} -> ${relative(src, t)}`);
      }
    }
    expect(up).toEqual([]);
  });

  it('no import cycles between modules', () => {
    const state = new Map<string, 1 | 2>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      state.set(f, 1);
      for (const t of graph.get(f) ?? []) {
        if (state.get(t) === 1) cycles.push([...path.slice(path.indexOf(t)), t].map((p) => relative(src, p)).join(' -> '));
        else if (!state.has(t)) visit(t, [...path, t]);
      }
      state.set(f, 2);
    };
    for (const f of files) if (!state.has(f)) visit(f, [f]);
    expect(cycles).toEqual([]);
  });
});
