import { sql, type SQL } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { NotFoundError } from '../errors.js';
import { STATUS_CODES, STATUS_NAMES, type StatusCode } from '../machines/order.machine.js';
import { windowConditions, whereAll, type StatusSummaryQuery } from './window.js';

export interface StatusSummary {
  asOf: string;
  total: number;
  /** Every status of the model, in code order, with its count (zeros included): also the legend. */
  byStatus: Array<{ status: number; name: string; count: number }>;
  /** The locations that have orders in the window (or the one asked for), by id; statuses with a count only. */
  byLocation: Array<{ locationId: string; name: string; region: string; total: number; byStatus: Array<{ status: number; count: number }> }>;
}

/**
 * The current status of the orders created in the window (all orders without one), overall and per
 * location. Reads orders only: one grouped statement over orders_created_idx /
 * orders_location_created_idx for a window, over orders_location_status_idx without one, joined to
 * the locations table for names and regions.
 */
export function statusSummaryStatement(q: Pick<StatusSummaryQuery, 'from' | 'to' | 'locationId'>): SQL {
  const conditions = windowConditions(sql.raw('o.created_at'), q);
  if (q.locationId !== undefined) conditions.push(sql`o.ship_from_location_id = ${q.locationId}`);
  return sql`
    with counts as (
      select o.ship_from_location_id as location_id, o.status, count(*)::int as count
      from orders o
      ${whereAll(conditions)}
      group by o.ship_from_location_id, o.status
    )
    select c.location_id as "locationId", l.name, l.region, c.status, c.count
    from counts c join locations l on l.location_id = c.location_id
    order by c.location_id, c.status`;
}

export async function statusSummary(deps: HubDeps, q: StatusSummaryQuery): Promise<StatusSummary> {
  const asOf = new Date(deps.clock.now()).toISOString();
  let asked: { locationId: string; name: string; region: string } | undefined;
  if (q.locationId !== undefined) {
    const [location] = await deps.db.execute<{ locationId: string; name: string; region: string }>(
      sql`select location_id as "locationId", name, region from locations where location_id = ${q.locationId}`,
    );
    if (!location) throw new NotFoundError('location', q.locationId);
    asked = location;
  }
  const rows = await deps.db.execute<{ locationId: string; name: string; region: string; status: number; count: number }>(statusSummaryStatement(q));

  const overall = new Map<number, number>();
  const byLocation: StatusSummary['byLocation'] = [];
  if (asked) byLocation.push({ ...asked, total: 0, byStatus: [] });
  for (const r of rows) {
    overall.set(r.status, (overall.get(r.status) ?? 0) + r.count);
    let location = byLocation.at(-1);
    if (location?.locationId !== r.locationId) {
      location = { locationId: r.locationId, name: r.name, region: r.region, total: 0, byStatus: [] };
      byLocation.push(location);
    }
    location.total += r.count;
    location.byStatus.push({ status: r.status, count: r.count });
  }
  // A status outside the model (there should be none) still counts, after the model's statuses.
  const codes: number[] = [...STATUS_CODES, ...[...overall.keys()].filter((s) => !(STATUS_CODES as number[]).includes(s)).sort((a, b) => a - b)];
  return {
    asOf,
    total: byLocation.reduce((sum, l) => sum + l.total, 0),
    byStatus: codes.map((status) => ({ status, name: STATUS_NAMES[status as StatusCode] ?? String(status), count: overall.get(status) ?? 0 })),
    byLocation,
  };
}

/** CSV of the summary: one row per location and status that has orders (header: locationId, name, region, status, statusName, count). */
export function statusSummaryCsvRows(summary: StatusSummary) {
  return summary.byLocation.flatMap((l) =>
    l.byStatus.map((s) => ({
      locationId: l.locationId,
      name: l.name,
      region: l.region,
      status: s.status,
      statusName: STATUS_NAMES[s.status as StatusCode] ?? String(s.status),
      count: s.count,
    })),
  );
}
export const STATUS_SUMMARY_CSV_COLUMNS = ['locationId', 'name', 'region', 'status', 'statusName', 'count'] as const;
