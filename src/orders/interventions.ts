import { and, desc, eq, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { interventions, type InterventionState } from '../db/schema/index.js';
import type { InterventionRow, Tx } from '../db/types.js';

/**
 * Manual-intervention cases: what the hub could not finish by itself and a person must look at.
 * At most one open case per order and cause; opening it again only refreshes its detail.
 */
export async function openIntervention(
  tx: Tx | Database,
  input: { orderId: string; cause: string; detail: Record<string, unknown> },
): Promise<void> {
  await tx
    .insert(interventions)
    .values({ orderId: input.orderId, cause: input.cause, detail: input.detail })
    .onConflictDoUpdate({
      target: [interventions.orderId, interventions.cause],
      targetWhere: sql`${interventions.state} = 'open'`,
      set: { detail: sql`excluded.detail`, updatedAt: sql`now()` },
    });
}

export async function listInterventions(
  db: Database,
  filter: { state?: InterventionState; orderId?: string; limit: number },
): Promise<InterventionRow[]> {
  const where = and(
    filter.state ? eq(interventions.state, filter.state) : undefined,
    filter.orderId ? eq(interventions.orderId, filter.orderId) : undefined,
  );
  return db.select().from(interventions).where(where).orderBy(desc(interventions.createdAt)).limit(filter.limit);
}

export function interventionView(i: InterventionRow) {
  return {
    id: i.id,
    orderId: i.orderId,
    cause: i.cause,
    state: i.state,
    detail: i.detail,
    createdAt: i.createdAt.toISOString(),
    updatedAt: i.updatedAt.toISOString(),
    resolvedAt: i.resolvedAt?.toISOString() ?? null,
    resolvedBy: i.resolvedBy,
    resolution: i.resolution,
    note: i.note,
  };
}
