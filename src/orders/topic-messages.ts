import type { Tx } from '../db/types.js';
import { asDrizzle, sqlText, statement, type RenderedStatement } from '../db/pipelined-transaction.js';

/** Message types on order.fulfillment.v1 (SPEC §7). */
export type TopicMessageType = 'status.changed' | 'slick.interaction' | 'delivery.updated' | 'cod.collected' | 'tier.updated';

export interface TopicMessage {
  type: TopicMessageType;
  orderId: string;
  occurredAt: Date;
  payload: Record<string, unknown>;
}

/** Adds messages to the transactional outbox: they reach the topic if and only if `tx` commits. */
export function writeToOutbox(tx: Pick<Tx, 'execute'>, messages: TopicMessage[]) {
  return tx.execute(asDrizzle(outboxInsert(messages)));
}

/**
 * The statement that adds `messages` to the outbox, one statement for any number of them, in the
 * order given (their `position`s follow it); with `onlyIf`, only if that condition holds (a
 * statement's CTE writing them with what they announce). Times go as text: the drizzle driver passes timestamp
 * arrays to postgres.js unserialized.
 */
export function outboxInsert(messages: readonly TopicMessage[], onlyIf: RenderedStatement = ALWAYS): RenderedStatement {
  return statement`insert into outbox (type, order_id, occurred_at, payload)
    select m.type, m.order_id, m.occurred_at::timestamptz, m.payload::jsonb
    from unnest(${messages.map((m) => m.type)}::text[], ${messages.map((m) => m.orderId)}::text[],
                ${messages.map((m) => m.occurredAt.toISOString())}::text[],
                ${messages.map((m) => JSON.stringify(m.payload))}::text[]) with ordinality as m(type, order_id, occurred_at, payload, n)
    where ${onlyIf}
    order by m.n`;
}
const ALWAYS = sqlText('true');
