import { and, eq, isNull, type SQLWrapper } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { z } from 'zod';
import type { HubDeps } from '../deps.js';
import { statusHistory } from '../db/schema/index.js';
import type { EventState } from '../db/schema/events.js';
import { decideTransition, type StatusCode, type SubStep } from '../machines/order.machine.js';
import { ensureSlickConfirmationJob } from './slick-confirmation-jobs.js';
import type { InboundEventRow } from '../db/types.js';
import {
  INBOX_BATCH,
  lockedInboxes,
  lockEventsWithoutOrderStatement,
  lockInboxesStatement,
  planTransition,
  transitionWrites,
  type LockedOrder,
  type TransitionRecord,
  type TransitionResult,
} from './apply-transition.js';
import { twoRoundTripTransaction, type RenderedStatement } from '../db/pipelined-transaction.js';
import { announceOutcomes } from './event-outcomes.js';
import type { TopicMessage } from './topic-messages.js';
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

interface PlannedShipEvent {
  outcome: Outcome;
  /** What it writes to the order, its history and the topic; none if the order is left as it is. */
  record?: TransitionRecord;
  /** Other writes, run after the records of the whole batch (a late event's implied-step fix). */
  fixes: SQLWrapper[];
  /** The order as this event leaves it, for the next event of the same order in the batch. */
  order: LockedOrder | undefined;
  moved?: Extract<TransitionResult, { kind: 'moved' }>;
  confirmShipment: boolean;
}

/** What one queued ship event does to its (locked) order: the outcome and the writes that record it. */
function planShipEvent(db: HubDeps['db'], order: LockedOrder | undefined, row: InboundEventRow): PlannedShipEvent {
  const event = row.payload as ShipEvent;
  const eventId = row.eventId;
  const occurredAt = new Date(event.occurredAt);
  const unchanged = (outcome: Outcome): PlannedShipEvent => ({ outcome, fixes: [], order, confirmShipment: false });

  if (!order) return unchanged({ state: 'rejected', reason: 'unknown_order', orderStatus: null });
  if (order.shipFromLocationId !== event.shipFromLocationId) {
    return unchanged({ state: 'rejected', reason: 'location_mismatch', orderStatus: order.status });
  }
  if (event.eventType === 'shipped') {
    // Tracking is recorded now; the order reaches 7000 only when Slick confirms (SPEC §4.2).
    const decision = decideTransition(order.status as StatusCode, (order.subStep as SubStep | null) ?? null, { type: 'SHIP_EVENT', to: 7000 });
    if (decision.kind === 'invalid') return unchanged({ state: 'rejected', reason: 'invalid_transition', orderStatus: order.status });
    if (decision.kind === 'stale' || order.slickConfirmation === 'pending' || order.slickConfirmation === 'confirmed') {
      return unchanged({ state: 'ignored', reason: 'stale', orderStatus: order.status });
    }
    const tracking = event.tracking!;
    const shipped: LockedOrder = {
      ...order,
      trackingId: tracking.trackingId,
      carrierCode: tracking.carrierCode,
      estimatedDelivery: tracking.estimatedDelivery ? new Date(tracking.estimatedDelivery) : null,
      slickConfirmation: 'pending',
      updatedAt: new Date(),
      version: order.version + 1,
    };
    const message: TopicMessage = {
      type: 'delivery.updated',
      orderId: order.orderId,
      occurredAt,
      payload: { orderId: order.orderId, eventId, eventType: 'shipped', tracking, slickConfirmation: 'pending' },
    };
    return {
      outcome: { state: 'applied', reason: null, orderStatus: order.status },
      record: { order: shipped, history: [], messages: [message] },
      fixes: [],
      order: shipped,
      confirmShipment: true,
    };
  }

  const target = TARGET[event.eventType];
  const plan = planTransition(order, {
    event: { type: 'SHIP_EVENT', to: target.to, ...(target.subStep ? { subStep: target.subStep } : {}) },
    actor: row.actor,
    source: 'slick',
    occurredAt,
    eventId,
  });
  if (plan.result.kind === 'moved') {
    return {
      outcome: { state: 'applied', reason: null, orderStatus: plan.result.order.status },
      ...(plan.record ? { record: plan.record } : {}),
      fixes: [],
      order: plan.result.order as LockedOrder,
      moved: plan.result,
      confirmShipment: false,
    };
  }
  if (plan.result.kind === 'stale') {
    // A late event for a step that was implied by a later one gives that step its real time.
    return {
      outcome: { state: 'ignored', reason: 'stale', orderStatus: order.status },
      fixes: [
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
      ],
      order,
      confirmShipment: false,
    };
  }
  return unchanged({ state: 'rejected', reason: 'invalid_transition', orderStatus: order.status });
}

/** The outcomes of a transaction's events, in one statement (processed_at is the commit's wall time). */
function recordOutcomesStatement(outcomes: Array<Outcome & { eventId: string }>): RenderedStatement {
  return {
    sql: `update inbound_events e
          set state = o.state, reason = o.reason, order_status = o.order_status, processed_at = clock_timestamp()
          from unnest($1::text[], $2::text[], $3::text[], $4::int[]) as o(event_id, state, reason, order_status)
          where e.event_id = o.event_id and e.event_id = any($1::text[])`,
    params: [outcomes.map((o) => o.eventId), outcomes.map((o) => o.state), outcomes.map((o) => o.reason), outcomes.map((o) => o.orderStatus)],
  };
}

