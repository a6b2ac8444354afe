import { and, eq } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { notifications, orders } from '../db/schema/index.js';
import type { CustomerNotificationClient } from '../integrations/customer-notifications.js';
import { partnerCallJobId, partnerCallJobOptions } from '../queues/partner-calls.queue.js';

/** Statuses the customer hears about (SPEC §4.1, §5.1), and the message template for each. */
export const NOTIFIED_STATUSES: Readonly<Record<number, string>> = {
  7000: 'order_shipped',
  7100: 'parcel_picked_up',
  7300: 'out_for_delivery',
  7400: 'delivery_failed',
  7500: 'delivered',
};

export function scheduleCustomerNotification(deps: HubDeps, orderId: string, status: number) {
  return deps.queues.partnerCalls.add(
    'notify.customer',
    { orderId, status },
    { ...partnerCallJobOptions(deps.config.integrations.notify), jobId: partnerCallJobId('notify.customer', orderId, status) },
  );
}

/**
 * Sends one notification, at most once per order and status: the (order, status) row is claimed in
 * Postgres first, and a row already `sent` means there is nothing to do.
 */
export async function notifyCustomer(
  deps: HubDeps,
  client: CustomerNotificationClient,
  job: { orderId: string; status: number; attempt: number },
): Promise<'sent' | 'already_sent' | 'not_notified'> {
  const template = NOTIFIED_STATUSES[job.status];
  if (!template || !client.enabled) return 'not_notified';
  const [order] = await deps.db.select({ customer: orders.customer }).from(orders).where(eq(orders.orderId, job.orderId));
  if (!order) return 'not_notified';
  await deps.db.insert(notifications).values({ orderId: job.orderId, status: job.status, template }).onConflictDoNothing();
  const [row] = await deps.db
    .select({ state: notifications.state })
    .from(notifications)
    .where(and(eq(notifications.orderId, job.orderId), eq(notifications.status, job.status)));
  if (row?.state === 'sent') return 'already_sent';
  await client.send({ orderId: job.orderId, customerId: order.customer.id, status: job.status, template }, job.attempt);
  await deps.db
    .update(notifications)
    .set({ state: 'sent', sentAt: new Date() })
    .where(and(eq(notifications.orderId, job.orderId), eq(notifications.status, job.status)));
  return 'sent';
}
