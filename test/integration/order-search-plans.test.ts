import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWith } from '../../src/api/request-body.js';
import { connectDatabase } from '../../src/db/client.js';
import {
  exportQuerySchema,
  exportStatement,
  searchOrders,
  searchQuerySchema,
  searchStatement,
  toFilters,
  toSearchParams,
  type Statement,
} from '../../src/orders/order-search.js';
import { startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The search's statements, run as the hub runs them (its pool: sequential scans off; unprepared, so
 * planned for their parameters) against 30,000 orders, must reach orders through indexes and read
 * only about a page of rows, never every order: EXPLAIN ANALYZE counts the rows each scan of orders
 * produced or filtered out. Like test/integration/query-plans.test.ts for the hot path, but the
 * search's plans are made per run, so they are checked on a table of some size with statistics, as
 * autovacuum keeps it.
 */
const ORDERS = 30_000;
const LIMIT = 20;
/** At most this many rows of orders per page: 5% of the table. */
const MAX_ROWS_READ = 1_500;

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

function scansOfOrders(node: PlanNode, out: PlanNode[] = []): PlanNode[] {
  if (node['Relation Name'] === 'orders' || (node['Node Type'] === 'Bitmap Index Scan' && node['Index Name']?.startsWith('orders_'))) out.push(node);
  for (const child of node.Plans ?? []) scansOfOrders(child, out);
  return out;
}

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ inProcessWorkers: false, scheduler: false });
  await hub.web.pg`
    insert into orders (order_id, ship_from_location_id, customer, payment_method, status, registration_hash, tracking_id,
                        created_at, updated_at, status_changed_at)
    select 'PLAN-' || lpad(g::text, 6, '0'), 'STORE-' || lpad(((g % 25) + 1)::text, 3, '0'),
           jsonb_build_object('id', 'C' || g, 'name', 'Customer ' || (g % 9000), 'phone', '+6680' || lpad(g::text, 7, '0'), 'email', 'c' || g || '@example.com'),
           'PREPAID', (array[1000, 3000, 3500, 3600, 3700, 7000, 7100, 7200, 7300, 7400, 7500, 8500, 9000])[1 + g % 13], 'fixture',
           case when g % 2 = 0 then 'TRK-' || g end,
           now() - g * interval '1 minute', now() - g * interval '1 minute', now() - g * interval '1 minute'
    from generate_series(1, ${ORDERS}) g`;
  await hub.web.pg`analyze orders`;
});
afterAll(async () => {
  await hub?.close();
});

async function explain(st: Statement): Promise<PlanNode> {
  const [row] = await hub.web.pg.unsafe(`explain (analyze, format json) ${st.text}`, st.values, { prepare: false });
  return (row!['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0]!.Plan;
}

function rowsRead(scans: PlanNode[]): number {
  return scans
    .filter((s) => s['Node Type'] !== 'Bitmap Index Scan') // its heap scan counts the same rows
    .reduce((n, s) => n + (s['Actual Rows'] + (s['Rows Removed by Filter'] ?? 0) + (s['Rows Removed by Index Recheck'] ?? 0)) * s['Actual Loops'], 0);
}

/** A cursor after the first page of `query`, as the API hands it out. */
async function secondPage(query: string): Promise<string> {
  const res = await hub.clients.viewer.get(`/api/orders?${query}&limit=${LIMIT}`);
  expect(res.status).toBe(200);
  expect(res.body.nextCursor).toBeTruthy();
  return `${query}&cursor=${res.body.nextCursor}`;
}

const query = (q: string) => Object.fromEntries(new URLSearchParams(q));
const lastWeek = `from=${new Date(Date.now() - 7 * 86_400_000).toISOString()}&to=${new Date(Date.now() - 86_400_000).toISOString()}`;

describe('query plans of the search', () => {
  it('reads about a page of orders for every filter, by index, never the whole table', async () => {
    const shapes = [
      '',
      'locationId=STORE-007',
      'status=3000',
      'status=3000,3500,7500',
      'status=9000&locationId=STORE-013',
      lastWeek,
      `${lastWeek}&locationId=STORE-003&status=7100,7200`,
      'q=TRK-1234',
      'q=customer%20123',
      'q=PLAN-000077&status=9000',
      'q=%2B66800000123',
      'q=C42@EXAMPLE.com',
    ];
    const withCursors = [...shapes, ...(await Promise.all(['', 'locationId=STORE-007', 'status=3000,3500,7500', 'q=customer%20123'].map(secondPage)))];
    const problems: string[] = [];
    for (const q of withCursors) {
      const params = toSearchParams(parseWith(searchQuerySchema, { ...query(q), limit: String(LIMIT) }));
      const plan = await explain(searchStatement(params));
      const scans = scansOfOrders(plan);
      const read = rowsRead(scans);
      const summary = scans.map((s) => `${s['Node Type']} ${s['Index Name'] ?? ''}`).join(', ');
      if (scans.length === 0 || scans.some((s) => s['Node Type'] === 'Seq Scan') || read > MAX_ROWS_READ) {
        problems.push(`${q || '(no filter)'}: ${read} rows read by ${summary}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('finds q by each of its indexes, with an index condition on each', async () => {
    const plan = await explain(searchStatement(toSearchParams(parseWith(searchQuerySchema, { q: 'customer 123' }))));
    const byIndex = new Map(scansOfOrders(plan).map((s) => [s['Index Name'], s['Index Cond']]));
    for (const index of ['orders_pkey', 'orders_tracking_idx', 'orders_customer_phone_idx', 'orders_customer_email_idx', 'orders_customer_name_idx']) {
      expect(byIndex.get(index), index).toBeTruthy();
    }
  });

  it('exports one location by its index, not by reading every order', async () => {
    const plan = await explain(exportStatement(toFilters(parseWith(exportQuerySchema, { locationId: 'STORE-007' }))));
    const scans = scansOfOrders(plan);
    expect(scans.some((s) => s['Node Type'] === 'Seq Scan')).toBe(false);
    expect(rowsRead(scans)).toBe(ORDERS / 25);
  });

  it('keeps no prepared statement (and so no generic plan) of the search on the connection', async () => {
    const single = connectDatabase(hub.databaseUrl, { max: 1 });
    try {
      for (let i = 0; i < 8; i++) {
        await searchOrders({ db: single.db, pg: single.sql }, toSearchParams(parseWith(searchQuerySchema, { status: '3000,3500', limit: '5' })));
        await searchOrders({ db: single.db, pg: single.sql }, toSearchParams(parseWith(searchQuerySchema, { q: 'customer 123', limit: '5' })));
      }
      const prepared = await single.sql<Array<{ statement: string }>>`select statement from pg_prepared_statements`;
      expect(prepared.filter((p) => p.statement.includes('"sortAt"'))).toEqual([]);
      // The per-page lookups of calls and ledgers are prepared, and reach their rows by key.
      expect(prepared.some((p) => p.statement.includes('"order_calls"'))).toBe(true);
    } finally {
      await single.close();
    }
  });
});
