import { sql } from 'drizzle-orm';
import { index, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export type InterventionState = 'open' | 'resolved' | 'dismissed';

/** A case for a person: something the hub could not finish on its own. One open case per order and cause. */
export const interventions = pgTable(
  'interventions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    orderId: text('order_id').notNull(),
    cause: text('cause').notNull(),
    state: text('state').$type<InterventionState>().notNull().default('open'),
    detail: jsonb('detail').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
    resolvedBy: text('resolved_by'),
    resolution: text('resolution'),
    note: text('note'),
  },
  (t) => [
    uniqueIndex('interventions_one_open_uq').on(t.orderId, t.cause).where(sql`${t.state} = 'open'`),
    index('interventions_state_idx').on(t.state, t.createdAt),
  ],
);
