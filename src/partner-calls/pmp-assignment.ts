import type { OrderRow } from '../db/types.js';
import { planOrderChange } from '../orders/apply-transition.js';
import type { TopicMessage } from '../orders/topic-messages.js';
import { partnerCallJobs } from '../queues/partner-calls.queue.js';
import type { PerOrderCallKind } from './call-kind.js';
import type { OrderCallRequest } from './call-kind.js';

/** The cause of a case opened when PMP would not assign a delivery partner. */
export const PMP_ASSIGNMENT_CAUSE = 'pmp_assignment_failed';
export const PMP_ASSIGNMENT_CALL = 'pmp.assignment' as const;

/** The assignment owed for an order that reached 7000: one per order. */
export function pmpAssignmentCall(orderId: string): OrderCallRequest {
  return { kind: PMP_ASSIGNMENT_CALL, orderId, key: '', data: { orderId } };
}

/** What PMP is told the partner collects on delivery: the COD amount, 0 for a prepaid order. */
export function codAmountToCollect(order: Pick<OrderRow, 'paymentMethod' | 'codAmount'>): number {
  return order.paymentMethod === 'COD' && order.codAmount !== null ? Number(order.codAmount) : 0;
}

/** The topic message of a partner put on an order, by PMP's answer or by an operator. */
export function partnerAssignedMessage(
  orderId: string,
  partner: { partnerId: string; partnerName: string },
  assignedBy: { source: 'pmp' | 'operator'; actor: string; reason?: string },
  at: Date,
): TopicMessage {
  return {
    type: 'delivery.updated',
    orderId,
    occurredAt: at,
    payload: {
      orderId,
      change: 'partner_assigned',
      partnerId: partner.partnerId,
      partnerName: partner.partnerName,
      source: assignedBy.source,
      actor: assignedBy.actor,
      ...(assignedBy.reason !== undefined ? { reason: assignedBy.reason } : {}),
      at: at.toISOString(),
    },
  };
}

/**
 * Asks PMP to assign a delivery partner to an order that reached 7000 (SPEC §5.2): one per order (key
 * ''). PMP's answer is stored on the order and the record marked confirmed in one transaction with
 * the order locked, so a crash in between cannot store it twice or leave it stored and still owed. A
 * partner already on the order (an operator assigned one by hand, or PMP said so itself) is kept: the
 * call is settled without asking, or its answer is not applied.
 */
export const pmpAssignment: PerOrderCallKind<'pmp.assignment'> = {
  name: PMP_ASSIGNMENT_CALL,
  integration: 'pmp',
  data: partnerCallJobs['pmp.assignment'],
  perOrder: true,
  record: (data) => ({ orderId: data.orderId, key: '' }),
  sweep: 'owed-call-records',
  intervention: { cause: PMP_ASSIGNMENT_CAUSE, about: () => ({}) },

  async run({ deps, clients, data, attempt, idempotencyKey, order, settle }) {
    const ids = { orderId: data.orderId, attempt };
    if (order.partnerId) {
      const partnerId = order.partnerId;
      await settle(() => ({ records: [], confirmNote: `partner ${partnerId} already assigned`, value: undefined }));
      deps.logger.info({ ...ids, partnerId: order.partnerId }, 'delivery partner already assigned; PMP not asked');
      return 'settled';
    }

    const { answer } = await clients.pmp.assign(
      { orderId: order.orderId, locationId: order.shipFromLocationId, codAmount: codAmountToCollect(order) },
      { attempt, idempotencyKey },
    );

    const settled = await settle(({ order: locked }) => {
      if (locked.partnerId) return { records: [], confirmNote: `partner ${locked.partnerId} already assigned`, value: 'kept' as const };
      const partner = { partnerId: answer.partnerId, partnerName: answer.partnerName };
      const change = planOrderChange(
        locked,
        partner,
        [partnerAssignedMessage(locked.orderId, partner, { source: 'pmp', actor: 'pmp' }, new Date(deps.clock.now()))],
        deps.clock,
      );
      return { records: [change], confirmNote: `PMP assigned ${answer.partnerId} on attempt ${attempt}`, value: 'assigned' as const };
    });
    // Settled meanwhile (assigned by hand, or another run of the same call): nothing left to record.
    const outcome = settled ?? 'settled elsewhere';
    if (outcome === 'assigned') deps.logger.info({ ...ids, partnerId: answer.partnerId }, 'PMP assigned a delivery partner');
    else deps.logger.info({ ...ids, partnerId: answer.partnerId, outcome }, 'PMP answered an assignment already settled; its answer is not applied');
    return 'settled';
  },
};
