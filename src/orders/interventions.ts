import { and, desc, eq } from 'drizzle-orm';
import { z } from 'zod';
import type { Database } from '../db/client.js';
import { interventions, orders, type InterventionState } from '../db/schema/index.js';
import type { InterventionRow, Tx } from '../db/types.js';
import type { HubDeps } from '../deps.js';
import { ConflictError, NotFoundError, TransitionError, ValidationError } from '../errors.js';
import { isStatusCode } from '../machines/order.machine.js';
import { callKindForCause } from '../partner-calls/call-kinds.js';
import { callRequestOf, pendingCallsOf, reopenFailedCalls } from '../partner-calls/order-call-records.js';
import { enqueuePartnerCalls } from '../partner-calls/schedule.js';
import { applyTransition, countTransition, lockOrder, type TransitionResult } from './apply-transition.js';
import { isDiscrepancyCause, resolveDiscrepancy } from '../tiers/discrepancies.js';

/**
 * Manual-intervention cases: what the hub could not finish by itself and a person must look at.
 * At most one open case per order and cause (intervention-cases.ts opens and closes them); here they
 * are listed, shown and resolved by people.
 */

export async function listInterventions(db: Database, filter: { state?: InterventionState; orderId?: string; limit: number }): Promise<InterventionRow[]> {
  const where = and(filter.state ? eq(interventions.state, filter.state) : undefined, filter.orderId ? eq(interventions.orderId, filter.orderId) : undefined);
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

export const resolveInterventionSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('retry'), note: z.string().max(1000).optional() }).strict(),
  z.object({ action: z.literal('dismiss'), note: z.string().min(1).max(1000) }).strict(),
  z
    .object({
      action: z.literal('override'),
      status: z.number().int(),
      reasonCode: z.string().min(1).max(64).default('intervention_override'),
      note: z.string().min(1).max(1000),
    })
    .strict(),
]);
export type InterventionResolution = z.infer<typeof resolveInterventionSchema>;

/**
 * `retry` of a case a partner call's final failure opened: the call kind whose cause it is (the
 * registry, src/partner-calls/call-kinds.ts) reopens its failed records of the order, and after commit
 * each owed call gets its job (the dead-lettered one retried, or a new one made) — the same for every
 * kind. Returns what to run after commit.
 */
async function retryOwedCalls(deps: HubDeps, tx: Tx, found: InterventionRow): Promise<() => Promise<void>> {
  const kind = callKindForCause(found.cause);
  if (!kind) throw new TransitionError('retry_not_applicable', `a ${found.cause} case has no call to retry; override or dismiss it`);
  await reopenFailedCalls(tx, { orderId: found.orderId, kind: kind.name });
  const owed = await pendingCallsOf(tx, found.orderId, kind.name);
  if (owed.length === 0) {
    throw new TransitionError('retry_not_applicable', `order ${found.orderId} owes no ${kind.name} call to retry; override or dismiss it`);
  }
  return () =>
    enqueuePartnerCalls(deps, owed.map(callRequestOf)).catch((err: unknown) =>
      // The case is resolved and the calls are owed again in Postgres: the sweeper schedules them.
      deps.logger.warn({ orderId: found.orderId, callKind: kind.name, err: (err as Error).message }, 'retried calls not scheduled; the sweeper will'),
    );
}

/**
 * Resolves an open case: `retry` runs the failed call again, `override` sets the order's status through
 * the machine (flagged as an override in history), `dismiss` closes it. Who and why are kept.
 */
export async function resolveIntervention(
  deps: HubDeps,
  id: string,
  resolution: InterventionResolution,
  actor: { clientId: string },
): Promise<InterventionRow> {
  let afterCommit: (() => Promise<void>) | undefined;
  let overridden: TransitionResult | undefined;
  const resolved = await deps.db.transaction(async (tx) => {
    // The order's row is locked before the case, as every other writer of both does (a hand
    // assignment locks the order, then settles its case): taken the other way round, the two deadlock.
    const [about] = await tx.select({ orderId: interventions.orderId }).from(interventions).where(eq(interventions.id, id));
    if (about) await tx.select({ orderId: orders.orderId }).from(orders).where(eq(orders.orderId, about.orderId)).for('update');
    const [found] = await tx.select().from(interventions).where(eq(interventions.id, id)).for('update');
    if (!found) throw new NotFoundError('intervention', id);
    if (found.state !== 'open') {
      throw new ConflictError(`intervention ${id} is already ${found.state}`, { id, state: found.state }, 'intervention_not_open');
    }
    if (resolution.action === 'retry') {
      afterCommit = await retryOwedCalls(deps, tx, found);
    } else if (resolution.action === 'override') {
      if (!isStatusCode(resolution.status)) throw new ValidationError(`unknown status ${resolution.status}`);
      const order = await lockOrder(tx, found.orderId);
      if (!order) throw new NotFoundError('order', found.orderId);
      const moved = await applyTransition(
        tx,
        order,
        {
          event: { type: 'OVERRIDE', to: resolution.status },
          actor: actor.clientId,
          source: 'operator',
          reasonCode: resolution.reasonCode,
          note: `intervention ${id}: ${resolution.note}`,
        },
        deps.clock,
      );
      if (moved.kind !== 'moved') {
        throw new TransitionError('invalid_transition', `order ${found.orderId} cannot be overridden to ${resolution.status}`, { status: order.status });
      }
      overridden = moved;
    }
    const [row] = await tx
      .update(interventions)
      .set({
        state: resolution.action === 'dismiss' ? 'dismissed' : 'resolved',
        resolvedAt: new Date(),
        updatedAt: new Date(),
        resolvedBy: actor.clientId,
        resolution: resolution.action,
        note: resolution.note ?? null,
      })
      .where(eq(interventions.id, id))
      .returning();
    // A discrepancy stays open until its case is resolved, however it is resolved.
    if (isDiscrepancyCause(found.cause)) await resolveDiscrepancy(tx, found.orderId, found.cause);
    return row!;
  });
  if (overridden) countTransition(deps.metrics, overridden, 'operator');
  deps.logger.info({ orderId: resolved.orderId, interventionId: id, action: resolution.action, by: actor.clientId }, 'intervention resolved');
  await afterCommit?.();
  return resolved;
}
