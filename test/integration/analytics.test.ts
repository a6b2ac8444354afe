import { parse } from 'csv-parse/sync';
import { wholeTableReads } from '../helpers/plan-checks.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliveryAnalytics } from '../../src/analytics/delivery.js';
import { errorAnalytics } from '../../src/analytics/errors.js';
import { flowAnalytics } from '../../src/analytics/flow.js';
import { statusSummary } from '../../src/analytics/status-summary.js';
import { deliveryQuery, errorsQuery, flowQuery, statusSummaryQuery } from '../../src/analytics/window.js';
import { connectDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { STATUS_CODES, STATUS_NAMES, type StatusCode } from '../../src/machines/order.machine.js';
import { partnerForOrder } from '../../src/simulators/pmp.simulator.js';
import { eventually, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The analytics endpoints (SPEC §6) with known numbers. Orders written straight into the tables, with
 * chosen times, are created on 2021-03-01 in locations of their own (STORE-022 for the flow through
 * fulfillment, STORE-023 for deliveries), so a window on that day and a location filter make every
 * number exact; orders driven through the real API live in STORE-021, in a window around this run.
 */
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(async () => {
  await hub?.close();
});

const WAIT = { prefer: 'wait=10' };
const DAY = 'from=2021-03-01&to=2021-03-02';
const BASE = Date.parse('2021-03-01T08:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const at = (hhmm: string) => `2021-03-01T${hhmm}:00.000Z`;

interface Step {
  to: number;
  /** Milliseconds after BASE; null for an implied step without its own time (recordedMs then applies). */
  at: number | null;
  recordedMs?: number;
}

let inserted = 0;
/** An order and its history written directly, created at BASE + `createdMs`. */
async function insertOrder(o: {
  location: string;
  status: number;
  createdMs?: number;
  partnerId?: string | null;
  carrierCode?: string | null;
  attempts?: number;
  history?: Step[];
}): Promise<string> {
  const orderId = `AN-${++inserted}-${Date.now().toString(36)}`;
  const history = o.history ?? [{ to: o.status, at: 0 }];
  const created = BASE + (o.createdMs ?? inserted * 60_000);
  await hub.web.pg.begin(async (tx) => {
    await tx`
      insert into orders (order_id, ship_from_location_id, customer, payment_method, status, history_seq, partner_id, carrier_code,
                          delivery_attempts, registration_hash, created_at, updated_at, status_changed_at)
      values (${orderId}, ${o.location}, ${JSON.stringify({ id: 'CUST-AN' })}::jsonb, 'PREPAID', ${o.status}, ${history.length}, ${o.partnerId ?? null},
              ${o.carrierCode ?? null}, ${o.attempts ?? 0}, 'test', ${iso(created)}, ${iso(created)}, ${iso(created)})`;
    let from: number | null = null;
    for (const [i, step] of history.entries()) {
      const occurred = step.at === null ? null : iso(BASE + step.at);
      const recorded = iso(BASE + (step.recordedMs ?? step.at ?? 0));
      await tx`
        insert into status_history (order_id, seq, from_status, to_status, occurred_at, recorded_at, actor, source, implied)
        values (${orderId}, ${i + 1}, ${from}, ${step.to}, ${occurred}, ${recorded}, 'analytics-test', 'system', ${step.at === null})`;
      from = step.to;
    }
  });
  return orderId;
}

/** Every status of the model with the given counts (zeros elsewhere), as byStatus lists them. */
function allStatuses(counts: Partial<Record<number, number>>) {
  return STATUS_CODES.map((status) => ({ status, name: STATUS_NAMES[status as StatusCode], count: counts[status] ?? 0 }));
}

function csv(res: { status: number; headers: Record<string, unknown>; body: unknown }) {
  expect(res.status, String(res.body)).toBe(200);
  expect(String(res.headers['content-type'])).toMatch(/^text\/csv/);
  const text = String(res.body);
  const [header] = parse(text, { to_line: 1 }) as string[][];
  return { header: header!, rows: parse(text, { columns: true }) as Array<Record<string, string>> };
}

describe('analytics over orders with chosen times', () => {
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    // Names and regions come from the locations table, whatever the seed said.
    await hub.web.pg`update locations set name = 'Analytics Flow Store', region = 'Test North' where location_id = 'STORE-022'`;
    await hub.web.pg`update locations set name = 'Analytics Delivery Store', region = 'Test South' where location_id = 'STORE-023'`;

    // STORE-022, through fulfillment. Stage 3000→3500: 1000, 2000, 6000 ms; 3500→3600: 2000, 3000 ms.
    ids.f1 = await insertOrder({
      location: 'STORE-022',
      status: 3600,
      history: [
        { to: 3000, at: 0 },
        { to: 3500, at: 1000 },
        { to: 3600, at: 3000 },
      ],
    });
    // The last step has no occurred_at: its recorded_at stands in.
    ids.f2 = await insertOrder({
      location: 'STORE-022',
      status: 3600,
      history: [
        { to: 3000, at: 0 },
        { to: 3500, at: 2000 },
        { to: 3600, at: null, recordedMs: 5000 },
      ],
    });
    ids.f3 = await insertOrder({
      location: 'STORE-022',
      status: 3500,
      history: [
        { to: 3000, at: 0 },
        { to: 3500, at: 6000 },
      ],
    });

    // STORE-023, deliveries. Pickup → delivered: 60,000 ms (d1) and 180,000 ms (d2, whose pickup is implied).
    ids.d1 = await insertOrder({
      location: 'STORE-023',
      status: 7500,
      partnerId: 'PX-1',
      carrierCode: 'CX',
      history: [
        { to: 7000, at: 0 },
        { to: 7100, at: 1000 },
        { to: 7500, at: 61_000 },
      ],
    });
    ids.d2 = await insertOrder({
      location: 'STORE-023',
      status: 7500,
      partnerId: 'PX-1',
      carrierCode: 'CX',
      attempts: 1,
      history: [
        { to: 7000, at: 0 },
        { to: 7100, at: null, recordedMs: 2000 },
        { to: 7300, at: 10_000 },
        { to: 7400, at: 20_000 },
        { to: 7500, at: 182_000 },
      ],
    });
    ids.d3 = await insertOrder({ location: 'STORE-023', status: 8500, partnerId: 'PX-1', carrierCode: 'CY', attempts: 2 });
    ids.d4 = await insertOrder({ location: 'STORE-023', status: 7200, partnerId: null, carrierCode: 'CY' });
    ids.d5 = await insertOrder({ location: 'STORE-023', status: 7000, partnerId: 'PX-2', carrierCode: null });
    // Not in the delivery phase: left out of delivery, counted by the summary.
    ids.d6 = await insertOrder({ location: 'STORE-023', status: 3700, partnerId: 'PX-1', carrierCode: 'CX' });
    ids.d7 = await insertOrder({ location: 'STORE-023', status: 9000 });
    // Created the next day: outside the window.
    ids.late = await insertOrder({ location: 'STORE-023', status: 7500, partnerId: 'PX-1', carrierCode: 'CX', createdMs: 86_400_000 });

    // Partner calls of that day: failed ones of three kinds, successful ones, one the next day.
    const call = (integration: string, errorClass: string | null, error: string | null, createdAt: string) => hub.web.pg`
      insert into partner_calls (integration, operation, method, url, attempt, status, latency_ms, error_class, error, created_at)
      values (${integration}, 'op', 'POST', 'http://partner.test/x', 1, ${errorClass ? 503 : 200}, 5, ${errorClass}, ${error}, ${createdAt})`;
    await call('slick', 'retriable', 'timeout after 2000 ms', at('10:00'));
    await call('slick', 'retriable', 'HTTP 503', at('10:05'));
    await call('slick', 'retriable', 'HTTP 502', at('10:10'));
    await call('slick', 'non_retriable', 'HTTP 400 invalid body', at('11:00'));
    await call('slick', null, null, at('11:30'));
    await call('mao', null, null, at('11:30'));
    // Two at the same moment: the one recorded last is the latest.
    await call('pmp', 'retriable', 'connect ECONNREFUSED', at('12:00'));
    await call('pmp', 'retriable', 'HTTP 504', at('12:00'));
    await call('pmp', 'retriable', 'outside the window', '2021-03-02T00:00:00.000Z');
  });

  it('status summary: current statuses of the window, overall and per location, names and regions from the table', async () => {
    const res = await hub.clients.viewer.get(`/api/analytics/status-summary?${DAY}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(Math.abs(Date.parse(res.body.asOf) - Date.now())).toBeLessThan(60_000);
    expect(res.body).toEqual({
      asOf: res.body.asOf,
      total: 10,
      byStatus: allStatuses({ 3500: 1, 3600: 2, 3700: 1, 7000: 1, 7200: 1, 7500: 2, 8500: 1, 9000: 1 }),
      byLocation: [
        {
          locationId: 'STORE-022',
          name: 'Analytics Flow Store',
          region: 'Test North',
          total: 3,
          byStatus: [
            { status: 3500, count: 1 },
            { status: 3600, count: 2 },
          ],
        },
        {
          locationId: 'STORE-023',
          name: 'Analytics Delivery Store',
          region: 'Test South',
          total: 7,
          byStatus: [
            { status: 3700, count: 1 },
            { status: 7000, count: 1 },
            { status: 7200, count: 1 },
            { status: 7500, count: 2 },
            { status: 8500, count: 1 },
            { status: 9000, count: 1 },
          ],
        },
      ],
    });

    const one = await hub.clients.operator.get(`/api/analytics/status-summary?locationId=STORE-022&${DAY}`);
    expect(one.body).toEqual({
      asOf: one.body.asOf,
      total: 3,
      byStatus: allStatuses({ 3500: 1, 3600: 2 }),
      byLocation: [
        {
          locationId: 'STORE-022',
          name: 'Analytics Flow Store',
          region: 'Test North',
          total: 3,
          byStatus: [
            { status: 3500, count: 1 },
            { status: 3600, count: 2 },
          ],
        },
      ],
    });

    // A location without orders in the window is still answered, with zeros.
    const empty = await hub.clients.admin.get(`/api/analytics/status-summary?locationId=STORE-024&${DAY}`);
    expect(empty.body).toEqual({
      asOf: empty.body.asOf,
      total: 0,
      byStatus: allStatuses({}),
      byLocation: [{ locationId: 'STORE-024', name: 'QC SMF Store 024', region: 'Bangkok West', total: 0, byStatus: [] }],
    });

    // Only `to`: everything created before it (the late order is not).
    const before = await hub.clients.viewer.get('/api/analytics/status-summary?locationId=STORE-023&to=2021-03-02T00:00:00Z');
    expect(before.body.total).toBe(7);
    // Only `from` (an instant with an offset, 02:05 UTC): the day's orders, all created from 08:00 UTC, and the late one.
    const after = await hub.clients.viewer.get(`/api/analytics/status-summary?locationId=STORE-023&from=${encodeURIComponent('2021-03-01T09:05:00+07:00')}`);
    expect(after.body.total).toBe(8);
  });

  it('status summary without a window counts every order', async () => {
    const res = await hub.clients.viewer.get('/api/analytics/status-summary');
    const [{ n }] = (await hub.web.pg<Array<{ n: number }>>`select count(*)::int as n from orders`) as unknown as [{ n: number }];
    expect(res.body.total).toBe(n);
    expect(res.body.byStatus.reduce((s: number, b: { count: number }) => s + b.count, 0)).toBe(n);
    expect(res.body.byLocation.find((l: { locationId: string }) => l.locationId === 'STORE-023').total).toBe(8);
  });

  it('delivery per partner: counts, success rate, attempts and pickup → delivered percentiles; null where nothing finished', async () => {
    const res = await hub.clients.viewer.get(`/api/analytics/delivery?groupBy=partner&${DAY}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({
      groupBy: 'partner',
      rows: [
        {
          key: 'PX-1',
          orders: 3,
          delivered: 2,
          failedAttempts: 3,
          returned: 1,
          inDelivery: 0,
          successRate: 0.6667,
          avgAttempts: 1.67,
          pickupToDeliveredP50Ms: 120_000,
          pickupToDeliveredP90Ms: 168_000,
        },
        {
          key: 'PX-2',
          orders: 1,
          delivered: 0,
          failedAttempts: 0,
          returned: 0,
          inDelivery: 1,
          successRate: null,
          avgAttempts: null,
          pickupToDeliveredP50Ms: null,
          pickupToDeliveredP90Ms: null,
        },
        {
          key: 'unassigned',
          orders: 1,
          delivered: 0,
          failedAttempts: 0,
          returned: 0,
          inDelivery: 1,
          successRate: null,
          avgAttempts: null,
          pickupToDeliveredP50Ms: null,
          pickupToDeliveredP90Ms: null,
        },
      ],
    });
  });

  it('delivery per carrier and per location', async () => {
    const carrier = await hub.clients.operator.get(`/api/analytics/delivery?groupBy=carrier&${DAY}`);
    expect(carrier.body).toEqual({
      groupBy: 'carrier',
      rows: [
        {
          key: 'CX',
          orders: 2,
          delivered: 2,
          failedAttempts: 1,
          returned: 0,
          inDelivery: 0,
          successRate: 1,
          avgAttempts: 1.5,
          pickupToDeliveredP50Ms: 120_000,
          pickupToDeliveredP90Ms: 168_000,
        },
        {
          key: 'CY',
          orders: 2,
          delivered: 0,
          failedAttempts: 2,
          returned: 1,
          inDelivery: 1,
          successRate: 0,
          avgAttempts: 2,
          pickupToDeliveredP50Ms: null,
          pickupToDeliveredP90Ms: null,
        },
        {
          key: 'unassigned',
          orders: 1,
          delivered: 0,
          failedAttempts: 0,
          returned: 0,
          inDelivery: 1,
          successRate: null,
          avgAttempts: null,
          pickupToDeliveredP50Ms: null,
          pickupToDeliveredP90Ms: null,
        },
      ],
    });

    // STORE-022's orders are still in fulfillment: no row.
    const location = await hub.clients.admin.get(`/api/analytics/delivery?groupBy=location&${DAY}`);
    expect(location.body).toEqual({
      groupBy: 'location',
      rows: [
        {
          key: 'STORE-023',
          orders: 5,
          delivered: 2,
          failedAttempts: 3,
          returned: 1,
          inDelivery: 2,
          successRate: 0.6667,
          avgAttempts: 1.67,
          pickupToDeliveredP50Ms: 120_000,
          pickupToDeliveredP90Ms: 168_000,
        },
      ],
    });

    const none = await hub.clients.viewer.get('/api/analytics/delivery?groupBy=location&from=2020-01-01&to=2020-02-01');
    expect(none.body).toEqual({ groupBy: 'location', rows: [] });
  });

  it('flow: time between consecutive statuses per stage, p50/p90/max, for one location and for all', async () => {
    const one = await hub.clients.viewer.get(`/api/analytics/flow?locationId=STORE-022&${DAY}`);
    expect(one.status, JSON.stringify(one.body)).toBe(200);
    const fulfillment = [
      { from: 3000, to: 3500, count: 3, p50Ms: 2000, p90Ms: 5200, maxMs: 6000 },
      { from: 3500, to: 3600, count: 2, p50Ms: 2500, p90Ms: 2900, maxMs: 3000 },
    ];
    expect(one.body).toEqual({ stages: fulfillment });

    const all = await hub.clients.operator.get(`/api/analytics/flow?${DAY}`);
    expect(all.body).toEqual({
      stages: [
        ...fulfillment,
        { from: 7000, to: 7100, count: 2, p50Ms: 1500, p90Ms: 1900, maxMs: 2000 },
        { from: 7100, to: 7300, count: 1, p50Ms: 8000, p90Ms: 8000, maxMs: 8000 },
        { from: 7100, to: 7500, count: 1, p50Ms: 60_000, p90Ms: 60_000, maxMs: 60_000 },
        { from: 7300, to: 7400, count: 1, p50Ms: 10_000, p90Ms: 10_000, maxMs: 10_000 },
        { from: 7400, to: 7500, count: 1, p50Ms: 162_000, p90Ms: 162_000, maxMs: 162_000 },
      ],
    });

    expect((await hub.clients.viewer.get('/api/analytics/flow?locationId=STORE-022&from=2020-01-01&to=2020-01-02')).body).toEqual({ stages: [] });
  });

  it('errors per integration and class from the partner-call audit, with the latest error', async () => {
    const res = await hub.clients.viewer.get(`/api/analytics/errors?${DAY}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({
      rows: [
        { integration: 'pmp', errorClass: 'retriable', count: 2, lastAt: at('12:00'), lastError: 'HTTP 504' },
        { integration: 'slick', errorClass: 'non_retriable', count: 1, lastAt: at('11:00'), lastError: 'HTTP 400 invalid body' },
        { integration: 'slick', errorClass: 'retriable', count: 3, lastAt: at('10:10'), lastError: 'HTTP 502' },
      ],
    });

    const later = await hub.clients.viewer.get(`/api/analytics/errors?from=${encodeURIComponent(at('10:05'))}&to=${encodeURIComponent(at('10:10'))}`);
    expect(later.body).toEqual({ rows: [{ integration: 'slick', errorClass: 'retriable', count: 1, lastAt: at('10:05'), lastError: 'HTTP 503' }] });

    // Without a window: the last 30 days, which 2021 is not part of.
    const recent = await hub.clients.viewer.get('/api/analytics/errors');
    expect(recent.status).toBe(200);
    const [{ n }] = (await hub.web.pg`
      select count(*)::int as n from partner_calls where error_class is not null and created_at >= now() - interval '30 days'`) as unknown as [{ n: number }];
    expect(recent.body.rows.reduce((sum: number, r: { count: number }) => sum + r.count, 0)).toBe(n);
  });

  it('answers each report as CSV with a header row, one row per element', async () => {
    const summary = csv(await hub.clients.viewer.get(`/api/analytics/status-summary?${DAY}&format=csv`));
    expect(summary.header).toEqual(['locationId', 'name', 'region', 'status', 'statusName', 'count']);
    expect(summary.rows).toHaveLength(8);
    expect(summary.rows[0]).toEqual({
      locationId: 'STORE-022',
      name: 'Analytics Flow Store',
      region: 'Test North',
      status: '3500',
      statusName: 'Picking',
      count: '1',
    });
    expect(summary.rows.at(-1)).toEqual({
      locationId: 'STORE-023',
      name: 'Analytics Delivery Store',
      region: 'Test South',
      status: '9000',
      statusName: 'Cancelled',
      count: '1',
    });

    const delivery = csv(await hub.clients.viewer.get(`/api/analytics/delivery?groupBy=partner&${DAY}&format=csv`));
    expect(delivery.header).toEqual([
      'key',
      'orders',
      'delivered',
      'failedAttempts',
      'returned',
      'inDelivery',
      'successRate',
      'avgAttempts',
      'pickupToDeliveredP50Ms',
      'pickupToDeliveredP90Ms',
    ]);
    expect(delivery.rows).toEqual([
      {
        key: 'PX-1',
        orders: '3',
        delivered: '2',
        failedAttempts: '3',
        returned: '1',
        inDelivery: '0',
        successRate: '0.6667',
        avgAttempts: '1.67',
        pickupToDeliveredP50Ms: '120000',
        pickupToDeliveredP90Ms: '168000',
      },
      {
        key: 'PX-2',
        orders: '1',
        delivered: '0',
        failedAttempts: '0',
        returned: '0',
        inDelivery: '1',
        successRate: '',
        avgAttempts: '',
        pickupToDeliveredP50Ms: '',
        pickupToDeliveredP90Ms: '',
      },
      {
        key: 'unassigned',
        orders: '1',
        delivered: '0',
        failedAttempts: '0',
        returned: '0',
        inDelivery: '1',
        successRate: '',
        avgAttempts: '',
        pickupToDeliveredP50Ms: '',
        pickupToDeliveredP90Ms: '',
      },
    ]);

    const flow = csv(await hub.clients.viewer.get(`/api/analytics/flow?locationId=STORE-022&${DAY}&format=csv`));
    expect(flow.header).toEqual(['from', 'to', 'count', 'p50Ms', 'p90Ms', 'maxMs']);
    expect(flow.rows).toEqual([
      { from: '3000', to: '3500', count: '3', p50Ms: '2000', p90Ms: '5200', maxMs: '6000' },
      { from: '3500', to: '3600', count: '2', p50Ms: '2500', p90Ms: '2900', maxMs: '3000' },
    ]);

    const errors = csv(await hub.clients.viewer.get(`/api/analytics/errors?${DAY}&format=csv`));
    expect(errors.header).toEqual(['integration', 'errorClass', 'count', 'lastAt', 'lastError']);
    expect(errors.rows.map((r) => [r.integration, r.errorClass, r.count])).toEqual([
      ['pmp', 'retriable', '2'],
      ['slick', 'non_retriable', '1'],
      ['slick', 'retriable', '3'],
    ]);

    // An empty report is still a header.
    const empty = csv(await hub.clients.viewer.get('/api/analytics/flow?from=2020-01-01&to=2020-01-02&format=csv'));
    expect(empty).toEqual({ header: ['from', 'to', 'count', 'p50Ms', 'p90Ms', 'maxMs'], rows: [] });
  });
});

describe('analytics of orders driven through the API', () => {
  const LOCATION = 'STORE-021';
  let window: string;
  const orders: Record<string, string> = {};
  let n = 0;
  const courier = (orderId: string, status: string, occurredAt: number, extra: Record<string, unknown> = {}) => ({
    eventId: `an-grab-${orderId}-${status}-${++n}`,
    orderId,
    trackingId: `GRB-${orderId}`,
    carrierCode: 'GRAB',
    status,
    occurredAt: iso(occurredAt),
    ...extra,
  });
  async function deliver(body: Record<string, unknown>, orderStatus: number) {
    const res = await hub.clients.grab.put('/api/delivery/status', body, WAIT);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ state: 'applied', orderStatus });
  }
  async function fulfilled(): Promise<string> {
    const orderId = await registerOrder(hub, { shipFromLocationId: LOCATION });
    for (const type of ['picking', 'packed', 'shipped']) {
      const res = await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, type, { shipFromLocationId: LOCATION }), WAIT);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
    await eventually(async () => ((await hub.clients.viewer.get(`/api/orders/${orderId}`)).body.status === 7000 ? true : undefined), `${orderId} at 7000`);
    return orderId;
  }

  beforeAll(async () => {
    const start = Date.now() - 1000;
    window = `from=${encodeURIComponent(iso(start))}&to=${encodeURIComponent(iso(start + 3_600_000))}`;
    orders.released = await registerOrder(hub, { shipFromLocationId: LOCATION });
    orders.cancelled = await registerOrder(hub, { shipFromLocationId: LOCATION });
    expect((await hub.clients.mao.post(`/api/orders/${orders.cancelled}/cancel`, { reasonCode: 'out_of_stock' })).status).toBe(200);
    orders.waiting = await fulfilled();

    // Picked up an hour before it is delivered.
    orders.delivered = await fulfilled();
    const pickedUp = Date.now() - 3_600_000;
    await deliver(courier(orders.delivered, 'SHIPPED', pickedUp), 7100);
    await deliver(courier(orders.delivered, 'IN_TRANSIT', pickedUp + 1000), 7200);
    await deliver(courier(orders.delivered, 'OUT_FOR_DELIVERY', pickedUp + 2000), 7300);
    await deliver(courier(orders.delivered, 'DELIVERED', pickedUp + 3_600_000), 7500);

    // Two failed attempts, then back at the store.
    orders.returned = await fulfilled();
    const t = Date.now() - 600_000;
    await deliver(courier(orders.returned, 'OUT_FOR_DELIVERY', t), 7300);
    await deliver(courier(orders.returned, 'FAILED', t + 1000, { failureReason: 'nobody home' }), 7400);
    await deliver(courier(orders.returned, 'OUT_FOR_DELIVERY', t + 2000), 7300);
    await deliver(courier(orders.returned, 'FAILED', t + 3000, { failureReason: 'nobody home' }), 7400);
    await deliver(courier(orders.returned, 'RETURNED', t + 4000), 8500);
  });

  it('summary, delivery per location and carrier', async () => {
    const summary = await hub.clients.viewer.get(`/api/analytics/status-summary?locationId=${LOCATION}&${window}`);
    const byStatus = [
      { status: 3000, count: 1 },
      { status: 7000, count: 1 },
      { status: 7500, count: 1 },
      { status: 8500, count: 1 },
      { status: 9000, count: 1 },
    ];
    expect(summary.body).toEqual({
      asOf: summary.body.asOf,
      total: 5,
      byStatus: allStatuses(Object.fromEntries(byStatus.map((s) => [s.status, s.count]))),
      byLocation: [{ locationId: LOCATION, name: 'QC SMF Store 021', region: 'Bangkok North', total: 5, byStatus }],
    });

    const row = {
      orders: 3,
      delivered: 1,
      failedAttempts: 2,
      returned: 1,
      inDelivery: 1,
      successRate: 0.5,
      avgAttempts: 1.5,
      pickupToDeliveredP50Ms: 3_600_000,
      pickupToDeliveredP90Ms: 3_600_000,
    };
    const location = await hub.clients.viewer.get(`/api/analytics/delivery?groupBy=location&${window}`);
    expect(location.body).toEqual({ groupBy: 'location', rows: [{ key: LOCATION, ...row }] });
    const carrier = await hub.clients.viewer.get(`/api/analytics/delivery?groupBy=carrier&${window}`);
    expect(carrier.body).toEqual({ groupBy: 'carrier', rows: [{ key: 'GRAB', ...row }] });
  });

  it('delivery and flow without a window cover the last 30 days', async () => {
    const windowed = await hub.clients.viewer.get(`/api/analytics/delivery?groupBy=location&${window}`);
    expect((await hub.clients.viewer.get('/api/analytics/delivery?groupBy=location')).body).toEqual(windowed.body);
    expect((await hub.clients.viewer.get('/api/analytics/flow?locationId=STORE-022')).body).toEqual({ stages: [] });
    const flow = await hub.clients.viewer.get(`/api/analytics/flow?locationId=${LOCATION}&${window}`);
    expect((await hub.clients.viewer.get(`/api/analytics/flow?locationId=${LOCATION}`)).body).toEqual(flow.body);
  });

  it('delivery per partner, with the partners PMP assigned', async () => {
    for (const id of [orders.waiting!, orders.delivered!, orders.returned!]) {
      await eventually(
        async () => ((await hub.clients.viewer.get(`/api/orders/${id}`)).body.partner?.partnerId === partnerForOrder(id).partnerId ? true : undefined),
        `partner of ${id}`,
      );
    }
    const expected = new Map<
      string,
      { orders: number; delivered: number; returned: number; inDelivery: number; failedAttempts: number; finishedAttempts: number[]; ms: number[] }
    >();
    const add = (id: string, status: number, attempts: number) => {
      const key = partnerForOrder(id).partnerId;
      const e = expected.get(key) ?? { orders: 0, delivered: 0, returned: 0, inDelivery: 0, failedAttempts: 0, finishedAttempts: [], ms: [] };
      e.orders++;
      e.failedAttempts += attempts;
      if (status === 7500) {
        e.delivered++;
        e.finishedAttempts.push(attempts + 1);
        e.ms.push(3_600_000);
      } else if (status === 8500) {
        e.returned++;
        e.finishedAttempts.push(attempts);
      } else e.inDelivery++;
      expected.set(key, e);
    };
    add(orders.waiting!, 7000, 0);
    add(orders.delivered!, 7500, 0);
    add(orders.returned!, 8500, 2);
    const rows = [...expected.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, e]) => ({
        key,
        orders: e.orders,
        delivered: e.delivered,
        failedAttempts: e.failedAttempts,
        returned: e.returned,
        inDelivery: e.inDelivery,
        successRate: e.delivered + e.returned ? Math.round((e.delivered / (e.delivered + e.returned)) * 10_000) / 10_000 : null,
        avgAttempts: e.finishedAttempts.length ? Math.round((e.finishedAttempts.reduce((s, a) => s + a, 0) / e.finishedAttempts.length) * 100) / 100 : null,
        pickupToDeliveredP50Ms: e.ms.length ? 3_600_000 : null,
        pickupToDeliveredP90Ms: e.ms.length ? 3_600_000 : null,
      }));
    const res = await hub.clients.viewer.get(`/api/analytics/delivery?groupBy=partner&${window}`);
    expect(res.body).toEqual({ groupBy: 'partner', rows });
  });

  it("flow: the stages of the orders' real history, counted", async () => {
    const counts = new Map<string, number>();
    for (const id of Object.values(orders)) {
      const history = (await hub.clients.viewer.get(`/api/orders/${id}/history`)).body.history as Array<{ from: number | null; to: number }>;
      for (const h of history.slice(1)) counts.set(`${h.from}>${h.to}`, (counts.get(`${h.from}>${h.to}`) ?? 0) + 1);
    }
    const res = await hub.clients.viewer.get(`/api/analytics/flow?locationId=${LOCATION}&${window}`);
    expect(res.status).toBe(200);
    const stages = res.body.stages as Array<Record<string, number>>;
    expect(Object.fromEntries(stages.map((s) => [`${s.from}>${s.to}`, s.count]))).toEqual(Object.fromEntries(counts));
    expect(stages.map((s) => [s.from, s.to])).toEqual([...stages].sort((a, b) => a.from! - b.from! || a.to! - b.to!).map((s) => [s.from, s.to]));
    for (const s of stages) {
      expect(Object.keys(s)).toEqual(['from', 'to', 'count', 'p50Ms', 'p90Ms', 'maxMs']);
      expect(s.p50Ms).toBeLessThanOrEqual(s.p90Ms!);
      expect(s.p90Ms).toBeLessThanOrEqual(s.maxMs!);
    }
    // The hour between pickup and delivery is in the delivered order's stages (7300 → 7500 took most of it).
    expect(stages.find((s) => s.from === 7300 && s.to === 7500)).toMatchObject({ count: 1, maxMs: 3_600_000 - 2000 });
  });
});

describe('analytics refusals', () => {
  const PATHS = ['/api/analytics/status-summary', '/api/analytics/delivery?groupBy=partner', '/api/analytics/flow', '/api/analytics/errors'];

  it('partners are refused (403), readers are not', async () => {
    for (const path of PATHS) {
      for (const partner of ['slick', 'grab', 'pmp', 'mao'] as const) {
        const res = await hub.clients[partner].get(path);
        expect(res.status, `${partner} ${path}`).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
      }
      for (const reader of ['viewer', 'operator', 'admin'] as const) expect((await hub.clients[reader].get(path)).status, `${reader} ${path}`).toBe(200);
    }
  });

  it('bad parameters are 400, an unknown location 404', async () => {
    const bad = [
      '/api/analytics/delivery',
      '/api/analytics/delivery?groupBy=driver',
      '/api/analytics/delivery?groupBy=partner&groupBy=carrier',
      '/api/analytics/delivery?groupBy=partner&from=yesterday',
      '/api/analytics/status-summary?from=2021-13-01',
      '/api/analytics/status-summary?to=2021-03-01T25:00:00Z',
      '/api/analytics/flow?from=2021-03-02&to=2021-03-01',
      '/api/analytics/flow?from=2021-03-01&to=2021-03-01',
      '/api/analytics/errors?from=1614556800000',
      '/api/analytics/errors?format=xml',
      '/api/analytics/errors?limit=5',
    ];
    for (const path of bad) {
      const res = await hub.clients.viewer.get(path);
      expect(res.status, path).toBe(400);
      expect(res.body.error.code, path).toBe('validation_failed');
    }
    for (const path of ['/api/analytics/status-summary?locationId=STORE-999', '/api/analytics/flow?locationId=STORE-999']) {
      const res = await hub.clients.viewer.get(path);
      expect(res.status, path).toBe(404);
      expect(res.body.error).toMatchObject({ code: 'not_found', details: { location: 'STORE-999' } });
    }
  });
});

describe('query plans of the analytics', () => {
  let single: DatabaseHandle;
  beforeAll(() => {
    single = connectDatabase(hub.databaseUrl, { max: 1 });
  });
  afterAll(async () => {
    await single?.close();
  });

  it('generic plans reach orders, history and partner calls by index ranges, never reading a table whole', async () => {
    const deps = { ...hub.web, db: single.db, pg: single.sql };
    const window = { from: '2021-03-01', to: '2021-03-02' };
    // Six runs each, so Postgres would settle on a generic plan; every shape with a window.
    for (let i = 0; i < 6; i++) {
      await statusSummary(deps, statusSummaryQuery.parse(window));
      await statusSummary(deps, statusSummaryQuery.parse({ ...window, locationId: 'STORE-022' }));
      await statusSummary(deps, statusSummaryQuery.parse({ from: '2021-03-01' }));
      for (const groupBy of ['partner', 'location', 'carrier']) await deliveryAnalytics(deps, deliveryQuery.parse({ ...window, groupBy }));
      await flowAnalytics(deps, flowQuery.parse(window));
      await flowAnalytics(deps, flowQuery.parse({ ...window, locationId: 'STORE-022' }));
      await errorAnalytics(deps, errorsQuery.parse(window));
    }
    const prepared = await single.sql<Array<{ name: string; statement: string; params: number }>>`
      select name, statement, cardinality(parameter_types) as params from pg_prepared_statements
      where statement ~ '(from orders o|from partner_calls c)' and statement !~ 'pg_prepared_statements'`;
    expect(prepared.length, prepared.map((p) => p.statement).join('\n----\n')).toBe(3 + 3 + 2 + 1);

    await single.sql.unsafe('set plan_cache_mode = force_generic_plan');
    const problems: string[] = [];
    let historyByKey = 0;
    for (const p of prepared) {
      const plan = (
        await single.sql.unsafe<Array<{ 'QUERY PLAN': string }>>(`explain execute "${p.name}"(${Array.from({ length: p.params }, () => 'null').join(', ')})`)
      ).map((r) => r['QUERY PLAN']);
      const whole = wholeTableReads(plan, ['orders', 'status_history', 'partner_calls']);
      if (whole.length) problems.push(`${p.statement.trim().slice(0, 100)}\n${plan.join('\n')}`);
      if (plan.some((l) => /Index Cond: \(order_id = [ow]\.order_id\)/.test(l))) historyByKey++;
    }
    await single.sql.unsafe('reset plan_cache_mode');
    expect(problems).toEqual([]);
    // Delivery (three keys) and flow (two shapes) reach history one order at a time.
    expect(historyByKey).toBe(5);
  });
});
