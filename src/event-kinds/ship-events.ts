import { z } from 'zod';
import { STATUS, type StatusCode, type SubStep } from '../machines/order.machine.js';
import { callState, planTransition } from '../orders/apply-transition.js';
import { planFromTransition, unchangedPlan, type EventKind } from '../inbox/event-kind.js';
import { eventIdSchema, isoInstant, notTooFarInFuture } from './event-fields.js';

/**
 * Ship events from the fulfillment side (SPEC §4.1): Slick tells the hub how picking and packing go;
 * `shipped` records the tracking and makes the Slick ship confirmation owed (SPEC §4.2), which moves
 * the order to 7000 when Slick answers 200.
 */

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

/** The call `shipped` makes owed; its state is the order's `slickConfirmation`. */
export const SHIP_CONFIRMATION_CALL = 'slick.ship-confirmation' as const;

const TARGET: Record<Exclude<ShipEventType, 'shipped'>, { to: StatusCode; subStep?: SubStep }> = {
  picking: { to: STATUS.PICKING },
  picked: { to: STATUS.PICKED },
  packing: { to: STATUS.PICKED, subStep: 'packing' },
  packed: { to: STATUS.PACKED },
};

export const shipEvents: EventKind<ShipEvent> = {
  name: 'ship-event',
  source: 'slick',
  route: { role: 'partner:slick', method: 'post', path: '/api/fulfillment/ship-events' },
  schema: shipEventSchema,
  partnerType: (event) => event.eventType,

  plan(order, event, row, clock) {
    const occurredAt = new Date(event.occurredAt);
    if (order.shipFromLocationId !== event.shipFromLocationId) return unchangedPlan(order, 'rejected', 'location_mismatch');

    if (event.eventType === 'shipped') {
      const tracking = event.tracking!;
      // Tracking is recorded now; the move to 7000 is held until Slick confirms (SPEC §4.2).
      const transition = planTransition(
        order,
        {
          event: { type: 'SHIP_EVENT', to: STATUS.FULFILLED },
          actor: row.actor,
          source: 'slick',
          occurredAt,
          eventId: row.eventId,
          holdStatus: true,
          orderChanges: {
            trackingId: tracking.trackingId,
            carrierCode: tracking.carrierCode,
            estimatedDelivery: tracking.estimatedDelivery ? new Date(tracking.estimatedDelivery) : null,
          },
          extraMessages: [
            {
              type: 'delivery.updated',
              orderId: order.orderId,
              occurredAt,
              payload: { orderId: order.orderId, eventId: row.eventId, eventType: 'shipped', tracking, slickConfirmation: 'pending' },
            },
          ],
        },
        clock,
      );
      if (transition.result.kind === 'invalid') return unchangedPlan(order, 'rejected', 'invalid_transition');
      // A confirmation already owed or given makes this one a repeat.
      const confirmation = callState(order, SHIP_CONFIRMATION_CALL);
      if (transition.result.kind !== 'held' || !transition.record || confirmation === 'pending' || confirmation === 'confirmed') {
        return unchangedPlan(order, 'ignored', 'stale');
      }
      const shipped = { ...transition.record.order, calls: { ...order.calls, [`${SHIP_CONFIRMATION_CALL}:`]: 'pending' as const } };
      return {
        outcome: { state: 'applied', reason: null, orderStatus: order.status },
        record: { ...transition.record, order: shipped },
        fixes: [],
        order: shipped,
        // What the confirmation tells Slick of the event travels with the call, so it need not read the event again.
        calls: [
          {
            kind: SHIP_CONFIRMATION_CALL,
            orderId: order.orderId,
            key: '',
            data: { orderId: order.orderId, shipEventId: row.eventId, occurredAt: occurredAt.toISOString(), actor: row.actor },
          },
        ],
      };
    }

    const target = TARGET[event.eventType];
    const transition = planTransition(
      order,
      {
        event: { type: 'SHIP_EVENT', to: target.to, ...(target.subStep ? { subStep: target.subStep } : {}) },
        actor: row.actor,
        source: 'slick',
        occurredAt,
        eventId: row.eventId,
      },
      clock,
    );
    return planFromTransition(order, transition, target.to, row, occurredAt);
  },
};
