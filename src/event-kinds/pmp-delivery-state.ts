import { z } from 'zod';
import { STATUS, type StatusCode } from '../machines/order.machine.js';
import type { EventKind } from '../inbox/event-kind.js';
import { eventIdSchema, isoInstant } from './event-fields.js';
import { planPmpFact, type PmpFact } from './pmp-events.js';

/**
 * What PMP answered the reconciler about a delivery the hub heard nothing of for a while (SPEC §5.2,
 * `GET /api/deliveries/{orderId}`), stored as an event of its own so it goes through the same inbox:
 * applied once, in order with everything else about the order. Its event id is derived from PMP's
 * state, so asking again and hearing the same is a duplicate, not a second change. The rules are
 * those of PMP's own events.
 */

export const PMP_DELIVERY_STATUSES = ['ASSIGNED', 'PICKED_UP', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED'] as const;
export type PmpDeliveryStatus = (typeof PMP_DELIVERY_STATUSES)[number];

export const pmpDeliveryStateSchema = z
  .object({
    eventId: eventIdSchema,
    orderId: z.string().min(1).max(64),
    partnerId: z.string().min(1).max(64),
    status: z.enum(PMP_DELIVERY_STATUSES),
    occurredAt: isoInstant,
  })
  .strict();
export type PmpDeliveryState = z.infer<typeof pmpDeliveryStateSchema>;

/** The event id of a state PMP reported: the same state reported again is the same event. */
export function pmpDeliveryStateEventId(state: Omit<PmpDeliveryState, 'eventId'>): string {
  return `pmp-state:${state.orderId}:${state.status}:${state.occurredAt}`;
}

const MOVES: Partial<Record<PmpDeliveryStatus, StatusCode>> = {
  PICKED_UP: STATUS.SHIPPED,
  IN_TRANSIT: STATUS.IN_TRANSIT,
  OUT_FOR_DELIVERY: STATUS.OUT_FOR_DELIVERY,
};

function asFact(state: PmpDeliveryState): PmpFact {
  const base = { partnerId: state.partnerId, occurredAt: state.occurredAt };
  switch (state.status) {
    case 'ASSIGNED':
      return { ...base, type: 'partner.assigned' };
    case 'DELIVERED':
      return { ...base, type: 'delivery.delivered' };
    case 'FAILED':
      return { ...base, type: 'delivery.failed', failureReason: 'reported by PMP on reconciliation' };
    default:
      return { ...base, type: 'status', status: MOVES[state.status]! };
  }
}

export const pmpDeliveryStates: EventKind<PmpDeliveryState> = {
  name: 'pmp-delivery-state',
  source: 'pmp',
  storedBy: 'the reconciler (src/tiers/reconciliation.ts), from PMP answers to GET /api/deliveries/{orderId}',
  schema: pmpDeliveryStateSchema,
  partnerType: (state) => `reconciled.${state.status}`,
  plan: (order, state, row, clock) => planPmpFact(order, asFact(state), row, clock),
};
