import { z } from 'zod';
import type { HubDeps } from '../deps.js';
import { NotFoundError, TransitionError } from '../errors.js';
import { STATUS } from '../machines/order.machine.js';
import { settleOrderCallByHand } from '../partner-calls/order-call-records.js';
import { PMP_ASSIGNMENT_CALL, PMP_ASSIGNMENT_CAUSE, partnerAssignedMessage } from '../partner-calls/pmp-assignment.js';
import { lockOrder, planOrderChange, writeRecords, type HistoryRow, type LockedOrder, type TransitionRecord } from './apply-transition.js';
import { getOrder, type OrderWithCalls } from './order-registration.js';
import type { Clock } from '../deps.js';

/**
 * A delivery partner assigned by an operator (SPEC §5.2), when PMP is down or its choice must be
 * changed: the partner is stored on the order, the change is kept in history as the operator's, and
 * the PMP assignment the order owes is settled — pending or failed, it is confirmed (and its case
 * closed), so the call is not made later; not yet owed, it is recorded confirmed, so it never is.
 */

export const PARTNER_ASSIGNED_REASON = 'partner_assigned';

export const partnerAssignmentSchema = z
  .object({
    partnerId: z.string().trim().min(1).max(64),
    partnerName: z.string().trim().min(1).max(200),
    reason: z.string().trim().min(1).max(1000),
  })
  .strict();
export type PartnerAssignment = z.infer<typeof partnerAssignmentSchema>;

/**
 * The record of a partner assigned by hand to a locked order: the partner on the order, a history row
 * from the order's status to the same status (no status step, like a sub-step's row) with the reason
 * `partner_assigned` and the operator's note, and a `delivery.updated` message.
 */
export function planPartnerAssignment(order: LockedOrder, input: PartnerAssignment, actor: { clientId: string }, clock: Clock): TransitionRecord {
  const now = new Date(clock.now());
  const partner = { partnerId: input.partnerId, partnerName: input.partnerName };
  const change = planOrderChange(
    order,
    partner,
    [partnerAssignedMessage(order.orderId, partner, { source: 'operator', actor: actor.clientId, reason: input.reason }, now)],
    clock,
  );
  const row: HistoryRow = {
    orderId: order.orderId,
    seq: order.historySeq + 1,
    fromStatus: order.status,
    toStatus: order.status,
    subStep: order.subStep,
    occurredAt: now,
    recordedAt: now,
    actor: actor.clientId,
    source: 'operator',
    reasonCode: PARTNER_ASSIGNED_REASON,
    eventId: null,
    note: input.reason,
    implied: false,
    override: false,
  };
  return { ...change, order: { ...change.order, historySeq: order.historySeq + 1 }, history: [row] };
}

/** Assigns a partner by hand in one transaction with the order locked; returns the order as operators read it. */
export async function assignPartnerByHand(deps: HubDeps, orderId: string, input: PartnerAssignment, actor: { clientId: string }): Promise<OrderWithCalls> {
  await deps.db.transaction(async (tx) => {
    const order = await lockOrder(tx, orderId);
    if (!order) throw new NotFoundError('order', orderId);
    if (order.status === STATUS.CANCELLED) {
      throw new TransitionError('invalid_transition', `order ${orderId} is cancelled; it has no delivery to assign`, { orderId, status: order.status });
    }
    await writeRecords(tx, [planPartnerAssignment(order, input, actor, deps.clock)]);
    await settleOrderCallByHand(
      tx,
      { kind: PMP_ASSIGNMENT_CALL, orderId, key: '' },
      { orderId },
      {
        cause: PMP_ASSIGNMENT_CAUSE,
        note: 'assigned by hand',
        resolvedBy: actor.clientId,
        resolution: PARTNER_ASSIGNED_REASON,
      },
    );
  });
  deps.logger.info({ orderId, partnerId: input.partnerId, by: actor.clientId }, 'delivery partner assigned by hand');
  return getOrder(deps.db, orderId);
}
