/**
 * Renders the hub's Grafana dashboard (ops/grafana/dashboards/fulfillment-hub.json) as an HTML grid,
 * placed as Grafana places its panels (24 columns, rows of 8 units), and screenshots it with Chromium
 * for the README. Grafana itself is not needed.
 *
 *   node --import tsx scripts/render-dashboard.ts [--prometheus=http://127.0.0.1:9090] [--out=docs/grafana-dashboard.png]
 *
 * With --prometheus, every panel query is evaluated there (time series over the last 10 minutes, the
 * others at the latest instant) and drawn: lines, values, bars. Without it, each panel shows its series
 * and the metrics it reads. The README's picture is drawn from the Prometheus of
 * test/integration/observability.test.ts (RENDER_DASHBOARD_PNG=docs/grafana-dashboard.png).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

interface Panel {
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  fieldConfig?: { defaults?: { unit?: string; thresholds?: { steps?: Array<{ value: number | null }> } } };
  targets?: Array<{ expr: string; legendFormat?: string }>;
}
interface Series {
  name: string;
  points: Array<[number, number]>;
}

const ROOT = new URL('..', import.meta.url);
const UNIT = 30; // px per grid row unit
const COLOURS = ['#73bf69', '#f2cc0c', '#5794f2', '#ff9830', '#b877d9', '#f2495c', '#8ab8ff', '#96d98d'];
const KIND: Record<string, string> = { timeseries: 'time series', stat: 'stat', bargauge: 'bar gauge', table: 'table' };
const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const metricsOf = (p: Panel) => [
  ...new Set((p.targets ?? []).flatMap((t) => [...t.expr.matchAll(/\bhub_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, '')))),
];

function legend(format: string | undefined, labels: Record<string, string>): string {
  if (!format)
    return (
      Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || 'value'
    );
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => labels[k] ?? '');
}

function formatValue(v: number, unit: string | undefined): string {
  if (!Number.isFinite(v)) return '–';
  if (unit === 's') return v >= 1 ? `${v.toFixed(v >= 100 ? 0 : 1)} s` : `${(v * 1000).toFixed(v >= 0.01 ? 0 : 1)} ms`;
  if (unit === 'percentunit') return `${(v * 100).toFixed(1)} %`;
  const suffix = unit === 'ops' ? '/s' : unit === 'reqps' ? ' req/s' : '';
  const digits = Math.abs(v) >= 100 || Number.isInteger(v) ? 0 : Math.abs(v) >= 1 ? 1 : 3;
  return `${v.toFixed(digits)}${suffix}`;
}

async function evaluate(prometheus: string, panel: Panel, now: number): Promise<Series[]> {
  const out: Series[] = [];
  for (const t of panel.targets ?? []) {
    const expr = t.expr.replaceAll('$__rate_interval', '30s');
    const params =
      panel.type === 'timeseries'
        ? new URLSearchParams({ query: expr, start: String(now - 600), end: String(now), step: '5' })
        : new URLSearchParams({ query: expr, time: String(now) });
    const res = await fetch(`${prometheus}/api/v1/${panel.type === 'timeseries' ? 'query_range' : 'query'}?${params}`);
    const body = (await res.json()) as {
      data?: { result: Array<{ metric: Record<string, string>; values?: Array<[number, string]>; value?: [number, string] }> };
    };
    for (const r of body.data?.result ?? []) {
      const points = (r.values ?? (r.value ? [r.value] : [])).map(([ts, v]) => [ts, Number(v)] as [number, number]);
      out.push({ name: legend(t.legendFormat, r.metric), points });
    }
  }
  return out;
}

function chart(series: Series[], threshold: number | undefined, unit: string | undefined, w: number, h: number): string {
  const finite = series.flatMap((s) => s.points.map((p) => p[1]).filter(Number.isFinite));
  if (finite.length === 0) return '<div class="nodata">no data</div>';
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const yMax = Math.max(...finite, threshold ?? 0) * 1.1 || 1;
  const px = (x: number) => ((x - x0) / Math.max(1, x1 - x0)) * w;
  const py = (y: number) => h - (y / yMax) * h;
  const lines = series.slice(0, COLOURS.length).map((s, i) => {
    const d = s.points
      .filter((p) => Number.isFinite(p[1]))
      .map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`)
      .join(' ');
    return `<polyline fill="none" stroke="${COLOURS[i]}" stroke-width="1.5" points="${d}"/>`;
  });
  const line = threshold !== undefined ? `<line x1="0" x2="${w}" y1="${py(threshold)}" y2="${py(threshold)}" stroke="#f2495c" stroke-dasharray="4 3"/>` : '';
  const axis = `<text x="2" y="10" class="axis">${formatValue(yMax / 1.1, unit)}</text>`;
  const keys = series
    .slice(0, COLOURS.length)
    .map((s, i) => `<span><i style="background:${COLOURS[i]}"></i>${escapeHtml(s.name)}</span>`)
    .join('');
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${line}${lines.join('')}${axis}</svg><div class="keys">${keys}${series.length > COLOURS.length ? `<span>+${series.length - COLOURS.length} more</span>` : ''}</div>`;
}

function values(panel: Panel, series: Series[], unit: string | undefined, threshold: number | undefined): string {
  const rows = series
    .map((s) => ({ name: s.name, v: s.points.at(-1)?.[1] ?? Number.NaN }))
    .sort((a, b) => (panel.type === 'bargauge' ? (Number.isFinite(b.v) ? b.v : -1) - (Number.isFinite(a.v) ? a.v : -1) : 0))
    .slice(0, 12);
  if (rows.length === 0) return '<div class="nodata">no data</div>';
  if (panel.type === 'stat') {
    return `<div class="stats">${rows.map((r) => `<div class="stat"><b class="${threshold !== undefined && r.v >= threshold ? 'bad' : 'good'}">${formatValue(r.v, unit)}</b><span>${escapeHtml(r.name)}</span></div>`).join('')}</div>`;
  }
  const max = Math.max(...rows.map((r) => (Number.isFinite(r.v) ? r.v : 0)), 1e-9);
  if (panel.type === 'bargauge') {
    return `<div class="bars">${rows.map((r) => `<div class="bar"><span class="label">${escapeHtml(r.name)}</span><span class="track"><span style="width:${((Number.isFinite(r.v) ? r.v : 0) / max) * 100}%"></span></span><span class="num">${formatValue(r.v, unit)}</span></div>`).join('')}</div>`;
  }
  return `<table>${rows.map((r) => `<tr><td>${escapeHtml(r.name)}</td><td class="num">${formatValue(r.v, unit)}</td></tr>`).join('')}</table>`;
}

export async function renderDashboard(options: { out: string; prometheus?: string; executablePath?: string; width?: number }): Promise<void> {
  const dashboard = JSON.parse(readFileSync(new URL('ops/grafana/dashboards/fulfillment-hub.json', ROOT), 'utf8')) as { title: string; panels: Panel[] };
  const width = options.width ?? 1600;
  const colWidth = (width - 24) / 24;
  const now = Math.floor(Date.now() / 1000);
  const cells: string[] = [];
  for (const p of dashboard.panels) {
    const style = `grid-column: ${p.gridPos.x + 1} / span ${p.gridPos.w}; grid-row: ${p.gridPos.y + 1} / span ${p.gridPos.h};`;
    if (p.type === 'row') {
      cells.push(`<div class="row" style="${style}">${escapeHtml(p.title)}</div>`);
      continue;
    }
    const threshold = p.fieldConfig?.defaults?.thresholds?.steps?.find((s) => s.value !== null)?.value ?? undefined;
    const unit = p.fieldConfig?.defaults?.unit;
    let body: string;
    if (options.prometheus) {
      const series = await evaluate(options.prometheus, p, now);
      body =
        p.type === 'timeseries'
          ? chart(series, threshold, unit, Math.round(colWidth * p.gridPos.w - 30), p.gridPos.h * UNIT - 80)
          : values(p, series, unit, threshold);
    } else {
      const legends = (p.targets ?? []).map((t) => `<li>${escapeHtml(t.legendFormat || t.expr)}</li>`).join('');
      body = `<ul>${legends}</ul>`;
    }
    cells.push(`<div class="panel" style="${style}">
      <div class="head"><span class="title">${escapeHtml(p.title)}</span><span class="kind">${KIND[p.type] ?? p.type}${threshold !== undefined ? ` · line at ${formatValue(threshold, unit)}` : ''}</span></div>
      <div class="body">${body}</div>
      <div class="metrics">${metricsOf(p)
        .map((m) => `<code>${m}</code>`)
        .join(' ')}</div>
    </div>`);
  }
  const rows = Math.max(...dashboard.panels.map((p) => p.gridPos.y + p.gridPos.h));
  const html = `<!doctype html><html><head><meta charset="utf-8"><style>
    body { margin: 0; width: ${width}px; background: #111217; font: 12px/1.35 -apple-system, "Segoe UI", Roboto, sans-serif; color: #ccccdc; }
    h1 { font-size: 18px; font-weight: 500; margin: 0; padding: 14px 16px 4px; color: #fff; }
    .sub { padding: 0 16px 10px; color: #8e8e9e; }
    .grid { display: grid; grid-template-columns: repeat(24, 1fr); grid-template-rows: repeat(${rows}, ${UNIT}px); gap: 6px; padding: 0 12px 16px; }
    .row { align-self: end; font-size: 14px; font-weight: 500; color: #fff; border-bottom: 1px solid #2c3235; padding-bottom: 2px; }
    .panel { background: #181b1f; border: 1px solid #2c3235; border-radius: 2px; display: flex; flex-direction: column; overflow: hidden; }
    .head { display: flex; justify-content: space-between; gap: 8px; padding: 6px 8px 2px; }
    .title { font-weight: 500; color: #fff; }
    .kind { color: #6e9fff; white-space: nowrap; }
    .body { flex: 1; padding: 2px 8px; overflow: hidden; }
    .body ul { margin: 0; padding-left: 16px; }
    .metrics { padding: 0 8px 4px; white-space: nowrap; overflow: hidden; }
    .metrics code { color: #5a6b5a; font-size: 10px; }
    .nodata { color: #8e8e9e; padding-top: 30px; text-align: center; }
    .axis { fill: #8e8e9e; font-size: 10px; }
    .keys { display: flex; flex-wrap: wrap; gap: 2px 10px; font-size: 10.5px; }
    .keys i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
    .stats { display: flex; flex-wrap: wrap; gap: 6px 18px; padding-top: 6px; }
    .stat b { display: block; font-size: 24px; font-weight: 500; } .stat b.good { color: #73bf69; } .stat b.bad { color: #f2495c; }
    .bars .bar { display: grid; grid-template-columns: 38% 1fr 64px; gap: 6px; align-items: center; height: 16px; }
    .bars .label { overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
    .bars .track { background: #22252b; height: 10px; } .bars .track span { display: block; height: 10px; background: #73bf69; }
    .num { text-align: right; font-variant-numeric: tabular-nums; }
    table { width: 100%; border-collapse: collapse; } td { border-bottom: 1px solid #22252b; padding: 1px 2px; }
  </style></head><body>
  <h1>${escapeHtml(dashboard.title)}</h1>
  <div class="sub">${options.prometheus ? 'ops/grafana/dashboards/fulfillment-hub.json drawn from Prometheus: every panel’s queries evaluated, laid out where Grafana places them.' : 'Layout of ops/grafana/dashboards/fulfillment-hub.json: each box is a panel where Grafana places it, with its series and the hub metrics it reads.'}</div>
  <div class="grid">${cells.join('\n')}</div></body></html>`;

  const browser = await chromium.launch({
    executablePath: options.executablePath ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width, height: 900 }, deviceScaleFactor: 1 });
    await page.setContent(html, { waitUntil: 'load' });
    await page.screenshot({ path: options.out, fullPage: true });
  } finally {
    await browser.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const flag = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const out = flag('out') ?? fileURLToPath(new URL('docs/grafana-dashboard.png', ROOT));
  await renderDashboard({ out, prometheus: flag('prometheus'), executablePath: flag('chromium') });
  console.log(`wrote ${out}`);
}
