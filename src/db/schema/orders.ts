import { sql } from 'drizzle-orm';
import { bigserial, boolean, index, integer, jsonb, numeric, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { locations } from './locations.js';

export interface CustomerRecord {
  id: string;
  name?: string | undefined;
  phone?: string | undefined;
  email?: string | undefined;
}

/** The delivery state an order keeps from courier (and later PMP) events. */
export interface DeliveryRecord {
  /** The courier's last applied status (SHIPPED, IN_TRANSIT, …) and when it happened. */
  courierStatus?: string;
  courierStatusAt?: string;
  /** Last known parcel position. */
  location?: { lat: number; lng: number } | undefined;
  locationAt?: string;
  deliveredAt?: string;
  proofOfDelivery?: { receivedBy?: string | undefined; photoUrl?: string | undefined } | undefined;
  lastFailure?: { reason: string | null; occurredAt: string };
  rescheduledFor?: string;
  returnedAt?: string;
  /** When PMP said the parcel was delivered (tier 1), and the tracking PMP reported. */
  pmpDeliveredAt?: string;
  /** When PMP's last reported status (reconciled) happened. */
  pmpStatusAt?: string;
  pmpTracking?: { trackingId: string; carrierCode: string };
}

export const orders = pgTable(
  'orders',
  {
    orderId: text('order_id').primaryKey(),
    shipFromLocationId: text('ship_from_location_id')
      .notNull()
      .references(() => locations.locationId),
    customer: jsonb('customer').$type<CustomerRecord>().notNull(),
    paymentMethod: text('payment_method').$type<'PREPAID' | 'COD'>().notNull(),
    codAmount: numeric('cod_amount', { precision: 12, scale: 2 }),
    status: integer('status').notNull(),
    /** `packing` while at 3600 once the packing ship event arrived; null otherwise. */
    subStep: text('sub_step'),
    /**
     * Incremented by every change written after registration, all of which go through the transition
     * module (src/orders/apply-transition.ts) with the row locked FOR UPDATE.
     */
    version: integer('version').notNull().default(1),
    /** Number of history rows written; the next row's seq. Safe because writers hold the row lock. */
    historySeq: integer('history_seq').notNull().default(0),
    trackingId: text('tracking_id'),
    carrierCode: text('carrier_code'),
    estimatedDelivery: timestamp('estimated_delivery', { withTimezone: true }),
    /** The delivery partner PMP assigned (SPEC §5.2), or an operator by hand. */
    partnerId: text('partner_id'),
    partnerName: text('partner_name'),
    /** Failed delivery attempts reported by the courier or PMP (SPEC §5.1). */
    deliveryAttempts: integer('delivery_attempts').notNull().default(0),
    /** What the courier last told about the delivery: proof, location, failure, reschedule (see DeliveryRecord). */
    delivery: jsonb('delivery').$type<DeliveryRecord>(),
    /** sha256 of the canonical registration body, so a repeated registration is recognised. */
    registrationHash: text('registration_hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    statusChangedAt: timestamp('status_changed_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    // Search (src/orders/order-search.ts), newest change first: one status's orders by last change
    // (it replaces (status, order_id), which no statement read in that order; the reconciliation's
    // scan by status and updated_at uses it too), all orders, and one location's.
    index('orders_status_updated_idx').on(t.status, t.updatedAt, t.orderId),
    index('orders_updated_idx').on(t.updatedAt, t.orderId),
    index('orders_location_updated_idx').on(t.shipFromLocationId, t.updatedAt, t.orderId),
    // Search's `q`: tracking id exactly, customer phone and email exactly and name by prefix, all
    // case-insensitive; partial, so orders without the value (not yet shipped, no email) add no entry.
    index('orders_tracking_idx').on(t.trackingId).where(sql`${t.trackingId} is not null`),
    index('orders_customer_name_idx').on(sql`(lower(${t.customer} ->> 'name') collate "C")`).where(sql`(${t.customer} ->> 'name') is not null`),
    index('orders_customer_phone_idx').on(sql`lower(${t.customer} ->> 'phone')`).where(sql`(${t.customer} ->> 'phone') is not null`),
    index('orders_customer_email_idx').on(sql`lower(${t.customer} ->> 'email')`).where(sql`(${t.customer} ->> 'email') is not null`),
    index('orders_location_status_idx').on(t.shipFromLocationId, t.status),
    // Analytics windows (src/analytics): the orders created in a window, overall and per location.
    index('orders_created_idx').on(t.createdAt),
    index('orders_location_created_idx').on(t.shipFromLocationId, t.createdAt),
  ],
);

/** One row per status change (SPEC §2), numbered per order so history is provably sequential. */
export const statusHistory = pgTable(
  'status_history',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    orderId: text('order_id')
      .notNull()
      .references(() => orders.orderId),
    seq: integer('seq').notNull(),
    fromStatus: integer('from_status'),
    toStatus: integer('to_status').notNull(),
    subStep: text('sub_step'),
    /** When it happened (the event's occurredAt); null for an implied step until its own event arrives. */
    occurredAt: timestamp('occurred_at', { withTimezone: true }),
    recordedAt: timestamp('recorded_at', { withTimezone: true }).notNull().defaultNow(),
    actor: text('actor').notNull(),
    source: text('source').$type<'slick' | 'grab' | 'pmp' | 'mao' | 'operator' | 'system'>().notNull(),
    reasonCode: text('reason_code'),
    eventId: text('event_id'),
    note: text('note'),
    implied: boolean('implied').notNull().default(false),
    override: boolean('override').notNull().default(false),
  },
  (t) => [uniqueIndex('status_history_order_seq_uq').on(t.orderId, t.seq)],
);
