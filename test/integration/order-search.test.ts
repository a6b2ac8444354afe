import { request as httpRequest, type IncomingMessage } from 'node:http';
import { parse } from 'csv-parse/sync';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUS_NAMES, type StatusCode } from '../../src/machines/order.machine.js';
import { DEVELOPMENT_CLIENTS } from '../../src/config.js';
import { eventually, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

let hub: TestHub;
/** A connection of the test's own, for fixtures and for watching pg_stat_activity (default parsing: timestamps as Dates). */
let sql: postgres.Sql;
beforeAll(async () => {
  hub = await startTestHub();
  sql = postgres(hub.databaseUrl, { max: 2, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
  await hub?.close();
});

const EXPORT_HEADER = [
  'orderId',
  'status',
  'statusName',
  'locationId',
  'paymentMethod',
  'codAmount',
  'trackingId',
  'carrierCode',
  'partnerId',
  'deliveryAttempts',
  'createdAt',
  'updatedAt',
];

interface Fixture {
  orderId: string;
  locationId: string;
  status: number;
  /** ISO instant, microseconds allowed. */
  updatedAt: string;
  name?: string;
  trackingId?: string;
}

/** Orders written straight to the test database (as the hub's writes would leave them), in one statement. */
async function insertOrders(rows: Fixture[]) {
  await sql`
    insert into orders (order_id, ship_from_location_id, customer, payment_method, status, registration_hash, tracking_id,
                        created_at, updated_at, status_changed_at)
    select r.order_id, r.location_id, jsonb_build_object('id', 'C-' || r.order_id, 'name', coalesce(r.name, 'Fixture Customer')),
           'PREPAID', r.status, 'fixture', r.tracking_id, r.updated_at::timestamptz, r.updated_at::timestamptz, r.updated_at::timestamptz
    from jsonb_to_recordset(${sql.json(rows.map((r) => ({ order_id: r.orderId, location_id: r.locationId, status: r.status, updated_at: r.updatedAt, name: r.name ?? null, tracking_id: r.trackingId ?? null })))})
      as r(order_id text, location_id text, status int, updated_at text, name text, tracking_id text)`;
}

const ids = (res: { body: { orders: Array<{ orderId: string }> } }) => res.body.orders.map((o) => o.orderId);
const search = (query: string, client: keyof TestHub['clients'] = 'viewer') => hub.clients[client].get(`/api/orders?${query}`);

/** Every page of a search, `between` running after each page; fails on a repeated order. */
async function walk(query: string, limit: number, between: () => Promise<void> = async () => {}) {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await search(`${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.orders.length).toBeLessThanOrEqual(limit);
    seen.push(...ids(res));
    cursor = res.body.nextCursor;
    pages++;
    if (cursor) await between();
  } while (cursor && pages < 1000);
  expect(new Set(seen).size).toBe(seen.length);
  return { seen, pages };
}

describe('GET /api/orders: filters', () => {
  // A window of its own in 2001, so the other tests' orders never show.
  const at = (minute: number, micros = 0) => `2001-02-03T04:${String(minute).padStart(2, '0')}:00.${String(micros).padStart(6, '0')}Z`;
  const window = `from=${encodeURIComponent(at(0))}&to=${encodeURIComponent(at(59))}`;
  const fx = (n: number, status: number, locationId: string, minute: number): Fixture => ({
    orderId: `FLT-${n}`,
    locationId,
    status,
    updatedAt: at(minute, n),
  });
  const fixtures = [
    fx(1, 3000, 'STORE-011', 1),
    fx(2, 3500, 'STORE-011', 2),
    fx(3, 3600, 'STORE-012', 3),
    fx(4, 3000, 'STORE-012', 4),
    fx(5, 7500, 'STORE-011', 5),
    fx(6, 3500, 'STORE-013', 6),
    fx(7, 9000, 'STORE-013', 7),
    fx(8, 3000, 'STORE-013', 8),
  ];
  const newestFirst = (rows: Fixture[]) => [...rows].sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1)).map((r) => r.orderId);
  beforeAll(() => insertOrders(fixtures));

  it('answers every order of the window, newest change first, each as GET /api/orders/{id} shows it', async () => {
    const res = await search(window);
    expect(res.status).toBe(200);
    expect(ids(res)).toEqual(newestFirst(fixtures));
    expect(res.body.nextCursor).toBeNull();
    const one = await hub.clients.viewer.get('/api/orders/FLT-5');
    expect(res.body.orders.find((o: { orderId: string }) => o.orderId === 'FLT-5')).toEqual(one.body);
  });

  it('filters by one status, several (repeated or comma-separated), a location, and both', async () => {
    const only = (f: (r: Fixture) => boolean) => newestFirst(fixtures.filter(f));
    expect(ids(await search(`${window}&status=3000`))).toEqual(only((r) => r.status === 3000));
    const several = only((r) => r.status === 3000 || r.status === 3500);
    expect(ids(await search(`${window}&status=3000&status=3500`))).toEqual(several);
    expect(ids(await search(`${window}&status=3000,3500`))).toEqual(several);
    expect(ids(await search(`${window}&status=3500,3000,3500`))).toEqual(several);
    expect(ids(await search(`${window}&locationId=STORE-011`))).toEqual(only((r) => r.locationId === 'STORE-011'));
    expect(ids(await search(`${window}&locationId=STORE-013&status=3000,9000`))).toEqual(['FLT-8', 'FLT-7']);
    expect(ids(await search(`${window}&locationId=STORE-999`))).toEqual([]);
  });

  it('filters on the last change: from is inclusive, to exclusive, to the microsecond', async () => {
    const from = encodeURIComponent(at(3, 3)); // exactly FLT-3's updated_at
    const to = encodeURIComponent(at(6, 6)); // exactly FLT-6's
    expect(ids(await search(`from=${from}&to=${to}`))).toEqual(['FLT-5', 'FLT-4', 'FLT-3']);
    expect(ids(await search(`from=${encodeURIComponent('2001-02-03T11:07:00+07:00')}&to=${encodeURIComponent(at(59))}`))).toEqual(['FLT-8', 'FLT-7']);
    const later = await search(`from=${encodeURIComponent(at(7, 8))}&status=3000`);
    expect(ids(later)).toContain('FLT-8');
    expect(ids(later)).not.toContain('FLT-4');
    expect(ids(await search(`to=${encodeURIComponent(at(2, 0))}`))).toEqual(['FLT-1']);
  });
});

describe('GET /api/orders: q', () => {
  const tag = Date.now().toString(36);
  let byName: string;
  let byPhone: string;
  let byEmail: string;
  let cancelled: string;
  beforeAll(async () => {
    byName = await registerOrder(hub, { customer: { id: 'C-Q1', name: `Kanokwan Srisuk ${tag}` } });
    byPhone = await registerOrder(hub, { customer: { id: 'C-Q2', name: 'Another', phone: `+66 81 ${tag}` } });
    byEmail = await registerOrder(hub, { customer: { id: 'C-Q3', email: `Nok.${tag}@Example.com` } });
    cancelled = await registerOrder(hub, { customer: { id: 'C-Q4', name: `Kanokwan Srisuk ${tag} Jr` } });
    expect((await hub.clients.operator.post(`/api/orders/${cancelled}/cancel`, { reasonCode: 'customer_request' })).status).toBe(200);
  });

  it('finds an order by its id, exactly', async () => {
    expect(ids(await search(`q=${byName}`))).toEqual([byName]);
    expect(ids(await search(`q=${byName.slice(0, -1)}`))).toEqual([]);
  });

  it('finds orders by customer name prefix, phone and email, in any case', async () => {
    expect(ids(await search(`q=${encodeURIComponent(`kanokwan srisuk ${tag}`)}`)).sort()).toEqual([byName, cancelled].sort());
    expect(ids(await search(`q=${encodeURIComponent(`KANOKWAN SRISUK ${tag} J`)}`))).toEqual([cancelled]);
    expect(ids(await search(`q=${encodeURIComponent(`  Kanokwan Srisuk ${tag}  `)}&status=3000`))).toEqual([byName]);
    expect(ids(await search(`q=${encodeURIComponent(`Kanokwan Srisuk ${tag}`)}&status=9000`))).toEqual([cancelled]);
    // A name is matched from its start; phone and email whole.
    expect(ids(await search(`q=${encodeURIComponent(`Srisuk ${tag}`)}`))).toEqual([]);
    expect(ids(await search(`q=${encodeURIComponent(`+66 81 ${tag}`)}`))).toEqual([byPhone]);
    expect(ids(await search(`q=${encodeURIComponent(`+66 81`)}`))).toEqual([]);
    expect(ids(await search(`q=${encodeURIComponent(`nok.${tag}@example.COM`)}`))).toEqual([byEmail]);
    expect(ids(await search(`q=${encodeURIComponent(`nok.${tag}`)}`))).toEqual([]);
    // Under three characters, no name prefix: "Ka" alone finds nothing.
    expect(ids(await search('q=Ka'))).toEqual([]);
  });

  it('finds an order by the tracking id its shipped event brought', async () => {
    const orderId = await registerOrder(hub, { customer: { id: 'C-Q5', name: 'Shipped Customer' } });
    for (const step of ['picking', 'picked', 'packing', 'packed', 'shipped']) {
      const res = await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, step), { prefer: 'wait=10' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
    const shipped = await eventually(async () => {
      const o = (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body;
      return o.tracking?.trackingId ? o : undefined;
    }, 'the tracking id');
    const found = await search(`q=${encodeURIComponent(shipped.tracking.trackingId)}`);
    expect(ids(found)).toEqual([orderId]);
    expect(found.body.orders[0].tracking).toMatchObject({ trackingId: `GRB-${orderId}`, carrierCode: 'GRAB' });
    expect(ids(await search(`q=${encodeURIComponent(shipped.tracking.trackingId.toLowerCase())}`))).toEqual([]);
  });
});

describe('GET /api/orders: keyset pages', () => {
  // 23 orders, in threes that share an updated_at to the microsecond (order_id breaks the tie).
  const base = Date.parse('2024-05-06T07:00:00Z');
  const pagerFixtures: Fixture[] = Array.from({ length: 23 }, (_, i) => ({
    orderId: `PG-${String(i).padStart(2, '0')}`,
    locationId: 'STORE-019',
    status: [3000, 3500, 7500][i % 3]!,
    updatedAt: new Date(base + Math.floor(i / 3) * 1000).toISOString().replace('Z', '123Z'),
    name: `Pager Person ${i}`,
  }));
  beforeAll(() => insertOrders(pagerFixtures));

  /** What a walk must return: the matching orders as they were before it started, newest change first. */
  async function expected(where: postgres.PendingQuery<postgres.Row[]>) {
    const rows = await sql<Array<{ order_id: string }>>`select order_id from orders o where ${where} order by updated_at desc, order_id desc`;
    return rows.map((r) => r.order_id);
  }
  /** Registers an order (now: newer than any walked) for the location between two pages. */
  const registerBetween =
    (locationId: string, name = 'Pager Person new') =>
    async () => {
      await registerOrder(hub, { shipFromLocationId: locationId, customer: { id: 'C-NEW', name } });
    };

  it('walks one location in pages with orders registered between pages: each order once, none missed', async () => {
    const want = await expected(sql`o.ship_from_location_id = 'STORE-019'`);
    expect(want).toHaveLength(23);
    const { seen, pages } = await walk('locationId=STORE-019', 4, registerBetween('STORE-019'));
    expect(pages).toBe(6);
    expect(seen).toEqual(want);
    // The ones registered meanwhile are there for a walk that starts now, in front.
    const again = await walk('locationId=STORE-019', 50);
    expect(again.seen.slice(5)).toEqual(want);
  });

  it('does the same for several statuses (one index range each, merged), and for q', async () => {
    const want = await expected(sql`o.ship_from_location_id = 'STORE-019' and o.status in (3000, 7500)`);
    const { seen } = await walk('locationId=STORE-019&status=3000,7500', 3, registerBetween('STORE-019'));
    expect(seen).toEqual(want);
    const byName = await expected(sql`lower(o.customer ->> 'name') like 'pager person%'`);
    const named = await walk('q=pager%20person', 5, registerBetween('STORE-020', 'Pager Person later'));
    expect(named.seen).toEqual(byName);
  });

  it('walks every order of the hub with no filter while orders are registered', async () => {
    const want = await expected(sql`true`);
    const { seen } = await walk('', 7, registerBetween('STORE-002'));
    expect(seen).toEqual(want);
  });

  it('refuses a bad limit, cursor, status, date or parameter with 400', async () => {
    const page = await search('locationId=STORE-019&limit=2');
    const good = page.body.nextCursor as string;
    expect(good).toMatch(/^[A-Za-z0-9_-]+$/);
    const forged = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const cases: Array<[string, string]> = [
      ['limit=0', 'validation_failed'],
      ['limit=201', 'validation_failed'],
      ['limit=-1', 'validation_failed'],
      ['limit=1.5', 'validation_failed'],
      ['limit=ten', 'validation_failed'],
      ['limit=10&limit=20', 'validation_failed'],
      ['cursor=', 'invalid_cursor'],
      ['cursor=not*base64', 'invalid_cursor'],
      [`cursor=${good.slice(0, -3)}`, 'invalid_cursor'],
      [`cursor=${forged({ at: '2024-01-01' })}`, 'invalid_cursor'],
      [`cursor=${forged(['2024-02-31T00:00:00.000000Z', 'PG-01'])}`, 'invalid_cursor'],
      [`cursor=${forged(['2024-02-01T00:00:00Z', 'PG-01'])}`, 'invalid_cursor'],
      [`cursor=${forged(['2024-02-01T00:00:00.000000Z', ''])}`, 'invalid_cursor'],
      ['status=1234', 'validation_failed'],
      ['status=3000,picking', 'validation_failed'],
      ['status=', 'validation_failed'],
      ['from=yesterday', 'validation_failed'],
      ['from=2024-01-01', 'validation_failed'],
      ['to=2024-01-01T25:00:00Z', 'validation_failed'],
      ['from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z', 'validation_failed'],
      ['q=', 'validation_failed'],
      [`q=${'x'.repeat(201)}`, 'validation_failed'],
      ['locationId=STORE-001&locationId=STORE-002', 'validation_failed'],
      ['locationid=STORE-001', 'validation_failed'],
    ];
    for (const [query, code] of cases) {
      const res = await search(query);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code, query).toBe(code);
    }
    expect((await search(`locationId=STORE-019&limit=200&cursor=${good}`)).status).toBe(200);
    expect((await search('limit=1')).body.orders).toHaveLength(1);
  });

  it('lets viewers, operators and admins search and export; partners get 403', async () => {
    for (const client of ['viewer', 'operator', 'admin'] as const) {
      expect((await hub.clients[client].get('/api/orders?limit=1')).status).toBe(200);
      expect((await hub.clients[client].get('/api/orders/export?locationId=STORE-019')).status).toBe(200);
    }
    for (const client of ['mao', 'slick', 'pmp', 'grab'] as const) {
      expect((await hub.clients[client].get('/api/orders?limit=1')).status).toBe(403);
      expect((await hub.clients[client].get('/api/orders/export')).status).toBe(403);
    }
  });
});

/** The CSV lines an export must hold for the orders `where` selects, from the database itself. */
async function expectedCsvRows(where: postgres.PendingQuery<postgres.Row[]>) {
  const rows = await sql<
    Array<{
      order_id: string;
      status: number;
      ship_from_location_id: string;
      payment_method: string;
      cod_amount: string | null;
      tracking_id: string | null;
      carrier_code: string | null;
      partner_id: string | null;
      delivery_attempts: number;
      created_at: Date;
      updated_at: Date;
    }>
  >`select * from orders o where ${where} order by updated_at desc, order_id desc`;
  return rows.map((r) => ({
    orderId: r.order_id,
    status: String(r.status),
    statusName: STATUS_NAMES[r.status as StatusCode],
    locationId: r.ship_from_location_id,
    paymentMethod: r.payment_method,
    codAmount: r.cod_amount ?? '',
    trackingId: r.tracking_id ?? '',
    carrierCode: r.carrier_code ?? '',
    partnerId: r.partner_id ?? '',
    deliveryAttempts: String(r.delivery_attempts),
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  }));
}

/** `count` orders at `locationId` in one INSERT … SELECT generate_series, with awkward values for CSV. */
async function insertMany(prefix: string, locationId: string, count: number) {
  await sql`
    insert into orders (order_id, ship_from_location_id, customer, payment_method, cod_amount, status, registration_hash,
                        tracking_id, carrier_code, partner_id, partner_name, delivery_attempts, created_at, updated_at, status_changed_at)
    select ${prefix} || '-' || lpad(g::text, 6, '0'), ${locationId}, jsonb_build_object('id', 'C' || g, 'name', 'Many ' || g),
           case when g % 3 = 0 then 'COD' else 'PREPAID' end,
           case when g % 3 = 0 then ((g % 900) + 0.5)::numeric(12, 2) end,
           (array[3000, 3500, 3600, 3700, 7000, 7100, 7200, 7300, 7400, 7500, 8500, 9000])[1 + g % 12],
           'fixture',
           case when g % 4 = 0 then 'TRK-' || g when g % 4 = 1 then 'TRK,"' || g || '"' end,
           case when g % 4 = 0 then 'GRAB' end,
           case when g % 5 = 0 then 'PARTNER-' || (g % 7) end,
           case when g % 5 = 0 then 'Partner ' || (g % 7) end,
           g % 3,
           timestamptz '2023-03-04 05:06:07.890123+00' + g * interval '1 minute',
           timestamptz '2023-03-04 05:06:07.890123+00' + g * interval '1 minute' + (g % 17) * interval '1 second 7 microseconds',
           timestamptz '2023-03-04 05:06:07.890123+00' + g * interval '1 minute'
    from generate_series(1, ${count}) g`;
}

describe('GET /api/orders/export', () => {
  it('streams every matching order as CSV with the header row, and it parses back to the stored values', async () => {
    await insertMany('EXP', 'STORE-023', 2000);
    const res = await hub.clients.operator.get('/api/orders/export?format=csv&locationId=STORE-023');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="orders-\d{8}T\d{6}Z\.csv"$/);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    const text = res.body as string;
    const [header] = parse(text, { to_line: 1 }) as string[][];
    expect(header).toEqual(EXPORT_HEADER);
    const rows = parse(text, { columns: true }) as Array<Record<string, string>>;
    expect(rows).toHaveLength(2000);
    expect(rows).toEqual(await expectedCsvRows(sql`o.ship_from_location_id = 'STORE-023'`));
    expect(rows.filter((r) => r.trackingId!.includes('"'))).toHaveLength(500);
  });

  it('takes the same filters as the search', async () => {
    const q = await hub.clients.viewer.get('/api/orders/export?locationId=STORE-023&status=7500,8500&from=2023-03-04T10:00:00Z&to=2023-03-05T00:00:00Z');
    const rows = parse(q.body as string, { columns: true }) as Array<Record<string, string>>;
    const want = await expectedCsvRows(
      sql`o.ship_from_location_id = 'STORE-023' and o.status in (7500, 8500) and o.updated_at >= '2023-03-04T10:00:00Z' and o.updated_at < '2023-03-05T00:00:00Z'`,
    );
    expect(want.length).toBeGreaterThan(10);
    expect(rows).toEqual(want);
    const one = await hub.clients.viewer.get('/api/orders/export?q=EXP-000042');
    expect((parse(one.body as string, { columns: true }) as Array<Record<string, string>>).map((r) => r.orderId)).toEqual(['EXP-000042']);
    // Nothing matches: the header row alone.
    const none = await hub.clients.viewer.get('/api/orders/export?locationId=STORE-999');
    expect(none.status).toBe(200);
    expect(parse(none.body as string)).toEqual([EXPORT_HEADER]);
    for (const bad of ['format=json', 'limit=10', 'cursor=abc', 'status=42', 'from=never']) {
      const res = await hub.clients.viewer.get(`/api/orders/export?${bad}`);
      expect(res.status, bad).toBe(400);
    }
  });

  it('stops the query when the client goes away mid-export', async () => {
    // Far more than socket buffers hold (~15 MB of CSV), so the export is still reading when the client leaves.
    await insertMany('GONE', 'STORE-024', 120_000);
    const exportQueries = () => sql<Array<{ pid: number; state: string }>>`
      select pid, state from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle' and query like '%as "deliveryAttempts"%'`;
    expect(await exportQueries()).toEqual([]);

    const viewer = DEVELOPMENT_CLIENTS.find((c) => c.id === 'viewer')!;
    const url = new URL('/api/orders/export?locationId=STORE-024', hub.baseUrl);
    const req = httpRequest(url, { headers: { authorization: `Bearer ${viewer.key}` } });
    req.on('error', () => {}); // the abort below
    const res = await new Promise<IncomingMessage>((resolve) => req.once('response', resolve).end());
    expect(res.statusCode).toBe(200);
    // Read the first chunk, then stop reading: the server fills the socket and must wait.
    const first = await new Promise<Buffer>((resolve) => res.once('data', resolve));
    res.pause();
    expect(first.toString('utf8').split('\n')[0]).toBe(EXPORT_HEADER.join(','));

    // The export is held back by the client, not finished: its query is still there a while later.
    await new Promise((r) => setTimeout(r, 750));
    expect(await exportQueries()).toHaveLength(1);

    // A second export may run beside it; a third is refused until one ends (each holds a pool connection).
    const req2 = httpRequest(url, { headers: { authorization: `Bearer ${viewer.key}` } });
    req2.on('error', () => {});
    const res2 = await new Promise<IncomingMessage>((resolve) => req2.once('response', resolve).end());
    expect(res2.statusCode).toBe(200);
    res2.pause();
    const third = await hub.clients.viewer.get('/api/orders/export?locationId=STORE-024');
    expect(third.status).toBe(429);
    expect(third.body.error.code).toBe('too_many_exports');
    expect(third.headers['retry-after']).toBe('30');
    req2.destroy();

    req.destroy();
    await eventually(async () => (await exportQueries()).length === 0, 'the export queries to stop', 5_000);
    const line = await eventually(async () => hub.logLines.find((l) => l.includes('order export stopped') && l.includes('"rows"')), 'the log line');
    const logged = JSON.parse(line) as { rows: number; aborted: boolean };
    expect(logged.aborted).toBe(true);
    expect(logged.rows).toBeLessThan(120_000);
    // The hub's pool is fine afterwards.
    expect((await hub.clients.viewer.get('/api/orders?locationId=STORE-024&limit=1')).status).toBe(200);
  });
});
