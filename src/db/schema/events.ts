import { sql } from 'drizzle-orm';
import { bigserial, index, integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export type EventState = 'queued' | 'applied' | 'ignored' | 'rejected' | 'failed';

/**
 * Every accepted partner event: the idempotency store (eventId + body hash), the durable inbox the
 * workers apply from, and the outcome partners read back with GET /api/events/{eventId}.
 */
export const inboundEvents = pgTable(
  'inbound_events',
  {
    eventId: text('event_id').primaryKey(),
    source: text('source').notNull(),
    /** The inbound event kind (src/event-kinds) whose rules apply it: `ship-event`, `courier-status`. */
    kind: text('kind').notNull(),
    /** The partner's own event type as it sent it (`picking`, `SHIPPED`). */
    type: text('type').notNull(),
    orderId: text('order_id').notNull(),
    actor: text('actor').notNull(),
    bodyHash: text('body_hash').notNull(),
    payload: jsonb('payload').notNull(),
    state: text('state').$type<EventState>().notNull().default('queued'),
    reason: text('reason'),
    orderStatus: integer('order_status'),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
    processedAt: timestamp('processed_at', { withTimezone: true }),
  },
  (t) => [
    // Queued events by order: the worker reaches an order's inbox by key, however long the backlog.
    index('inbound_events_queued_by_order_idx').on(t.orderId, t.receivedAt).where(sql`${t.state} = 'queued'`),
    index('inbound_events_order_idx').on(t.orderId, t.receivedAt),
  ],
);

/** Transactional outbox for the topic order.fulfillment.v1: written in the same transaction as the change. */
export const outbox = pgTable(
  'outbox',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** Publication order: the order in which the messages were written, across and within transactions. */
    position: bigserial('position', { mode: 'number' }).notNull(),
    type: text('type').notNull(),
    orderId: text('order_id').notNull(),
    occurredAt: timestamp('occurred_at', { withTimezone: true }).notNull(),
    payload: jsonb('payload').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    publishedAt: timestamp('published_at', { withTimezone: true }),
    streamId: text('stream_id'),
  },
  (t) => [index('outbox_unpublished_idx').on(t.position).where(sql`${t.publishedAt} is null`)],
);
