import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { inboundEvents } from '../db/schema/index.js';
import type { HubDeps } from '../deps.js';
import { countTransition, planTransition, type CaseWrite } from '../orders/apply-transition.js';
import { STATUS } from '../machines/order.machine.js';
import { partnerCallJobs } from '../queues/partner-calls.queue.js';
import type { PerOrderCallKind } from './call-kind.js';

/** The cause of a case opened when Slick would not confirm a shipment. */
export const SLICK_CONFIRMATION_CAUSE = 'slick_ship_confirmation_failed';
/** Slick confirmed a shipment after the order had moved on (cancelled, overridden): a person reconciles. */
export const SLICK_CONFIRMED_ORDER_MOVED_CAUSE = 'slick_confirmed_order_moved';

/** What the confirmation reads of the stored `shipped` event: when it happened. */
const shippedEventSchema = z.looseObject({ occurredAt: z.iso.datetime({ offset: true }) });

/** When the `shipped` event happened and who sent it, from the stored event (calls owed before the call carried them). */
async function readShipEvent(deps: HubDeps, eventId: string): Promise<{ occurredAt: string | null; actor: string } | undefined> {
  const [row] = await deps.db
    .select({ payload: inboundEvents.payload, actor: inboundEvents.actor })
    .from(inboundEvents)
    .where(eq(inboundEvents.eventId, eventId));
  if (!row) return undefined;
  const shipped = shippedEventSchema.safeParse(row.payload);
  return { occurredAt: shipped.success ? shipped.data.occurredAt : null, actor: row.actor };
}

/**
 * Confirms a `shipped` ship event with Slick (SPEC §4.2): one per order (key ''), owed from the
 * moment the event is applied. Slick's 200 moves the order to 7000 through the order machine, and the
 * record is marked confirmed in that same transaction (the answer's settlement): were it marked after,
 * a crash in between would leave the order at 7000 with the call still owed, and confirm it again.
 */
export const slickShipConfirmation: PerOrderCallKind<'slick.ship-confirmation'> = {
  name: 'slick.ship-confirmation',
  integration: 'slick',
  data: partnerCallJobs['slick.ship-confirmation'],
  perOrder: true,
  record: (data) => ({ orderId: data.orderId, key: '' }),
  // Owed again after a failure only by a new `shipped` event: that is a new call.
  instance: (data) => data.shipEventId,
  sweep: 'owed-call-records',
  intervention: { cause: SLICK_CONFIRMATION_CAUSE, about: (data) => ({ shipEventId: data.shipEventId }) },

  async run({ deps, clients, data, attempt, idempotencyKey, order, settle }) {
    const shipEvent = data.occurredAt && data.actor ? { occurredAt: data.occurredAt, actor: data.actor } : await readShipEvent(deps, data.shipEventId);
    const occurredAt = shipEvent?.occurredAt ? new Date(shipEvent.occurredAt) : null;

    const { answer } = await clients.slick.sendShipEvent(
      {
        orderId: order.orderId,
        shipFromLocationId: order.shipFromLocationId,
        eventType: 'shipped',
        timestamp: (occurredAt ?? new Date(deps.clock.now())).toISOString(),
        tracking: {
          trackingId: order.trackingId ?? '',
          carrierCode: order.carrierCode ?? '',
          // Sent only when known: Slick takes an ISO time or no field at all, not null.
          ...(order.estimatedDelivery ? { estimatedDelivery: order.estimatedDelivery.toISOString() } : {}),
        },
        ...(order.paymentMethod === 'COD' && order.codAmount !== null ? { codAmount: Number(order.codAmount) } : {}),
      },
      { attempt, idempotencyKey },
    );

    const result = await settle(({ order: locked }) => {
      const { result: moved, record: change } = planTransition(
        locked,
        {
          event: { type: 'SHIP_EVENT', to: STATUS.FULFILLED },
          actor: shipEvent?.actor ?? 'slick',
          source: 'slick',
          occurredAt,
          eventId: data.shipEventId,
          reasonCode: 'slick_confirmed',
          note: `Slick confirmation ${answer.confirmationId}`,
        },
        deps.clock,
      );
      // Slick shipped it, but the order moved meanwhile (e.g. cancelled): a person must reconcile.
      const cases: CaseWrite[] =
        moved.kind === 'moved'
          ? []
          : [
              {
                orderId: data.orderId,
                cause: SLICK_CONFIRMED_ORDER_MOVED_CAUSE,
                detail: {
                  shipEventId: data.shipEventId,
                  confirmationId: answer.confirmationId,
                  orderStatus: locked.status,
                  reason: moved.kind === 'invalid' ? moved.reason : 'stale',
                },
              },
            ];
      return { records: change ? [change] : [], cases, confirmNote: `Slick confirmed on attempt ${attempt}`, value: moved };
    });
    const ids = { orderId: data.orderId, eventId: data.shipEventId, confirmationId: answer.confirmationId, attempt };
    if (result?.kind === 'moved') {
      countTransition(deps.metrics, result, 'slick');
      deps.logger.info(ids, 'Slick confirmed the shipment');
    } else if (result) {
      deps.logger.warn({ ...ids, orderStatus: result.order.status }, 'Slick confirmed a shipment after the order moved; intervention opened');
    }
    return 'settled';
  },
};
