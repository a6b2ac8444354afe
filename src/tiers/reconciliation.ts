import { sql } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { pmpDeliveryStateEventId, type PmpDeliveryState } from '../event-kinds/pmp-delivery-state.js';
import { storeInboundEvents } from '../inbox/event-store.js';
import { STATUS } from '../machines/order.machine.js';
import { INBOUND_EVENT_JOB, inboundEventJobId } from '../queues/inbound-events.queue.js';

/** What PMP says of one delivery (`GET /api/deliveries/{orderId}`), or null when it knows none. */
export type PmpDeliveryLookup = (orderId: string) => Promise<Omit<PmpDeliveryState, 'eventId'> | null>;

/** Orders asked about in one run at most; the rest wait for the next run. */
export const RECONCILE_BATCH = 100;
export const RECONCILER_ACTOR = 'system:reconciler';

/**
 * Reconciliation with PMP (SPEC §5.2): for orders in delivery (7000–7400, or delivered without PMP's
 * word yet) that had no update for RECONCILE_AFTER_MS, asks PMP what it knows and stores the answer as
 * a `pmp-delivery-state` event, through the same inbox as every partner event: applied once, in order,
 * by PMP's rules (which call a state older than the order's latest news stale). The event id is
 * derived from PMP's state, so hearing the same again is a duplicate.
 *
 * Each run goes on from where the last one stopped (a cursor over (updated_at, order_id) kept in
 * Redis, starting over once it reaches the end), so orders PMP has nothing new about do not keep the
 * others from their turn; and each order is claimed in Redis for RECONCILE_AFTER_MS before it is
 * asked, so two schedulers never ask about the same order at once. Returns how many new states were
 * stored.
 */
export async function reconcileOnce(deps: HubDeps, lookup: PmpDeliveryLookup): Promise<number> {
  try {
    const stored = await reconcileBatch(deps, lookup);
    deps.metrics.reconciliationRuns.inc({ outcome: 'ok' });
    return stored;
  } catch (err) {
    deps.metrics.reconciliationRuns.inc({ outcome: 'failed' });
    throw err;
  }
}

async function reconcileBatch(deps: HubDeps, lookup: PmpDeliveryLookup): Promise<number> {
  const cutoff = new Date(deps.clock.now() - deps.config.reconcileAfterMs).toISOString();
  const cursorKey = `${deps.config.redisPrefix}:reconcile-cursor`;
  const cursor = await deps.redis.get(cursorKey);
  const [afterAt, afterId] = cursor ? [cursor.slice(0, cursor.indexOf('|')), cursor.slice(cursor.indexOf('|') + 1)] : [null, null];
  const window = RECONCILE_BATCH * 5;
  const candidates = await deps.db.execute<{ order_id: string; updated_at: string }>(sql`
    select o.order_id, o.updated_at::text as updated_at from orders o
    where o.status = any(${sql.param([STATUS.FULFILLED, STATUS.SHIPPED, STATUS.IN_TRANSIT, STATUS.OUT_FOR_DELIVERY, STATUS.DELIVERY_FAILED, STATUS.DELIVERED])}::int[])
      and o.updated_at < ${cutoff}::timestamptz
      and (${afterAt}::timestamptz is null or (o.updated_at, o.order_id) > (${afterAt}::timestamptz, ${afterId}::text))
      -- Delivered ones only while tier 1 waits for PMP's word (not when PMP spoke and tier 2 is still to come).
      and (o.status <> ${STATUS.DELIVERED}
           or exists (select 1 from order_tiers t where t.order_id = o.order_id and t.tier = 1 and t.state = 'pending'
                      and coalesce(t.detail->>'ready', 'false') <> 'true'))
    order by o.updated_at, o.order_id
    limit ${window}`);
  let asked = 0;
  let stored = 0;
  let examined = 0;
  for (const { order_id: orderId } of candidates) {
    if (asked >= RECONCILE_BATCH) break;
    examined++;
    const claimed = await deps.redis.set(`${deps.config.redisPrefix}:reconciled:${orderId}`, '1', 'PX', deps.config.reconcileAfterMs, 'NX');
    if (claimed !== 'OK') continue;
    asked++;
    let state: Awaited<ReturnType<PmpDeliveryLookup>>;
    try {
      state = await lookup(orderId);
    } catch (err) {
      // PMP down or its breaker open: the claim lapses and the order is asked about again later.
      deps.logger.warn({ orderId, err: (err as Error).message }, 'reconciliation could not ask PMP');
      deps.metrics.reconciliationFindings.inc({ finding: 'failed' });
      continue;
    }
    if (!state) {
      deps.metrics.reconciliationFindings.inc({ finding: 'unknown' });
      continue;
    }
    const eventId = pmpDeliveryStateEventId(state);
    const payload = { eventId, orderId, partnerId: state.partnerId, status: state.status, occurredAt: state.occurredAt };
    const [result] = await storeInboundEvents(deps.pg, [
      { eventId, kind: 'pmp-delivery-state', source: 'pmp', type: `reconciled.${state.status}`, orderId, actor: RECONCILER_ACTOR, payload },
    ]);
    if (result instanceof Error) {
      deps.logger.warn({ orderId, eventId, err: result.message }, 'reconciliation could not store what PMP said');
      deps.metrics.reconciliationFindings.inc({ finding: 'failed' });
      continue;
    }
    if (result!.duplicate) {
      deps.metrics.reconciliationFindings.inc({ finding: 'known' });
      continue;
    }
    stored++;
    deps.metrics.reconciliationFindings.inc({ finding: 'new' });
    deps.logger.info({ orderId, eventId, status: state.status }, 'reconciliation found a delivery state the hub had not heard');
    // If Redis cannot take the job, the sweeper enqueues the stored event.
    await deps.queues.inboundEvents.add(INBOUND_EVENT_JOB, { eventId }, { jobId: inboundEventJobId(eventId) }).catch(() => {});
  }
  // The next run goes on after the last order looked at; past the end of those waiting, from the oldest.
  const last = candidates[examined - 1];
  if (!last || (examined === candidates.length && candidates.length < window)) await deps.redis.del(cursorKey);
  else await deps.redis.set(cursorKey, `${last.updated_at}|${last.order_id}`);
  return stored;
}
