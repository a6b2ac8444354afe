import { UnrecoverableError } from 'bullmq';
import { and, asc, eq, sql } from 'drizzle-orm';
import { statusHistory } from '../db/schema/index.js';
import type { Database } from '../db/client.js';
import { STATUS } from '../machines/order.machine.js';
import { partnerCallJobs } from '../queues/partner-calls.queue.js';
import { settleTier, tierRecord } from '../tiers/tier-rules.js';
import type { PerOrderCallKind } from './call-kind.js';
import type { OrderCallRequest } from './call-kind.js';

/** The cause of a case opened when MAO would not take an order's "Shipped". */
export const MAO_STATUS_CAUSE = 'mao_status_failed';
export const MAO_ORDER_STATUS_CALL = 'mao.order-status' as const;

/** Tier 2 owed for an order that reached 7000: one per order. */
export function maoOrderStatusCall(orderId: string): OrderCallRequest {
  return { kind: MAO_ORDER_STATUS_CALL, orderId, key: '', data: { orderId } };
}

/**
 * When the order reached 7000 Fulfilled: its first history row into 7000 from another status (a row
 * 7000 → 7000, such as a partner assigned by hand, is not it). An implied step's time is unknown
 * until its own event arrives: then when it was recorded.
 */
export async function reachedFulfilledAt(db: Pick<Database, 'select'>, orderId: string): Promise<Date | undefined> {
  const [row] = await db
    .select({ occurredAt: statusHistory.occurredAt, recordedAt: statusHistory.recordedAt })
    .from(statusHistory)
    .where(
      and(
        eq(statusHistory.orderId, orderId),
        eq(statusHistory.toStatus, STATUS.FULFILLED),
        sql`${statusHistory.fromStatus} is distinct from ${STATUS.FULFILLED}`,
      ),
    )
    .orderBy(asc(statusHistory.seq))
    .limit(1);
  return row ? (row.occurredAt ?? row.recordedAt) : undefined;
}

/**
 * Tier 2 of the delivery flow (SPEC §5.3): tells MAO an order reached 7000, with its tracking and the
 * time it got there. MAO's 2xx settles tier 2 done (settleTier: and any tier after it that was only
 * waiting) and marks the record confirmed in one transaction with the order locked; the call's final
 * failure settles tier 2 failed in the transaction that marks the record failed and opens its case.
 */
export const maoOrderStatus: PerOrderCallKind<'mao.order-status'> = {
  name: MAO_ORDER_STATUS_CALL,
  integration: 'mao',
  data: partnerCallJobs['mao.order-status'],
  perOrder: true,
  record: (data) => ({ orderId: data.orderId, key: '' }),
  sweep: 'owed-call-records',
  intervention: { cause: MAO_STATUS_CAUSE, about: () => ({ tier: 2, maoStatus: 'SHIPPED' }) },

  async run({ deps, clients, data, attempt, idempotencyKey, order, settle }) {
    if (!order.trackingId || !order.carrierCode) {
      throw new UnrecoverableError(`order ${data.orderId} has no tracking; MAO cannot be told it shipped`);
    }
    const occurredAt = ((await reachedFulfilledAt(deps.db, order.orderId)) ?? new Date(deps.clock.now())).toISOString();
    const update = { status: 'SHIPPED' as const, trackingId: order.trackingId, carrierCode: order.carrierCode, occurredAt };
    await clients.mao.sendStatus(order.orderId, update, { attempt, idempotencyKey });

    // Settled meanwhile (another run of the same call got there first): nothing left to record.
    const settled = await settle(({ order: locked }) => ({
      records: [
        settleTier(
          tierRecord(locked, deps.clock),
          2,
          'done',
          { trackingId: update.trackingId, carrierCode: update.carrierCode, shippedAt: occurredAt },
          deps.clock,
        ),
      ],
      confirmNote: `MAO took SHIPPED on attempt ${attempt}`,
      value: true,
    }));
    if (settled) deps.logger.info({ orderId: data.orderId, attempt }, 'MAO told the order shipped; tier 2 done');
    return 'settled';
  },

  async onFinalFailure(_tx, { deps, order, error, attempts }) {
    return [settleTier(tierRecord(order, deps.clock), 2, 'failed', { error, attempts }, deps.clock)];
  },
};
