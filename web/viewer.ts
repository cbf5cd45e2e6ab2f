// The ibgpu result viewer: plain DOM + SVG, no framework. Bundled by scripts/build-web.mjs into
// dist/web/viewer.js and served by `ibgpu serve <result-dir>` (or written as static files by
// `ibgpu serve --export <dir>`). Reads ./result/{graph,manifest,degeneracy}.json and
// ./result/basis.safetensors; "run in the page" loads ./ibgpu.js (the browser build of the
// library) and builds the Interaction Basis of an example with the page's WebGPU.

import { parseSafetensors, type SafetensorsFile } from '../src/io/safetensors.js';
import type { DegeneracyReport } from '../src/report/degeneracy.js';
import type { SparsityRow } from '../src/report/sparsity.js';

type IbModule = typeof import('../src/browser.js');

interface GraphNode {
  id: string;
  layer: string;
  index: number;
  lambda: number | null;
  module?: number | null;
}
interface GraphEdge {
  source: string;
  target: string;
  weight: number;
}
interface GraphJson {
  layers: string[];
  nodes: GraphNode[];
  edges: GraphEdge[];
  prune_relative?: number;
  modules?: { count: number; sizes: number[]; modularity: number; gamma: number; quality_gamma?: number };
}
interface ManifestJson {
  ibgpu_version?: string;
  adapter?: string;
  data?: string;
  dataset_size?: number;
  created?: string;
  timings_ms?: Record<string, number>;
}
/** What the viewer reads of degeneracy.json (the report ibgpu writes; older files may lack newer fields). */
type DegeneracyJson = Pick<DegeneracyReport, 'dataset_size' | 'sections' | 'scope'> & {
  totals: Omit<DegeneracyReport['totals'], 'covered_params'> & { covered_params?: number };
};

export interface ViewerResult {
  graph: GraphJson;
  manifest?: ManifestJson;
  degeneracy?: DegeneracyJson;
  basis?: SafetensorsFile;
  ablations?: AblationsJson;
  source: string;
}

const SVG = 'http://www.w3.org/2000/svg';
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`viewer: #${id} missing from index.html`);
  return el as T;
};

function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function fmt(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e4 || a < 1e-2 ? x.toExponential(2) : x.toPrecision(3);
}

// ------------------------------------------------------------------ interaction graph
//
// Layers are columns across the panel; zoom (wheel, +/− buttons) stretches the layer axis, so a
// layer of 1000 nodes spreads out while the layers stay side by side, and dragging pans along it.
// Node radius: log Λ, capped by the (zoomed) spacing of its layer, never below FLOOR units.
// Edges: those above the pruning slider (relative to their layer pair's largest) that are among
// the top k of their source's outgoing or their target's incoming edges. Nodes are focusable
// buttons (Enter inspects); their direction numbers show once the spacing fits them.

const VIEW_W = 900;
const VIEW_H = 600;
const PAD_Y = 34;
const FLOOR = 2.2;

interface DrawnEdge {
  el: SVGLineElement;
  rel: number;
  rank: number;
  ya: number;
  yb: number;
}
interface DrawnNode {
  el: SVGCircleElement;
  label: SVGTextElement;
  y0: number;
  t: number;
  step: number;
}
let edgeEls: DrawnEdge[] = [];
let nodeEls: DrawnNode[] = [];
const view = { s: 1, ty: 0 };
let current: ViewerResult | undefined;

function applyView(): void {
  const Y = (y0: number) => y0 * view.s + view.ty;
  for (const n of nodeEls) {
    const step = n.step * view.s;
    const r = Math.max(FLOOR, Math.min(9, step * 0.45) * (0.25 + 0.75 * n.t));
    const y = Y(n.y0).toFixed(1);
    n.el.setAttribute('cy', y);
    n.el.setAttribute('r', r.toFixed(2));
    n.label.setAttribute('y', (Y(n.y0) + 2.5).toFixed(1));
    n.label.style.display = step >= 9 ? '' : 'none';
  }
  for (const e of edgeEls) {
    e.el.setAttribute('y1', Y(e.ya).toFixed(1));
    e.el.setAttribute('y2', Y(e.yb).toFixed(1));
  }
  document.getElementById('graph-svg')?.setAttribute('data-zoom', view.s.toFixed(3));
}

function zoomAt(factor: number, _cx: number, cy: number): void {
  const s = Math.min(200, Math.max(1, view.s * factor));
  const f = s / view.s;
  view.ty = cy - (cy - view.ty) * f;
  view.s = s;
  clampPan();
  applyView();
}

/** Keeps some of the drawing in view. */
function clampPan(): void {
  const top = PAD_Y * view.s;
  const bottom = (VIEW_H - PAD_Y) * view.s;
  view.ty = Math.min(VIEW_H / 2 - top, Math.max(VIEW_H / 2 - bottom, view.ty));
  if (view.s === 1) view.ty = 0;
}

