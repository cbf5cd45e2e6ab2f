// The browser build in a real browser: Debian's chromium (headless, SwiftShader WebGPU through
// --enable-unsafe-webgpu) driven by playwright-core.
//   (a) dist/web/ibgpu.js builds the synthetic fixture's Interaction Basis with the page's WebGPU;
//       Λ, C and the edges match the Node (Dawn) build of the same config within 1e-4 relative.
//       The shipped transformer example (examples/modadd-transformer) built in the page through
//       buildTransformerBasis matches the Node build: Λ within 1e-4 relative, C columns up to sign
//       and edges within 1e-3 (measured ≤ 8e-4 for C at ln2.0, whose random-weight Λ has close
//       pairs; the project's target |cos| ≥ 0.999 allows a column error of 0.045).
//   (b) the viewer (`ibgpu serve`) renders a Node build result: nodes, edges, the pruning slider,
//       spectra and the degeneracy table; a screenshot is written; "run in the page" works.
// Skips, loudly, when no chromium binary is installed or the browser offers no WebGPU adapter.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { parseConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import { buildInteractionBasis, type IbResult } from '../src/ib/pipeline.js';
import { writeResults } from '../src/ib/results.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { serveResult, type RunningServer } from '../src/cli/serve.js';
import { modularArithmetic, parseModularArithmetic } from '../src/data/modular-arithmetic.js';
import { parseTransformerConfig } from '../src/model/transformer/config.js';
import { loadTransformer } from '../src/model/transformer/weights.js';
import { buildTransformerBasis } from '../src/transformer/run.js';
import { useEngine } from './helpers/gpu.js';
import { columnErrUpToSign, fmt, loadSyntheticFixture, relErr } from './helpers/ib.js';

const ROOT = new URL('..', import.meta.url).pathname;
const FIXTURE = new URL('./fixtures/synthetic-mlp', import.meta.url).pathname;
const NODES = ['layers.0', 'layers.1', 'layers.2', 'output'];
const CONFIG = { node_layers: NODES, batch_size: 256, threshold_mode: 'relative', truncation_threshold: 1e-6 };
const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p));

let tmp: string;
let server: RunningServer | undefined;
let ctx: BrowserContext | undefined;
let page: Page;
let nodeResult: IbResult;
/** Why the browser tests cannot run here (undefined: they can). */
let unavailable: string | undefined;

const engine = useEngine();

function skipLoudly(skip: (note?: string) => void): boolean {
  if (unavailable === undefined) return false;
  console.error(`\n*** browser tests SKIPPED: ${unavailable} ***\n`);
  skip(unavailable);
  return true;
}

