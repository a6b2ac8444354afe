import { and, desc, eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Database } from '../db/client.js';
import { interventions, type InterventionState } from '../db/schema/index.js';
import type { InterventionRow, Tx } from '../db/types.js';
import type { HubDeps } from '../deps.js';
import { ConflictError, NotFoundError, TransitionError, ValidationError } from '../errors.js';
import { isStatusCode } from '../machines/order.machine.js';
import { applyTransition, lockOrder } from './apply-transition.js';
import { ensureSlickConfirmationJob, latestShippedEventId, reopenFailedConfirmation } from './slick-confirmation-jobs.js';

/** The cause of a case opened when Slick would not confirm a shipment. */
export const SLICK_CONFIRMATION_CAUSE = 'slick_ship_confirmation_failed';

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

/** Causes whose failed call can be run again by `retry`, and how. */
const RETRIABLE_CAUSES: Record<string, (deps: HubDeps, orderId: string, tx: Tx) => Promise<() => Promise<void>>> = {
  [SLICK_CONFIRMATION_CAUSE]: async (deps, orderId, tx) => {
    await reopenFailedConfirmation(tx, orderId);
    const shipEventId = await latestShippedEventId(tx, orderId);
    if (!shipEventId) throw new TransitionError('retry_not_applicable', `order ${orderId} has no applied shipped event to confirm`);
    // After commit: the dead-lettered job is retried, or a new one made.
    return async () => {
      await ensureSlickConfirmationJob(deps, orderId, shipEventId);
    };
  },
};

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
  const resolved = await deps.db.transaction(async (tx) => {
    const [found] = await tx.select().from(interventions).where(eq(interventions.id, id)).for('update');
    if (!found) throw new NotFoundError('intervention', id);
    if (found.state !== 'open') {
      throw new ConflictError(`intervention ${id} is already ${found.state}`, { id, state: found.state }, 'intervention_not_open');
    }
    if (resolution.action === 'retry') {
      const retry = RETRIABLE_CAUSES[found.cause];
      if (!retry) throw new TransitionError('retry_not_applicable', `a ${found.cause} case has no call to retry; override or dismiss it`);
      afterCommit = await retry(deps, found.orderId, tx);
    } else if (resolution.action === 'override') {
      if (!isStatusCode(resolution.status)) throw new ValidationError(`unknown status ${resolution.status}`);
      const order = await lockOrder(tx, found.orderId);
      if (!order) throw new NotFoundError('order', found.orderId);
      const moved = await applyTransition(tx, order, {
        event: { type: 'OVERRIDE', to: resolution.status },
        actor: actor.clientId,
        source: 'operator',
        reasonCode: resolution.reasonCode,
        note: `intervention ${id}: ${resolution.note}`,
      });
      if (moved.kind !== 'moved') {
        throw new TransitionError('invalid_transition', `order ${found.orderId} cannot be overridden to ${resolution.status}`, { status: order.status });
      }
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
    return row!;
  });
  deps.logger.info({ orderId: resolved.orderId, interventionId: id, action: resolution.action, by: actor.clientId }, 'intervention resolved');
  await afterCommit?.();
  return resolved;
}

/** Closes open cases of a cause once the hub itself got the work done (e.g. a retried call succeeded). */
export async function closeInterventionsResolvedBySystem(tx: Tx, orderId: string, cause: string, note: string): Promise<void> {
  await tx
    .update(interventions)
    .set({ state: 'resolved', resolvedAt: new Date(), updatedAt: new Date(), resolvedBy: 'system', resolution: 'auto', note })
    .where(and(eq(interventions.orderId, orderId), eq(interventions.cause, cause), eq(interventions.state, 'open')));
}