function svgPoint(svg: SVGSVGElement, ev: { clientX: number; clientY: number }): { x: number; y: number } {
  const b = svg.getBoundingClientRect();
  return { x: ((ev.clientX - b.left) / b.width) * VIEW_W, y: ((ev.clientY - b.top) / b.height) * VIEW_H };
}

function renderGraph(g: GraphJson): void {
  const host = $('graph');
  host.replaceChildren();
  const layers = g.layers;
  const byLayer = new Map<string, GraphNode[]>(layers.map((l) => [l, []]));
  for (const nd of g.nodes) byLayer.get(nd.layer)?.push(nd);
  const padX = 70;
  const padY = PAD_Y;
  const H = VIEW_H;
  const W = VIEW_W;
  const svg = svgEl('svg', {
    viewBox: `0 0 ${VIEW_W} ${VIEW_H}`,
    id: 'graph-svg',
    'data-nodes': g.nodes.length,
    'data-edges': g.edges.length,
    role: 'group',
    'aria-label': 'interaction graph',
  });
  const vp = svgEl('g', { id: 'graph-viewport' });
  const gEdges = svgEl('g', { class: 'edges' });
  const gNodes = svgEl('g', { class: 'nodes' });
  const gLabels = svgEl('g', { class: 'node-labels' });
  vp.append(gEdges, gNodes, gLabels);
  svg.append(vp);
  const heads = svgEl('g', { class: 'layer-heads' });
  svg.append(heads);

  const logs = g.nodes.filter((n) => n.lambda !== null && n.lambda > 0).map((n) => Math.log10(n.lambda!));
  const lo = logs.length ? Math.min(...logs) : 0;
  const hi = logs.length ? Math.max(...logs) : 1;
  const pos = new Map<string, { x: number; y: number }>();
  nodeEls = [];
  layers.forEach((layer, li) => {
    const nodes = byLayer.get(layer)!;
    const x = layers.length === 1 ? W / 2 : padX + (li * (W - 2 * padX)) / (layers.length - 1);
    const step = nodes.length > 1 ? (H - 2 * padY) / (nodes.length - 1) : H;
    const rMax = Math.min(9, step * 0.45);
    const label = svgEl('rect', { x: x - 45, y: 4, width: 90, height: 16, fill: '#fff', opacity: 0.85 });
    const text = svgEl('text', { x, y: 16, class: 'layer-label' });
    text.textContent = `${layer} (${nodes.length})`;
    heads.append(label, text);
    nodes.forEach((nd, i) => {
      const y = nodes.length > 1 ? padY + i * step : H / 2;
      pos.set(nd.id, { x, y });
      const t = nd.lambda !== null && nd.lambda > 0 && hi > lo ? (Math.log10(nd.lambda) - lo) / (hi - lo) : nd.lambda === null ? 0.35 : 0;
      const r = Math.max(FLOOR, rMax * (0.25 + 0.75 * t));
      const fill = nd.module === undefined ? '#6b8fb5' : nd.module === null ? '#cccccc' : PALETTE[nd.module % PALETTE.length]!;
      const name = `${nd.layer} direction ${nd.index}, Λ ${nd.lambda === null ? 'none' : fmt(nd.lambda)}${nd.module != null ? `, module ${nd.module}` : ''}`;
      const c = svgEl('circle', {
        cx: x.toFixed(1),
        cy: y.toFixed(1),
        r: r.toFixed(2),
        class: 'node',
        fill,
        'data-id': nd.id,
        tabindex: 0,
        role: 'button',
        'aria-label': name,
      });
      const title = svgEl('title');
      title.textContent = name;
      c.append(title);
      c.addEventListener('click', () => inspectNode(nd.id));
      c.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          inspectNode(nd.id);
        }
      });
      gNodes.append(c);
      const tl = svgEl('text', { x: (x + 11).toFixed(1), y: (y + 2.5).toFixed(1), class: 'node-label' });
      tl.textContent = String(nd.index);
      gLabels.append(tl);
      nodeEls.push({ el: c, label: tl, y0: y, t, step });
    });
  });

  // Edges: relative to the largest |E| of their layer pair; rank among the source's outgoing and
  // the target's incoming edges (0 = strongest).
  const pairMax = new Map<string, number>();
  const pairOf = (e: GraphEdge) => `${e.source.split(':')[0]}->${e.target.split(':')[0]}`;
  for (const e of g.edges) pairMax.set(pairOf(e), Math.max(pairMax.get(pairOf(e)) ?? 0, Math.abs(e.weight)));
  const rank = new Map<GraphEdge, number>();
  for (const side of ['source', 'target'] as const) {
    const groups = new Map<string, GraphEdge[]>();
    for (const e of g.edges) {
      const k = e[side];
      const l = groups.get(k);
      if (l) l.push(e);
      else groups.set(k, [e]);
    }
    for (const l of groups.values()) {
      l.sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
      l.forEach((e, i) => rank.set(e, Math.min(rank.get(e) ?? Infinity, i)));
    }
  }
  const sorted = [...g.edges].sort((a, b) => Math.abs(a.weight) / pairMax.get(pairOf(a))! - Math.abs(b.weight) / pairMax.get(pairOf(b))!);
  const slider = $<HTMLInputElement>('prune');
  const floor = Math.log10(g.prune_relative && g.prune_relative > 0 ? g.prune_relative : 1e-6);
  slider.min = String(Math.floor(floor * 10) / 10);
  if (Number(slider.value) < Number(slider.min)) slider.value = slider.min;
  edgeEls = [];
  for (const e of sorted) {
    const a = pos.get(e.source);
    const b = pos.get(e.target);
    if (!a || !b) continue;
    const rel = Math.abs(e.weight) / pairMax.get(pairOf(e))!;
    const s = Math.sqrt(rel);
    const el = svgEl('line', {
      x1: a.x.toFixed(1),
      y1: a.y.toFixed(1),
      x2: b.x.toFixed(1),
      y2: b.y.toFixed(1),
      class: 'edge',
      'stroke-width': (0.3 + 2.7 * s).toFixed(2),
      'stroke-opacity': (0.08 + 0.8 * s).toFixed(2),
      'vector-effect': 'non-scaling-stroke',
      'data-source': e.source,
      'data-target': e.target,
      ...(e.weight < 0 ? { stroke: '#c0392b' } : {}),
    });
    edgeEls.push({ el, rel, rank: rank.get(e)!, ya: a.y, yb: b.y });
    gEdges.append(el);
  }
  host.append(svg);

  // Fit the whole drawing, then zoom and pan.
  view.s = 1;
  view.ty = 0;
  // Dense graphs start with the strongest edge of every node only.
  const topk = $<HTMLInputElement>('topk');
  if (!topk.dataset['touched']) topk.value = String(g.nodes.length / Math.max(1, layers.length) > 200 ? 1 : 5);
  svg.addEventListener(
    'wheel',
    (ev) => {
      ev.preventDefault();
      const p = svgPoint(svg, ev);
      zoomAt(ev.deltaY < 0 ? 1.25 : 0.8, p.x, p.y);
    },
    { passive: false },
  );
  let drag: { x: number; y: number; ty: number } | undefined;
  svg.addEventListener('pointerdown', (ev) => {
    if ((ev.target as Element).classList.contains('node')) return;
    const p = svgPoint(svg, ev);
    drag = { x: p.x, y: p.y, ty: view.ty };
    svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener('pointermove', (ev) => {
    if (!drag) return;
    const p = svgPoint(svg, ev);
    view.ty = drag.ty + p.y - drag.y;
    clampPan();
    applyView();
  });
  svg.addEventListener('pointerup', () => {
    drag = undefined;
  });
  applyView();

  const mods = g.modules;
  $('graph-legend').textContent = mods
    ? `${mods.count} modules (Leiden γ = ${mods.gamma}, Q = ${fmt(mods.modularity)}); colours by module, grey: unclustered`
    : 'no modules in graph.json';
  applyPrune();
}

function applyPrune(): void {
  const v = Number($<HTMLInputElement>('prune').value);
  const k = Math.max(1, Math.floor(Number($<HTMLInputElement>('topk').value) || 1));
  const cut = 10 ** v;
  let shown = 0;
  for (const e of edgeEls) if (e.rel >= cut && e.rank < k) shown++;
  // Many visible edges are drawn fainter and thinner, so the strongest still stand out.
  const pairs = Math.max(1, (current?.graph.layers.length ?? 2) - 1);
  const density = Math.min(1, Math.max(0.12, 250 / (shown / pairs)));
  for (const { el, rel, rank } of edgeEls) {
    const on = rel >= cut && rank < k;
    el.style.display = on ? '' : 'none';
    if (!on) continue;
    const s = Math.sqrt(rel);
    el.setAttribute('stroke-width', ((0.3 + 2.7 * s) * Math.sqrt(density)).toFixed(2));
    el.setAttribute('stroke-opacity', ((0.08 + 0.8 * s) * density).toFixed(3));
  }
  $('prune-value').textContent = `${cut.toExponential(0)} (${shown} of ${edgeEls.length} edges shown)`;
  document.getElementById('graph-svg')?.setAttribute('data-edges-visible', String(shown));
}

// ------------------------------------------------------------------ inspector
//
// A clicked node: Λ, module, its strongest incoming and outgoing edges (graph.json), and for the
// input layer of an image model (square input width) its C column over the pixels as a heat map.

const INSPECT_EDGES = 8;

function heatmap(values: ArrayLike<number>, side: number, px: number, label: string): HTMLCanvasElement {
  const cv = document.createElement('canvas');
  cv.width = side;
  cv.height = side;
  cv.style.width = `${px}px`;
  cv.style.height = `${px}px`;
  cv.className = 'heatmap';
  cv.setAttribute('role', 'img');
  cv.setAttribute('aria-label', label);
  const ctx = cv.getContext('2d')!;
  const img = ctx.createImageData(side, side);
  let m = 0;
  for (let i = 0; i < side * side; i++) m = Math.max(m, Math.abs(values[i]!));
  for (let i = 0; i < side * side; i++) {
    const t = m > 0 ? values[i]! / m : 0; // −1 … 1: blue … white … red
    const a = Math.abs(t);
    const [r, g, b] = t >= 0 ? [255, 255 * (1 - a), 255 * (1 - a)] : [255 * (1 - a), 255 * (1 - a), 255];
    img.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  return cv;
}

/** Layer-0 C column `k` over the real inputs (the bias slot dropped), when the input width is square. */
async function inputColumn(k: number): Promise<{ side: number; values: Float64Array } | undefined> {
  const b = current?.basis;
  const layer0 = current?.graph.layers[0];
  if (!b || !layer0 || !b.has(`${layer0}/C`)) return undefined;
  const C = await b.readF64(`${layer0}/C`);
  const [dim, r] = C.shape as [number, number];
  const side = Math.round(Math.sqrt(dim - 1));
  if (side < 2 || side * side !== dim - 1 || k >= r) return undefined;
  const values = new Float64Array(dim - 1);
  for (let i = 0; i < dim - 1; i++) values[i] = C.data[i * r + k]!;
  return { side, values };
}

function edgeTable(id: string, title: string, rows: { other: string; weight: number }[]): HTMLElement {
  const wrap = document.createElement('div');
  const h = document.createElement('h3');
  h.textContent = title;
  const t = document.createElement('table');
  t.id = id;
  t.insertRow().append(...['node', '|E|', 'rel.'].map((x) => Object.assign(document.createElement('th'), { textContent: x })));
  const max = rows.length ? Math.abs(rows[0]!.weight) : 1;
  for (const r of rows) {
    const row = t.insertRow();
    const a = document.createElement('a');
    a.href = '#';
    a.textContent = r.other;
    a.addEventListener('click', (ev) => {
      ev.preventDefault();
      inspectNode(r.other);
    });
    row.insertCell().append(a);
    row.insertCell().textContent = fmt(r.weight);
    row.insertCell().textContent = (Math.abs(r.weight) / max).toFixed(2);
  }
  if (!rows.length) t.insertRow().insertCell().textContent = 'none in graph.json';
  wrap.append(h, t);
  return wrap;
}

/** inspect() from an event handler: a failure is shown in the inspector instead of being lost. */
function inspectNode(id: string): void {
  inspect(id).catch((e: unknown) => {
    $('inspector').textContent = `cannot inspect ${id}: ${e instanceof Error ? e.message : String(e)}`;
  });
}

export async function inspect(id: string): Promise<void> {
  const g = current?.graph;
  if (!g) return;
  const nd = g.nodes.find((n) => n.id === id);
  if (!nd) return;
  const host = $('inspector');
  host.replaceChildren();
  document.querySelectorAll('#graph svg circle.node.selected').forEach((c) => c.classList.remove('selected'));
  document.querySelector(`#graph svg circle.node[data-id="${CSS.escape(id)}"]`)?.classList.add('selected');
  const head = document.createElement('p');
  head.id = 'inspect-head';
  head.textContent =
    `${nd.id}: ${nd.layer}, direction ${nd.index}; Λ = ${nd.lambda === null ? '— (unrotated)' : fmt(nd.lambda)}; ` +
    `module ${nd.module === undefined ? '—' : nd.module === null ? 'none' : nd.module}`;
  const by = (sel: (e: GraphEdge) => boolean, other: (e: GraphEdge) => string) =>
    g.edges
      .filter(sel)
      .sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight))
      .slice(0, INSPECT_EDGES)
      .map((e) => ({ other: other(e), weight: e.weight }));
  host.append(
    head,
    edgeTable(
      'inspect-in',
      'strongest incoming edges',
      by(
        (e) => e.target === id,
        (e) => e.source,
      ),
    ),
    edgeTable(
      'inspect-out',
      'strongest outgoing edges',
      by(
        (e) => e.source === id,
        (e) => e.target,
      ),
    ),
  );
  if (nd.layer === g.layers[0]) {
    const col = await inputColumn(nd.index);
    if (col) {
      const fig = document.createElement('figure');
      fig.id = 'inspect-heatmap';
      const cap = document.createElement('figcaption');
      cap.textContent = `what it reads: C column ${nd.index} over the ${col.side}×${col.side} inputs (red +, blue −; the bias slot left out)`;
      fig.append(heatmap(col.values, col.side, 168, `C column ${nd.index} heat map`), cap);
      host.append(fig);
    }
  }
  document.body.dataset['inspected'] = id;
}

