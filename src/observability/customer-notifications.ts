import type { Metrics } from '../metrics.js';
import type { OrderCallRequest } from '../partner-calls/call-kind.js';

/**
 * Counts the customer notifications the outbox relay found owed: each status reached owes one per
 * order (`owed`, then sent as a partner call); one already recorded for that order and status (a
 * re-attempt passing 7300 again, a message published twice) is `suppressed_duplicate`.
 */
export function countCustomerNotifications(metrics: Metrics, asked: readonly OrderCallRequest[], recorded: readonly OrderCallRequest[]): void {
  const key = (c: OrderCallRequest) => `${c.orderId}\u0000${c.key}`;
  const owed = new Set(recorded.filter((c) => c.kind === 'notify.customer').map(key));
  for (const call of asked) {
    if (call.kind !== 'notify.customer') continue;
    const isOwed = owed.delete(key(call));
    metrics.customerNotifications.inc({ status: call.key, result: isOwed ? 'owed' : 'suppressed_duplicate' });
  }
}
