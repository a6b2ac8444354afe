import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { z } from 'zod';
import type { HubDeps } from '../deps.js';
import { RetriableIntegrationError, type IntegrationErrorClass } from '../errors.js';
import { CallNotDueError } from '../integrations/partner-http.js';
import { redact } from '../integrations/redaction.js';
import { knownSecrets } from '../operations/partner-audit.js';
import type { DecideOnAnswer, OrderCallAttempt, OrderCallRef, PartnerClients } from '../partner-calls/call-kind.js';
import { callIdempotencyKey, callKinds, type AnyCallKind, type AnyPerOrderCallKind } from '../partner-calls/call-kinds.js';
import { AnswerSettlement } from '../partner-calls/answer-settlement.js';
import { GroupCommit } from '../db/group-commit.js';
import type { OrderRow } from '../db/types.js';
import { failOrderCall, readOrderCallsWithOrders, recordFailedAttempt, type OrderCallRow } from '../partner-calls/order-call-records.js';
import { retryDelayMs, type PartnerCallJobData, type PartnerCallJobName } from '../queues/partner-calls.queue.js';

export type { PartnerClients } from '../partner-calls/call-kind.js';

/**
 * Runs a partner-call job, the same way for every call kind (src/partner-calls/call-kinds.ts):
 * parse its data; for a per-order kind, do nothing unless its record is still pending, count each
 * attempt on the record, and on a final failure mark it failed and open the kind's case in one
 * transaction (with what the kind's `onFinalFailure` records of the order), then rethrow so the job is dead-lettered. A call that is not due (the integration's
 * breaker is open, or an incident's resolve page waits for its trigger page) moves the job back to
 * the delayed set until it is: it is not failed and uses no attempt.
 */
export function processPartnerCall(deps: HubDeps, clients: PartnerClients) {
  const secrets = knownSecrets(deps.config);
  const settlement = new AnswerSettlement(deps);
  // Each call's first read; calls that start while one is under way share the next.
  const reads: CallReads = new GroupCommit((refs) => readOrderCallsWithOrders(deps.pg, refs), { concurrency: 2, maxBatch: 64 });
  return async (job: Job<PartnerCallJobData, void, PartnerCallJobName>, token?: string) => {
    const kind = callKinds[job.name] as AnyCallKind;
    const parsed = kind.data.safeParse(job.data);
    // The same data would fail the same way; for a per-order kind the sweeper finds the record still
    // pending and fails it with its case (sweep-owed-calls.ts).
    if (!parsed.success) throw new UnrecoverableError(`${job.name} job ${job.id} has invalid data: ${z.prettifyError(parsed.error)}`);
    const attempt = job.attemptsMade + 1;
    const call = {
      deps,
      clients,
      data: parsed.data,
      attempt,
      lastAttempt: attempt >= (job.opts.attempts ?? 1),
      idempotencyKey: callIdempotencyKey(kind, parsed.data),
    };
    try {
      if (kind.perOrder) {
        const { orderId, key } = kind.record(parsed.data);
        await runOrderCall(deps, kind, { ...call, record: { kind: kind.name, orderId, key } }, { reads, settlement }, secrets);
      } else {
        await kind.run(call);
      }
    } catch (err) {
      if (err instanceof CallNotDueError) {
        // Spread the waiting jobs over a tenth of a second so they do not all return at one instant.
        const resumeAt = Math.max(err.retryAt, deps.clock.now()) + Math.floor(Math.random() * 100);
        await job.moveToDelayed(resumeAt, token);
        throw new DelayedError();
      }
      throw err;
    }
  };
}

/** A call's record with its order, read for many calls at once. */
type CallReads = GroupCommit<OrderCallRef, { record: OrderCallRow | undefined; order: OrderRow | undefined }>;

async function runOrderCall(
  deps: HubDeps,
  kind: AnyPerOrderCallKind,
  attempt: Omit<OrderCallAttempt<PartnerCallJobData>, 'order' | 'settle'>,
  { reads, settlement }: { reads: CallReads; settlement: AnswerSettlement },
  secrets: string[],
): Promise<void> {
  const { record, order } = await reads.submit(attempt.record);
  // Confirmed or failed already, or never owed: a late or repeated job has nothing to do.
  if (record?.state !== 'pending') return;
  // A record is only ever owed for an order that exists, and orders are never deleted.
  if (!order) throw new UnrecoverableError(`order ${attempt.record.orderId} of a pending ${kind.name} call does not exist`);
  const settle = <T>(decide: DecideOnAnswer<T>) => settlement.settle(attempt.record, kind.intervention.cause, decide);
  const call: OrderCallAttempt<PartnerCallJobData> = { ...attempt, order, settle };
  let result: unknown;
  try {
    result = await kind.run(call);
  } catch (err) {
    // Not made (breaker open, not due): no attempt to count.
    if (err instanceof CallNotDueError) throw err;
    await recordFailure(deps, kind, call, err, secrets).catch((recordErr: unknown) =>
      // The record stays pending, so the sweeper comes back to this call; the job's own failure stands.
      deps.logger.error(
        { orderId: call.record.orderId, callKind: kind.name, callKey: call.record.key, err: (recordErr as Error).message },
        'could not record a failed partner call',
      ),
    );
    throw err;
  }
  if (result === 'delivered') {
    await settlement.confirm(call.record, kind.intervention.cause, `${kind.name} confirmed on attempt ${call.attempt}`);
  }
}

/**
 * A failure is final when retrying cannot help (the error says so: BullMQ's UnrecoverableError,
 * which non-retriable integration errors are) or no retry is left. Anything else is retried.
 */
async function recordFailure(deps: HubDeps, kind: AnyPerOrderCallKind, call: OrderCallAttempt<PartnerCallJobData>, err: unknown, secrets: string[]) {
  const final = err instanceof UnrecoverableError || call.lastAttempt;
  const error = redact((err as Error).message ?? String(err), secrets) as string;
  const ref: OrderCallRef = call.record;
  if (!final) {
    await recordFailedAttempt(deps.db, ref, { error, final: false });
    return;
  }
  const about = kind.intervention.about(call.data);
  const onFinalFailure = kind.onFinalFailure?.bind(kind);
  const failed = await failOrderCall(deps.db, ref, {
    cause: kind.intervention.cause,
    error,
    detail: { ...about, errorClass: errorClassOf(err), status: (err as { status?: number | null }).status ?? null },
    ...(onFinalFailure ? { alsoRecord: (tx, order, attempts) => onFinalFailure(tx, { deps, data: call.data, record: ref, order, error, attempts }) } : {}),
  });
  if (failed) {
    deps.logger.warn(
      { orderId: ref.orderId, callKind: ref.kind, callKey: ref.key, ...about, attempts: failed.attempts, err: error },
      'partner call failed for good; intervention opened',
    );
  }
}

function errorClassOf(err: unknown): IntegrationErrorClass {
  if (err instanceof RetriableIntegrationError) return 'retriable';
  return err instanceof UnrecoverableError ? 'non_retriable' : 'retriable';
}

/** BullMQ backoff for partner calls: the integration's configured delays with jitter, or Retry-After. */
export function partnerCallBackoff(deps: HubDeps) {
  return (attemptsMade: number, _type?: string, err?: Error, job?: { name: string }) => {
    const integration = callKinds[job?.name as PartnerCallJobName]?.integration ?? 'slick';
    const retryAfter = err instanceof RetriableIntegrationError ? err.retryAfterMs : undefined;
    return retryDelayMs(deps.config.integrations[integration].retryDelaysMs, attemptsMade, retryAfter);
  };
}
