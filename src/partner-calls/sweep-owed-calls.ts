import { z } from 'zod';
import type { HubDeps } from '../deps.js';
import { callKind } from './call-kinds.js';
import { callRequestOf, callsOwedSince, failOrderCall, type OrderCallRow } from './order-call-records.js';
import { ensureOrderCallJob } from './schedule.js';

/** Records looked at per sweep; the rest wait for the next one. */
const SWEEP_BATCH = 1000;
/** Redis round trips in flight at once while checking jobs. */
const SWEEP_PARALLELISM = 16;

/**
 * Makes sure every call still owed (a pending order_calls record nobody touched since `cutoff`) has
 * its job, whatever its kind: Postgres is the record, Redis only the trigger, so a job lost with Redis,
 * never enqueued, or dead-lettered while its record stayed pending is made or retried again from the
 * row alone. A record whose data its kind cannot read fails for good (with its case) instead of being
 * rescheduled for ever. Returns how many jobs it (re)scheduled.
 */
export async function sweepOwedCalls(deps: HubDeps, cutoff: Date): Promise<number> {
  const owed = await callsOwedSince(deps.db, cutoff, SWEEP_BATCH);
  let swept = 0;
  for (let i = 0; i < owed.length; i += SWEEP_PARALLELISM) {
    const results = await Promise.all(owed.slice(i, i + SWEEP_PARALLELISM).map((row) => sweepOne(deps, row)));
    swept += results.filter(Boolean).length;
  }
  return swept;
}

async function sweepOne(deps: HubDeps, row: OrderCallRow): Promise<boolean> {
  const ids = { orderId: row.orderId, callKind: row.kind, callKey: row.key };
  const kind = callKind(row.kind);
  if (!kind?.perOrder) {
    // Written by a build that knows a kind this one does not; left for that build, and said so.
    deps.logger.warn(ids, 'owed partner call of a kind this build does not know; not scheduled');
    return false;
  }
  const parsed = kind.data.safeParse(row.data);
  if (!parsed.success) {
    const error = `the stored call data is not a ${kind.name} job: ${z.prettifyError(parsed.error)}`;
    await failOrderCall(
      deps.db,
      { kind: kind.name, orderId: row.orderId, key: row.key },
      {
        cause: kind.intervention.cause,
        error,
        detail: { errorClass: 'non_retriable', status: null },
      },
    );
    deps.logger.warn({ ...ids, err: error }, 'owed partner call cannot be scheduled; intervention opened');
    return false;
  }
  if (!(await ensureOrderCallJob(deps, callRequestOf(row)))) return false;
  deps.metrics.eventsSwept.inc({ kind: kind.name });
  deps.logger.info(ids, 'sweeper re-scheduled an owed partner call');
  return true;
}