/** The leading layer-0 directions as small heat maps (image inputs only). */
async function renderGallery(): Promise<void> {
  const host = $('gallery');
  host.replaceChildren();
  const g = current?.graph;
  const layer0 = g?.layers[0];
  if (!g || !layer0) return;
  const nodes = g.nodes
    .filter((n) => n.layer === layer0)
    .sort((a, b) => a.index - b.index)
    .slice(0, 17);
  let shown = 0;
  for (const nd of nodes) {
    const col = await inputColumn(nd.index);
    if (!col) continue;
    // The constant direction reads only the bias slot: nothing to draw.
    if (col.values.every((v) => Math.abs(v) < 1e-12)) continue;
    const b = document.createElement('button');
    b.className = 'gallery-item';
    b.title = `inspect ${nd.id}`;
    b.append(heatmap(col.values, col.side, 64, `${nd.id}`), Object.assign(document.createElement('span'), { textContent: `${nd.index}` }));
    b.addEventListener('click', () => inspectNode(nd.id));
    host.append(b);
    if (++shown >= 16) break;
  }
  $('gallery-panel').style.display = shown ? '' : 'none';
}

// ------------------------------------------------------------------ ablations and sparsity

interface AblationsJson {
  runs: Record<string, { eval_type: string; no_ablation_result: number; dataset_rows: [number, number] }>;
  sparsity?: { note: string; rows: SparsityRow[] };
}

