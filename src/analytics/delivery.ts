import { sql, type SQL } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { boundedWindow, HISTORY_TIME, roundTo, type DeliveryQuery, type Window } from './window.js';

export type DeliveryGroupBy = DeliveryQuery['groupBy'];

export interface DeliveryRow {
  key: string;
  orders: number;
  delivered: number;
  failedAttempts: number;
  returned: number;
  inDelivery: number;
  successRate: number | null;
  avgAttempts: number | null;
  pickupToDeliveredP50Ms: number | null;
  pickupToDeliveredP90Ms: number | null;
}

/** The key of a group; an order without a partner (or a carrier) yet is 'unassigned'. */
export const UNASSIGNED = 'unassigned';
const KEYS: Record<DeliveryGroupBy, SQL> = {
  partner: sql.raw(`coalesce(o.partner_id, '${UNASSIGNED}')`),
  location: sql.raw('o.ship_from_location_id'),
  carrier: sql.raw(`coalesce(o.carrier_code, '${UNASSIGNED}')`),
};

/**
 * Delivery per partner, location or carrier, over the orders CREATED in the window that are in the
 * delivery phase: current status 7000 (fulfilled, handed over) through 7500, and 8500 — so orders
 * still in fulfillment and cancelled ones are left out, and orders = delivered + returned + inDelivery.
 * - delivered / returned: current status 7500 / 8500; inDelivery: 7000–7400.
 * - failedAttempts: the sum of the orders' failed delivery attempts (orders.delivery_attempts).
 * - successRate: delivered ÷ (delivered + returned), null when both are 0.
 * - avgAttempts: attempts per finished order — a delivered order's failed attempts plus the one that
 *   succeeded, a returned order's failed attempts — null when none has finished.
 * - pickup → delivered: from the order's first history row to 7100 to its last row to 7500, each at its
 *   occurred_at (recorded_at if that is unknown), over the delivered orders that have both; p50/p90 by
 *   percentile_cont, in whole milliseconds.
 * Orders come from orders_created_idx; each delivered order's two history rows from its (order_id, seq)
 * index in a LATERAL subquery.
 */
export function deliveryStatement(groupBy: DeliveryGroupBy, w: Window): SQL {
  return sql`
    with w as (
      select o.order_id, ${KEYS[groupBy]} as key, o.status, o.delivery_attempts
      from orders o
      where o.created_at >= ${w.from.toISOString()}::timestamptz and o.created_at < ${w.to.toISOString()}::timestamptz
        and o.status between 7000 and 8500
    ),
    timed as (
      select w.key, w.status, w.delivery_attempts, d.ms
      from w left join lateral (
        select ((extract(epoch from max(${HISTORY_TIME}) filter (where h.to_status = 7500))
               - extract(epoch from min(${HISTORY_TIME}) filter (where h.to_status = 7100))) * 1000)::float8 as ms
        from status_history h
        where h.order_id = w.order_id and w.status = 7500 and h.to_status in (7100, 7500)
      ) d on true
    )
    select key,
      count(*)::int as orders,
      (count(*) filter (where status = 7500))::int as delivered,
      coalesce(sum(delivery_attempts), 0)::int as "failedAttempts",
      (count(*) filter (where status = 8500))::int as returned,
      (count(*) filter (where status between 7000 and 7400))::int as "inDelivery",
      (avg(case when status = 7500 then delivery_attempts + 1 when status = 8500 then delivery_attempts end))::float8 as "avgAttempts",
      round(percentile_cont(0.5) within group (order by ms)) as p50,
      round(percentile_cont(0.9) within group (order by ms)) as p90
    from timed
    group by key
    order by key`;
}

export async function deliveryAnalytics(deps: HubDeps, q: DeliveryQuery): Promise<{ groupBy: DeliveryGroupBy; rows: DeliveryRow[] }> {
  const rows = await deps.db.execute<
    Omit<DeliveryRow, 'successRate' | 'pickupToDeliveredP50Ms' | 'pickupToDeliveredP90Ms'> & { p50: number | null; p90: number | null }
  >(deliveryStatement(q.groupBy, boundedWindow(q, deps.clock.now())));
  return {
    groupBy: q.groupBy,
    rows: rows.map((r) => ({
      key: r.key,
      orders: r.orders,
      delivered: r.delivered,
      failedAttempts: r.failedAttempts,
      returned: r.returned,
      inDelivery: r.inDelivery,
      successRate: r.delivered + r.returned === 0 ? null : roundTo(r.delivered / (r.delivered + r.returned), 4),
      avgAttempts: roundTo(r.avgAttempts, 2),
      pickupToDeliveredP50Ms: r.p50,
      pickupToDeliveredP90Ms: r.p90,
    })),
  };
}

export const DELIVERY_CSV_COLUMNS = [
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
] as const;
