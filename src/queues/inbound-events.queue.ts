import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';

/**
 * Partner events of every kind (src/event-kinds). The event itself lives in Postgres (inbound_events)
 * with its kind; a job only names it, so one job name serves every kind, the engine picks the kind's
 * rules from the row, and a lost job is recreated by the sweeper from the row alone.
 */
export const INBOUND_EVENTS_QUEUE = 'inbound-events';

/** `announce`: a partner waits for the outcome (Prefer: wait), so the worker publishes it when done. */
const inboundEventJob = z.object({ eventId: z.string().min(1).max(128), announce: z.boolean().optional() });

export const inboundEventJobs = {
  'inbound-event': inboundEventJob,
  /**
   * The name jobs had when ship events were the only kind. Jobs queued (or dead-lettered, and retried
   * by the sweeper under the same name) before an upgrade still carry it, so it is worked as well;
   * nothing new is enqueued under it.
   */
  'ship-event': inboundEventJob,
} as const;
export type InboundEventJobName = keyof typeof inboundEventJobs;
export type InboundEventJobData = z.infer<typeof inboundEventJob>;
export const INBOUND_EVENT_JOB: InboundEventJobName = 'inbound-event';

/** BullMQ job ids may not contain ':'; base64url keeps any eventId unique and legal. */
export function inboundEventJobId(eventId: string): string {
  return `evt-${Buffer.from(eventId, 'utf8').toString('base64url')}`;
}

export const inboundEventJobOptions: JobsOptions = {
  // Failures here are Postgres hiccups (the event rules themselves never throw); a few quick
  // retries, and then the job stays in the failed set and the sweeper retries it later.
  attempts: 5,
  backoff: { type: 'exponential', delay: 200 },
  // Completed jobs are only needed briefly (the outcome is in Postgres).
  removeOnComplete: { age: 600, count: 5000 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

export function createInboundEventsQueue(connection: Redis, prefix: string): Queue<InboundEventJobData, void, InboundEventJobName> {
  return new Queue<InboundEventJobData, void, InboundEventJobName>(INBOUND_EVENTS_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: inboundEventJobOptions,
  });
}