function renderAblations(a: AblationsJson | undefined): void {
  const panel = $('ablation-panel');
  const host = $('ablations');
  host.replaceChildren();
  if (!a) {
    panel.style.display = 'none';
    return;
  }
  panel.style.display = '';
  const runs = Object.entries(a.runs);
  const p = document.createElement('p');
  p.className = 'legend';
  p.textContent = runs
    .map(([t, r]) => `${t}: ${r.eval_type} ${fmt(r.no_ablation_result)} unablated (rows ${r.dataset_rows[0]}..${r.dataset_rows[1]})`)
    .join(' · ');
  host.append(p);
  if (runs.some(([t]) => t !== 'edge'))
    host.append(
      Object.assign(document.createElement('img'), { src: './result/ablations.svg', alt: 'node ablation curves', id: 'ablation-curves', className: 'figure' }),
    );
  if (a.runs['edge'])
    host.append(
      Object.assign(document.createElement('img'), {
        src: './result/ablations-edges.svg',
        alt: 'edges needed vs tolerance',
        id: 'ablation-edges',
        className: 'figure',
      }),
    );
  if (a.sparsity) {
    const t = document.createElement('table');
    t.id = 'sparsity-table';
    t.insertRow().append(
      ...['layer pair', 'basis', 'edges', 'non-0', '50 %', '90 %', '99 %', 'Gini', 'H (bits)'].map((x) =>
        Object.assign(document.createElement('th'), { textContent: x }),
      ),
    );
    for (const r of a.sparsity.rows) {
      const row = t.insertRow();
      for (const c of [r.pair, r.basis, r.edges, r.nonzero, r.n50, r.n90, r.n99, r.gini.toFixed(3), r.entropy_bits.toFixed(2)])
        row.insertCell().textContent = String(c);
    }
    const note = document.createElement('p');
    note.className = 'legend';
    note.textContent = a.sparsity.note;
    host.append(t, note);
  }
}

