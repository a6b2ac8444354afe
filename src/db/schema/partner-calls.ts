import { sql } from 'drizzle-orm';
import { bigserial, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** The audit log: one row per outbound partner request attempt, with bodies already redacted. */
export const partnerCalls = pgTable(
  'partner_calls',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    integration: text('integration').notNull(),
    operation: text('operation').notNull(),
    orderId: text('order_id'),
    method: text('method').notNull(),
    url: text('url').notNull(),
    attempt: integer('attempt').notNull(),
    status: integer('status'),
    latencyMs: integer('latency_ms').notNull(),
    errorClass: text('error_class').$type<'retriable' | 'non_retriable'>(),
    error: text('error'),
    requestBody: jsonb('request_body'),
    responseBody: jsonb('response_body'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('partner_calls_order_idx').on(t.orderId, t.id),
    index('partner_calls_integration_idx').on(t.integration, t.createdAt),
    // Error analytics (src/analytics/errors.ts): the failed calls of a window, without the successful ones.
    index('partner_calls_errors_idx').on(t.createdAt).where(sql`${t.errorClass} is not null`),
  ],
);
