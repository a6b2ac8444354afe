import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { IntegrationConfig } from '../config.js';

/**
 * Outbound partner calls. Each call is a job so its retries are BullMQ retries with delays: a worker
 * never sleeps holding a job, and a crash loses no attempt. What each job name is as a call (its
 * integration, record, failure case, behaviour) is its call kind, src/partner-calls/call-kinds.ts.
 */
export const PARTNER_CALLS_QUEUE = 'partner-calls';

export const partnerCallJobs = {
  /** Confirm a `shipped` ship event with Slick (SPEC §4.2). */
  'slick.ship-confirmation': z.object({
    orderId: z.string().min(1),
    shipEventId: z.string().min(1),
    /** The event's occurredAt and who sent it; a call owed before they were carried reads them from the event. */
    occurredAt: z.iso.datetime({ offset: true }).optional(),
    actor: z.string().min(1).optional(),
  }),
  /** Page the incident receiver about an incident opening or resolving. */
  'incident.notify': z.object({ incidentId: z.uuid(), action: z.enum(['trigger', 'resolve']) }),
  /** Tell the customer about a status change (SPEC §6: at most once per order and status). */
  'notify.customer': z.object({ orderId: z.string().min(1), status: z.number().int() }),
  /** Ask PMP to assign a delivery partner to an order that reached 7000 (SPEC §5.2). */
  'pmp.assignment': z.object({ orderId: z.string().min(1) }),
  /** Tell MAO an order shipped (SPEC §5.3 tier 2). */
  'mao.order-status': z.object({ orderId: z.string().min(1) }),
  /** Relay a COD collection PMP reported to Slick as `collected` (SPEC §4.2, §5.3 tier 3). */
  'slick.cod-collected': z.object({ orderId: z.string().min(1), eventId: z.string().min(1) }),
} as const;
export type PartnerCallJobName = keyof typeof partnerCallJobs;
export type PartnerCallJobDataOf<N extends PartnerCallJobName> = z.infer<(typeof partnerCallJobs)[N]>;
export type PartnerCallJobData = { [N in PartnerCallJobName]: PartnerCallJobDataOf<N> }[PartnerCallJobName];

/** Deterministic job ids, so scheduling the same call twice keeps one job. BullMQ ids may not contain ':'. */
export function partnerCallJobId(name: PartnerCallJobName, ...key: Array<string | number>): string {
  return `${name.replace('.', '-')}-${Buffer.from(key.join('|'), 'utf8').toString('base64url')}`;
}

/** Attempts = 1 + one per configured retry delay; the delays themselves come from the backoff strategy. */
export function partnerCallJobOptions(integration: IntegrationConfig): JobsOptions {
  return {
    attempts: integration.retryDelaysMs.length + 1,
    backoff: { type: 'partner-call' },
    removeOnComplete: { age: 24 * 3600, count: 10_000 },
    removeOnFail: false, // the failed set is the dead-letter queue; entries leave it by retry or by an operator
  };
}

/**
 * Delay before retry number `attemptsMade` (1-based): the configured delay, shortened by jitter of at
 * most a quarter (SPEC §4.2), or the partner's Retry-After if that is longer.
 */
export function retryDelayMs(delays: number[], attemptsMade: number, retryAfterMs: number | undefined, random = Math.random): number {
  const base = delays[Math.min(attemptsMade, delays.length) - 1] ?? delays.at(-1) ?? 1000;
  const jittered = Math.round(base * (0.75 + 0.25 * random()));
  return retryAfterMs !== undefined ? Math.max(jittered, retryAfterMs) : jittered;
}

export function createPartnerCallsQueue(connection: Redis, prefix: string): Queue<PartnerCallJobData, void, PartnerCallJobName> {
  return new Queue<PartnerCallJobData, void, PartnerCallJobName>(PARTNER_CALLS_QUEUE, { connection, prefix });
}
