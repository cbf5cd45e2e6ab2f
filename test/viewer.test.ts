// The viewer's inspection, zoom, ablation panel and layout in Chromium (playwright-core, as in
// test/browser.test.ts): on a Node build of the synthetic fixture with ablations, clicking (or
// focusing and pressing Enter on) a known node lists its strongest edges as E_hat has them; on a
// build of the MNIST example (1000 digits) the layer-0 C column renders as a heat map whose
// screenshot pixels hold both signs; the ablation panel appears exactly when ablations.json exists.
// Skips, loudly, without a chromium binary.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { parseConfig } from '../src/ib/config.js';
import { arraySource } from '../src/ib/data.js';
import { buildInteractionBasis, type IbResult } from '../src/ib/pipeline.js';
import { writeResults } from '../src/ib/results.js';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { toFloat64 } from '../src/io/tensor.js';
import { readResultDir } from '../src/report/result-dir.js';
import { parseAblationConfig } from '../src/ablate/config.js';
import { runAblation, sparsityComparison, writeAblations } from '../src/ablate/from-result.js';
import { serveResult, type RunningServer } from '../src/cli/serve.js';
import { useEngine } from './helpers/gpu.js';
import { loadSyntheticFixture } from './helpers/ib.js';
import { decodePng } from './helpers/png.js';

const ROOT = new URL('..', import.meta.url).pathname;
const FIXTURE = new URL('./fixtures/synthetic-mlp', import.meta.url).pathname;
const NODES = ['layers.0', 'layers.1', 'layers.2', 'output'];
const CHROMIUM = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'].find((p) => existsSync(p));

let tmp: string;
let synth: RunningServer | undefined;
let mnist: RunningServer | undefined;
let ctx: BrowserContext | undefined;
let page: Page;
let res: IbResult;
let unavailable: string | undefined;
const engine = useEngine();

function skipLoudly(skip: (note?: string) => void): boolean {
  if (unavailable === undefined) return false;
  console.error(`\n*** viewer tests SKIPPED: ${unavailable} ***\n`);
  skip(unavailable);
  return true;
}