// ------------------------------------------------------------------ spectra

async function renderSpectra(r: ViewerResult): Promise<void> {
  const host = $('spectra');
  host.replaceChildren();
  const b = r.basis;
  if (!b) {
    host.textContent = 'basis.safetensors not available';
    return;
  }
  for (const layer of r.graph.layers) {
    const series: { name: string; color: string; values: number[] }[] = [];
    for (const [key, color] of [
      ['gram_eigenvalues', '#888888'],
      ['Lambda', '#c2410c'],
    ] as const) {
      if (b.has(`${layer}/${key}`)) {
        const v = Array.from((await b.readF64(`${layer}/${key}`)).data).sort((x, y) => y - x);
        series.push({ name: key, color, values: v });
      }
    }
    if (series.length === 0) continue;
    host.append(spectrumPlot(layer, series));
  }
}

/** The spectrum plots' size and margins in SVG units: the axes run from left to width − right and from top to height − bottom. */
const SPECTRUM_BOX = { width: 420, height: 130, left: 44, right: 8, top: 16, bottom: 18 } as const;

function spectrumPlot(layer: string, series: { name: string; color: string; values: number[] }[]): HTMLElement {
  const { width, height, left, right, top, bottom } = SPECTRUM_BOX;
  const pos = series.flatMap((s) => s.values.filter((v) => v > 0));
  let lo = Math.floor(Math.log10(Math.min(...pos)));
  const hi = Math.ceil(Math.log10(Math.max(...pos)));
  if (hi - lo > 18) lo = hi - 18;
  const n = Math.max(...series.map((s) => s.values.length));
  const xOf = (i: number) => left + (n > 1 ? (i * (width - left - right)) / (n - 1) : (width - left - right) / 2);
  const yOf = (v: number) => {
    const lv = v > 0 ? Math.max(lo, Math.log10(v)) : lo;
    return top + ((hi - lv) * (height - top - bottom)) / Math.max(1, hi - lo);
  };
  const wrap = document.createElement('div');
  wrap.className = 'spectrum';
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, width, height, 'data-layer': layer });
  const title = svgEl('text', { x: left, y: 11, class: 'tick' });
  title.textContent = `${layer}: ${series.map((s) => `${s.name === 'Lambda' ? 'Λ' : 'Gram'} ${s.values.length}`).join(', ')}`;
  svg.append(
    title,
    svgEl('line', { x1: left, y1: top, x2: left, y2: height - bottom, class: 'axis' }),
    svgEl('line', { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: 'axis' }),
  );
  const stepDec = Math.max(1, Math.ceil((hi - lo) / 5));
  for (let d = lo; d <= hi; d += stepDec) {
    const t = svgEl('text', { x: left - 4, y: yOf(10 ** d) + 3, class: 'tick', 'text-anchor': 'end' });
    t.textContent = `1e${d}`;
    svg.append(t);
  }
  const xl = svgEl('text', { x: width - right, y: height - 4, class: 'tick', 'text-anchor': 'end' });
  xl.textContent = `index (0…${n - 1})`;
  svg.append(xl);
  for (const s of series) {
    const pts = s.values.map((v, i) => `${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}`).join(' ');
    svg.append(svgEl('polyline', { points: pts, fill: 'none', stroke: s.color, 'stroke-width': 1.2, class: `series-${s.name}` }));
    if (s.values.length <= 120) {
      s.values.forEach((v, i) => svg.append(svgEl('circle', { cx: xOf(i).toFixed(1), cy: yOf(v).toFixed(1), r: 1.6, fill: s.color })));
    }
  }
  wrap.append(svg);
  return wrap;
}

