import { and, eq, lt } from 'drizzle-orm';
import type { Queue } from 'bullmq';
import { ensureJob } from '../queues/ensure-job.js';
import type { HubDeps } from '../deps.js';
import { inboundEvents } from '../db/schema/index.js';
import { INBOUND_EVENT_JOB, inboundEventJobId } from '../queues/inbound-events.queue.js';
import { sweepOwedCalls } from '../partner-calls/sweep-owed-calls.js';

const SWEEP_BATCH = 1000;

/**
 * Re-creates the jobs of stored events that are still `queued` after SWEEP_AFTER_MS, and of partner
 * calls of every kind still owed (sweepOwedCalls): Postgres is the record, Redis only the trigger.
 */
export async function sweepOnce(deps: HubDeps): Promise<number> {
  const cutoff = new Date(deps.clock.now() - deps.config.sweepAfterMs);
  let swept = 0;

  const stuckEvents = await deps.db
    .select({ eventId: inboundEvents.eventId, kind: inboundEvents.kind, orderId: inboundEvents.orderId })
    .from(inboundEvents)
    .where(and(eq(inboundEvents.state, 'queued'), lt(inboundEvents.receivedAt, cutoff)))
    .orderBy(inboundEvents.receivedAt)
    .limit(SWEEP_BATCH);
  for (const e of stuckEvents) {
    // Every kind of the registry is applied by the one inbound-event job; an event of a kind this build
    // does not know is still handed to the engine, which records it as failed instead of leaving it queued.
    const created = await ensureJob(deps.queues.inboundEvents as unknown as Queue, inboundEventJobId(e.eventId), () =>
      deps.queues.inboundEvents.add(INBOUND_EVENT_JOB, { eventId: e.eventId }, { jobId: inboundEventJobId(e.eventId) }),
    );
    if (created) {
      swept++;
      deps.metrics.eventsSwept.inc({ kind: 'inbound-event' });
      deps.logger.info({ eventId: e.eventId, orderId: e.orderId, kind: e.kind }, 'sweeper re-enqueued a stored event');
    }
  }

  swept += await sweepOwedCalls(deps, cutoff);
  return swept;
}
