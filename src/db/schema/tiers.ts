import { sql } from 'drizzle-orm';
import { index, integer, jsonb, numeric, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export type TierState = 'pending' | 'done' | 'failed' | 'not_applicable';
export type TierNumber = 1 | 2 | 3;

/**
 * The three-tier delivery flow of an order (SPEC §5.3): 1 PMP → OMS "Delivered", 2 Slick → MAO
 * "Shipped", 3 PMP → Slick "Collected" (COD only). Rows are made when the order reaches 7000 and
 * change only under the order's row lock, through the transition module.
 */
export const orderTiers = pgTable(
  'order_tiers',
  {
    orderId: text('order_id').notNull(),
    tier: integer('tier').$type<TierNumber>().notNull(),
    state: text('state').$type<TierState>().notNull(),
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.orderId, t.tier] }),
    // The tier SLA watch: tiers still pending, oldest first.
    index('order_tiers_pending_idx').on(t.createdAt).where(sql`${t.state} = 'pending'`),
  ],
);

/**
 * A disagreement the hub found in an order's delivery (SPEC §5.3 codes): open until the case it opened
 * is resolved. At most one open per order and code.
 */
export const orderDiscrepancies = pgTable(
  'order_discrepancies',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    orderId: text('order_id').notNull(),
    code: text('code').notNull(),
    tier: integer('tier').$type<TierNumber>(),
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull(),
    openedAt: timestamp('opened_at', { withTimezone: true }).notNull().defaultNow(),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('order_discrepancies_one_open_uq').on(t.orderId, t.code).where(sql`${t.resolvedAt} is null`),
    index('order_discrepancies_order_idx').on(t.orderId, t.openedAt),
  ],
);

/**
 * The cash-on-delivery ledger of a COD order: what is expected (from registration), what the partner
 * says it collected, when and who, and whether it was relayed to Slick (tier 3).
 */
export const codLedger = pgTable('cod_ledger', {
  orderId: text('order_id').primaryKey(),
  expectedAmount: numeric('expected_amount', { precision: 12, scale: 2 }).notNull(),
  collectedAmount: numeric('collected_amount', { precision: 12, scale: 2 }),
  collectedAt: timestamp('collected_at', { withTimezone: true }),
  collectedBy: text('collected_by'),
  eventId: text('event_id'),
  /** Relayed to Slick (`collected`) — or why not. */
  relay: text('relay').$type<'pending' | 'confirmed' | 'failed' | 'withheld'>(),
  confirmedAt: timestamp('confirmed_at', { withTimezone: true }),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});
