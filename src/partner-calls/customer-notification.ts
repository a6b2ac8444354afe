import { UnrecoverableError } from 'bullmq';
import { STATUS } from '../machines/order.machine.js';
import { partnerCallJobs } from '../queues/partner-calls.queue.js';
import type { PerOrderCallKind } from './call-kind.js';
import type { OrderCallRequest } from './call-kind.js';

/** Statuses the customer hears about (SPEC §4.1, §5.1), and the message template for each. */
export const NOTIFIED_STATUSES: Readonly<Record<number, string>> = {
  [STATUS.FULFILLED]: 'order_shipped',
  [STATUS.SHIPPED]: 'parcel_picked_up',
  [STATUS.OUT_FOR_DELIVERY]: 'out_for_delivery',
  [STATUS.DELIVERY_FAILED]: 'delivery_failed',
  [STATUS.DELIVERED]: 'delivered',
};

export const CUSTOMER_NOTIFICATION_CAUSE = 'customer_notification_failed';

/**
 * The notification owed to the customer when an order reaches `status`, or undefined when that
 * status is not one the customer hears about. Keyed by status: at most one per order and status.
 */
export function customerNotificationCall(orderId: string, status: number): OrderCallRequest | undefined {
  if (!NOTIFIED_STATUSES[status]) return undefined;
  return { kind: 'notify.customer', orderId, key: String(status), data: { orderId, status } };
}

/** Tells the customer about a status change (SPEC §6), at most once per order and status. */
export const customerNotification: PerOrderCallKind<'notify.customer'> = {
  name: 'notify.customer',
  integration: 'notify',
  data: partnerCallJobs['notify.customer'],
  perOrder: true,
  record: (data) => ({ orderId: data.orderId, key: String(data.status) }),
  sweep: 'owed-call-records',
  intervention: {
    cause: CUSTOMER_NOTIFICATION_CAUSE,
    about: (data) => ({ notifiedStatus: data.status, template: NOTIFIED_STATUSES[data.status] ?? null }),
  },

  async run({ clients, data, attempt, idempotencyKey, order }) {
    const template = NOTIFIED_STATUSES[data.status];
    if (!template) throw new UnrecoverableError(`status ${data.status} has no customer message template`);
    await clients.notify.send({ orderId: data.orderId, customerId: order.customer.id, status: data.status, template }, { attempt, idempotencyKey });
    return 'delivered';
  },
};
