import { sql } from 'drizzle-orm';
import { index, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

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
