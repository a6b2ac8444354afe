import { STATUS_NAMES, type StatusCode } from '../machines/order.machine.js';
import type { ConsoleUser } from './console-security.js';
import { html, type Html } from './html.js';

/** What a successful action says after the redirect back (fixed texts: nothing from the URL is shown). */
export const NOTICES: Record<string, string> = {
  moved: 'Status moved.',
  'bulk-moved': 'Orders moved.',
  overridden: 'Status overridden.',
  assigned: 'Delivery partner assigned.',
  resolved: 'Case resolved.',
  retried: 'Dead letter sent back to its queue.',
};

export function statusLabel(code: number | null | undefined): string {
  if (code === null || code === undefined) return '—';
  return `${code} ${STATUS_NAMES[code as StatusCode] ?? 'Unknown'}`;
}

export function canOperate(user: ConsoleUser): boolean {
  return user.role === 'operator' || user.role === 'admin';
}

/** The hidden field every console form carries (see requireSameOrigin). */
export function csrfField(user: ConsoleUser): Html {
  return html`<input type="hidden" name="_csrf" value="${user.csrfToken}">`;
}

const NAV: Array<[string, string]> = [
  ['/ops', 'Overview'],
  ['/ops/orders', 'Orders'],
  ['/ops/dead-letters', 'Dead letters'],
];

export function page(opts: {
  title: string;
  user: ConsoleUser | undefined;
  current?: string;
  notice?: string | undefined;
  body: Html;
  live?: { orderId?: string; locationId?: string };
}): string {
  const { user } = opts;
  const notice = opts.notice && Object.hasOwn(NOTICES, opts.notice) ? NOTICES[opts.notice] : undefined;
  const live = opts.live;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${user ? html`<meta name="csrf-token" content="${user.csrfToken}">` : ''}
<title>${opts.title} · Fulfillment hub operations</title>
<link rel="stylesheet" href="/ops/assets/console.css">
<script src="/ops/assets/console.js" defer></script>
</head>
<body${live ? html` data-live-order="${live.orderId ?? ''}" data-live-location="${live.locationId ?? ''}" data-status-names="${JSON.stringify(STATUS_NAMES)}"` : ''}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <p class="brand"><a href="/ops">Fulfillment hub · operations</a></p>
  <nav aria-label="Console">
    <ul>
      ${NAV.map(([href, label]) => html`<li><a href="${href}"${opts.current === href ? html` aria-current="page"` : ''}>${label}</a></li>`)}
      <li><a href="/api/docs">API reference</a></li>
    </ul>
  </nav>
  ${user ? html`<p class="who">Signed in as <strong>${user.id}</strong> (<span data-role>${user.role}</span>)</p>` : ''}
</header>
<main id="main" tabindex="-1">
<h1>${opts.title}</h1>
${notice ? html`<p class="notice" role="status">${notice}</p>` : ''}
${opts.body}
</main>
</body>
</html>
`.value;
}

export function errorPage(user: ConsoleUser | undefined, status: number, code: string, message: string, details: unknown, back: string | undefined): string {
  const allowed = (details as { allowed?: unknown } | undefined)?.allowed;
  const failures = (details as { failures?: Array<{ orderId: string; code: string; reason?: string }> } | undefined)?.failures;
  return page({
    title: status === 403 ? 'Not allowed' : status === 404 ? 'Not found' : status === 401 ? 'Sign in' : 'That did not work',
    user,
    body: html`<div class="error" role="alert">
  <p><strong>${message}</strong></p>
  <p class="muted">HTTP ${status} · <code>${code}</code></p>
  ${Array.isArray(allowed) ? html`<p>Allowed from here: ${allowed.length ? allowed.map((s) => statusLabel(Number(s))).join(', ') : 'none'}.</p>` : ''}
  ${Array.isArray(failures) ? html`<ul>${failures.map((f) => html`<li>${f.orderId}: ${f.code}${f.reason ? ` — ${f.reason}` : ''}</li>`)}</ul>` : ''}
</div>
${back ? html`<p><a href="${back}">Back</a></p>` : ''}`,
  });
}
