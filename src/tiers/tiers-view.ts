import type { Database } from '../db/client.js';
import type { TierNumber, TierState } from '../db/schema/index.js';
import { NotFoundError } from '../errors.js';
import { TIER_NAMES } from './tier-rules.js';

/**
 * `GET /api/orders/{id}/tiers` (SPEC §5.3): each tier's state with its time and detail, and every
 * discrepancy found, open ones with `resolvedAt: null`. Before 7000 the tiers have not started: they
 * show as pending (tier 3 of a prepaid order as not applicable) with no time.
 */
/**
 * The order's payment method, tiers and discrepancies in one prepared statement (no row: no such
 * order), written once and run without drizzle's query machinery, as the other reads by id are.
 */
const ORDER_TIERS = `select o.payment_method as "paymentMethod",
    (select json_agg(json_build_object('tier', t.tier, 'state', t.state, 'updatedAt', t.updated_at, 'detail', t.detail))
     from order_tiers t where t.order_id = o.order_id) as tiers,
    (select json_agg(json_build_object('code', d.code, 'tier', d.tier, 'detail', d.detail, 'openedAt', d.opened_at, 'resolvedAt', d.resolved_at) order by d.opened_at)
     from order_discrepancies d where d.order_id = o.order_id) as discrepancies
  from orders o
  where o.order_id = $1`;

interface OrderTiersRow {
  paymentMethod: string;
  tiers: Array<{ tier: TierNumber; state: TierState; updatedAt: string; detail: Record<string, unknown> }> | null;
  discrepancies: Array<{ code: string; tier: number; detail: unknown; openedAt: string; resolvedAt: string | null }> | null;
}

/** A timestamp as Postgres writes it in JSON, as the API writes it (ISO 8601 in UTC). */
const iso = (at: string) => new Date(at).toISOString();

export async function orderTiersView(db: Database, orderId: string) {
  const [order] = (await db.$client.unsafe(ORDER_TIERS, [orderId])) as unknown as OrderTiersRow[];
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
