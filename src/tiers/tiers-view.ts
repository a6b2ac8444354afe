import { asc, eq } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { orderDiscrepancies, orders, orderTiers, type TierNumber, type TierState } from '../db/schema/index.js';
import { NotFoundError } from '../errors.js';
import { TIER_NAMES } from './tier-rules.js';

/**
 * `GET /api/orders/{id}/tiers` (SPEC §5.3): each tier's state with its time and detail, and every
 * discrepancy found, open ones with `resolvedAt: null`. Before 7000 the tiers have not started: they
 * show as pending (tier 3 of a prepaid order as not applicable) with no time.
 */
export async function orderTiersView(db: Database, orderId: string) {
  const [[order], tiers, discrepancies] = await Promise.all([
    db.select({ paymentMethod: orders.paymentMethod }).from(orders).where(eq(orders.orderId, orderId)),
    db.select().from(orderTiers).where(eq(orderTiers.orderId, orderId)),
    db.select().from(orderDiscrepancies).where(eq(orderDiscrepancies.orderId, orderId)).orderBy(asc(orderDiscrepancies.openedAt)),
  ]);
  if (!order) throw new NotFoundError('order', orderId);
  const byTier = new Map(tiers.map((t) => [t.tier, t]));
  return {
    orderId,
    tiers: ([1, 2, 3] as TierNumber[]).map((tier) => {
      const row = byTier.get(tier);
      const fallback: TierState = tier === 3 && order.paymentMethod !== 'COD' ? 'not_applicable' : 'pending';
      return { tier, name: TIER_NAMES[tier], state: row?.state ?? fallback, updatedAt: row?.updatedAt.toISOString() ?? null, detail: row?.detail ?? {} };
    }),
    discrepancies: discrepancies.map((d) => ({
      code: d.code,
      tier: d.tier,
      detail: d.detail,
      openedAt: d.openedAt.toISOString(),
      resolvedAt: d.resolvedAt?.toISOString() ?? null,
    })),
  };
}
