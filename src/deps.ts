import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type postgres from 'postgres';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { InboundEventJobData, InboundEventJobName } from './queues/inbound-events.queue.js';
import type { PartnerCallJobData, PartnerCallJobName } from './queues/partner-calls.queue.js';

export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

export interface Queues {
  inboundEvents: Queue<InboundEventJobData, void, InboundEventJobName>;
  partnerCalls: Queue<PartnerCallJobData, void, PartnerCallJobName>;
}

/** What use cases need, built once by a process's composition root (main.ts) and passed down. */
export interface HubDeps {
  config: Readonly<Config>;
  db: Database;
  /** The same pool without drizzle, for the two-round-trip transaction of the hot path. */
  pg: postgres.Sql;
  logger: Logger;
  metrics: Metrics;
  queues: Queues;
  /** A plain command connection (publish, stream writes, breaker state). */
  redis: Redis;
  clock: Clock;
}
