import { sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';

/**
 * Query parameters and time windows shared by the analytics endpoints (SPEC §6).
 *
 * What is computed and how. Every endpoint answers from the live tables with a few set-based
 * statements; nothing is pre-aggregated. The reasons:
 * - The numbers asked for are mostly percentiles (pickup → delivered, time between statuses), which do
 *   not add up: a rollup per day or per location cannot give the p90 of a month or of a region without
 *   keeping every value (or a sketch that only approximates it).
 * - Keeping counters current would put a shared row (per location and status) into every status
 *   change's transaction, where all workers would queue on its lock — the hot path the hub is built
 *   around. A periodic rollup would instead add a role and answers that lag behind.
 * - The work of each statement is bounded by the orders in the window, not by the size of the
 *   history: the window is an index range on orders (orders_created_idx, or orders_location_created_idx
 *   with a location), and history is reached per order of that window through its (order_id, seq)
 *   index, in a LATERAL subquery so the plan is a nested loop by key and never a scan or a merge over
 *   the whole history table. Failed partner calls have a partial index by time.
 * So delivery, flow and errors always have a window: without `from`/`to` it is the last
 * DEFAULT_WINDOW_DAYS days (`to` defaults to now, `from` to `to` minus that). The status summary reads
 * orders only (never history); without a window it counts all orders, as SPEC §6 asks, from the
 * (location, status) index.
 * If windows of many months over millions of orders become a common question, a daily rollup of the
 * counts (not of the percentiles) by a scheduler task is the next step.
 *
 * The window is on the order's creation time: `from` inclusive, `to` exclusive.
 */
export const DEFAULT_WINDOW_DAYS = 30;
const DAY_MS = 86_400_000;

/** An instant (ISO 8601 with an offset) or a date (`2025-01-31`, midnight UTC). */
const instant = z
  .union([z.iso.datetime({ offset: true }), z.iso.date()])
  .transform((s) => new Date(s.length === 10 ? `${s}T00:00:00Z` : s))
  .refine((d) => !Number.isNaN(d.getTime()), 'not a valid date');

const windowFields = {
  from: instant.optional(),
  to: instant.optional(),
  format: z.enum(['json', 'csv']).default('json'),
};

function fromBeforeTo(q: { from?: Date | undefined; to?: Date | undefined }) {
  return !q.from || !q.to || q.from.getTime() < q.to.getTime();
}
const FROM_BEFORE_TO = { message: 'from must be before to', path: ['from'] };

const locationId = z.string().min(1).max(64);

export const statusSummaryQuery = z
  .object({ ...windowFields, locationId: locationId.optional() })
  .strict()
  .refine(fromBeforeTo, FROM_BEFORE_TO);
export const deliveryQuery = z
  .object({ ...windowFields, groupBy: z.enum(['partner', 'location', 'carrier']) })
  .strict()
  .refine(fromBeforeTo, FROM_BEFORE_TO);
export const flowQuery = z
  .object({ ...windowFields, locationId: locationId.optional() })
  .strict()
  .refine(fromBeforeTo, FROM_BEFORE_TO);
export const errorsQuery = z.object(windowFields).strict().refine(fromBeforeTo, FROM_BEFORE_TO);

export type StatusSummaryQuery = z.infer<typeof statusSummaryQuery>;
export type DeliveryQuery = z.infer<typeof deliveryQuery>;
export type FlowQuery = z.infer<typeof flowQuery>;
export type ErrorsQuery = z.infer<typeof errorsQuery>;

export interface Window {
  from: Date;
  to: Date;
}

/** The window of delivery, flow and errors: the one asked for, completed to DEFAULT_WINDOW_DAYS ending now. */
export function boundedWindow(q: { from?: Date | undefined; to?: Date | undefined }, now: number): Window {
  const to = q.to ?? new Date(now);
  const from = q.from ?? new Date(to.getTime() - DEFAULT_WINDOW_DAYS * DAY_MS);
  return { from, to };
}

/**
 * The conditions on `column` for a window; each bound is a parameter, and a missing bound leaves no
 * condition at all (rather than `$1 is null or …`), so a prepared statement's generic plan still has
 * an index condition.
 */
export function windowConditions(column: SQL, q: { from?: Date | undefined; to?: Date | undefined }): SQL[] {
  const conditions: SQL[] = [];
  if (q.from) conditions.push(sql`${column} >= ${q.from.toISOString()}::timestamptz`);
  if (q.to) conditions.push(sql`${column} < ${q.to.toISOString()}::timestamptz`);
  return conditions;
}

export function whereAll(conditions: SQL[]): SQL {
  return conditions.length ? sql`where ${sql.join(conditions, sql` and `)}` : sql``;
}

/** The time a history row stands for: when it happened, or when it was recorded if that is unknown (an implied step). */
export const HISTORY_TIME = sql.raw('coalesce(h.occurred_at, h.recorded_at)');

/** Rounds a ratio for reports; null stays null. */
export function roundTo(value: number | null, digits: number): number | null {
  if (value === null) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
