import { pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** The store locations (QC SMF stores and the T1 fulfillment center) that ship orders; seeded by `release`. */
export const locations = pgTable('locations', {
  locationId: text('location_id').primaryKey(),
  name: text('name').notNull(),
  region: text('region').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});
