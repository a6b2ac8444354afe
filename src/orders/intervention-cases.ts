import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { interventions } from '../db/schema/index.js';
import type { Tx } from '../db/types.js';

/**
 * Opening manual-intervention cases, for whoever finds something a person must look at (a partner
 * call that failed for good, a confirmation that came after the order moved). Resolving a case is a
 * use case of its own (interventions.ts, which needs the call kinds for `retry`); this module needs
 * only the schema, so every call kind can open a case without an import cycle.
 */

/** At most one open case per order and cause; opening it again only refreshes its detail. */
export async function openIntervention(tx: Tx | Database, input: { orderId: string; cause: string; detail: Record<string, unknown> }): Promise<void> {
  await tx
    .insert(interventions)
    .values({ orderId: input.orderId, cause: input.cause, detail: input.detail })
    .onConflictDoUpdate({
      target: [interventions.orderId, interventions.cause],
      targetWhere: sql`${interventions.state} = 'open'`,
      set: { detail: sql`excluded.detail`, updatedAt: sql`now()` },
    });
}
