import type { Database } from './client.js';
import type { codLedger, inboundEvents, interventions, orders, statusHistory } from './schema/index.js';

/** A transaction handle, as drizzle passes it to `db.transaction(cb)`. */
export type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];
export type OrderRow = typeof orders.$inferSelect;
export type HistoryRow = typeof statusHistory.$inferSelect;
export type InboundEventRow = typeof inboundEvents.$inferSelect;
export type InterventionRow = typeof interventions.$inferSelect;
/** An order's COD ledger: what is expected, what was collected, and its relay to Slick. */
export type CodLedgerRow = typeof codLedger.$inferSelect;
export type Source = HistoryRow['source'];
