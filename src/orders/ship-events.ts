import { and, eq, isNull, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { HubDeps } from '../deps.js';
import { inboundEvents, statusHistory } from '../db/schema/index.js';
import type { EventState } from '../db/schema/events.js';
import { decideTransition, type StatusCode, type SubStep } from '../machines/order.machine.js';
import type { Queue } from 'bullmq';
import { ensureJob } from '../queues/ensure-job.js';
import { partnerCallJobId, partnerCallJobOptions } from '../queues/partner-calls.queue.js';
import { lockedEventAndOrder, lockEventAlone, lockEventAndOrderStatement, planTransition, type PlannedWrite, type TransitionResult } from './apply-transition.js';
import { twoRoundTripTransaction } from '../db/pipelined-transaction.js';
import { orders } from '../db/schema/index.js';
import { announceOutcomes } from './event-outcomes.js';
import { writeToOutbox } from './topic-messages.js';
import { eventIdSchema, isoInstant, notTooFarInFuture } from './event-fields.js';

/** Ship events from the fulfillment side (SPEC §4.1). */

export const SHIP_EVENT_TYPES = ['picking', 'picked', 'packing', 'packed', 'shipped'] as const;
export type ShipEventType = (typeof SHIP_EVENT_TYPES)[number];

export const shipEventSchema = z
  .object({
    eventId: eventIdSchema,
    orderId: z.string().min(1).max(64),
    shipFromLocationId: z.string().min(1).max(64),
    eventType: z.enum(SHIP_EVENT_TYPES),
    occurredAt: isoInstant.refine(notTooFarInFuture, 'occurredAt is more than 5 minutes in the future'),
    tracking: z
      .object({
        trackingId: z.string().min(1).max(128),
        carrierCode: z.string().min(1).max(32),
        estimatedDelivery: isoInstant.optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((e) => e.eventType !== 'shipped' || e.tracking !== undefined, {
    message: 'tracking is required for shipped',
    path: ['tracking'],
  });
export type ShipEvent = z.infer<typeof shipEventSchema>;

const TARGET: Record<Exclude<ShipEventType, 'shipped'>, { to: StatusCode; subStep?: SubStep }> = {
  picking: { to: 3500 },
  picked: { to: 3600 },
  packing: { to: 3600, subStep: 'packing' },
  packed: { to: 3700 },
};

interface Outcome {
  state: Exclude<EventState, 'queued'>;
  reason: string | null;
  orderStatus: number | null;
}

/**
 * Applies one stored ship event, exactly once: the event row and the order row are locked together,
 * an event no longer `queued` is left alone (a job run twice applies once), and the outcome is
 * committed with the status change, its history and its topic messages.
 *
 * This is the hot path, so it runs as a two-round-trip transaction: BEGIN with the locking read, then
 * every write with COMMIT. The writes are the same drizzle queries the rest of the hub runs, rendered.
 */
export async function applyShipEvent(
  deps: HubDeps,
  eventId: string,
  options: { announce?: boolean } = {},
): Promise<Outcome | 'already_processed'> {
  const { db } = deps;
  let confirmationToSchedule: { orderId: string } | undefined;
  let receivedAt: Date | undefined;
  let moved: Extract<TransitionResult, { kind: 'moved' }> | undefined;

  const result = await twoRoundTripTransaction<Outcome | 'already_processed'>(deps.pg, lockEventAndOrderStatement(eventId), async (rows, run) => {
    const locked = rows.length ? lockedEventAndOrder(rows[0]!) : await lockEventAlone(run, eventId);
    const row = locked.event;
    if (row?.state !== 'queued') return { writes: [], value: 'already_processed' as const };
    const order = locked.order;
    receivedAt = row.receivedAt;
    const event = row.payload as ShipEvent;
    const occurredAt = new Date(event.occurredAt);
    const writes: PlannedWrite[] = [];

    let outcome: Outcome;
    if (!order) {
      outcome = { state: 'rejected', reason: 'unknown_order', orderStatus: null };
    } else if (order.shipFromLocationId !== event.shipFromLocationId) {
      outcome = { state: 'rejected', reason: 'location_mismatch', orderStatus: order.status };
    } else if (event.eventType === 'shipped') {
      // Tracking is recorded now; the order reaches 7000 only when Slick confirms (SPEC §4.2).
      const decision = decideTransition(order.status as StatusCode, (order.subStep as SubStep | null) ?? null, { type: 'SHIP_EVENT', to: 7000 });
      if (decision.kind === 'invalid') {
        outcome = { state: 'rejected', reason: 'invalid_transition', orderStatus: order.status };
      } else if (decision.kind === 'stale' || order.slickConfirmation === 'pending' || order.slickConfirmation === 'confirmed') {
        outcome = { state: 'ignored', reason: 'stale', orderStatus: order.status };
      } else {
        const tracking = event.tracking!;
        writes.push(
          db
            .update(orders)
            .set({
              trackingId: tracking.trackingId,
              carrierCode: tracking.carrierCode,
              estimatedDelivery: tracking.estimatedDelivery ? new Date(tracking.estimatedDelivery) : null,
              slickConfirmation: 'pending',
              version: sql`${orders.version} + 1`,
              updatedAt: new Date(),
            })
            .where(eq(orders.orderId, order.orderId)),
          writeToOutbox(db, [
            {
              type: 'delivery.updated',
              orderId: order.orderId,
              occurredAt,
              payload: { orderId: order.orderId, eventId, eventType: 'shipped', tracking, slickConfirmation: 'pending' },
            },
          ]),
        );
        confirmationToSchedule = { orderId: order.orderId };
        outcome = { state: 'applied', reason: null, orderStatus: order.status };
      }
    } else {
      const target = TARGET[event.eventType];
      const plan = planTransition(db, order, {
        event: { type: 'SHIP_EVENT', to: target.to, ...(target.subStep ? { subStep: target.subStep } : {}) },
        actor: row.actor,
        source: 'slick',
        occurredAt,
        eventId,
      });
      writes.push(...plan.writes);
      if (plan.result.kind === 'moved') {
        moved = plan.result;
        outcome = { state: 'applied', reason: null, orderStatus: plan.result.order.status };
      } else if (plan.result.kind === 'stale') {
        outcome = { state: 'ignored', reason: 'stale', orderStatus: order.status };
        // A late event for a step that was implied by a later one gives that step its real time.
        writes.push(
          db
            .update(statusHistory)
            .set({ occurredAt, eventId, note: `implied step confirmed by late event ${eventId}` })
            .where(
              and(
                eq(statusHistory.orderId, order.orderId),
                eq(statusHistory.toStatus, target.to),
                eq(statusHistory.implied, true),
                isNull(statusHistory.occurredAt),
              ),
            ),
        );
      } else {
        outcome = { state: 'rejected', reason: 'invalid_transition', orderStatus: order.status };
      }
    }

    writes.push(
      db
        .update(inboundEvents)
        .set({ state: outcome.state, reason: outcome.reason, orderStatus: outcome.orderStatus, processedAt: sql`clock_timestamp()` })
        .where(eq(inboundEvents.eventId, eventId)),
    );
    return { writes: writes.map((w) => w.toSQL()), value: outcome };
  });

  if (result === 'already_processed') return result;
  const log = deps.logger.child({ eventId });
  if (moved) for (const step of moved.steps) deps.metrics.transitions.inc({ from: String(moved.from), to: String(step.to), source: 'slick' });
  if (receivedAt) {
    const latency = (deps.clock.now() - receivedAt.getTime()) / 1000;
    deps.metrics.eventReceiptToCommit.observe({ type: 'ship-event', state: result.state }, Math.max(0, latency));
  }
  deps.metrics.eventsProcessed.inc({ type: 'ship-event', state: result.state, reason: result.reason ?? '' });
  if (confirmationToSchedule) {
    const { orderId } = confirmationToSchedule;
    // A dead-lettered confirmation of an earlier `shipped` holds the same job id: retry it rather than add.
    await ensureJob(deps.queues.partnerCalls as unknown as Queue, partnerCallJobId('slick.ship-confirmation', orderId), () =>
      scheduleSlickConfirmation(deps, orderId, eventId),
    ).catch((err: unknown) => log.warn({ orderId, err: (err as Error).message }, 'Slick confirmation not scheduled; the sweeper will'));
  }
  // Only a partner waiting with `Prefer: wait` needs the news; the others read the row when they ask.
  if (options.announce) {
    await announceOutcomes(deps.redis, deps.config.redisPrefix, [eventId]).catch((err: unknown) =>
      log.warn({ err }, 'could not announce the event outcome; the waiter reads it at its deadline'),
    );
  }
  return result;
}

/**
 * Schedules the Slick ship confirmation. The job id is derived from the order, so scheduling twice
 * (a re-run job, the sweeper) keeps one job. If Redis is down the order stays `pending` and the
 * sweeper schedules it later.
 */
export async function scheduleSlickConfirmation(deps: HubDeps, orderId: string, shipEventId: string): Promise<void> {
  await deps.queues.partnerCalls.add(
    'slick.ship-confirmation',
    { orderId, shipEventId },
    { ...partnerCallJobOptions(deps.config.integrations.slick), jobId: partnerCallJobId('slick.ship-confirmation', orderId) },
  );
}

