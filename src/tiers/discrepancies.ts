import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Tx } from '../db/types.js';
import type { HubDeps } from '../deps.js';
import { orderDiscrepancies } from '../db/schema/index.js';
import { DISCREPANCY, DISCREPANCY_CODES, TIER_NAMES } from './tier-rules.js';

/** Whether a manual-intervention case was opened by a discrepancy (its cause is the discrepancy's code). */
export function isDiscrepancyCause(cause: string): boolean {
  return DISCREPANCY_CODES.includes(cause);
}

/** Resolving a discrepancy's case (retry, override or dismiss) resolves the discrepancy, in the same transaction. */
export async function resolveDiscrepancy(tx: Tx, orderId: string, code: string): Promise<void> {
  await tx
    .update(orderDiscrepancies)
    .set({ resolvedAt: sql`now()` })
    .where(and(eq(orderDiscrepancies.orderId, orderId), eq(orderDiscrepancies.code, code), isNull(orderDiscrepancies.resolvedAt)));
}

/** At most this many breaches are opened by one run of the watch; the next run takes the rest. */
const SLA_BATCH = 500;

/**
 * Opens a `tier_sla_breach` discrepancy (and its case) for each order with a tier still pending
 * `TIER_SLA_MS` after the order reached 7000 (when its tiers started). One statement, one open per
 * order; safe with two schedulers. Returns how many were opened.
 */
export async function openTierSlaBreaches(deps: HubDeps): Promise<number> {
  const cutoff = new Date(deps.clock.now() - deps.config.tierSlaMs).toISOString();
  const rows = await deps.db.execute<{ order_id: string }>(sql`
    with late as (
      select t.order_id, min(t.tier) as tier, jsonb_agg(t.tier order by t.tier) as tiers, min(t.created_at) as started_at
      from order_tiers t
      where t.state = 'pending' and t.created_at < ${cutoff}::timestamptz
        -- Once per order: a breach a person dismissed is not raised again for the same tiers.
        and not exists (select 1 from order_discrepancies d where d.order_id = t.order_id and d.code = ${DISCREPANCY.TIER_SLA_BREACH})
      group by t.order_id
      order by min(t.created_at)
      limit ${SLA_BATCH}),
    opened as (
      insert into order_discrepancies (order_id, code, tier, detail)
      select l.order_id, ${DISCREPANCY.TIER_SLA_BREACH}, l.tier,
             jsonb_build_object('pendingTiers', l.tiers, 'startedAt', l.started_at, 'slaMs', ${deps.config.tierSlaMs}::bigint,
                                'tierName', ${JSON.stringify(TIER_NAMES)}::jsonb ->> l.tier::text)
      from late l
      on conflict (order_id, code) where resolved_at is null do nothing
      returning id, order_id, tier, detail)
    insert into interventions (order_id, cause, detail)
    select o.order_id, ${DISCREPANCY.TIER_SLA_BREACH}, o.detail || jsonb_build_object('discrepancyId', o.id, 'tier', o.tier) from opened o
    on conflict (order_id, cause) where state = 'open' do nothing
    returning order_id`);
  for (const r of rows) deps.logger.warn({ orderId: r.order_id }, 'a delivery tier is past its SLA; discrepancy opened');
  deps.metrics.tierDiscrepancies.inc({ code: DISCREPANCY.TIER_SLA_BREACH }, rows.length);
  return rows.length;
}
