import { sql, type SQL } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { NotFoundError } from '../errors.js';
import { boundedWindow, HISTORY_TIME, type FlowQuery, type Window } from './window.js';

export interface FlowStage {
  from: number;
  to: number;
  count: number;
  p50Ms: number;
  p90Ms: number;
  maxMs: number;
}

/**
 * Time spent between statuses, to find bottlenecks: for each history row of the orders CREATED in the
 * window (optionally of one location), its time minus the time of the order's previous row (by seq),
 * each time being occurred_at, or recorded_at where that is unknown (an implied step). Stages are the
 * rows' (from, to); the registration row has no previous row and no stage. count, and p50 / p90
 * (percentile_cont) / max in whole milliseconds. An implied step's recorded time can be later than the
 * real time of the step after it, so a stage can hold negative durations; they are kept as they are.
 *
 * The window's orders come from orders_created_idx (orders_location_created_idx with a location) and
 * each order's history from its (order_id, seq) index, in a LATERAL subquery that also orders the rows
 * for lag(): never a scan of the whole history table.
 */
export function flowStatement(w: Window, locationId: string | undefined): SQL {
  const location = locationId === undefined ? sql`` : sql`and o.ship_from_location_id = ${locationId}`;
  return sql`
    with w as (
      select o.order_id from orders o
      where o.created_at >= ${w.from.toISOString()}::timestamptz and o.created_at < ${w.to.toISOString()}::timestamptz ${location}
    ),
    steps as (
      select s.from_status, s.to_status, s.ms
      from w cross join lateral (
        select h.from_status, h.to_status,
          ((extract(epoch from ${HISTORY_TIME}) - extract(epoch from lag(${HISTORY_TIME}) over (order by h.seq))) * 1000)::float8 as ms
        from status_history h
        where h.order_id = w.order_id
      ) s
      where s.ms is not null and s.from_status is not null
    )
    select from_status as "from", to_status as "to", count(*)::int as count,
      round(percentile_cont(0.5) within group (order by ms)) as "p50Ms",
      round(percentile_cont(0.9) within group (order by ms)) as "p90Ms",
      round(max(ms)) as "maxMs"
    from steps
    group by from_status, to_status
    order by from_status, to_status`;
}

export async function flowAnalytics(deps: HubDeps, q: FlowQuery): Promise<{ stages: FlowStage[] }> {
  if (q.locationId !== undefined) {
    const [location] = await deps.db.execute(sql`select 1 from locations where location_id = ${q.locationId}`);
    if (!location) throw new NotFoundError('location', q.locationId);
  }
  const rows = await deps.db.execute<{ from: number; to: number; count: number; p50Ms: number; p90Ms: number; maxMs: number }>(
    flowStatement(boundedWindow(q, deps.clock.now()), q.locationId),
  );
  return { stages: rows.map((r) => ({ from: r.from, to: r.to, count: r.count, p50Ms: r.p50Ms, p90Ms: r.p90Ms, maxMs: r.maxMs })) };
}

export const FLOW_CSV_COLUMNS = ['from', 'to', 'count', 'p50Ms', 'p90Ms', 'maxMs'] as const;
