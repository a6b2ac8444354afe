import { STATUS_CODES, STATUS_NAMES, type StatusCode, type SubStep } from '../machines/order.machine.js';
import { operatorMovesFrom } from '../orders/operator-moves.js';
import type { ConsoleUser } from './console-security.js';
import { age, html, when, type Html } from './html.js';
import { canOperate, csrfField, statusLabel } from './layout.js';
import { queryString } from './console-api.js';

/** The pages' bodies, from what the API answered. Answers are typed loosely here: the API's are in the OpenAPI document. */
type Json = any;

const TERMINAL = new Set<number>([7500, 8500, 9000]);

function statusOptions(codes: readonly number[], selected?: number): Html[] {
  return codes.map((c) => html`<option value="${c}"${c === selected ? html` selected` : ''}>${statusLabel(c)}</option>`);
}

function badge(text: string, tone: 'ok' | 'warn' | 'bad' | 'muted'): Html {
  return html`<span class="badge ${tone}">${text}</span>`;
}

const HEALTH_TONE: Record<string, 'ok' | 'warn' | 'bad' | 'muted'> = { up: 'ok', degraded: 'warn', down: 'bad', unknown: 'muted' };
const BREAKER_TONE: Record<string, 'ok' | 'warn' | 'bad'> = { closed: 'ok', half_open: 'warn', open: 'bad' };

function percent(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : `${(n * 100).toFixed(1)} %`;
}

