import { eq, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { preparedQuery } from '../db/prepared.js';
import { orders, type TierNumber, type TierState } from '../db/schema/index.js';
import { NotFoundError } from '../errors.js';
import { TIER_NAMES } from './tier-rules.js';

/**
 * `GET /api/orders/{id}/tiers` (SPEC §5.3): each tier's state with its time and detail, and every
 * discrepancy found, open ones with `resolvedAt: null`. Before 7000 the tiers have not started: they
 * show as pending (tier 3 of a prepaid order as not applicable) with no time.
 */
/** The order's payment method, tiers and discrepancies in one prepared statement (no row: no such order). */
const tiersQuery = preparedQuery((db) =>
  db
    .select({
      paymentMethod: orders.paymentMethod,
      tiers: sql<Array<{ tier: TierNumber; state: TierState; updatedAt: string; detail: Record<string, unknown> }> | null>`(
        select json_agg(json_build_object('tier', t.tier, 'state', t.state, 'updatedAt', t.updated_at, 'detail', t.detail))
        from order_tiers t where t.order_id = orders.order_id)`,
      discrepancies: sql<Array<{ code: string; tier: number; detail: unknown; openedAt: string; resolvedAt: string | null }> | null>`(
        select json_agg(json_build_object('code', d.code, 'tier', d.tier, 'detail', d.detail, 'openedAt', d.opened_at, 'resolvedAt', d.resolved_at) order by d.opened_at)
        from order_discrepancies d where d.order_id = orders.order_id)`,
    })
    .from(orders)
    .where(eq(orders.orderId, sql.placeholder('orderId')))
    .prepare('order_tiers_view'),
);

/** A timestamp as Postgres writes it in JSON, as the API writes it (ISO 8601 in UTC). */
const iso = (at: string) => new Date(at).toISOString();

export async function orderTiersView(db: Database, orderId: string) {
  const [order] = await tiersQuery(db).execute({ orderId });
  if (!order) throw new NotFoundError('order', orderId);
  const tiers = order.tiers ?? [];
  const discrepancies = (order.discrepancies ?? []).map((d) => ({
    ...d,
    openedAt: iso(d.openedAt),
    resolvedAt: d.resolvedAt === null ? null : iso(d.resolvedAt),
  }));
  const byTier = new Map(tiers.map((t) => [t.tier, t]));
  return {
    orderId,
    tiers: ([1, 2, 3] as TierNumber[]).map((tier) => {
      const row = byTier.get(tier);
      const fallback: TierState = tier === 3 && order.paymentMethod !== 'COD' ? 'not_applicable' : 'pending';
      return { tier, name: TIER_NAMES[tier], state: row?.state ?? fallback, updatedAt: row ? iso(row.updatedAt) : null, detail: row?.detail ?? {} };
    }),
    discrepancies: discrepancies.map((d) => ({ code: d.code, tier: d.tier, detail: d.detail, openedAt: d.openedAt, resolvedAt: d.resolvedAt })),
  };
}