// ------------------------------------------------------------------ degeneracy

function renderDegeneracy(d: DegeneracyJson | undefined): void {
  const host = $('degeneracy');
  host.replaceChildren();
  if (!d) {
    host.textContent = 'no degeneracy.json (build with "degeneracy": true)';
    return;
  }
  const table = document.createElement('table');
  table.id = 'degeneracy-table';
  const head = ['section', 'params', 'r_G/d', 'r_J/n_out', 'd·n−r_G·r_J', 'live', 'dead', 'sync groups', 'free (SPEC)', 'free (corr.)'];
  table.insertRow().append(...head.map((h) => Object.assign(document.createElement('th'), { textContent: h })));
  for (const s of d.sections) {
    const row = table.insertRow();
    const cells = [
      s.section,
      s.params,
      `${s.activation_degeneracy.rank}/${s.activation_degeneracy.dim}`,
      `${s.jacobian_degeneracy.rank}/${s.jacobian_degeneracy.n_out}`,
      s.combined_free,
      s.sync ? s.sync.live : '–',
      s.sync ? s.sync.dead.length : '–',
      s.sync ? s.sync.groups.length : '–',
      s.free_spec,
      s.free_corrected,
    ];
    for (const c of cells) row.insertCell().textContent = String(c);
  }
  const t = d.totals;
  const p = document.createElement('p');
  p.textContent =
    t.effective_scope === 'mlp_blocks'
      ? `MLP blocks only: ${t.covered_params ?? '?'} of ${t.raw_params} parameters; their effective count ≈ ${t.effective_spec} (SPEC §6.4–6.5), ≈ ${t.effective_corrected} (overlap-corrected). ` +
        `Attention, embeddings, unembedding and LayerNorm are not counted, so there is no whole-model total; ` +
        `${d.scope ? `${d.scope.rows} rows (${d.scope.sequences} sequences × ${d.scope.positions} positions).` : ''}`
      : `raw parameters ${t.raw_params}; effective ≈ ${t.effective_spec} (SPEC §6.4–6.5), ≈ ${t.effective_corrected} (overlap-corrected)` +
        `${t.complete ? '' : ' — not every layer is covered'}; ${d.dataset_size} datapoints.`;
  host.append(table, p);
}

// ------------------------------------------------------------------ loading and running

async function show(r: ViewerResult): Promise<void> {
  const m = r.manifest;
  $('meta').textContent = [
    r.source,
    m?.dataset_size !== undefined ? `${m.dataset_size} datapoints` : '',
    m?.data ?? '',
    m?.adapter ? `adapter: ${m.adapter}` : '',
    m?.ibgpu_version ? `ibgpu ${m.ibgpu_version}` : '',
  ]
    .filter(Boolean)
    .join(' · ');
  current = r;
  renderGraph(r.graph);
  renderDegeneracy(r.degeneracy);
  renderAblations(r.ablations);
  $('inspector').textContent = 'click a node (or focus it and press Enter) to inspect it';
  await renderGallery();
  await renderSpectra(r);
  document.body.dataset['state'] = 'ready';
  document.body.dataset['source'] = r.source;
}