beforeAll(async () => {
  const t0 = performance.now();
  const lap = (what: string) => console.log(`browser test setup: ${what} at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  tmp = mkdtempSync(join(tmpdir(), 'ibgpu-browser-'));
  // The Node build of the fixture: the reference for (a) and the result (b) views.
  const { model, x, n, d } = await loadSyntheticFixture(FIXTURE);
  const e = await engine();
  nodeResult = await buildInteractionBasis(e, model, arraySource(x, n, d), parseConfig({ ...CONFIG, degeneracy: true }));
  await writeResults(join(tmp, 'result'), nodeResult, { adapter: e.adapterName, data: 'synthetic fixture' });
  lap('Node build');

  // A fresh browser build of the current sources (not whatever dist/web holds).
  execFileSync(process.execPath, [join(ROOT, 'scripts/build-web.mjs'), join(tmp, 'web'), '--no-typecheck'], { stdio: 'inherit' });
  server = await serveResult(join(tmp, 'result'), { web: join(tmp, 'web') });
  lap('browser bundle');

  if (!CHROMIUM) {
    unavailable = 'no chromium binary (/usr/lib/chromium/chromium or /usr/bin/chromium); `apt-get install -y chromium` (scripts/install-system-deps.sh does)';
    return;
  }
  const { chromium } = await import('playwright-core');
  try {
    ctx = await launch(chromium, CHROMIUM);
  } catch (e) {
    unavailable = `${CHROMIUM} did not start: ${(e as Error).message.split('\n')[0]}`;
    return;
  }
  page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  await page.goto(server.url);
  const gpu = await page.evaluate(async () => {
    const nav = navigator as Navigator & { gpu?: GPU };
    if (!nav.gpu) return 'navigator.gpu is undefined';
    const a = await nav.gpu.requestAdapter();
    return a ? null : 'navigator.gpu.requestAdapter() returned null';
  });
  if (gpu) unavailable = `headless chromium offers no WebGPU here (${gpu})`;
  lap('chromium up');
}, 120_000);

function launch(chromium: typeof import('playwright-core').chromium, executablePath: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      '--enable-unsafe-webgpu', // WebGPU on Linux (SwiftShader without a GPU): PLATFORM.md §0
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--disable-extensions',
      '--disable-default-apps',
    ],
  });
}

afterAll(async () => {
  await ctx?.close();
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface BrowserBuild {
  adapter: string;
  layers: Record<string, { r: number; dim: number; Lambda: number[] | null; C: number[] }>;
  edges: Record<string, { rows: number; cols: number; data: number[] }>;
}

/** What the page builds: the synthetic MLP fixture, or the shipped transformer with its dataset spec. */
type PageJob =
  { example: 'synthetic'; config: Record<string, unknown> } | { example: 'modadd'; config: Record<string, unknown>; spec: Record<string, unknown> };

/**
 * Runs in the page (page.evaluate sends its source, so it may use nothing from this module):
 * builds one of the served examples with dist/web/ibgpu.js on the page's WebGPU and returns the
 * bases and edges as plain arrays.
 */
async function buildInPage(job: PageJob): Promise<BrowserBuild> {
  // (import() through Function: vitest rewrites a literal import() in this function's source.)
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- see the line above
  const load = new Function('u', 'return import(u)') as (u: string) => Promise<typeof import('../src/browser.js')>;
  const ib = await load(`${location.origin}/ibgpu.js`);
  const fetchBytes = async (u: string) => new Uint8Array(await (await fetch(u)).arrayBuffer());
  const eng = await ib.createBrowserEngine();
  try {
    let res: Pick<IbResult, 'bases' | 'edges'>;
    if (job.example === 'synthetic') {
      const arch = await (await fetch('/example/synthetic/arch.json')).json();
      const model = await ib.modelFromSafetensorsBytes(arch, await fetchBytes('/example/synthetic/weights.safetensors'));
      const data = await ib.dataFromSafetensorsBytes(await fetchBytes('/example/synthetic/inputs.safetensors'));
      res = await ib.buildInteractionBasis(eng, model, data, ib.parseConfig(job.config));
    } else {
      const cfg = await (await fetch('/example/modadd/config.json')).json();
      const model = await ib.transformerFromSafetensorsBytes(cfg, await fetchBytes('/example/modadd/weights.safetensors'));
      const data = ib.modularArithmetic(ib.parseModularArithmetic(job.spec));
      res = await ib.buildTransformerBasis(eng, model, data, ib.parseConfig(job.config));
    }
    const layers: BrowserBuild['layers'] = {};
    for (const [name, b] of res.bases) layers[name] = { r: b.r, dim: b.dim, Lambda: b.Lambda ? Array.from(b.Lambda) : null, C: Array.from(b.C) };
    const edges: BrowserBuild['edges'] = {};
    for (const [k, e] of res.edges) edges[k] = { rows: e.rows, cols: e.cols, data: Array.from(e.data) };
    return { adapter: eng.adapterName, layers, edges };
  } finally {
    eng.dispose();
  }
}

/**
 * The page's build against the Node build of the same config: the same node layers, basis sizes
 * and edge shapes; Λ within 1e-4 relative, C's columns up to sign and the edges within tol.
 * Returns the errors, for the log.
 */
function expectSameAsNode(got: BrowserBuild, node: Pick<IbResult, 'bases' | 'edges'>, tol: { C: number; E: number }): string {
  const report: string[] = [];
  expect(Object.keys(got.layers).sort()).toEqual([...node.bases.keys()].sort());
  for (const [name, b] of node.bases) {
    const g = got.layers[name]!;
    expect(g.r, `${name}: basis size`).toBe(b.r);
    expect(g.dim).toBe(b.dim);
    if (b.Lambda) {
      const eL = relErr(g.Lambda!, b.Lambda);
      report.push(`${name} Λ ${fmt(eL)}`);
      expect(eL, `${name}: Λ`).toBeLessThan(1e-4);
    }
    const eC = columnErrUpToSign(g.C, b.C, b.dim, b.r);
    report.push(`${name} C ${fmt(eC)}`);
    expect(eC, `${name}: C (columns up to sign)`).toBeLessThan(tol.C);
  }
  expect(Object.keys(got.edges).sort()).toEqual([...node.edges.keys()].sort());
  for (const [key, e] of node.edges) {
    const g = got.edges[key]!;
    expect([g.rows, g.cols]).toEqual([e.rows, e.cols]);
    const eE = relErr(g.data, e.data);
    report.push(`${key} E ${fmt(eE)}`);
    expect(eE, `${key}: E_hat`).toBeLessThan(tol.E);
  }
  return report.join(', ');
}

describe('browser build (chromium, WebGPU)', () => {
  it('runs the pipeline on the synthetic fixture in the page; Λ, C and edges match the Node build', async ({ skip }) => {
    if (skipLoudly(skip)) return;
    const got = await page.evaluate(buildInPage, { example: 'synthetic', config: CONFIG } as const);
    console.log(`browser adapter: ${got.adapter}`);
    expect(got.adapter).toMatch(/browser/);
    console.log(`browser vs Node (max |Δ| / max |ref|): ${expectSameAsNode(got, nodeResult, { C: 1e-4, E: 1e-4 })}`);
  }, 90_000);

  it('builds the shipped transformer example in the page; Λ, C and edges match the Node build', async ({ skip }) => {
    if (skipLoudly(skip)) return;
    const dir = join(ROOT, 'examples', 'modadd-transformer');
    const cfgRaw = JSON.parse(readFileSync(join(dir, 'build.json'), 'utf8')) as Record<string, unknown>;
    const { dataset, model: _m, arch: _a, exp_name: _e, ...fields } = cfgRaw;
    const tmodel = await loadTransformer(join(dir, 'weights.safetensors'), parseTransformerConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))));
    const { type: _t, ...spec } = dataset as Record<string, unknown>;
    const nodeT = await buildTransformerBasis(await engine(), tmodel, modularArithmetic(parseModularArithmetic(spec)), parseConfig(fields));
    const got = await page.evaluate(buildInPage, { example: 'modadd', config: fields, spec } as const);
    console.log(`transformer, browser vs Node (max |Δ| / max |ref|): ${expectSameAsNode(got, nodeT, { C: 1e-3, E: 1e-3 })}`);
  }, 90_000);

  it('the viewer renders a Node build result (graph, pruning, spectra, degeneracy) and runs an example in the page', async ({ skip }) => {
    if (skipLoudly(skip)) return;
    await page.goto(server!.url);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 30_000 });
    const graph = nodeResult.config.node_layers;
    const counts = await page.evaluate(() => ({
      nodes: document.querySelectorAll('#graph svg circle.node').length,
      edges: document.querySelectorAll('#graph svg line.edge').length,
      visible: Number(document.getElementById('graph-svg')?.getAttribute('data-edges-visible')),
      coloured: new Set(Array.from(document.querySelectorAll('#graph svg circle.node')).map((c) => c.getAttribute('fill'))).size,
      spectra: document.querySelectorAll('#spectra svg[data-layer]').length,
      lambdaSeries: document.querySelectorAll('#spectra polyline.series-Lambda').length,
      degeneracyRows: document.querySelectorAll('#degeneracy-table tr').length,
      runVisible: getComputedStyle(document.getElementById('run-panel')!).display !== 'none',
    }));
    // One node per basis direction (the unrotated output keeps its width), as graph.json lists them.
    let expectNodes = 0;
    for (const name of graph) expectNodes += nodeResult.bases.get(name)?.r ?? nodeResult.edges.get(`layers.2->output`)!.rows;
    expect(counts.nodes).toBe(expectNodes);
    expect(counts.edges).toBeGreaterThan(100);
    expect(counts.visible).toBeGreaterThan(0);
    expect(counts.visible).toBeLessThanOrEqual(counts.edges);
    expect(counts.coloured, 'modules coloured').toBeGreaterThan(1);
    expect(counts.spectra).toBe(nodeResult.bases.size);
    expect(counts.lambdaSeries).toBe(nodeResult.bases.size);
    expect(counts.degeneracyRows).toBe(1 + nodeResult.degeneracy!.sections.length);
    expect(counts.runVisible).toBe(true);

    // The slider prunes: at 10^-0.5 of each pair's maximum fewer edges remain, but some.
    await page.locator('#prune').fill('-0.5');
    const pruned = Number(await page.locator('#graph-svg').getAttribute('data-edges-visible'));
    expect(pruned).toBeGreaterThan(0);
    expect(pruned).toBeLessThan(counts.visible);
    await page.locator('#prune').fill('-3');

    const shot = join(tmp, 'viewer.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(20_000);

    // "run in the page": the synthetic example with the browser's WebGPU replaces the view.
    await page.locator('#example').selectOption('synthetic');
    await page.locator('#run').click();
    await page.waitForSelector('body[data-state="ready"][data-source^="run in the page"]', { timeout: 60_000 });
    const after = await page.evaluate(() => ({
      nodes: document.querySelectorAll('#graph svg circle.node').length,
      status: document.getElementById('status')!.textContent ?? '',
      degeneracyRows: document.querySelectorAll('#degeneracy-table tr').length,
    }));
    expect(after.status).toMatch(/done in/);
    expect(after.nodes).toBe(expectNodes);
    expect(after.degeneracyRows).toBe(1 + nodeResult.degeneracy!.sections.length);

    // The shipped transformer example, built in the page, is shown the same way.
    await page.locator('#example').selectOption('modadd');
    await page.locator('#run').click();
    await page.waitForSelector('body[data-state="ready"][data-source="run in the page: modadd transformer"]', { timeout: 60_000 });
    const tr = await page.evaluate(() => ({
      layers: Array.from(document.querySelectorAll('#spectra svg[data-layer]')).map((e) => e.getAttribute('data-layer')),
      nodes: document.querySelectorAll('#graph svg circle.node').length,
      status: document.getElementById('status')!.textContent ?? '',
    }));
    expect(tr.status).toMatch(/done in/);
    expect(tr.layers).toEqual(['ln1.0', 'ln2.0', 'unembed']);
    expect(tr.nodes).toBeGreaterThan(20);

    // "your files": the same fixture picked as files (architecture JSON, weights, data).
    const archPath = join(tmp, 'picked-arch.json');
    writeFileSync(archPath, await (await fetch(new URL('example/synthetic/arch.json', server!.url))).text());
    await page.locator('#example').selectOption('files');
    expect(await page.locator('#files').isVisible()).toBe(true);
    await page.locator('#run').click(); // nothing picked yet: a clear message, no build
    await page.waitForSelector('body[data-state="error"]', { timeout: 30_000 });
    expect(await page.locator('#status').textContent()).toMatch(/pick an architecture JSON first/);
    await page.locator('#file-arch').setInputFiles(archPath);
    await page.locator('#file-model').setInputFiles(join(FIXTURE, 'weights.safetensors'));
    await page.locator('#file-data').setInputFiles(join(FIXTURE, 'inputs.safetensors'));
    await page.locator('#run').click();
    await page.waitForSelector('body[data-state="ready"][data-source^="run in the page: your files"]', { timeout: 60_000 });
    // Node radii (log Λ) and the spectra's points: what the two data formats must agree on.
    const drawn = () =>
      page.evaluate(() => ({
        nodes: document.querySelectorAll('#graph svg circle.node').length,
        status: document.getElementById('status')!.textContent ?? '',
        shape: Array.from(document.querySelectorAll('svg circle'))
          .map((c) => `${c.getAttribute('data-id') ?? ''}:${c.getAttribute('r')}:${c.getAttribute('cy')}`)
          .join(' '),
      }));
    const picked = await drawn();
    expect(picked.status).toMatch(/building: 2048 datapoints × 16 features/);
    expect(picked.nodes).toBe(expectNodes);

    // The same data as a .npy file, in the least convenient layout numpy writes: big-endian f64,
    // Fortran order. The page reads it by its magic bytes and must draw the same result.
    const X = (await loadSafetensors(join(FIXTURE, 'inputs.safetensors'))).tensors['X']!;
    const [n, f] = X.shape as [number, number];
    let header = `{'descr': '>f8', 'fortran_order': True, 'shape': (${n}, ${f}), }`;
    header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
    const npy = new Uint8Array(10 + header.length + n * f * 8);
    npy.set([0x93, ...Buffer.from('NUMPY'), 1, 0, header.length & 255, header.length >> 8]);
    npy.set(Buffer.from(header, 'latin1'), 10);
    const dv = new DataView(npy.buffer, 10 + header.length);
    for (let i = 0; i < n; i++) for (let j = 0; j < f; j++) dv.setFloat64((j * n + i) * 8, (X.data as Float32Array)[i * f + j]!, false);
    const npyPath = join(tmp, 'picked-data.npy');
    writeFileSync(npyPath, npy);
    await page.locator('#file-data').setInputFiles(npyPath);
    await page.locator('#run').click();
    await page.waitForFunction(() => /picked-data\.npy/.test(document.body.dataset['source'] ?? '') && document.body.dataset['state'] === 'ready', undefined, {
      timeout: 60_000,
    });
    const fromNpy = await drawn();
    expect(fromNpy.status).toMatch(/building: 2048 datapoints × 16 features/);
    expect(fromNpy.shape).toBe(picked.shape);

    // A truncated .npy: a clear message, the page keeps working.
    writeFileSync(npyPath, npy.subarray(0, npy.length - 8));
    await page.locator('#file-data').setInputFiles(npyPath);
    await page.locator('#run').click();
    await page.waitForSelector('body[data-state="error"]', { timeout: 30_000 });
    expect(await page.locator('#status').textContent()).toMatch(/truncated/);
  }, 120_000);
});

describe('the viewer opened as a file', () => {
  it('says it must be served over HTTP instead of "loading…" forever', async ({ skip }) => {
    if (skipLoudly(skip)) return;
    const p = await ctx!.newPage();
    try {
      await p.goto(`file://${join(tmp, 'web', 'index.html')}`);
      await p.waitForFunction(() => document.body.dataset['state'] === 'file-protocol', undefined, { timeout: 10_000 });
      expect(await p.textContent('#meta')).toMatch(/must be served over HTTP.*python3 -m http\.server -d/);
    } finally {
      await p.close();
    }
  });
});
