import type { Queue } from 'bullmq';
import { and, desc, eq, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { inboundEvents, orders } from '../db/schema/index.js';
import type { Tx } from '../db/types.js';
import type { HubDeps } from '../deps.js';
import { ensureJob } from '../queues/ensure-job.js';
import { partnerCallJobId, partnerCallJobOptions } from '../queues/partner-calls.queue.js';

/**
 * Making sure a Slick confirmation job exists for an order whose confirmation is pending: after a
 * `shipped` event, from the sweeper, and when an operator retries a failed one. The job id is derived
 * from the order, so this keeps one job however often it runs; a dead-lettered job of an earlier
 * attempt is retried rather than shadowed.
 */
export function ensureSlickConfirmationJob(deps: HubDeps, orderId: string, shipEventId: string): Promise<boolean> {
  const jobId = partnerCallJobId('slick.ship-confirmation', orderId);
  return ensureJob(deps.queues.partnerCalls as unknown as Queue, jobId, () =>
    deps.queues.partnerCalls.add(
      'slick.ship-confirmation',
      { orderId, shipEventId },
      { ...partnerCallJobOptions(deps.config.integrations.slick), jobId },
    ),
  );
}

/** The `shipped` event whose confirmation an order waits for: its latest applied one. */
export async function latestShippedEventId(db: Database | Tx, orderId: string): Promise<string | undefined> {
  const [shipped] = await db
    .select({ eventId: inboundEvents.eventId })
    .from(inboundEvents)
    .where(and(eq(inboundEvents.orderId, orderId), eq(inboundEvents.state, 'applied'), sql`${inboundEvents.payload}->>'eventType' = 'shipped'`))
    .orderBy(desc(inboundEvents.processedAt))
    .limit(1);
  return shipped?.eventId;
}

/** Puts a failed confirmation back to pending, so a retried call has work to do. */
export async function reopenFailedConfirmation(db: Database | Tx, orderId: string): Promise<void> {
  await db
    .update(orders)
    .set({ slickConfirmation: 'pending', updatedAt: new Date() })
    .where(and(eq(orders.orderId, orderId), eq(orders.slickConfirmation, 'failed')));
}