async function fetchOk(url: string): Promise<Response | undefined> {
  try {
    const res = await fetch(url, { cache: 'no-store' });
    return res.ok ? res : undefined;
  } catch {
    return undefined;
  }
}

async function loadServed(): Promise<ViewerResult | undefined> {
  const g = await fetchOk('./result/graph.json');
  if (!g) return undefined;
  const [m, d, b, a] = await Promise.all(['manifest.json', 'degeneracy.json', 'basis.safetensors', 'ablations.json'].map((f) => fetchOk(`./result/${f}`)));
  return {
    graph: (await g.json()) as GraphJson,
    manifest: m ? ((await m.json()) as ManifestJson) : undefined,
    degeneracy: d ? ((await d.json()) as DegeneracyJson) : undefined,
    basis: b ? parseSafetensors(new Uint8Array(await b.arrayBuffer()), 'basis.safetensors') : undefined,
    ablations: a ? ((await a.json()) as AblationsJson) : undefined,
    source: 'result',
  };
}

async function bytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** What a build in the page runs on: an architecture and the bytes (or Blobs) of weights and data. */
export interface PageInputs {
  label: string;
  arch: { layers: { name: string }[] };
  weights: Uint8Array | Blob;
  data: Uint8Array | Blob;
  /** The data tensor's name in a safetensors file (default 'X'). */
  key?: string;
  /** 'npy': `data` is a 2-D .npy array; default: a safetensors file. */
  dataFormat?: 'safetensors' | 'npy';
}

/** Builds an Interaction Basis with the page's WebGPU (every layer a node layer, then the output). */
export async function runBuild(inputs: PageInputs, log: (m: string) => void = () => {}): Promise<ViewerResult> {
  const t0 = performance.now();
  // A string-typed specifier: the bundle sits next to the page at run time, not in the sources.
  const bundle: string = './ibgpu.js';
  const ib = (await import(/* webpackIgnore: true */ bundle)) as IbModule;
  const engine = await ib.createBrowserEngine();
  try {
    log(`adapter: ${engine.adapterName}`);
    const { arch } = inputs;
    if (!arch || !Array.isArray(arch.layers)) throw new Error(`${inputs.label}: the architecture has no "layers" list`);
    const model = await ib.modelFromSafetensorsBytes(arch, inputs.weights, `${inputs.label} weights`);
    const data =
      inputs.dataFormat === 'npy'
        ? await ib.dataFromNpyBytes(inputs.data, `${inputs.label} data`)
        : await ib.dataFromSafetensorsBytes(inputs.data, inputs.key ?? 'X', `${inputs.label} data`);
    const config = ib.parseConfig({
      node_layers: [...arch.layers.map((l) => l.name), 'output'],
      batch_size: 256,
      threshold_mode: 'relative',
      truncation_threshold: 1e-6,
      degeneracy: true,
    });
    log(`building: ${data.n} datapoints × ${data.d} features`);
    const res = await ib.buildInteractionBasis(engine, model, data, config, { logger: { info: log } });
    return pageResult(ib, res, engine.adapterName, data.description, inputs.label, t0, log);
  } finally {
    engine.dispose();
  }
}

/** A build made in the page, as the viewer shows results: the files `ibgpu build` would write. */
function pageResult(
  ib: IbModule,
  res: Parameters<IbModule['resultFiles']>[0],
  adapter: string,
  data: string,
  label: string,
  t0: number,
  log: (m: string) => void,
): ViewerResult {
  const files = ib.resultFiles(res, { adapter, data });
  const text = (f: string) => (typeof files[f] === 'string' ? (JSON.parse(files[f]) as unknown) : undefined);
  log(
    `done in ${((performance.now() - t0) / 1000).toFixed(1)} s (${Object.entries(res.timings)
      .map(([k, v]) => `${k} ${v.toFixed(0)} ms`)
      .join(', ')})`,
  );
  return {
    graph: text('graph.json') as GraphJson,
    manifest: text('manifest.json') as ManifestJson,
    degeneracy: text('degeneracy.json') as DegeneracyJson | undefined,
    basis: ib.parseSafetensors(files['basis.safetensors'] as Uint8Array, 'basis.safetensors'),
    source: `run in the page: ${label}`,
  };
}

/**
 * Builds the served transformer example in the page: its build config (node layers, the
 * modular-arithmetic dataset block, thresholds), model config and weights.
 */
