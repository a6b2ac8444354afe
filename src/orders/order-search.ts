import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { stringify } from 'csv-stringify';
import { getTableColumns, sql } from 'drizzle-orm';
import type postgres from 'postgres';
import { z } from 'zod';
import type { Database } from '../db/client.js';
import { codLedger, orderCalls, orders, type OrderCallState } from '../db/schema/index.js';
import type { OrderRow } from '../db/types.js';
import { ValidationError } from '../errors.js';
import { isStatusCode, STATUS_NAMES, type StatusCode } from '../machines/order.machine.js';
import type { OrderWithCalls } from './order-registration.js';

/**
 * Operators' search over orders (`GET /api/orders`) and its CSV export (`GET /api/orders/export`).
 *
 * Order: newest change first, by (updated_at desc, order_id desc). A page continues strictly after the
 * last row's key (keyset, in an opaque cursor), so an order registered while someone pages gets a newer
 * key than any already seen and lands before the cursor: a walk through the pages never repeats nor
 * skips an order. (An order that changes mid-walk moves to the front too: the walk shows it where it
 * was if it had passed it already, and not at all if not, as with any list sorted by last change.)
 *
 * How each statement reaches orders (test/integration/order-search-plans.test.ts checks that a page
 * reads about a page of rows, by index, at 30,000 orders):
 * - no `q`, no status: orders_updated_idx (or orders_location_updated_idx for a location) read
 *   backwards from the cursor, stopped at the page size;
 * - statuses: each status read newest first and stopped at the page size (orders_status_updated_idx,
 *   or orders_updated_idx with a filter where the status is common enough to be cheaper), then merged:
 *   several statuses cost (statuses × page) rows, not all the orders they hold;
 * - `q`: the matching ids from one index each (pkey, tracking id, customer phone, email, name prefix),
 *   then those orders by id; the other filters apply to those rows only.
 * The statements are planned for their parameters on every run (see Statement).
 */

export const SEARCH_DEFAULT_LIMIT = 50;
export const SEARCH_MAX_LIMIT = 200;
/** Shorter `q` values match order ids, tracking ids, phones and emails exactly, but not name prefixes. */
export const NAME_PREFIX_MIN_LENGTH = 3;
const EXPORT_BATCH_ROWS = 500;

export interface OrderFilters {
  statuses?: StatusCode[] | undefined;
  locationId?: string | undefined;
  /** On updated_at: from ≤ updated_at < to. */
  from?: Date | undefined;
  to?: Date | undefined;
  q?: string | undefined;
}
export interface SearchParams extends OrderFilters {
  limit: number;
  after?: SortKey | undefined;
}
/** The sort key of a row: updated_at to the microsecond (as Postgres keeps it, in UTC) and order_id. */
export interface SortKey {
  at: string;
  orderId: string;
}

// ---- Query parameters -------------------------------------------------------------------------

/** Whether `s` holds a C0 control character (U+0000–U+001F), which no name or reference has. */
function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 0x20) return true;
  return false;
}

const instant = z.iso.datetime({ offset: true, message: 'an ISO 8601 instant, e.g. 2025-01-31T17:00:00Z' });
const statusList = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  const parts = (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim());
  const codes: StatusCode[] = [];
  for (const p of parts) {
    const n = /^\d{4}$/.test(p) ? Number(p) : NaN;
    if (!isStatusCode(n)) {
      ctx.addIssue({ code: 'custom', message: `unknown status ${JSON.stringify(p)}` });
      return z.NEVER;
    }
    if (!codes.includes(n)) codes.push(n);
  }
  return codes;
});

const filterShape = {
  status: statusList.optional(),
  locationId: z.string().min(1).max(64).optional(),
  from: instant.optional(),
  to: instant.optional(),
  q: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .refine((s) => !hasControlCharacter(s), 'no control characters')
    .optional(),
};

