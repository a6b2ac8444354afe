import type { Config } from './config.js';
import { connectDatabase, type DatabaseHandle } from './db/client.js';
import { systemClock, type Clock, type HubDeps } from './deps.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { createInboundEventsQueue } from './queues/inbound-events.queue.js';
import { createPartnerCallsQueue } from './queues/partner-calls.queue.js';
import { connectRedis } from './queues/redis-connection.js';

export type ProcessRole = 'web' | 'worker' | 'scheduler';

/**
 * Builds the dependencies every process role shares, and one `close` that releases them all —
 * memoized, running every step even if one fails.
 */
export function buildHubDeps(
  config: Readonly<Config>,
  role: ProcessRole,
  overrides: { logger?: Logger; clock?: Clock; dbPoolSize?: number } = {},
): HubDeps & { database: DatabaseHandle; close(): Promise<void> } {
  const logger = overrides.logger ?? createLogger(config, role);
  const database = connectDatabase(config.databaseUrl, { max: overrides.dbPoolSize ?? (role === 'worker' ? config.workerConcurrency + 2 : 10) });
  const redisRole = role === 'web' ? 'web' : 'worker';
  const redis = connectRedis(config.redisUrl, redisRole, `hub-${role}`);
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
  const queues = {
    inboundEvents: createInboundEventsQueue(redis, config.redisPrefix),
    partnerCalls: createPartnerCallsQueue(redis, config.redisPrefix),
  };
  queues.inboundEvents.on('error', () => {});
  queues.partnerCalls.on('error', () => {});
  let closing: Promise<void> | undefined;
  return {
    config,
    db: database.db,
    pg: database.sql,
    database,
    logger,
    metrics: createMetrics(role),
    queues,
    redis,
    clock: overrides.clock ?? systemClock,
    close: () =>
      (closing ??= (async () => {
        const steps = [() => queues.inboundEvents.close(), () => queues.partnerCalls.close(), () => redis.quit(), () => database.close()];
        for (const step of steps) {
          try {
            await step();
          } catch (err) {
            logger.warn({ err: (err as Error).message }, 'error while closing');
          }
        }
      })()),
  };
}

/** Runs `stop` once on SIGTERM/SIGINT, with a deadline; exits 0 when it finished in time. */
export function stopOnSignals(logger: Logger, stop: () => Promise<void>, deadlineMs = 25_000): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    const deadline = setTimeout(() => {
      logger.error({ deadlineMs }, 'did not stop in time; exiting');
      process.exit(1);
    }, deadlineMs);
    deadline.unref();
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}
