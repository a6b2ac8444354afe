import { and, eq, lt } from 'drizzle-orm';
import type { Queue } from 'bullmq';
import { ensureJob } from '../queues/ensure-job.js';
import type { HubDeps } from '../deps.js';
import { inboundEvents, orders } from '../db/schema/index.js';
import { inboundEventJobId } from '../queues/inbound-events.queue.js';
import { ensureSlickConfirmationJob, latestShippedEventId } from '../orders/slick-confirmation-jobs.js';

const SWEEP_BATCH = 1000;

/**
 * Re-creates the jobs of stored events that are still `queued` after SWEEP_AFTER_MS, and of Slick
 * confirmations still `pending`: Postgres is the record, Redis only the trigger.
 */
export async function sweepOnce(deps: HubDeps): Promise<number> {
  const cutoff = new Date(deps.clock.now() - deps.config.sweepAfterMs);
  let swept = 0;

  const stuckEvents = await deps.db
    .select({ eventId: inboundEvents.eventId, type: inboundEvents.type, orderId: inboundEvents.orderId })
    .from(inboundEvents)
    .where(and(eq(inboundEvents.state, 'queued'), lt(inboundEvents.receivedAt, cutoff)))
    .orderBy(inboundEvents.receivedAt)
    .limit(SWEEP_BATCH);
  for (const e of stuckEvents) {
    const jobName = e.type === 'ship-event' ? 'ship-event' : undefined;
    if (!jobName) continue;
    const created = await ensureJob(deps.queues.inboundEvents as unknown as Queue, inboundEventJobId(e.eventId), () =>
      deps.queues.inboundEvents.add(jobName, { eventId: e.eventId }, { jobId: inboundEventJobId(e.eventId) }),
    );
    if (created) {
      swept++;
      deps.metrics.eventsSwept.inc({ kind: 'inbound-event' });
      deps.logger.info({ eventId: e.eventId, orderId: e.orderId }, 'sweeper re-enqueued a stored event');
    }
  }

  const pending = await deps.db
    .select({ orderId: orders.orderId })
    .from(orders)
    .where(and(eq(orders.slickConfirmation, 'pending'), lt(orders.updatedAt, cutoff)))
    .limit(SWEEP_BATCH);
  for (const o of pending) {
    const shipEventId = await latestShippedEventId(deps.db, o.orderId);
    if (!shipEventId) continue;
    if (await ensureSlickConfirmationJob(deps, o.orderId, shipEventId)) {
      swept++;
      deps.metrics.eventsSwept.inc({ kind: 'slick-confirmation' });
      deps.logger.info({ orderId: o.orderId, eventId: shipEventId }, 'sweeper re-scheduled a Slick confirmation');
    }
  }
  return swept;
}
