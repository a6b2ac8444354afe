import { sql } from 'drizzle-orm';
import { index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

/** Incidents raised automatically (breaker open, DLQ over threshold, SLA breach); one open per cause. */
export const incidents = pgTable(
  'incidents',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    cause: text('cause').notNull(),
    state: text('state').$type<'open' | 'resolved'>().notNull().default('open'),
    severity: text('severity').$type<'critical' | 'error' | 'warning'>().notNull(),
    summary: text('summary').notNull(),
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull(),
    openedAt: timestamp('opened_at', { withTimezone: true }).notNull().defaultNow(),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('incidents_one_open_uq').on(t.cause).where(sql`${t.state} = 'open'`), index('incidents_state_idx').on(t.state, t.openedAt)],
);

/**
 * Customer notifications, at most one per order and status (SPEC §6): the row is claimed before the
 * webhook is called, so a second trigger for the same order and status finds it and sends nothing.
 */
export const notifications = pgTable(
  'notifications',
  {
    orderId: text('order_id').notNull(),
    status: integer('status').notNull(),
    template: text('template').notNull(),
    state: text('state').$type<'claimed' | 'sent' | 'failed'>().notNull().default('claimed'),
    claimedAt: timestamp('claimed_at', { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('notifications_order_status_uq').on(t.orderId, t.status)],
);
