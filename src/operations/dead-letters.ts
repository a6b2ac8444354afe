import type { Job, Queue } from 'bullmq';
import type { HubDeps } from '../deps.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';
import { callKind } from '../partner-calls/call-kinds.js';
import { reopenFailedCalls } from '../partner-calls/order-call-records.js';
import { PARTNER_CALLS_QUEUE } from '../queues/partner-calls.queue.js';

/**
 * The dead-letter queue is each queue's failed set: jobs that ran out of retries or failed for good,
 * kept with their error and payload (removeOnFail: false), visible and retriable in Bull Board too.
 * An id is `<queue>:<job id>`.
 */

function queuesOf(deps: HubDeps): Queue[] {
  return [deps.queues.inboundEvents as unknown as Queue, deps.queues.partnerCalls as unknown as Queue];
}

export function deadLetterView(queue: string, job: Job) {
  return {
    id: `${queue}:${job.id}`,
    queue,
    jobId: job.id,
    name: job.name,
    data: job.data,
    error: job.failedReason,
    attemptsMade: job.attemptsMade,
    createdAt: new Date(job.timestamp).toISOString(),
    failedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
  };
}

export async function listDeadLetters(deps: HubDeps, limit: number) {
  const lists = await Promise.all(queuesOf(deps).map(async (q) => (await q.getFailed(0, limit - 1)).map((job) => deadLetterView(q.name, job))));
  return lists
    .flat()
    .sort((a, b) => (b.failedAt ?? '').localeCompare(a.failedAt ?? ''))
    .slice(0, limit);
}

export async function deadLetterCount(deps: HubDeps): Promise<Record<string, number>> {
  const entries = await Promise.all(queuesOf(deps).map(async (q) => [q.name, await q.getFailedCount()] as const));
  return Object.fromEntries(entries);
}

/**
 * Retries a dead letter once: the job goes back to waiting. Retrying one that is not in the failed set
 * (already retried, or never failed) is a conflict, so two clicks apply at most once; the processors are
 * idempotent on top of that.
 */
export async function retryDeadLetter(deps: HubDeps, id: string): Promise<ReturnType<typeof deadLetterView>> {
  const sep = id.indexOf(':');
  if (sep <= 0) throw new ValidationError('dead letter id must be <queue>:<job id>', { id });
  const queue = queuesOf(deps).find((q) => q.name === id.slice(0, sep));
  if (!queue) throw new NotFoundError('dead letter', id);
  const job = (await queue.getJob(id.slice(sep + 1))) as Job | undefined;
  if (!job) throw new NotFoundError('dead letter', id);
  if ((await job.getState()) !== 'failed') throw new ConflictError(`dead letter ${id} is not failed (already retried?)`, { id }, 'not_dead_lettered');
  await prepareRetry(deps, queue, job);
  try {
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
  } catch (err) {
    // Lost the race against another retry of the same job.
    throw new ConflictError(`dead letter ${id} could not be retried: ${(err as Error).message}`, { id }, 'not_dead_lettered');
  }
  deps.logger.info({ deadLetter: id, job: job.name, orderId: (job.data as { orderId?: string }).orderId }, 'dead letter retried');
  return deadLetterView(queue.name, job);
}

/**
 * Puts back what a final failure recorded, so the retried job has work to do: a partner call of a
 * per-order kind has its record reopened (failed → pending, attempts from zero), the same for every
 * kind (src/partner-calls/call-kinds.ts). Other jobs carry no such record.
 */
async function prepareRetry(deps: HubDeps, queue: Queue, job: Job): Promise<void> {
  if (queue.name !== PARTNER_CALLS_QUEUE) return;
  const kind = callKind(job.name);
  if (!kind?.perOrder) return;
  const parsed = kind.data.safeParse(job.data);
  // Its data is what failed it: the retry fails the same way, and a record it left pending is
  // failed, with its case, by the sweeper (sweep-owed-calls.ts).
  if (!parsed.success) return;
  const { orderId, key } = kind.record(parsed.data);
  await reopenFailedCalls(deps.db, { orderId, kind: kind.name, key });
}
