import { sql } from 'drizzle-orm';
import { index, integer, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

export type OrderCallState = 'pending' | 'confirmed' | 'failed';

/**
 * One row per outbound call the hub owes a partner about an order (a Slick ship confirmation, a
 * customer notification for one status, …): its state, how many attempts it took and the last error.
 * Postgres is the record of what is still owed; the BullMQ job is only the trigger, so the sweeper,
 * an intervention's retry and a dead letter's retry all work from this row, the same way for every
 * kind. `key` tells apart several calls of one kind for one order (the status of a notification);
 * `data` is the job's payload, so a lost job can be made again from the row alone.
 */
export const orderCalls = pgTable(
  'order_calls',
  {
    orderId: text('order_id').notNull(),
    kind: text('kind').notNull(),
    key: text('key').notNull().default(''),
    state: text('state').$type<OrderCallState>().notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.orderId, t.kind, t.key] }),
    // The sweeper's question: calls still owed that nobody touched for a while.
    index('order_calls_pending_idx').on(t.updatedAt).where(sql`${t.state} = 'pending'`),
  ],
);
