import { eq } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { inboundEvents, orders } from '../db/schema/index.js';
import { NonRetriableIntegrationError, RetriableIntegrationError } from '../errors.js';
import { CircuitOpenError } from '../integrations/partner-http.js';
import type { SlickClient } from '../integrations/slick.js';
import { applyTransition, lockOrder } from './apply-transition.js';
import { closeInterventionsResolvedBySystem, openIntervention, SLICK_CONFIRMATION_CAUSE } from './interventions.js';
import type { ShipEvent } from './ship-events.js';

export type ConfirmationResult = 'confirmed' | 'nothing_to_do' | 'confirmed_but_order_moved';

/**
 * Confirms a `shipped` event with Slick (SPEC §4.2). 200 moves the order to 7000 through the order
 * machine; a failure that will not heal (non-retriable, or the last attempt) keeps the status, marks
 * the confirmation failed and opens an intervention, then rethrows so the job is dead-lettered.
 * A retriable failure with attempts left is rethrown for the queue to retry.
 */
export async function confirmShipmentWithSlick(
  deps: HubDeps,
  slick: SlickClient,
  job: { orderId: string; shipEventId: string; attempt: number; lastAttempt: boolean },
): Promise<ConfirmationResult> {
  const [order] = await deps.db.select().from(orders).where(eq(orders.orderId, job.orderId));
  if (!order || order.slickConfirmation !== 'pending') return 'nothing_to_do';
  const [shipEvent] = await deps.db
    .select({ payload: inboundEvents.payload, actor: inboundEvents.actor })
    .from(inboundEvents)
    .where(eq(inboundEvents.eventId, job.shipEventId));
  const shipped = shipEvent?.payload as ShipEvent | undefined;

  try {
    await slick.sendShipEvent(
      {
        orderId: order.orderId,
        shipFromLocationId: order.shipFromLocationId,
        eventType: 'shipped',
        timestamp: shipped?.occurredAt ?? new Date().toISOString(),
        tracking: {
          trackingId: order.trackingId ?? '',
          carrierCode: order.carrierCode ?? '',
          // Sent only when known: Slick takes an ISO time or no field at all, not null.
          ...(order.estimatedDelivery ? { estimatedDelivery: order.estimatedDelivery.toISOString() } : {}),
        },
        ...(order.paymentMethod === 'COD' && order.codAmount !== null ? { codAmount: Number(order.codAmount) } : {}),
      },
      job.attempt,
    );
  } catch (err) {
    // An open breaker means the call was not made: the job waits, nothing failed.
    if (err instanceof CircuitOpenError) throw err;
    const permanent = err instanceof NonRetriableIntegrationError || !(err instanceof RetriableIntegrationError) || job.lastAttempt;
    if (permanent) {
      await deps.db.transaction(async (tx) => {
        const locked = await lockOrder(tx, job.orderId);
        if (!locked || locked.slickConfirmation !== 'pending') return;
        await Promise.all([
          tx.update(orders).set({ slickConfirmation: 'failed', updatedAt: new Date() }).where(eq(orders.orderId, job.orderId)),
          openIntervention(tx, {
            orderId: job.orderId,
            cause: SLICK_CONFIRMATION_CAUSE,
            detail: {
              shipEventId: job.shipEventId,
              attempts: job.attempt,
              errorClass: err instanceof RetriableIntegrationError ? 'retriable' : 'non_retriable',
              status: (err as { status?: number | null }).status ?? null,
              error: (err as Error).message,
              orderStatus: locked.status,
            },
          }),
        ]);
      });
      deps.logger.warn({ orderId: job.orderId, eventId: job.shipEventId, err: (err as Error).message }, 'Slick confirmation failed; intervention opened');
    }
    throw err;
  }

  return deps.db.transaction(async (tx) => {
    const locked = await lockOrder(tx, job.orderId);
    if (!locked || locked.slickConfirmation !== 'pending') return 'nothing_to_do' as const;
    const result = await applyTransition(tx, locked, {
      event: { type: 'SHIP_EVENT', to: 7000 },
      actor: shipEvent?.actor ?? 'slick',
      source: 'slick',
      occurredAt: shipped ? new Date(shipped.occurredAt) : null,
      eventId: job.shipEventId,
      reasonCode: 'slick_confirmed',
      orderChanges: { slickConfirmation: 'confirmed' },
    });
    if (result.kind === 'moved') {
      await closeInterventionsResolvedBySystem(tx, job.orderId, SLICK_CONFIRMATION_CAUSE, `Slick confirmed on attempt ${job.attempt}`);
      for (const s of result.steps) deps.metrics.transitions.inc({ from: String(result.from), to: String(s.to), source: 'slick' });
      return 'confirmed' as const;
    }
    // Slick shipped it, but the order moved meanwhile (e.g. cancelled): a person must reconcile.
    await Promise.all([
      tx.update(orders).set({ slickConfirmation: 'confirmed', updatedAt: new Date() }).where(eq(orders.orderId, job.orderId)),
      openIntervention(tx, {
        orderId: job.orderId,
        cause: 'slick_confirmed_order_moved',
        detail: { shipEventId: job.shipEventId, orderStatus: locked.status, reason: result.kind === 'invalid' ? result.reason : 'stale' },
      }),
    ]);
    return 'confirmed_but_order_moved' as const;
  });
}
