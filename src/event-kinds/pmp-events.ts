import { z } from 'zod';
import type { InboundEventRow } from '../db/types.js';
import type { Clock } from '../deps.js';
import { STATUS, type StatusCode } from '../machines/order.machine.js';
import { planOrderChange, planTransition, type LockedOrder, type TransitionRecord } from '../orders/apply-transition.js';
import { planFromTransition, unchangedPlan, type EventKind, type EventPlan } from '../inbox/event-kind.js';
import { DISCREPANCY, settleTier, tierOf, withDiscrepancy } from '../tiers/tier-rules.js';
import { eventIdSchema, isoInstant, notTooFarInFuture } from './event-fields.js';

/**
 * Events from the partner-management platform (SPEC §5.2): the partner it assigned, where the parcel
 * is, the delivery (tier 1: PMP → OMS "Delivered"), a failed attempt, and the cash it collected
 * (tier 3, COD orders). The same rules serve what the reconciler learns from PMP (pmp-delivery-state).
 */

export const PMP_EVENT_TYPES = ['partner.assigned', 'delivery.update', 'delivery.delivered', 'delivery.failed', 'cod.collected'] as const;
export type PmpEventType = (typeof PMP_EVENT_TYPES)[number];

const location = z.object({ lat: z.number().min(-90).max(90), lng: z.number().min(-180).max(180) }).strict();

export const pmpEventSchema = z
  .object({
    eventId: eventIdSchema,
    orderId: z.string().min(1).max(64),
    partnerId: z.string().min(1).max(64),
    type: z.enum(PMP_EVENT_TYPES),
    occurredAt: isoInstant.refine(notTooFarInFuture, 'occurredAt is more than 5 minutes in the future'),
    partnerName: z.string().min(1).max(200).optional(),
    location: location.optional(),
    tracking: z
      .object({ trackingId: z.string().min(1).max(128), carrierCode: z.string().min(1).max(32) })
      .strict()
      .optional(),
    failureReason: z.string().min(1).max(500).optional(),
    amount: z.number().nonnegative().max(1_000_000).multipleOf(0.01).optional(),
  })
  .strict()
  .refine((e) => e.type !== 'cod.collected' || e.amount !== undefined, { message: 'amount is required for cod.collected', path: ['amount'] })
  .refine((e) => e.type !== 'delivery.update' || e.location !== undefined || e.tracking !== undefined, {
    message: 'delivery.update needs a location or tracking',
    path: ['location'],
  });
export type PmpEvent = z.infer<typeof pmpEventSchema>;

/** What the hub heard from PMP, whether PMP sent it or the reconciler asked: the rules below take this. */
export interface PmpFact {
  type: PmpEventType | 'status';
  partnerId: string;
  occurredAt: string;
  /** For `status` (reconciliation of PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY): where PMP says the parcel is. */
  status?: StatusCode;
  partnerName?: string | undefined;
  location?: { lat: number; lng: number } | undefined;
  tracking?: { trackingId: string; carrierCode: string } | undefined;
  failureReason?: string | undefined;
  amount?: number | undefined;
}

/** The time of the latest delivery news the order holds: the courier's last status, its last failure, PMP's last status. */
function latestDeliveryNewsAt(order: LockedOrder): number {
  const d = order.delivery;
  return Math.max(...[d?.courierStatusAt, d?.lastFailure?.occurredAt, d?.pmpStatusAt].map((t) => (t ? Date.parse(t) : -Infinity)));
}

const fulfilled = (order: LockedOrder) => order.status >= STATUS.FULFILLED && order.status !== STATUS.CANCELLED;

function deliveryMessage(order: LockedOrder, row: InboundEventRow, fact: PmpFact, extra: Record<string, unknown> = {}) {
  return {
    type: 'delivery.updated' as const,
    orderId: order.orderId,
    occurredAt: new Date(fact.occurredAt),
    payload: {
      orderId: order.orderId,
      eventId: row.eventId,
      source: 'pmp',
      pmpType: fact.type,
      partnerId: fact.partnerId,
      location: fact.location ?? null,
      tracking: fact.tracking ?? null,
      ...extra,
    },
  };
}