function detailText(detail: unknown): string {
  if (detail === null || detail === undefined) return '';
  if (typeof detail !== 'object') return String(detail);
  const d = detail as Record<string, unknown>;
  const pick = d.lastError ?? d.error ?? d.reason ?? d.failureReason ?? d.message ?? d.summary;
  if (typeof pick === 'string') return pick;
  const text = JSON.stringify(detail);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

// ---- Overview ------------------------------------------------------------------------------------

export interface OverviewData {
  summary: Json;
  integrations: Json[];
  incidents: Json[];
  cases: Json[];
  deadLetters: Json[];
  errors: Json[];
}

export function overviewBody(user: ConsoleUser, d: OverviewData): Html {
  const down = d.integrations.filter((i) => i.status === 'down' || i.circuit.state !== 'closed');
  const failingSince = (name: string) => d.incidents.find((i) => i.cause === `circuit_open:${name}`)?.openedAt ?? null;
  const lastError = (name: string) => d.errors.filter((e) => e.integration === name).sort((a, b) => String(b.lastAt).localeCompare(String(a.lastAt)))[0];

  // Where orders pile up: statuses with orders somewhere, locations with orders; the largest open pile per status marked.
  const shown = (d.summary.byStatus as Json[]).filter((s) => s.count > 0).map((s) => s.status as number);
  const locations = d.summary.byLocation as Json[];
  const countAt = (loc: Json, status: number) => (loc.byStatus as Json[]).find((s) => s.status === status)?.count ?? 0;
  const peak = new Map(shown.map((st) => [st, Math.max(0, ...locations.map((l) => countAt(l, st)))]));

  return html`
<section aria-labelledby="attention-h" class="cards">
  <h2 id="attention-h" class="visually-hidden">Needs attention</h2>
  <a class="card ${d.cases.length ? 'bad' : 'ok'}" href="#cases-h"><span class="n">${d.cases.length}</span> open cases</a>
  <a class="card ${d.incidents.length ? 'bad' : 'ok'}" href="#incidents-h"><span class="n">${d.incidents.length}</span> open incidents</a>
  <a class="card ${down.length ? 'bad' : 'ok'}" href="#integrations-h"><span class="n">${down.length}</span> integrations failing</a>
  <a class="card ${d.deadLetters.length ? 'warn' : 'ok'}" href="/ops/dead-letters"><span class="n">${d.deadLetters.length}</span> dead letters</a>
</section>

<section aria-labelledby="cases-h">
  <h2 id="cases-h">Stuck orders: open cases</h2>
  ${
    d.cases.length === 0
      ? html`<p>No open cases.</p>`
      : html`<table>
    <caption>Orders the hub could not finish by itself, oldest first. Open one to retry, override or dismiss.</caption>
    <thead><tr><th scope="col">Order</th><th scope="col">Why</th><th scope="col">Detail</th><th scope="col">Open since</th></tr></thead>
    <tbody>
    ${[...d.cases].reverse().map(
      (c) => html`<tr>
      <td><a href="/ops/orders/${encodeURIComponent(c.orderId)}#case-${c.id}">${c.orderId}</a></td>
      <td><code>${c.cause}</code></td>
      <td>${detailText(c.detail)}</td>
      <td>${when(c.createdAt)} <span class="muted">(${age(c.createdAt)} ago)</span></td>
    </tr>`,
    )}
    </tbody>
  </table>`
  }
</section>

<section aria-labelledby="integrations-h">
  <h2 id="integrations-h">Integrations</h2>
  <table>
    <caption>Each partner: health from probes and real calls (last 15 min), the circuit breaker, and since when it fails.</caption>
    <thead><tr><th scope="col">Integration</th><th scope="col">Status</th><th scope="col">Breaker</th><th scope="col">Failing since</th><th scope="col">Call error rate</th><th scope="col">p95 latency</th><th scope="col">Last error</th></tr></thead>
    <tbody>
    ${d.integrations.map((i) => {
      const since = failingSince(i.integration);
      const err = lastError(i.integration);
      return html`<tr data-integration="${i.integration}">
      <th scope="row">${i.integration}</th>
      <td>${i.configured ? badge(i.status, HEALTH_TONE[i.status] ?? 'muted') : badge('not configured', 'muted')}</td>
      <td>${badge(i.circuit.state.replace('_', ' '), BREAKER_TONE[i.circuit.state] ?? 'warn')}${i.circuit.openUntil ? html` <span class="muted">until ${when(i.circuit.openUntil)}</span>` : ''}</td>
      <td>${since ? html`${when(since)} <span class="muted">(${age(since)})</span>` : i.status === 'down' && err ? html`${when(err.lastAt)}` : html`<span class="muted">—</span>`}</td>
      <td>${percent(i.calls.errorRate)}</td>
      <td>${i.calls.latencyMs.p95 === null ? '—' : `${i.calls.latencyMs.p95} ms`}</td>
      <td>${err ? html`${err.lastError ?? err.errorClass} <span class="muted">(${when(err.lastAt)}, ${err.count}×)</span>` : html`<span class="muted">none</span>`}</td>
    </tr>`;
    })}
    </tbody>
  </table>
</section>

<section aria-labelledby="piles-h">
  <h2 id="piles-h">Where orders are: per status and location</h2>
  ${
    locations.length === 0
      ? html`<p>No orders yet.</p>`
      : html`<div class="scroll" tabindex="0" role="region" aria-labelledby="piles-h">
  <table class="matrix">
    <caption>${d.summary.total} orders by current status. The largest open pile of each status is marked ▲. Numbers link to those orders.</caption>
    <thead><tr><th scope="col">Location</th>${shown.map((st) => html`<th scope="col" title="${STATUS_NAMES[st as StatusCode]}">${st}<br><span class="muted">${STATUS_NAMES[st as StatusCode]}</span></th>`)}<th scope="col">Total</th></tr></thead>
    <tbody>
    ${locations.map(
      (l) => html`<tr>
      <th scope="row">${l.locationId}<br><span class="muted">${l.name}</span></th>
      ${shown.map((st) => {
        const n = countAt(l, st);
        if (!n) return html`<td class="zero">0</td>`;
        const isPeak = !TERMINAL.has(st) && n === peak.get(st) && n > 0;
        return html`<td${isPeak ? html` class="peak"` : ''}><a href="/ops/orders${queryString({ status: String(st), locationId: l.locationId })}" aria-label="${n} orders at ${statusLabel(st)} in ${l.locationId}">${n}</a>${isPeak ? html` <span aria-hidden="true">▲</span><span class="visually-hidden">(the largest)</span>` : ''}</td>`;
      })}
      <td><strong>${l.total}</strong></td>
    </tr>`,
    )}
    </tbody>
    <tfoot><tr><th scope="row">All</th>${shown.map((st) => html`<td><a href="/ops/orders${queryString({ status: String(st) })}">${(d.summary.byStatus as Json[]).find((s) => s.status === st)?.count ?? 0}</a></td>`)}<td><strong>${d.summary.total}</strong></td></tr></tfoot>
  </table>
</div>`
  }
</section>

<section aria-labelledby="incidents-h">
  <h2 id="incidents-h">Open incidents</h2>
  ${
    d.incidents.length === 0
      ? html`<p>No open incidents.</p>`
      : html`<ul class="incidents">${d.incidents.map((i) => html`<li>${badge(i.severity, 'bad')} <strong>${i.summary}</strong> <span class="muted">· <code>${i.cause}</code> · since ${when(i.openedAt)} (${age(i.openedAt)})</span></li>`)}</ul>`
  }
</section>

<section aria-labelledby="live-h">
  <h2 id="live-h">Live status changes</h2>
  <p class="muted" data-live-state>Connecting to the live stream…</p>
  <ol class="live" data-live-feed aria-live="polite" aria-relevant="additions"></ol>
</section>
${canOperate(user) ? '' : html`<p class="muted">You are signed in as a viewer: you can see everything, and change nothing.</p>`}
`;
}

// ---- Orders: search, export, bulk move ------------------------------------------------------------

export interface SearchForm {
  status: number[];
  locationId?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  q?: string | undefined;
  limit?: string | undefined;
  cursor?: string | undefined;
}

export function ordersBody(
  user: ConsoleUser,
  form: SearchForm,
  locations: Json[],
  page: Json | undefined,
  returnTo: string,
  refused?: { message: string; details?: unknown },
): Html {
  const filters = { status: form.status.map(String), locationId: form.locationId, from: form.from, to: form.to, q: form.q };
  const exportHref = `/ops/orders/export${queryString(filters)}`;
  const operate = canOperate(user);
  const orders = (page?.orders ?? []) as Json[];
  return html`
${refused ? html`<div class="error" role="alert"><p><strong>${refused.message}</strong></p>${Array.isArray(refused.details) ? html`<ul>${(refused.details as Json[]).map((d) => html`<li>${d.path ? `${d.path}: ` : ''}${d.message}</li>`)}</ul>` : ''}</div>` : ''}
<form method="get" action="/ops/orders" class="search" role="search" aria-label="Search orders">
  <fieldset class="statuses">
    <legend>Status</legend>
    ${STATUS_CODES.map((c) => html`<label><input type="checkbox" name="status" value="${c}"${form.status.includes(c) ? html` checked` : ''}> ${statusLabel(c)}</label>`)}
  </fieldset>
  <div class="fields">
    <label>Location
      <select name="locationId"><option value="">All locations</option>${locations.map((l) => html`<option value="${l.locationId}"${l.locationId === form.locationId ? html` selected` : ''}>${l.locationId} · ${l.name}</option>`)}</select>
    </label>
    <label>Last change from (UTC) <input type="datetime-local" name="from" step="1" value="${form.from ?? ''}"></label>
    <label>to (UTC) <input type="datetime-local" name="to" step="1" value="${form.to ?? ''}"></label>
    <label>Order, tracking id, phone, e-mail or name <input type="search" name="q" value="${form.q ?? ''}" maxlength="200"></label>
    <label>Per page <input type="number" name="limit" min="1" max="200" value="${form.limit ?? '50'}"></label>
  </div>
  <p><button type="submit">Search</button> <a href="${exportHref}" download>Export these orders as CSV</a></p>
</form>

${
  page === undefined
    ? ''
    : html`<form method="post" action="/ops/orders/bulk-status" aria-labelledby="results-h">
  ${csrfField(user)}
  <input type="hidden" name="return" value="${returnTo}">
  <h2 id="results-h">${orders.length} order${orders.length === 1 ? '' : 's'}${page.nextCursor ? ' on this page' : ''}</h2>
  <div class="scroll">
  <table>
    <caption class="visually-hidden">Orders, newest change first</caption>
    <thead><tr>${operate ? html`<th scope="col"><span class="visually-hidden">Select</span></th>` : ''}<th scope="col">Order</th><th scope="col">Status</th><th scope="col">Location</th><th scope="col">Slick confirmation</th><th scope="col">Tracking</th><th scope="col">Partner</th><th scope="col">Last change</th></tr></thead>
    <tbody>
    ${orders.map(
      (o) => html`<tr>
      ${operate ? html`<td><input type="checkbox" name="orderIds" value="${o.orderId}" aria-label="Select ${o.orderId}"></td>` : ''}
      <th scope="row"><a href="/ops/orders/${encodeURIComponent(o.orderId)}">${o.orderId}</a></th>
      <td>${statusLabel(o.status)}${o.subStep ? ` (${o.subStep})` : ''}</td>
      <td>${o.shipFromLocationId}</td>
      <td>${o.slickConfirmation ?? '—'}</td>
      <td>${o.tracking ? `${o.tracking.trackingId} / ${o.tracking.carrierCode ?? ''}` : '—'}</td>
      <td>${o.partner?.partnerName ?? '—'}</td>
      <td>${when(o.updatedAt)}</td>
    </tr>`,
    )}
    </tbody>
  </table>
  </div>
  ${page.nextCursor ? html`<p><a href="/ops/orders${queryString({ ...filters, limit: form.limit, cursor: page.nextCursor })}" rel="next">Next page</a></p>` : ''}
  ${
    operate && orders.length
      ? html`<fieldset class="bulk">
    <legend>Move the selected orders (all or none)</legend>
    <label>To status <select name="status" required>${statusOptions(STATUS_CODES)}</select></label>
    <label>Reason code <input name="reasonCode" required maxlength="64" value="bulk_operator_move"></label>
    <label>Note <input name="note" maxlength="1000"></label>
    <button type="submit">Move selected</button>
  </fieldset>`
      : ''
  }
</form>`
}`;
}

// ---- One order --------------------------------------------------------------------------------------

export interface OrderData {
  order: Json;
  history: Json[];
  events: Json[];
  calls: Json[];
  tiers: Json;
  cases: Json[];
}

function caseForm(user: ConsoleUser, c: Json, returnTo: string): Html {
  const id = c.id as string;
  return html`<form method="post" action="/ops/cases/${id}/resolve" class="resolve" aria-label="Resolve case ${c.cause}">
  ${csrfField(user)}
  <input type="hidden" name="return" value="${returnTo}">
  <fieldset>
    <legend>Resolve this case</legend>
    <label><input type="radio" name="action" value="retry" checked> Retry (run the failed call again)</label>
    <label><input type="radio" name="action" value="override"> Override the status to
      <select name="status" aria-label="Override status">${statusOptions(STATUS_CODES)}</select></label>
    <label><input type="radio" name="action" value="dismiss"> Dismiss (settled another way)</label>
    <label>Note (needed to override or dismiss) <input name="note" maxlength="1000"></label>
    <button type="submit">Resolve</button>
  </fieldset>
</form>`;
}

export function orderBody(user: ConsoleUser, d: OrderData, returnTo: string): Html {
  const o = d.order;
  const operate = canOperate(user);
  const enc = encodeURIComponent(o.orderId);
  const open = d.cases.filter((c) => c.state === 'open');
  const moves = operate ? operatorMovesFrom(o.status as StatusCode, (o.subStep as SubStep | null) ?? null) : [];
  const del = o.delivery ?? {};
  return html`
<section aria-labelledby="summary-h" class="summary">
  <h2 id="summary-h" class="visually-hidden">Summary</h2>
  <dl>
    <div><dt>Status</dt><dd data-order-status><strong>${statusLabel(o.status)}</strong>${o.subStep ? ` (${o.subStep})` : ''} <span class="muted">since ${when(o.statusChangedAt)}</span></dd></div>
    <div><dt>Location</dt><dd>${o.shipFromLocationId}</dd></div>
    <div><dt>Slick confirmation</dt><dd>${o.slickConfirmation ? badge(o.slickConfirmation, o.slickConfirmation === 'failed' ? 'bad' : o.slickConfirmation === 'pending' ? 'warn' : 'ok') : '—'}</dd></div>
    <div><dt>Tracking</dt><dd>${o.tracking ? html`${o.tracking.trackingId} / ${o.tracking.carrierCode} <span class="muted">ETA ${when(o.tracking.estimatedDelivery)}</span>` : '—'}</dd></div>
    <div><dt>Delivery partner</dt><dd>${o.partner ? `${o.partner.partnerName} (${o.partner.partnerId})` : '—'}</dd></div>
    <div><dt>Payment</dt><dd>${o.paymentMethod}${o.cod ? html` · COD ${o.cod.expectedAmount}${o.cod.collectedAmount !== null ? `, collected ${o.cod.collectedAmount}` : ''}${o.cod.relay ? ` (relay ${o.cod.relay})` : ''}` : ''}</dd></div>
    <div><dt>Courier</dt><dd>${del.courierStatus ?? '—'}${del.lastFailure ? html` · last failure: ${del.lastFailure.reason ?? 'no reason'} (${when(del.lastFailure.occurredAt)})` : ''} · attempts failed: ${o.deliveryAttempts}</dd></div>
    <div><dt>Customer</dt><dd>${o.customer?.name ?? o.customer?.id ?? '—'}</dd></div>
  </dl>
  <p class="live-note" data-live-state aria-live="polite"></p>
</section>

<section aria-labelledby="cases-h">
  <h2 id="cases-h">Cases</h2>
  ${
    d.cases.length === 0
      ? html`<p>No cases for this order.</p>`
      : d.cases.map(
          (c) => html`<article class="case ${c.state}" id="case-${c.id}" aria-labelledby="case-${c.id}-h">
    <h3 id="case-${c.id}-h"><code>${c.cause}</code> · ${c.state}</h3>
    <p>${detailText(c.detail)}</p>
    <p class="muted">Opened ${when(c.createdAt)} (${age(c.createdAt)} ago)${c.resolvedAt ? html` · ${c.resolution} by ${c.resolvedBy} at ${when(c.resolvedAt)}${c.note ? `: ${c.note}` : ''}` : ''}</p>
    ${operate && c.state === 'open' ? caseForm(user, c, returnTo) : ''}
  </article>`,
        )
  }
  ${open.length && !operate ? html`<p class="muted">Operators and admins can resolve open cases.</p>` : ''}
</section>

${
  operate
    ? html`<section aria-labelledby="actions-h">
  <h2 id="actions-h">Actions</h2>
  <div class="actions">
  <form method="post" action="/ops/orders/${enc}/status" aria-labelledby="move-h">
    ${csrfField(user)}<input type="hidden" name="return" value="${returnTo}">
    <h3 id="move-h">Move the status</h3>
    ${
      moves.length
        ? html`<label>To <select name="status" required>${statusOptions(moves)}</select></label>
    <label>Reason code <input name="reasonCode" required maxlength="64"></label>
    <label>Note <input name="note" maxlength="1000"></label>
    <button type="submit">Move</button>`
        : html`<p>No operator move from ${statusLabel(o.status)}.</p>`
    }
  </form>
  <form method="post" action="/ops/orders/${enc}/partner" aria-labelledby="partner-h">
    ${csrfField(user)}<input type="hidden" name="return" value="${returnTo}">
    <h3 id="partner-h">Assign the delivery partner</h3>
    <label>Partner id <input name="partnerId" required maxlength="64"></label>
    <label>Partner name <input name="partnerName" required maxlength="200"></label>
    <label>Reason <input name="reason" required maxlength="1000"></label>
    <button type="submit">Assign</button>
  </form>
  ${
    user.role === 'admin'
      ? html`<form method="post" action="/ops/orders/${enc}/override" aria-labelledby="override-h">
    ${csrfField(user)}<input type="hidden" name="return" value="${returnTo}">
    <h3 id="override-h">Override (admin)</h3>
    <label>To <select name="status" required>${statusOptions(STATUS_CODES.filter((c) => c !== o.status))}</select></label>
    <label>Reason code <input name="reasonCode" required maxlength="64"></label>
    <label>Note <input name="note" required maxlength="1000"></label>
    <button type="submit">Override</button>
  </form>`
      : ''
  }
  </div>
</section>`
    : ''
}

<section aria-labelledby="history-h">
  <h2 id="history-h">History</h2>
  <div class="scroll"><table>
    <caption class="visually-hidden">Status history, oldest first</caption>
    <thead><tr><th scope="col">#</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Kind</th><th scope="col">Happened</th><th scope="col">Recorded</th><th scope="col">By</th><th scope="col">Reason · note</th></tr></thead>
    <tbody>
    ${d.history.map(
      (h) => html`<tr class="${h.implied ? 'implied' : ''} ${h.override ? 'override' : ''}">
      <td>${h.seq}</td><td>${statusLabel(h.from)}</td><td>${statusLabel(h.to)}${h.subStep ? ` (${h.subStep})` : ''}</td>
      <td>${h.implied ? badge('implied', 'muted') : ''}${h.override ? badge('override', 'warn') : ''}${!h.implied && !h.override ? 'step' : ''}</td>
      <td>${when(h.occurredAt)}</td><td>${when(h.recordedAt)}</td>
      <td>${h.source} · ${h.actor}</td>
      <td>${[h.reasonCode, h.note].filter(Boolean).join(' · ')}</td>
    </tr>`,
    )}
    </tbody>
  </table></div>
</section>

<section aria-labelledby="tiers-h">
  <h2 id="tiers-h">Delivery tiers</h2>
  <table>
    <thead><tr><th scope="col">Tier</th><th scope="col">State</th><th scope="col">Updated</th></tr></thead>
    <tbody>${(d.tiers.tiers as Json[]).map((t) => html`<tr><th scope="row">${t.tier}. ${t.name}</th><td>${t.state}</td><td>${when(t.updatedAt)}</td></tr>`)}</tbody>
  </table>
  ${
    (d.tiers.discrepancies as Json[]).length
      ? html`<h3>Discrepancies</h3><ul>${(d.tiers.discrepancies as Json[]).map((x) => html`<li><code>${x.code}</code> (tier ${x.tier ?? '—'}) ${detailText(x.detail)} · opened ${when(x.openedAt)} · ${x.resolvedAt ? html`resolved ${when(x.resolvedAt)}` : html`<strong>open</strong>`}</li>`)}</ul>`
      : html`<p>No discrepancies.</p>`
  }
</section>

<section aria-labelledby="events-h">
  <h2 id="events-h">Partner events</h2>
  ${
    d.events.length === 0
      ? html`<p>No events.</p>`
      : html`<div class="scroll"><table>
    <thead><tr><th scope="col">Event</th><th scope="col">From</th><th scope="col">Type</th><th scope="col">Outcome</th><th scope="col">Reason</th><th scope="col">Received</th></tr></thead>
    <tbody>${d.events.map((e) => html`<tr><td><code>${e.eventId}</code></td><td>${e.source}</td><td>${e.type}</td><td>${badge(e.state, e.state === 'applied' ? 'ok' : e.state === 'ignored' || e.state === 'queued' ? 'muted' : 'bad')}</td><td>${e.reason ?? ''}</td><td>${when(e.receivedAt)}</td></tr>`)}</tbody>
  </table></div>`
  }
</section>

<section aria-labelledby="calls-h">
  <h2 id="calls-h">Partner calls</h2>
  ${
    d.calls.length === 0
      ? html`<p>No partner calls.</p>`
      : html`<div class="scroll"><table>
    <thead><tr><th scope="col">When</th><th scope="col">Integration</th><th scope="col">Operation</th><th scope="col">Attempt</th><th scope="col">HTTP</th><th scope="col">Latency</th><th scope="col">Error</th></tr></thead>
    <tbody>${d.calls.map((c) => html`<tr><td>${when(c.createdAt)}</td><td>${c.integration}</td><td>${c.operation}</td><td>${c.attempt}</td><td>${c.status ?? '—'}</td><td>${c.latencyMs} ms</td><td>${c.error ? html`${badge(c.errorClass ?? 'error', 'bad')} ${c.error}` : ''}</td></tr>`)}</tbody>
  </table></div>`
  }
</section>`;
}

// ---- Dead letters -------------------------------------------------------------------------------

export function deadLettersBody(user: ConsoleUser, letters: Json[]): Html {
  if (letters.length === 0) return html`<p>No dead letters.</p>`;
  const operate = canOperate(user);
  return html`<div class="scroll"><table>
  <caption>Jobs that ran out of retries or failed for good, newest first. A retry runs a job once more.</caption>
  <thead><tr><th scope="col">Job</th><th scope="col">Order</th><th scope="col">Error</th><th scope="col">Attempts</th><th scope="col">Failed</th>${operate ? html`<th scope="col">Action</th>` : ''}</tr></thead>
  <tbody>
  ${letters.map((l) => {
    const orderId = typeof l.data?.orderId === 'string' ? (l.data.orderId as string) : undefined;
    return html`<tr>
    <td><code>${l.id}</code><br><span class="muted">${l.name}</span></td>
    <td>${orderId ? html`<a href="/ops/orders/${encodeURIComponent(orderId)}">${orderId}</a>` : '—'}</td>
    <td>${l.error ?? ''}</td><td>${l.attemptsMade}</td><td>${when(l.failedAt)}</td>
    ${
      operate
        ? html`<td><form method="post" action="/ops/dead-letters/${encodeURIComponent(l.id)}/retry">${csrfField(user)}<input type="hidden" name="return" value="/ops/dead-letters"><button type="submit" aria-label="Retry ${l.id}">Retry</button></form></td>`
        : ''
    }
  </tr>`;
  })}
  </tbody>
</table></div>`;
}
