import type { IntegrationName } from '../config.js';
import { STATUS } from '../machines/order.machine.js';
import type { PartnerCallJobName } from '../queues/partner-calls.queue.js';
import { callKinds } from './call-kinds.js';
import { customerNotificationCall } from './customer-notification.js';
import { maoOrderStatusCall } from './mao-order-status.js';
import { pmpAssignmentCall } from './pmp-assignment.js';
import type { OrderCallRequest } from './call-kind.js';

/**
 * The partner calls an order owes when it reaches a status — whoever moved it there (a partner's
 * event, Slick's confirmation, an override, an operator). The one place this is said: the outbox
 * relay reads it for each committed, non-implied `status.changed` it publishes
 * (src/workers/outbox-relay.ts), and records the calls in the transaction that marks the message
 * published. Each call is recorded at most once per order and key: a status reached again, or a
 * message published twice, owes nothing new unless that call failed for good (then it is owed again).
 */

export interface StatusReaction {
  readonly kind: PartnerCallJobName;
  call(orderId: string, status: number): OrderCallRequest;
}

const notifyCustomer: StatusReaction = {
  kind: 'notify.customer',
  call: (orderId, status) => {
    const call = customerNotificationCall(orderId, status);
    if (!call) throw new Error(`status ${status} has no customer message template`);
    return call;
  },
};
const assignPartner: StatusReaction = { kind: 'pmp.assignment', call: (orderId) => pmpAssignmentCall(orderId) };
const tellMaoShipped: StatusReaction = { kind: 'mao.order-status', call: (orderId) => maoOrderStatusCall(orderId) };

/** Status → the calls owed on reaching it. */
export const STATUS_REACTIONS: Readonly<Record<number, readonly StatusReaction[]>> = {
  [STATUS.FULFILLED]: [notifyCustomer, assignPartner, tellMaoShipped],
  [STATUS.SHIPPED]: [notifyCustomer],
  [STATUS.OUT_FOR_DELIVERY]: [notifyCustomer],
  [STATUS.DELIVERY_FAILED]: [notifyCustomer],
  [STATUS.DELIVERED]: [notifyCustomer],
};

/**
 * The calls an order owes on reaching `status`, leaving out those of an integration that is not
 * configured (no base URL: the hub does not call it at all).
 */
export function callsOwedOnReaching(orderId: string, status: number, configured: (integration: IntegrationName) => boolean): OrderCallRequest[] {
  return (STATUS_REACTIONS[status] ?? []).filter((r) => configured(callKinds[r.kind].integration)).map((r) => r.call(orderId, status));
}