/** Renders the batch's drizzle statements for the pipelined transaction. */
const dialect = new PgDialect();

export type ShipEventResult = Outcome | 'already_processed';

/** A job's request: apply this stored event; `announce` when a partner waits for the outcome. */
export interface ShipEventRequest {
  eventId: string;
  announce?: boolean;
}

/**
 * Applies a stored ship event exactly once, together with any earlier events of the same order still
 * waiting, in the order they were received. See `applyShipEvents`.
 */
export async function applyShipEvent(deps: HubDeps, eventId: string, options: { announce?: boolean } = {}): Promise<ShipEventResult> {
  const results = await applyShipEvents(deps, [{ eventId, ...options }]);
  return results.get(eventId)!;
}

/**
 * Applies stored ship events exactly once, each together with any earlier events of its order still
 * waiting, in the order they were received, and the events of all their orders in one transaction:
 * the orders' rows and their queued events' rows are locked together; an event no longer `queued` is
 * left alone (a job run twice applies once; the job of an event applied in an earlier batch finds
 * nothing to do). Outcomes, status changes, history and topic messages commit at once.
 *
 * This is the hot path, so it is a two-round-trip transaction: BEGIN with the locking reads, then every
 * write with COMMIT. The writes are the same drizzle queries the rest of the hub runs, rendered.
 * Returns each requested event's outcome, or `already_processed`.
 */
export async function applyShipEvents(deps: HubDeps, requests: readonly ShipEventRequest[]): Promise<Map<string, ShipEventResult>> {
  const { db } = deps;
  const eventIds = [...new Set(requests.map((r) => r.eventId))];
  const batch: Array<{ row: InboundEventRow; planned: PlannedShipEvent }> = [];
  let cutOff = false;

  await twoRoundTripTransaction<void>(
    deps.pg,
    [lockInboxesStatement(eventIds), lockEventsWithoutOrderStatement(eventIds)],
    async ([withOrder, withoutOrder]) => {
      cutOff = withOrder!.length === INBOX_BATCH;
      for (const inbox of lockedInboxes(withOrder!, withoutOrder!)) {
        let order = inbox.order;
        for (const row of inbox.events) {
          if (row.state !== 'queued') continue;
          const planned = planShipEvent(db, order, row);
          order = planned.order;
          batch.push({ row, planned });
        }
      }
      const writes: RenderedStatement[] = [
        ...transitionWrites(batch.flatMap((b) => (b.planned.record ? [b.planned.record] : []))),
        ...batch.flatMap((b) => b.planned.fixes),
      ].map((w) => dialect.sqlToQuery(w.getSQL()));
      if (batch.length > 0) writes.push(recordOutcomesStatement(batch.map((b) => ({ eventId: b.row.eventId, ...b.planned.outcome }))));
      return { writes, value: undefined };
    },
  );

  const now = deps.clock.now();
  const confirmations: Array<Promise<unknown>> = [];
  for (const { row, planned } of batch) {
    const ids = { eventId: row.eventId, orderId: row.orderId };
    const { outcome, moved } = planned;
    if (moved) for (const step of moved.steps) deps.metrics.transitions.inc({ from: String(moved.from), to: String(step.to), source: 'slick' });
    deps.metrics.eventReceiptToCommit.observe({ type: 'ship-event', state: outcome.state }, Math.max(0, (now - row.receivedAt.getTime()) / 1000));
    deps.metrics.eventsProcessed.inc({ type: 'ship-event', state: outcome.state, reason: outcome.reason ?? '' });
    if (outcome.state === 'rejected') deps.logger.info({ ...ids, reason: outcome.reason }, 'ship event rejected');
    if (planned.confirmShipment) {
      // If Redis cannot take it now, the order stays `pending` and the sweeper schedules it later.
      confirmations.push(
        ensureSlickConfirmationJob(deps, row.orderId, row.eventId).catch((err: unknown) =>
          deps.logger.warn({ ...ids, err: (err as Error).message }, 'Slick confirmation not scheduled; the sweeper will'),
        ),
      );
    }
  }
  // One order has at most one confirmation in a batch (a second `shipped` is stale), so these are independent.
  await Promise.all(confirmations);
  // A partner waiting with `Prefer: wait` needs the news; events applied for another job's request
  // (earlier events of the same order) may have waiters of their own.
  const requested = new Set(eventIds);
  if (batch.length > 0 && (requests.some((r) => r.announce) || batch.some((b) => !requested.has(b.row.eventId)))) {
    await announceOutcomes(deps.redis, deps.config.redisPrefix, batch.map((b) => b.row.eventId)).catch((err: unknown) =>
      deps.logger.warn({ eventIds, err }, 'could not announce event outcomes; waiters read them at their deadline'),
    );
  }

  const results = new Map<string, ShipEventResult>();
  for (const b of batch) if (requested.has(b.row.eventId)) results.set(b.row.eventId, b.planned.outcome);
  const left = requests.filter((r) => !results.has(r.eventId));
  // A full batch may have left some requested events for the next transaction.
  if (cutOff && left.length > 0) for (const [id, result] of await applyShipEvents(deps, left)) results.set(id, result);
  for (const id of eventIds) if (!results.has(id)) results.set(id, 'already_processed');
  return results;
}