/** `GET /api/orders`: unknown parameters are refused (a misspelt filter would otherwise match everything). */
export const searchQuerySchema = z
  .object({
    ...filterShape,
    limit: z
      .string()
      .regex(/^\d{1,4}$/, `a whole number from 1 to ${SEARCH_MAX_LIMIT}`)
      .optional(),
    cursor: z.string().max(400).optional(),
  })
  .strict();

/** `GET /api/orders/export`: the search's filters, no limit or cursor; format csv (the default). */
export const exportQuerySchema = z.object({ ...filterShape, format: z.literal('csv').optional() }).strict();

export type SearchQuery = z.infer<typeof searchQuerySchema>;
export type ExportQuery = z.infer<typeof exportQuerySchema>;

/** The filters of a query that passed exportQuerySchema (or searchQuerySchema); 400 if from is after to. */
export function toFilters(input: ExportQuery | SearchQuery): OrderFilters {
  const from = input.from ? new Date(input.from) : undefined;
  const to = input.to ? new Date(input.to) : undefined;
  if (from && to && from > to) throw new ValidationError('query is invalid', [{ path: 'from', message: 'from is after to' }]);
  return { statuses: input.status, locationId: input.locationId, from, to, q: input.q };
}

/** The page asked by a query that passed searchQuerySchema; 400 for a limit out of range or a malformed cursor. */
export function toSearchParams(input: SearchQuery): SearchParams {
  const limit = input.limit === undefined ? SEARCH_DEFAULT_LIMIT : Number(input.limit);
  if (limit < 1 || limit > SEARCH_MAX_LIMIT) {
    throw new ValidationError('query is invalid', [{ path: 'limit', message: `a whole number from 1 to ${SEARCH_MAX_LIMIT}` }]);
  }
  return { ...toFilters(input), limit, after: input.cursor === undefined ? undefined : decodeCursor(input.cursor) };
}

// ---- Cursor -------------------------------------------------------------------------------------

const SORT_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const cursorSchema = z.tuple([z.string().regex(SORT_AT), z.string().min(1).max(64)]);

export function encodeCursor(key: SortKey): string {
  return Buffer.from(JSON.stringify([key.at, key.orderId])).toString('base64url');
}

export function decodeCursor(cursor: string): SortKey {
  const malformed = () => new ValidationError('query is invalid', [{ path: 'cursor', message: 'not a cursor this API returned' }], 'invalid_cursor');
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw malformed();
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw malformed();
  }
  const parsed = cursorSchema.safeParse(value);
  if (!parsed.success) throw malformed();
  const [at, orderId] = parsed.data;
  // A real instant (no 31st of February): it must read back the same to the millisecond.
  const date = new Date(at);
  if (Number.isNaN(date.getTime()) || date.toISOString().slice(0, 23) !== at.slice(0, 23)) throw malformed();
  return { at, orderId };
}

// ---- Statements ---------------------------------------------------------------------------------

/** Every column of orders under its drizzle name; `toOrderRow` then decodes each value as drizzle does. */
const ORDER_TABLE_COLUMNS = Object.entries(getTableColumns(orders));
const ORDER_COLUMNS = ORDER_TABLE_COLUMNS.map(([key, column]) => `o.${column.name} as "${key}"`).join(', ');

