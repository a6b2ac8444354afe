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
 * by PMP's rules. The event id is derived from PMP's state, so hearing the same again is a duplicate.
 * Each order is claimed in Redis for RECONCILE_AFTER_MS before it is asked, so a run does not ask
 * again what an earlier run (or another scheduler) just asked, and every order waiting gets its turn.
 * Returns how many new states were stored.
 */
export async function reconcileOnce(deps: HubDeps, lookup: PmpDeliveryLookup): Promise<number> {
  const cutoff = new Date(deps.clock.now() - deps.config.reconcileAfterMs).toISOString();
  const candidates = await deps.db.execute<{ order_id: string }>(sql`
    select o.order_id from orders o
    where o.status = any(${sql.param([STATUS.FULFILLED, STATUS.SHIPPED, STATUS.IN_TRANSIT, STATUS.OUT_FOR_DELIVERY, STATUS.DELIVERY_FAILED, STATUS.DELIVERED])}::int[])
      and o.updated_at < ${cutoff}::timestamptz
      and (o.status <> ${STATUS.DELIVERED}
           or exists (select 1 from order_tiers t where t.order_id = o.order_id and t.tier = 1 and t.state = 'pending'))
    order by o.updated_at
    limit ${RECONCILE_BATCH * 5}`);

  let asked = 0;
  let stored = 0;
  for (const { order_id: orderId } of candidates) {
    if (asked >= RECONCILE_BATCH) break;
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
    if (result instanceof Error || result!.duplicate) {
      deps.metrics.reconciliationFindings.inc({ finding: 'known' });
      continue;
    }
    stored++;
    deps.metrics.reconciliationFindings.inc({ finding: 'new' });
    deps.logger.info({ orderId, eventId, status: state.status }, 'reconciliation found a delivery state the hub had not heard');
    // If Redis cannot take the job, the sweeper enqueues the stored event.
    await deps.queues.inboundEvents.add(INBOUND_EVENT_JOB, { eventId }, { jobId: inboundEventJobId(eventId) }).catch(() => {});
  }
  deps.metrics.reconciliationRuns.inc({ outcome: 'ok' });
  return stored;
}