beforeAll(async () => {
  const t0 = performance.now();
  const lap = (what: string) => console.log(`viewer test setup: ${what} at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  tmp = mkdtempSync(join(tmpdir(), 'ibgpu-viewer-'));
  const e = await engine();
  const { model, x, n, d } = await loadSyntheticFixture(FIXTURE);
  const config = parseConfig({ node_layers: NODES, batch_size: 256, threshold_mode: 'relative', truncation_threshold: 1e-6, degeneracy: true });
  res = await buildInteractionBasis(e, model, arraySource(x, n, d), config);
  const dir = join(tmp, 'synthetic');
  await writeResults(dir, res, { adapter: e.adapterName, data: 'synthetic fixture' });
  // Ablations of the fixture with its labels: an IB node run (linear, 3 points) and an edge
  // bisection of the last layer pair (kept small: this file runs in under a minute).
  const labels = toFloat64((await loadSafetensors(`${FIXTURE}/inputs.safetensors`)).tensors['labels']!);
  const inp = { engine: e, dir, manifest: (await readResultDir(dir)).manifest, config, model, data: arraySource(x, n, d), labels };
  const runs = [
    await runAblation(inp, parseAblationConfig({ ablation_type: 'rib', schedule: { schedule_type: 'linear', n_points: 3 }, eval_type: 'ce_loss' })),
    await runAblation(
      inp,
      parseAblationConfig({
        ablation_type: 'edge',
        schedule: { schedule_type: 'bisect', score_target_difference: 0.01 },
        eval_type: 'ce_loss',
        score_target_differences: [0.1],
        ablation_node_layers: ['layers.2', 'output'],
      }),
    ),
  ];
  await writeAblations(dir, runs, await sparsityComparison(inp));
  lap('synthetic build and ablations');
  // The MNIST example on its first 1000 digits (no ablations).
  await buildFromConfigFile(e, join(ROOT, 'examples/mnist-mlp/build.json'), {
    out: join(tmp, 'mnist'),
    overrides: { data: { type: 'mnist', count: 1000 }, degeneracy: false },
  });
  lap('MNIST build');
  execFileSync(process.execPath, [join(ROOT, 'scripts/build-web.mjs'), join(tmp, 'web'), '--no-typecheck'], { stdio: 'inherit' });
  synth = await serveResult(dir, { web: join(tmp, 'web') });
  mnist = await serveResult(join(tmp, 'mnist'), { web: join(tmp, 'web') });
  if (!CHROMIUM) {
    unavailable = 'no chromium binary (/usr/lib/chromium/chromium or /usr/bin/chromium); `apt-get install -y chromium`';
    return;
  }
  const { chromium } = await import('playwright-core');
  try {
    ctx = await chromium.launchPersistentContext(join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: ['--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-extensions'],
    });
  } catch (err) {
    unavailable = `${CHROMIUM} did not start: ${(err as Error).message.split('\n')[0]}`;
    return;
  }
  page = ctx.pages()[0] ?? (await ctx.newPage());
  lap('chromium up');
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
}, 120_000);

afterAll(async () => {
  await ctx?.close();
  await synth?.close();
  await mnist?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The `count` strongest edges of a node, from E_hat ([out, in]) directly. */
function topEdges(node: string, side: 'in' | 'out', count: number): string[] {
  const [layer, idx] = node.split(':') as [string, string];
  const i = Number(idx);
  const li = NODES.indexOf(layer);
  const other = side === 'out' ? NODES[li + 1]! : NODES[li - 1]!;
  const E = res.edges.get(side === 'out' ? `${layer}->${other}` : `${other}->${layer}`)!;
  // graph.json keeps the edges above 1e-3 of their layer pair's largest (graphJson's pruneRel).
  let max = 0;
  for (const v of E.data) max = Math.max(max, Math.abs(v));
  const vals =
    side === 'out'
      ? Array.from({ length: E.rows }, (_, o) => ({ id: `${other}:${o}`, v: E.data[o * E.cols + i]! }))
      : Array.from({ length: E.cols }, (_, c) => ({ id: `${other}:${c}`, v: E.data[i * E.cols + c]! }));
  return vals
    .filter((x) => Math.abs(x.v) >= 1e-3 * max)
    .sort((a, b) => Math.abs(b.v) - Math.abs(a.v))
    .slice(0, count)
    .map((x) => x.id);
}

async function listed(id: string): Promise<string[]> {
  return page.evaluate((t) => Array.from(document.querySelectorAll(`#${t} a`)).map((a) => a.textContent ?? ''), id);
}

describe('viewer (chromium)', () => {
  it('inspecting a node of the synthetic fixture lists its strongest edges; zoom, focus, panels', async ({ skip }) => {
    if (skipLoudly(skip)) return;
    await page.goto(synth!.url);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 30_000 });
    const node = 'layers.1:2';
    await page.locator(`#graph svg circle.node[data-id="${node}"]`).click();
    await page.waitForFunction((n) => document.body.dataset['inspected'] === n, node);
    expect(await listed('inspect-out')).toEqual(topEdges(node, 'out', 8));
    expect(await listed('inspect-in')).toEqual(topEdges(node, 'in', 8));
    expect(await page.locator('#inspect-head').textContent()).toContain(`Λ = `);

    // Keyboard: a node is focusable and labelled; Enter inspects it.
    const other = 'layers.2:1';
    const el = page.locator(`#graph svg circle.node[data-id="${other}"]`);
    expect(await el.getAttribute('tabindex')).toBe('0');
    expect(await el.getAttribute('aria-label')).toContain('layers.2 direction 1');
    await el.focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction((n) => document.body.dataset['inspected'] === n, other);
    expect(await listed('inspect-out')).toEqual(topEdges(other, 'out', 8));

    // Zoom; top-k per node prunes edges.
    const z0 = Number(await page.locator('#graph-svg').getAttribute('data-zoom'));
    await page.locator('#zoom-in').click();
    expect(Number(await page.locator('#graph-svg').getAttribute('data-zoom'))).toBeCloseTo(z0 * 1.5, 3);
    const all = Number(await page.locator('#graph-svg').getAttribute('data-edges-visible'));
    await page.locator('#topk').fill('1');
    const top1 = Number(await page.locator('#graph-svg').getAttribute('data-edges-visible'));
    expect(top1).toBeGreaterThan(0);
    expect(top1).toBeLessThan(all);

    // The ablation panel: curves, edge figure and the sparsity table (3 bases × 3 layer pairs).
    const abl = await page.evaluate(() => ({
      shown: getComputedStyle(document.getElementById('ablation-panel')!).display !== 'none',
      curves: (document.getElementById('ablation-curves') as HTMLImageElement | null)?.naturalWidth ?? 0,
      edges: (document.getElementById('ablation-edges') as HTMLImageElement | null)?.naturalWidth ?? 0,
      rows: document.querySelectorAll('#sparsity-table tr').length,
      degFits: (() => {
        const t = document.getElementById('degeneracy-table')!;
        return t.scrollWidth <= document.getElementById('degeneracy')!.clientWidth + 1;
      })(),
    }));
    expect(abl).toEqual({ shown: true, curves: abl.curves, edges: abl.edges, rows: 1 + 9, degFits: true });
    expect(abl.curves).toBeGreaterThan(100);
    expect(abl.edges).toBeGreaterThan(100);
  }, 60_000);

  it('the MNIST layer-0 C column renders as a heat map (screenshot pixels); no ablation panel without ablations', async ({ skip }) => {
    if (skipLoudly(skip)) return;
    await page.goto(mnist!.url);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 30_000 });
    expect(await page.evaluate(() => getComputedStyle(document.getElementById('ablation-panel')!).display)).toBe('none');
    await page.locator('#graph svg circle.node[data-id="layers.0:1"]').click();
    const canvas = page.locator('#inspect-heatmap canvas');
    await canvas.waitFor();
    const img = decodePng(await canvas.screenshot());
    let red = 0;
    let blue = 0;
    for (let i = 0; i < img.width * img.height; i++) {
      const [r, g, b] = [img.rgba[4 * i]!, img.rgba[4 * i + 1]!, img.rgba[4 * i + 2]!];
      if (r > 200 && g < 150 && b < 150) red++;
      if (b > 200 && r < 150 && g < 150) blue++;
    }
    console.log(`heat map ${img.width}x${img.height}: ${red} strongly red, ${blue} strongly blue pixels`);
    expect(img.width).toBeGreaterThanOrEqual(160);
    expect(red).toBeGreaterThan(100);
    expect(blue).toBeGreaterThan(100);
    // The gallery of leading layer-0 directions: 16 heat maps.
    expect(await page.locator('#gallery canvas').count()).toBe(16);
  }, 60_000);
});