/** drizzle leaves timestamps as Postgres sends them on the shared connection; its columns turn them into Dates. */
function toOrderRow(raw: Record<string, unknown>): OrderRow {
  const row: Record<string, unknown> = {};
  for (const [key, column] of ORDER_TABLE_COLUMNS) {
    const value = raw[key];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as OrderRow;
}
const SORT_AT_SQL = `to_char(o.updated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as "sortAt"`;

/**
 * A statement's text and its parameters, all passed as text and cast in the statement. The search's
 * statements run unprepared (`prepare: false`): Postgres plans each run for its parameters, rather
 * than keeping one generic plan per connection as it does for the hub's prepared statements. Several
 * indexes can serve a shape, and which is best depends on the values (a location with few orders, a
 * status most orders are in) and on the table's size; a generic plan made while the table was small
 * would keep its choice for the life of the connection. Planning costs a fraction of a millisecond,
 * which a search can afford and the hot path could not.
 */
export interface Statement {
  text: string;
  values: Array<string | null>;
}
class StatementBuilder {
  readonly values: Array<string | null> = [];
  param(value: string | number | null): string {
    this.values.push(value === null ? null : String(value));
    return `$${this.values.length}`;
  }
  statement(text: string): Statement {
    return { text, values: this.values };
  }
}

/**
 * The conditions on orders `o` for the filters given (none for a filter not given: an always-true
 * bound would look selective to a planner without statistics, and mislead it), joined by `and`;
 * `true` when there are none.
 */
function conditions(b: StatementBuilder, f: OrderFilters & { after?: SortKey | undefined }, opts: { statuses: boolean; on?: Columns }): string {
  const col = opts.on ?? ORDERS_O;
  const c: string[] = [];
  if (f.from) c.push(`${col.updatedAt} >= ${b.param(f.from.toISOString())}::timestamptz`);
  if (f.to) c.push(`${col.updatedAt} < ${b.param(f.to.toISOString())}::timestamptz`);
  if (f.locationId !== undefined) c.push(`${col.locationId} = ${b.param(f.locationId)}::text`);
  if (opts.statuses && f.statuses?.length) c.push(`${col.status} = any(${b.param(`{${f.statuses.join(',')}}`)}::int[])`);
  if (f.after) c.push(`(${col.updatedAt}, ${col.orderId}) < (${b.param(f.after.at)}::timestamptz, ${b.param(f.after.orderId)}::text)`);
  return c.length ? c.join(' and ') : 'true';
}
/** Where `conditions` finds the columns it tests: orders `o`, or the rows `p` read from it under drizzle's names. */
interface Columns {
  updatedAt: string;
  locationId: string;
  status: string;
  orderId: string;
}
const ORDERS_O: Columns = { updatedAt: 'o.updated_at', locationId: 'o.ship_from_location_id', status: 'o.status', orderId: 'o.order_id' };
const READ_P: Columns = { updatedAt: 'p."updatedAt"', locationId: 'p."shipFromLocationId"', status: 'p.status', orderId: 'p."orderId"' };

/**
 * The distinct ids of the orders `q` matches, each branch an equality or a range of its own index:
 * order id (pkey), tracking id, customer phone and email (whole, case-insensitive) and name (prefix,
 * case-insensitive, from NAME_PREFIX_MIN_LENGTH characters; the range ends at the prefix followed by
 * U+10FFFF, in code point order). The orders are then read by id from it (a lateral join that cannot
 * be turned around), so `q` never walks the orders by time to test each.
 */
function matchingIds(b: StatementBuilder, q: string): string {
  const value = b.param(q);
  const prefix = b.param(q.length >= NAME_PREFIX_MIN_LENGTH ? q : null);
  const name = `(lower(x.customer ->> 'name') collate "C")`;
  return `select x.order_id from orders x where x.order_id = ${value}::text
    union select x.order_id from orders x where x.tracking_id = ${value}::text
    union select x.order_id from orders x where lower(x.customer ->> 'phone') = lower(${value}::text)
    union select x.order_id from orders x where lower(x.customer ->> 'email') = lower(${value}::text)
    union select x.order_id from orders x
      where ${name} >= (lower(${prefix}::text) collate "C") and ${name} < ((lower(${prefix}::text) || chr(1114111)) collate "C")`;
}

/** The statement of one search page; exported for the plan test. */
export function searchStatement(p: SearchParams): Statement {
  const b = new StatementBuilder();
  const columns = `${ORDER_COLUMNS}, ${SORT_AT_SQL}`;
  const take = () => `${b.param(p.limit + 1)}::int`; // one more than asked: whether a next page exists
  if (p.q !== undefined) {
    // The matches first, each read by its id (the lateral subquery takes no other condition, so no other
    // index can be chosen for it); the other filters apply to those few rows only.
    return b.statement(`select p.* from (${matchingIds(b, p.q)}) m
      cross join lateral (select ${columns} from orders o where o.order_id = m.order_id offset 0) p
      where ${conditions(b, p, { statuses: true, on: READ_P })}
      order by p."updatedAt" desc, p."orderId" desc limit ${take()}`);
  }
  if (p.statuses?.length) {
    // One index range per status, each cut at the page size, then merged.
    const statuses = b.param(`{${p.statuses.join(',')}}`);
    const n = take();
    return b.statement(`select p.* from unnest(${statuses}::int[]) as s(status)
      cross join lateral (
        select ${columns} from orders o
        where o.status = s.status and ${conditions(b, p, { statuses: false })}
        order by o.updated_at desc, o.order_id desc limit ${n}) p
      order by p."updatedAt" desc, p."orderId" desc limit ${n}`);
  }
  return b.statement(`select ${columns} from orders o
    where ${conditions(b, p, { statuses: false })}
    order by o.updated_at desc, o.order_id desc limit ${take()}`);
}

function run<T extends readonly object[]>(pg: postgres.Sql, st: Statement) {
  return pg.unsafe<T extends postgres.Row[] ? T : never>(st.text, st.values, { prepare: false });
}

export interface SearchResult {
  orders: OrderWithCalls[];
  nextCursor: string | null;
}

/** One page of the search, each order with its calls and COD ledger as `GET /api/orders/{id}` shows it. */
export async function searchOrders(deps: { db: Database; pg: postgres.Sql }, params: SearchParams): Promise<SearchResult> {
  const rows = await run<Array<Record<string, unknown> & { sortAt: string; orderId: string }>>(deps.pg, searchStatement(params));
  const page = rows.slice(0, params.limit).map(toOrderRow);
  const last = rows.length > params.limit ? rows[params.limit - 1] : undefined;
  const ids = sql.param(page.map((o) => o.orderId));
  const [calls, ledgers] = page.length
    ? await Promise.all([
        deps.db
          .select({ orderId: orderCalls.orderId, kind: orderCalls.kind, key: orderCalls.key, state: orderCalls.state })
          .from(orderCalls)
          .where(sql`${orderCalls.orderId} = any(${ids}::text[])`),
        deps.db.select().from(codLedger).where(sql`${codLedger.orderId} = any(${ids}::text[])`),
      ])
    : [[], []];
  const callsOf = new Map<string, Record<string, OrderCallState>>();
  for (const c of calls) {
    const m = callsOf.get(c.orderId) ?? {};
    m[`${c.kind}:${c.key}`] = c.state;
    callsOf.set(c.orderId, m);
  }
  const ledgerOf = new Map(ledgers.map((l) => [l.orderId, l]));
  return {
    orders: page.map((o) => ({ ...o, calls: callsOf.get(o.orderId) ?? {}, ledger: ledgerOf.get(o.orderId) })),
    nextCursor: last ? encodeCursor({ at: last.sortAt, orderId: last.orderId }) : null,
  };
}

// ---- Export -------------------------------------------------------------------------------------

export const EXPORT_COLUMNS = [
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
] as const;
type ExportRecord = Record<(typeof EXPORT_COLUMNS)[number], string | number | null>;

interface ExportRow {
  orderId: string;
  status: number;
  locationId: string;
  paymentMethod: string;
  codAmount: string | null;
  trackingId: string | null;
  carrierCode: string | null;
  partnerId: string | null;
  deliveryAttempts: number;
  /** As `Date.prototype.toISOString` writes them, like the JSON views. */
  createdAt: string;
  updatedAt: string;
}

const isoUtc = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** The export reads the same orders as the search, in the same order, with no limit; a cursor reads them. */
export function exportStatement(f: OrderFilters): Statement {
  const b = new StatementBuilder();
  const columns = `o.order_id as "orderId", o.status, o.ship_from_location_id as "locationId",
      o.payment_method as "paymentMethod", o.cod_amount as "codAmount", o.tracking_id as "trackingId",
      o.carrier_code as "carrierCode", o.partner_id as "partnerId", o.delivery_attempts as "deliveryAttempts",
      ${isoUtc('o.created_at')} as "createdAt", ${isoUtc('o.updated_at')} as "updatedAt"`;
  if (f.q !== undefined) {
    return b.statement(`select p."orderId", p.status, p."locationId", p."paymentMethod", p."codAmount", p."trackingId",
        p."carrierCode", p."partnerId", p."deliveryAttempts", p."createdAt", p."updatedAt"
      from (${matchingIds(b, f.q)}) m
      cross join lateral (select ${columns}, o.updated_at as "sortAt", o.ship_from_location_id as "shipFromLocationId"
        from orders o where o.order_id = m.order_id offset 0) p
      where ${conditions(b, f, { statuses: true, on: { ...READ_P, updatedAt: 'p."sortAt"' } })}
      order by p."sortAt" desc, p."orderId" desc`);
  }
  return b.statement(`select ${columns} from orders o where ${conditions(b, f, { statuses: true })}
    order by o.updated_at desc, o.order_id desc`);
}

function exportRecord(r: ExportRow): ExportRecord {
  return {
    orderId: r.orderId,
    status: r.status,
    statusName: STATUS_NAMES[r.status as StatusCode] ?? 'Unknown',
    locationId: r.locationId,
    paymentMethod: r.paymentMethod,
    codAmount: r.codAmount,
    trackingId: r.trackingId,
    carrierCode: r.carrierCode,
    partnerId: r.partnerId,
    deliveryAttempts: r.deliveryAttempts,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

export interface ExportOutcome {
  rows: number;
  /** The receiver went away before the end: the query was stopped there. */
  aborted: boolean;
}

/**
 * Writes the CSV of the orders matching `filters` to `out`, from a Postgres cursor of
 * EXPORT_BATCH_ROWS rows at a time through csv-stringify. Memory stays constant: the next batch is
 * fetched only once this one was taken by the CSV stream, and a row is written only when that stream
 * has room (it drains as fast as `out` does). When `out` closes early (the client went away) the cursor
 * is closed, which ends the query. `start` runs once the first rows are in, before the first byte: a
 * query that fails at once still gets a JSON error; one that fails later destroys `out`.
 */
export async function exportOrdersCsv(pg: postgres.Sql, filters: OrderFilters, out: Writable, start: () => void): Promise<ExportOutcome> {
  const stop = new AbortController();
  const onClose = () => {
    if (!out.writableFinished) stop.abort();
  };
  out.on('close', onClose);
  const batches = run<ExportRow[]>(pg, exportStatement(filters)).cursor(EXPORT_BATCH_ROWS)[Symbol.asyncIterator]();
  let rows = 0;
  try {
    let batch = await batches.next();
    if (stop.signal.aborted) return { rows, aborted: true };
    start();
    const csv = stringify({ header: true, columns: [...EXPORT_COLUMNS] });
    // Resolves with the error (if any) rather than rejecting, so a client gone early is no unhandled rejection.
    const piped = pipeline(csv, out).then(
      () => undefined,
      (err: unknown) => err,
    );
    try {
      for (; !batch.done; batch = await batches.next()) {
        for (const row of batch.value) {
          if (stop.signal.aborted) break;
          rows++;
          if (!csv.write(exportRecord(row))) await once(csv, 'drain', { signal: stop.signal });
        }
        if (stop.signal.aborted) break;
      }
    } catch (err) {
      if (!stop.signal.aborted) {
        csv.destroy(err as Error);
        out.destroy(err as Error);
        throw err;
      }
    }
    if (stop.signal.aborted) {
      csv.destroy();
      await piped;
      return { rows, aborted: true };
    }
    csv.end();
    const failed = await piped;
    if (failed && stop.signal.aborted) return { rows, aborted: true };
    if (failed) throw failed;
    return { rows, aborted: false };
  } finally {
    out.off('close', onClose);
    // Closes the portal if the loop stopped early (a no-op once the query completed).
    await batches.return?.();
  }
}