export async function runTransformerExample(log: (m: string) => void = () => {}): Promise<ViewerResult> {
  const t0 = performance.now();
  const bundle: string = './ibgpu.js';
  const ib = (await import(/* webpackIgnore: true */ bundle)) as IbModule;
  const json = async (u: string) => JSON.parse(new TextDecoder().decode(await bytes(u))) as Record<string, unknown>;
  const { dataset, model: _m, arch: _a, exp_name: _e, ...fields } = await json('./example/modadd/build.json');
  const model = await ib.transformerFromSafetensorsBytes(await json('./example/modadd/config.json'), await bytes('./example/modadd/weights.safetensors'));
  const { type: _t, ...spec } = dataset as Record<string, unknown>;
  const data = ib.modularArithmetic(ib.parseModularArithmetic(spec));
  const engine = await ib.createBrowserEngine();
  try {
    log(`adapter: ${engine.adapterName}`);
    log(`building: ${data.n} sequences of ${data.P} tokens, node layers ${(fields['node_layers'] as string[]).join(', ')}`);
    const res = await ib.buildTransformerBasis(engine, model, data, ib.parseConfig(fields));
    return pageResult(ib, res, engine.adapterName, data.source, 'modadd transformer', t0, log);
  } finally {
    engine.dispose();
  }
}

/** Builds one of the served examples in the page. */
export async function runExample(which: 'synthetic' | 'mnist', log: (m: string) => void = () => {}): Promise<ViewerResult> {
  const base = `./example/${which}`;
  const arch = JSON.parse(new TextDecoder().decode(await bytes(`${base}/arch.json`))) as PageInputs['arch'];
  return runBuild(
    {
      label: which,
      arch,
      weights: await bytes(`${base}/${which === 'mnist' ? 'model' : 'weights'}.safetensors`),
      data: await bytes(`${base}/${which === 'mnist' ? 'digits' : 'inputs'}.safetensors`),
    },
    log,
  );
}

/** Builds from the files picked in the page (read lazily: safetensors tensors come from Blob slices). */
export async function runPickedFiles(log: (m: string) => void = () => {}): Promise<ViewerResult> {
  const pick = (id: string, what: string): File => {
    const f = $<HTMLInputElement>(id).files?.[0];
    if (!f) throw new Error(`pick ${what} first`);
    return f;
  };
  const archFile = pick('file-arch', 'an architecture JSON');
  const weights = pick('file-model', 'a weights .safetensors file');
  const data = pick('file-data', 'a data file (.safetensors or .npy)');
  let arch: PageInputs['arch'];
  try {
    arch = JSON.parse(await archFile.text()) as PageInputs['arch'];
  } catch (e) {
    throw new Error(`${archFile.name} is not JSON: ${(e as Error).message}`);
  }
  const key = $<HTMLInputElement>('file-key').value.trim() || 'X';
  // .npy files start with the bytes \x93NUMPY; anything else is read as safetensors.
  const magic = new Uint8Array(await data.slice(0, 6).arrayBuffer());
  const dataFormat = magic[0] === 0x93 && String.fromCharCode(...magic.subarray(1)) === 'NUMPY' ? 'npy' : 'safetensors';
  return runBuild({ label: `your files (${weights.name}, ${data.name})`, arch, weights, data, key, dataFormat }, log);
}

async function main(): Promise<void> {
  $<HTMLInputElement>('prune').addEventListener('input', applyPrune);
  $<HTMLInputElement>('topk').addEventListener('input', (ev) => {
    (ev.target as HTMLInputElement).dataset['touched'] = '1';
    applyPrune();
  });
  $('zoom-in').addEventListener('click', () => zoomAt(1.5, VIEW_W / 2, VIEW_H / 2));
  $('zoom-out').addEventListener('click', () => zoomAt(1 / 1.5, VIEW_W / 2, VIEW_H / 2));
  $('zoom-fit').addEventListener('click', () => {
    if (current) renderGraph(current.graph);
  });
  const status = $('status');
  const log = (m: string) => {
    status.textContent += `${m}\n`;
  };
  // The served examples need `ibgpu serve`; picked files work on static exports too.
  const examples = (await fetchOk('./example/synthetic/arch.json')) !== undefined;
  const select = $<HTMLSelectElement>('example');
  if (!examples) {
    for (const o of Array.from(select.options)) if (o.value !== 'files') o.remove();
  }
  const showFiles = () => {
    $('files').style.display = select.value === 'files' ? '' : 'none';
  };
  select.addEventListener('change', showFiles);
  showFiles();
  const button = $<HTMLButtonElement>('run');
  button.addEventListener('click', () => {
    button.disabled = true;
    status.textContent = '';
    status.classList.remove('error');
    document.body.dataset['state'] = 'running';
    const which = $<HTMLSelectElement>('example').value as 'synthetic' | 'mnist' | 'modadd' | 'files';
    (which === 'files' ? runPickedFiles(log) : which === 'modadd' ? runTransformerExample(log) : runExample(which, log))
      .then(show)
      .catch((e: unknown) => {
        status.classList.add('error');
        log(`failed: ${(e as Error).message}`);
        document.body.dataset['state'] = 'error';
      })
      .finally(() => {
        button.disabled = false;
      });
  });
  const served = await loadServed();
  if (served) await show(served);
  else {
    $('meta').textContent = 'no result served; run one in the page';
    document.body.dataset['state'] = 'empty';
  }
}

void main().catch((e: unknown) => {
  $('meta').textContent = `viewer error: ${(e as Error).message}`;
  document.body.dataset['state'] = 'error';
});
