/**
 * Renders the layout of the hub's Grafana dashboard (ops/grafana/dashboards/fulfillment-hub.json) as
 * an HTML grid, as Grafana places its panels (24 columns, rows of 8 units), and screenshots it with
 * Chromium into docs/grafana-dashboard.png for the README. Grafana itself is not needed.
 *   node --import tsx scripts/render-dashboard.ts [--chromium=/usr/bin/chromium]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

interface Panel {
  type: string;
  title: string;
  description?: string;
  gridPos: { h: number; w: number; x: number; y: number };
  fieldConfig?: { defaults?: { unit?: string; thresholds?: { steps?: Array<{ value: number | null }> } } };
  targets?: Array<{ expr: string; legendFormat?: string }>;
}

const root = new URL('..', import.meta.url);
const dashboard = JSON.parse(readFileSync(new URL('ops/grafana/dashboards/fulfillment-hub.json', root), 'utf8')) as { title: string; panels: Panel[] };
const out = fileURLToPath(new URL('docs/grafana-dashboard.png', root));
const executablePath = process.argv.find((a) => a.startsWith('--chromium='))?.slice('--chromium='.length) ?? '/usr/bin/chromium';

const UNIT = 30; // px per grid row unit
const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const metricsOf = (p: Panel) => [...new Set((p.targets ?? []).flatMap((t) => [...t.expr.matchAll(/\bhub_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, ''))))];
const KIND: Record<string, string> = { timeseries: 'time series', stat: 'stat', bargauge: 'bar gauge', table: 'table' };

const cells = dashboard.panels
  .map((p) => {
    const style = `grid-column: ${p.gridPos.x + 1} / span ${p.gridPos.w}; grid-row: ${p.gridPos.y + 1} / span ${p.gridPos.h};`;
    if (p.type === 'row') return `<div class="row" style="${style}">${escape(p.title)}</div>`;
    const threshold = p.fieldConfig?.defaults?.thresholds?.steps?.find((s) => s.value !== null)?.value;
    const unit = p.fieldConfig?.defaults?.unit;
    const legends = (p.targets ?? []).map((t) => `<li>${escape(t.legendFormat || t.expr)}</li>`).join('');
    return `<div class="panel ${p.type}" style="${style}">
      <div class="head"><span class="title">${escape(p.title)}</span><span class="kind">${KIND[p.type] ?? p.type}${unit && unit !== 'short' ? ` · ${escape(unit)}` : ''}${threshold !== undefined ? ` · line at ${threshold}` : ''}</span></div>
      <div class="body"><ul>${legends}</ul><div class="metrics">${metricsOf(p).map((m) => `<code>${m}</code>`).join(' ')}</div></div>
    </div>`;
  })
  .join('\n');
const rows = Math.max(...dashboard.panels.map((p) => p.gridPos.y + p.gridPos.h));

const html = `<!doctype html><html><head><meta charset="utf-8"><style>
  body { margin: 0; background: #111217; font: 12px/1.35 -apple-system, "Segoe UI", Roboto, sans-serif; color: #ccccdc; }
  h1 { font-size: 18px; font-weight: 500; margin: 0; padding: 14px 16px 4px; color: #fff; }
  .sub { padding: 0 16px 10px; color: #8e8e9e; }
  .grid { display: grid; grid-template-columns: repeat(24, 1fr); grid-template-rows: repeat(${rows}, ${UNIT}px); gap: 6px; padding: 0 12px 16px; }
  .row { align-self: end; font-size: 14px; font-weight: 500; color: #fff; border-bottom: 1px solid #2c3235; padding-bottom: 2px; }
  .panel { background: #181b1f; border: 1px solid #2c3235; border-radius: 2px; display: flex; flex-direction: column; overflow: hidden; }
  .head { display: flex; justify-content: space-between; gap: 8px; padding: 6px 8px; }
  .title { font-weight: 500; color: #fff; }
  .kind { color: #6e9fff; white-space: nowrap; }
  .body { flex: 1; padding: 0 8px 6px; display: flex; flex-direction: column; justify-content: space-between; }
  .body ul { margin: 0; padding-left: 16px; }
  .metrics code { color: #73bf69; font-size: 10.5px; }
  .timeseries .body { background: linear-gradient(to top, rgba(110,159,255,.10), transparent 60%); }
</style></head><body>
<h1>${escape(dashboard.title)}</h1>
<div class="sub">Layout of ops/grafana/dashboards/fulfillment-hub.json: each box is a panel where Grafana places it, with its series (legend) and the hub metrics it reads.</div>
<div class="grid">${cells}</div></body></html>`;

const browser = await chromium.launch({ executablePath, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
  await page.setContent(html, { waitUntil: 'load' });
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