/** The case a failed attempt reported by PMP opens for a person (SPEC §5.2: escalated). */
function failedAttemptCase(order: LockedOrder, row: InboundEventRow, fact: PmpFact, attempt: number) {
  return {
    orderId: order.orderId,
    cause: 'pmp_delivery_failed',
    detail: { eventId: row.eventId, partnerId: fact.partnerId, failureReason: fact.failureReason ?? null, attempt },
  };
}

/** The plan of an event that changes the order without moving its status. */
function applied(record: TransitionRecord, reason: string | null = null): EventPlan {
  return { outcome: { state: 'applied', reason, orderStatus: record.order.status }, record, fixes: [], order: record.order, calls: [] };
}

/** The rules of PMP's events, for a locked existing order. */
export function planPmpFact(order: LockedOrder, fact: PmpFact, row: InboundEventRow, clock: Clock): EventPlan {
  if (!fulfilled(order)) return unchangedPlan(order, 'rejected', 'invalid_transition');
  const occurredAt = new Date(fact.occurredAt);
  // Once a partner is on the order, only that partner speaks for it (a new assignment replaces it).
  if (fact.type !== 'partner.assigned' && order.partnerId && order.partnerId !== fact.partnerId) return unchangedPlan(order, 'rejected', 'partner_mismatch');

  // PMP's word about where a parcel is (or that an attempt failed) that happened before the latest
  // delivery news the hub has is late: a reconciled state or a delayed event must not move the order
  // back from a later courier report or a failure.
  // (PMP reporting the very failure the order is at is not late: it is escalated below.)
  const lastFailure = order.delivery?.lastFailure;
  const sameFailure =
    fact.type === 'delivery.failed' &&
    order.status === STATUS.DELIVERY_FAILED &&
    lastFailure !== undefined &&
    occurredAt.getTime() === Date.parse(lastFailure.occurredAt);
  if ((fact.type === 'status' || fact.type === 'delivery.failed') && !sameFailure && occurredAt.getTime() <= latestDeliveryNewsAt(order)) {
    return planFromTransition(order, { result: { kind: 'stale', order } }, fact.type === 'status' ? fact.status! : STATUS.DELIVERY_FAILED, row, occurredAt);
  }

  switch (fact.type) {
    case 'partner.assigned': {
      if (order.partnerId === fact.partnerId && (fact.partnerName === undefined || order.partnerName === fact.partnerName)) {
        return unchangedPlan(order, 'ignored', 'stale');
      }
      // A state without a name (what the reconciler learns) cannot replace a partner already on the order.
      if (order.partnerId && order.partnerId !== fact.partnerId && fact.partnerName === undefined) return unchangedPlan(order, 'rejected', 'partner_mismatch');
      const record = planOrderChange(
        order,
        { partnerId: fact.partnerId, partnerName: fact.partnerName ?? (order.partnerId === fact.partnerId ? order.partnerName : null) },
        [deliveryMessage(order, row, fact, { partnerName: fact.partnerName ?? null })],
        clock,
      );
      return applied(record);
    }

    case 'delivery.update': {
      const delivery = {
        ...order.delivery,
        ...(fact.location ? { location: fact.location, locationAt: fact.occurredAt } : {}),
        ...(fact.tracking ? { pmpTracking: fact.tracking } : {}),
      };
      return applied(planOrderChange(order, { delivery }, [deliveryMessage(order, row, fact)], clock));
    }

    case 'status':
      return planFromTransition(
        order,
        planTransition(
          order,
          {
            event: { type: 'DELIVERY_EVENT', to: fact.status! },
            actor: row.actor,
            source: 'pmp',
            occurredAt,
            eventId: row.eventId,
            orderChanges: { delivery: { ...order.delivery, pmpStatusAt: fact.occurredAt } },
            extraMessages: [deliveryMessage(order, row, fact)],
          },
          clock,
        ),
        fact.status!,
        row,
        occurredAt,
      );

    case 'delivery.delivered': {
      // Tier 1. The order reaches 7500 (or is there already, told by the courier); either way PMP's word settles tier 1.
      const transition = planTransition(
        order,
        {
          event: { type: 'DELIVERY_EVENT', to: STATUS.DELIVERED },
          actor: row.actor,
          source: 'pmp',
          occurredAt,
          eventId: row.eventId,
          orderChanges: { delivery: { ...order.delivery, deliveredAt: order.delivery?.deliveredAt ?? fact.occurredAt, pmpDeliveredAt: fact.occurredAt } },
          extraMessages: [deliveryMessage(order, row, fact)],
        },
        clock,
      );
      if (transition.result.kind === 'invalid') return unchangedPlan(order, 'rejected', 'invalid_transition');
      const tier1 = tierOf(order, 1);
      if (transition.result.kind === 'stale' && (tier1.state !== 'pending' || tier1.detail.ready === true)) return unchangedPlan(order, 'ignored', 'stale');
      let record =
        transition.record ??
        planOrderChange(order, { delivery: { ...order.delivery, pmpDeliveredAt: fact.occurredAt } }, [deliveryMessage(order, row, fact)], clock);
      record = settleTier(record, 1, 'done', { deliveredAt: fact.occurredAt, partnerId: fact.partnerId, eventId: row.eventId }, clock);
      // The courier's last word was a failed attempt: PMP and the courier disagree.
      if (order.delivery?.courierStatus === 'FAILED') {
        record = withDiscrepancy(record, DISCREPANCY.COURIER_PMP_CONFLICT, 1, {
          pmp: 'delivered',
          courier: 'FAILED',
          pmpEventId: row.eventId,
          courierAt: order.delivery.courierStatusAt ?? null,
        });
      }
      return { ...applied(record), ...(transition.result.kind === 'moved' ? { moved: transition.result } : {}) };
    }

    case 'delivery.failed': {
      const transition = planTransition(
        order,
        {
          event: { type: 'DELIVERY_EVENT', to: STATUS.DELIVERY_FAILED },
          actor: row.actor,
          source: 'pmp',
          occurredAt,
          eventId: row.eventId,
          reasonCode: 'delivery_failed',
          note: fact.failureReason ?? null,
          orderChanges: {
            deliveryAttempts: order.deliveryAttempts + 1,
            delivery: { ...order.delivery, lastFailure: { reason: fact.failureReason ?? null, occurredAt: fact.occurredAt } },
          },
          extraMessages: [deliveryMessage(order, row, fact, { failureReason: fact.failureReason ?? null })],
        },
        clock,
      );
      const conflict = tierOf(order, 1).state === 'done' || tierOf(order, 1).detail.ready === true || order.status === STATUS.DELIVERED;
      if (transition.result.kind !== 'moved' || !transition.record) {
        // The courier reported this failed attempt first: nothing moves again, but PMP's report is still
        // escalated (one open case per order).
        if (!conflict && transition.result.kind === 'stale' && order.status === STATUS.DELIVERY_FAILED) {
          const record: TransitionRecord = {
            ...planOrderChange(order, {}, [deliveryMessage(order, row, fact, { failureReason: fact.failureReason ?? null })], clock),
            cases: [failedAttemptCase(order, row, fact, order.deliveryAttempts)],
          };
          return applied(record);
        }
        // PMP reports a failure for an order already delivered: nothing moves, but a person must look.
        if (conflict && transition.result.kind === 'stale') {
          const record = withDiscrepancy(planOrderChange(order, {}, [deliveryMessage(order, row, fact)], clock), DISCREPANCY.COURIER_PMP_CONFLICT, 1, {
            pmp: 'failed',
            failureReason: fact.failureReason ?? null,
            pmpEventId: row.eventId,
          });
          return applied(record, DISCREPANCY.COURIER_PMP_CONFLICT);
        }
        return planFromTransition(order, transition, STATUS.DELIVERY_FAILED, row, occurredAt);
      }
      // A failed attempt reported by PMP is escalated to a person (SPEC §5.2).
      const record: TransitionRecord = {
        ...transition.record,
        cases: [failedAttemptCase(order, row, fact, order.deliveryAttempts + 1)],
      };
      return { ...applied(record), moved: transition.result };
    }

    case 'cod.collected': {
      if (order.paymentMethod !== 'COD') return unchangedPlan(order, 'rejected', 'not_cod_order');
      const tier3 = tierOf(order, 3);
      // A collection already relayed (or being relayed) is not counted twice; one withheld for a
      // discrepancy may be reported again (the right amount, after delivery) and is checked afresh.
      if (tier3.state === 'done' || tier3.state === 'not_applicable' || tier3.detail.relay === 'pending') return unchangedPlan(order, 'ignored', 'stale');
      const amount = (fact.amount ?? 0).toFixed(2);
      const expected = Number(order.codAmount ?? 0).toFixed(2);
      const delivered = order.status === STATUS.DELIVERED;
      const withheld = !delivered || amount !== expected;
      const message = {
        type: 'cod.collected' as const,
        orderId: order.orderId,
        occurredAt,
        payload: {
          orderId: order.orderId,
          eventId: row.eventId,
          partnerId: fact.partnerId,
          amount: Number(amount),
          expectedAmount: Number(expected),
          relayed: !withheld,
        },
      };
      let record: TransitionRecord = {
        ...planOrderChange(order, {}, [message], clock),
        ledger: {
          orderId: order.orderId,
          expectedAmount: expected,
          collectedAmount: amount,
          collectedAt: fact.occurredAt,
          collectedBy: fact.partnerId,
          eventId: row.eventId,
          relay: withheld ? 'withheld' : 'pending',
          confirmedAt: null,
        },
      };
      const collected = { collectedAt: fact.occurredAt, amount: Number(amount), partnerId: fact.partnerId, eventId: row.eventId };
      if (!delivered) {
        record = withDiscrepancy(record, DISCREPANCY.COLLECTED_BEFORE_DELIVERED, 3, { ...collected, orderStatus: order.status });
        record = {
          ...record,
          order: { ...record.order, tiers: { ...record.order.tiers, 3: { state: 'pending', detail: { ...tier3.detail, ...collected, relay: 'withheld' } } } },
        };
        record.tiers = [
          ...(record.tiers ?? []),
          { orderId: order.orderId, tier: 3, state: 'pending', detail: { ...tier3.detail, ...collected, relay: 'withheld' } },
        ];
        return applied(record, DISCREPANCY.COLLECTED_BEFORE_DELIVERED);
      }
      if (amount !== expected) {
        record = withDiscrepancy(record, DISCREPANCY.COD_AMOUNT_MISMATCH, 3, { ...collected, expectedAmount: Number(expected) });
        record = settleTier(record, 3, 'failed', { ...collected, expectedAmount: Number(expected), relay: 'withheld' }, clock);
        return applied(record, DISCREPANCY.COD_AMOUNT_MISMATCH);
      }
      // The right amount after delivery: relayed to Slick (tier 3 is done when Slick confirms).
      const tiers = { ...record.order.tiers, 3: { state: 'pending' as const, detail: { ...tier3.detail, ...collected, relay: 'pending' } } };
      record = { ...record, order: { ...record.order, tiers }, tiers: [{ orderId: order.orderId, tier: 3, state: 'pending', detail: tiers[3].detail }] };
      return {
        ...applied(record),
        calls: [{ kind: 'slick.cod-collected', orderId: order.orderId, key: '', data: { orderId: order.orderId, eventId: row.eventId } }],
      };
    }
  }
}

export const pmpEvents: EventKind<PmpEvent> = {
  name: 'pmp-event',
  source: 'pmp',
  route: { role: 'partner:pmp', method: 'post', path: '/api/pmp/events' },
  schema: pmpEventSchema,
  partnerType: (event) => event.type,
  plan: (order, event, row, clock) => planPmpFact(order, event, row, clock),
};
