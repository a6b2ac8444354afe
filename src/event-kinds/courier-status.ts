import { z } from 'zod';
import type { DeliveryRecord } from '../db/schema/orders.js';
import { STATUS, type StatusCode } from '../machines/order.machine.js';
import { planOrderChange, planTransition } from '../orders/apply-transition.js';
import { DISCREPANCY, tierOf, withDiscrepancy } from '../tiers/tier-rules.js';
import { planFromTransition, unchangedPlan, type EventKind } from '../inbox/event-kind.js';
import { eventIdSchema, isoInstant, notTooFarInFuture } from './event-fields.js';

/**
 * The courier's delivery status (SPEC §5.1): Grab tells the hub where a parcel is, from pick-up to
 * delivery, a failed attempt, a reschedule or a return. Only for an order Slick has fulfilled (7000 or
 * later) and only with the order's own tracking id and carrier.
 */

export const COURIER_STATUSES = ['SHIPPED', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED', 'RESCHEDULED', 'RETURNED'] as const;
export type CourierStatus = (typeof COURIER_STATUSES)[number];

/** Where each courier status takes the order. */
export const COURIER_TARGET: Record<CourierStatus, StatusCode> = {
  SHIPPED: STATUS.SHIPPED,
  IN_TRANSIT: STATUS.IN_TRANSIT,
  OUT_FOR_DELIVERY: STATUS.OUT_FOR_DELIVERY,
  DELIVERED: STATUS.DELIVERED,
  FAILED: STATUS.DELIVERY_FAILED,
  RESCHEDULED: STATUS.IN_TRANSIT,
  RETURNED: STATUS.RETURNED,
};

export const courierStatusSchema = z
  .object({
    eventId: eventIdSchema,
    orderId: z.string().min(1).max(64),
    trackingId: z.string().min(1).max(128),
    carrierCode: z.string().min(1).max(32),
    status: z.enum(COURIER_STATUSES),
    occurredAt: isoInstant.refine(notTooFarInFuture, 'occurredAt is more than 5 minutes in the future'),
    location: z
      .object({ lat: z.number().min(-90).max(90), lng: z.number().min(-180).max(180) })
      .strict()
      .optional(),
    failureReason: z.string().min(1).max(500).optional(),
    rescheduledFor: isoInstant.optional(),
    proofOfDelivery: z
      .object({ receivedBy: z.string().min(1).max(200).optional(), photoUrl: z.url().max(2000).optional() })
      .strict()
      .optional(),
    // Kept in the event log; cash collection is confirmed through PMP (tier 3).
    cod: z
      .object({ amount: z.number().nonnegative().max(1_000_000), collected: z.boolean() })
      .strict()
      .optional(),
  })
  .strict()
  .refine((e) => e.status !== 'RESCHEDULED' || e.rescheduledFor !== undefined, {
    message: 'rescheduledFor is required for RESCHEDULED',
    path: ['rescheduledFor'],
  });
export type CourierStatusEvent = z.infer<typeof courierStatusSchema>;

/** The delivery record as this event leaves it (applied only if the order moves). */
function deliveryAfter(previous: DeliveryRecord | null, event: CourierStatusEvent): DeliveryRecord {
  const next: DeliveryRecord = { ...previous, courierStatus: event.status, courierStatusAt: event.occurredAt };
  if (event.location) Object.assign(next, { location: event.location, locationAt: event.occurredAt });
  switch (event.status) {
    case 'DELIVERED':
      next.deliveredAt = event.occurredAt;
      if (event.proofOfDelivery) next.proofOfDelivery = event.proofOfDelivery;
      break;
    case 'FAILED':
      next.lastFailure = { reason: event.failureReason ?? null, occurredAt: event.occurredAt };
      break;
    case 'RESCHEDULED':
      next.rescheduledFor = event.rescheduledFor!;
      break;
    case 'RETURNED':
      next.returnedAt = event.occurredAt;
      break;
    default:
      break;
  }
  return next;
}

export const courierStatus: EventKind<CourierStatusEvent> = {
  name: 'courier-status',
  source: 'grab',
  route: { role: 'partner:grab', method: 'put', path: '/api/delivery/status' },
  schema: courierStatusSchema,
  partnerType: (event) => event.status,

  plan(order, event, row, clock) {
    const occurredAt = new Date(event.occurredAt);
    const target = COURIER_TARGET[event.status];
    const deliveryAttempts = order.deliveryAttempts + (event.status === 'FAILED' ? 1 : 0);
    const delivery = deliveryAfter(order.delivery, event);
    const transition = planTransition(
      order,
      {
        event: { type: 'DELIVERY_EVENT', to: target },
        actor: row.actor,
        source: 'grab',
        occurredAt,
        eventId: row.eventId,
        reasonCode: event.status === 'FAILED' ? 'delivery_failed' : event.status === 'RESCHEDULED' ? 'rescheduled' : null,
        note: event.status === 'FAILED' ? (event.failureReason ?? null) : event.status === 'RESCHEDULED' ? `rescheduled for ${event.rescheduledFor}` : null,
        orderChanges: { deliveryAttempts, delivery },
        extraMessages: [
          {
            type: 'delivery.updated',
            orderId: order.orderId,
            occurredAt,
            payload: {
              orderId: order.orderId,
              eventId: row.eventId,
              source: 'grab',
              courierStatus: event.status,
              status: target,
              trackingId: event.trackingId,
              carrierCode: event.carrierCode,
              location: event.location ?? null,
              failureReason: event.failureReason ?? null,
              rescheduledFor: event.rescheduledFor ?? null,
              proofOfDelivery: event.proofOfDelivery ?? null,
              deliveryAttempts,
            },
          },
        ],
      },
      clock,
    );
    // Once fulfilled, an order has the tracking the courier must name; before that it takes no courier
    // status at all, whatever the tracking.
    const fulfilled = order.status >= STATUS.FULFILLED && order.status !== STATUS.CANCELLED;
    if (fulfilled && (order.trackingId !== event.trackingId || order.carrierCode !== event.carrierCode)) {
      return unchangedPlan(order, 'rejected', 'tracking_mismatch');
    }
    if (transition.result.kind === 'invalid') return unchangedPlan(order, 'rejected', 'invalid_transition');
    // From a failed attempt the order may go back to 7300 (re-attempt) or 7200 (rescheduled), but a
    // report that happened before the failure is late news, not a new attempt: it is stale, and gives
    // the step the failure implied its real time.
    const failure = order.delivery?.lastFailure;
    if (order.status === STATUS.DELIVERY_FAILED && failure && transition.result.kind === 'moved' && occurredAt.getTime() < Date.parse(failure.occurredAt)) {
      return planFromTransition(order, { result: { kind: 'stale', order } }, target, row, occurredAt);
    }
    const plan = planFromTransition(order, transition, target, row, occurredAt);
    // The courier reports a failed attempt for a parcel PMP said was delivered: a person must look.
    const tier1 = tierOf(order, 1);
    if (event.status === 'FAILED' && (tier1.state === 'done' || tier1.detail.ready === true)) {
      const base = plan.record ?? planOrderChange(order, {}, [], clock);
      const record = withDiscrepancy(base, DISCREPANCY.COURIER_PMP_CONFLICT, 1, {
        courier: 'FAILED',
        pmp: 'delivered',
        courierEventId: row.eventId,
        failureReason: event.failureReason ?? null,
      });
      return { ...plan, record, order: record.order };
    }
    return plan;
  },
};
