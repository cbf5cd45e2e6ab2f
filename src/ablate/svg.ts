// SVG figures of ablation results (plain strings, no dependencies):
//   nodeAblationSvg  one panel per node layer, score vs directions kept (log(1 + n) axis so the
//                    IB's tens of directions and the neuron basis' hundreds both show), one line
//                    per basis;
//   edgeAblationSvg  edges needed vs the tolerated score difference, one line per layer pair.

export interface Series {
  label: string;
  color: string;
  points: { x: number; y: number }[];
}

export interface Panel {
  title: string;
  series: Series[];
}

export const BASIS_COLORS: Record<string, string> = { ib: '#1f77b4', pca: '#ff7f0e', neuron: '#7f7f7f' };
const PAIR_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#8c564b', '#e377c2'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (Math.abs(v) >= 100 || v === Math.round(v) ? String(Math.round(v)) : String(Number(v.toPrecision(3))));

interface Axis {
  map: (v: number) => number;
  ticks: number[];
}

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(Math.max(lo, 1e-12))); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 3]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out;
}

function linTicks(lo: number, hi: number): number[] {
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / 4));
  const s = [1, 2, 5, 10].map((m) => m * step).find((v) => span / v <= 6) ?? step * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / s) * s; v <= hi + 1e-12; v += s) out.push(Number(v.toPrecision(12)));
  return out;
}

function panelSvg(
  p: Panel,
  x0: number,
  y0: number,
  w: number,
  h: number,
  xKind: 'log1p' | 'log',
  yKind: 'lin' | 'log',
  xLabel: string,
  yLabel: string,
): string {
  const pts = p.series.flatMap((s) => s.points);
  const out: string[] = [];
  const L = 52;
  const B = 36;
  const pw = w - L - 10;
  const ph = h - B - 24;
  const xs = pts.map((q) => q.x);
  const ys = pts.map((q) => q.y);
  const fx = xKind === 'log1p' ? (v: number) => Math.log10(1 + v) : (v: number) => Math.log10(v);
  const xlo = xKind === 'log1p' ? 0 : Math.min(...xs);
  const xhi = xKind === 'log1p' ? Math.max(...xs, 1) : Math.max(...xs) * 1.25;
  let ylo = Math.min(...ys);
  let yhi = Math.max(...ys);
  if (yKind === 'lin') {
    if (yhi - ylo < 1e-9) {
      ylo -= 0.5;
      yhi += 0.5;
    }
  } else {
    ylo = Math.max(Math.min(...ys.filter((v) => v > 0)), 1e-12);
    yhi = Math.max(yhi, ylo * 10);
  }
  const fy = yKind === 'log' ? (v: number) => Math.log10(Math.max(v, ylo)) : (v: number) => v;
  const X: Axis = {
    map: (v) => x0 + L + ((fx(v) - fx(xlo)) / (fx(xhi) - fx(xlo) || 1)) * pw,
    ticks: xKind === 'log1p' ? [0, ...logTicks(1, xhi)] : logTicks(xlo, xhi),
  };
  const Y: Axis = {
    map: (v) => y0 + 20 + ph - ((fy(v) - fy(ylo)) / (fy(yhi) - fy(ylo) || 1)) * ph,
    ticks: yKind === 'log' ? logTicks(ylo, yhi) : linTicks(ylo, yhi),
  };
  out.push(`<text x="${x0 + L + pw / 2}" y="${y0 + 14}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
  out.push(`<rect x="${x0 + L}" y="${y0 + 20}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (const t of X.ticks) {
    const x = X.map(t).toFixed(1);
    out.push(
      `<line x1="${x}" x2="${x}" y1="${y0 + 20}" y2="${y0 + 20 + ph}" stroke="#eee"/><text x="${x}" y="${y0 + 20 + ph + 14}" text-anchor="middle" font-size="10">${fmt(t)}</text>`,
    );
  }
  for (const t of Y.ticks) {
    const y = Y.map(t).toFixed(1);
    out.push(
      `<line x1="${x0 + L}" x2="${x0 + L + pw}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${x0 + L - 4}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="10">${fmt(t)}</text>`,
    );
  }
  out.push(`<text x="${x0 + L + pw / 2}" y="${y0 + h - 4}" text-anchor="middle" font-size="11">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(${x0 + 12} ${y0 + 20 + ph / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(yLabel)}</text>`);
  for (const s of p.series) {
    const sorted = [...s.points].sort((a, b) => a.x - b.x);
    const d = sorted.map((q, i) => `${i ? 'L' : 'M'}${X.map(q.x).toFixed(1)},${Y.map(q.y).toFixed(1)}`).join('');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"><title>${esc(s.label)}</title></path>`);
    for (const q of sorted) out.push(`<circle cx="${X.map(q.x).toFixed(1)}" cy="${Y.map(q.y).toFixed(1)}" r="2.2" fill="${s.color}"/>`);
  }
  return out.join('\n');
}

function legend(series: Series[], x: number, y: number): string {
  const seen = new Map<string, string>();
  for (const s of series) seen.set(s.label, s.color);
  return [...seen]
    .map(
      ([label, color], i) =>
        `<line x1="${x + i * 150}" x2="${x + i * 150 + 22}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="3"/><text x="${x + i * 150 + 28}" y="${y}" dominant-baseline="middle" font-size="12">${esc(label)}</text>`,
    )
    .join('\n');
}

function frame(w: number, h: number, title: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n<text x="10" y="18" font-size="14" font-weight="bold">${esc(title)}</text>\n${body}\n</svg>\n`;
}

export function nodeAblationSvg(panels: Panel[], title: string, yLabel: string): string {
  const pw = 300;
  const ph = 260;
  const w = Math.max(1, panels.length) * pw + 10;
  const body = panels.map((p, i) => panelSvg(p, 5 + i * pw, 30, pw, ph, 'log1p', 'lin', 'directions kept', yLabel)).join('\n');
  return frame(
    w,
    ph + 60,
    title,
    `${body}\n${legend(
      panels.flatMap((p) => p.series),
      60,
      ph + 45,
    )}`,
  );
}

export function edgeAblationSvg(series: Series[], title: string, xLabel: string): string {
  const colored = series.map((s, i) => ({ ...s, color: s.color || PAIR_COLORS[i % PAIR_COLORS.length]! }));
  const body = panelSvg({ title: '', series: colored }, 5, 20, 460, 300, 'log', 'log', xLabel, 'edges needed');
  return frame(470, 360, title, `${body}\n${legend(colored, 20, 345)}`);
}
