import { isDeepStrictEqual } from 'node:util';
import type { Job, Queue } from 'bullmq';

/**
 * Makes sure a job exists to do work Postgres says is still pending:
 * missing (Redis lost it, or it was never enqueued) → create it; failed → retry it, unless it carries
 * other data than the work now needs (`data`, when given: a call owed again for a newer event), then
 * replace it; completed although the work is pending → replace it. Waiting, active or delayed → leave it.
 * Returns whether anything was (re)scheduled.
 */
export async function ensureJob(queue: Queue, jobId: string, create: () => Promise<unknown>, data?: unknown): Promise<boolean> {
  const job = (await queue.getJob(jobId)) as Job | undefined;
  if (!job) {
    await create();
    return true;
  }
  const state = await job.getState();
  if (state === 'failed' && data !== undefined && !isDeepStrictEqual(job.data, data)) {
    await job.remove();
    await create();
    return true;
  }
  if (state === 'failed') {
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return true;
  }
  if (state === 'completed' || state === 'unknown') {
    await job.remove().catch(() => {});
    await create();
    return true;
  }
  return false;
}
