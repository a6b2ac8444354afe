import type { Tx } from '../db/types.js';
import { outbox } from '../db/schema/index.js';

/** Message types on order.fulfillment.v1 (SPEC §7). */
export type TopicMessageType = 'status.changed' | 'slick.interaction' | 'delivery.updated' | 'cod.collected' | 'tier.updated';

export interface TopicMessage {
  type: TopicMessageType;
  orderId: string;
  occurredAt: Date;
  payload: Record<string, unknown>;
}

/** Adds messages to the transactional outbox: they reach the topic if and only if `tx` commits. */
export function writeToOutbox(tx: Pick<Tx, 'insert'>, messages: TopicMessage[]) {
  return tx.insert(outbox).values(messages);
}
