import { readMigrationFiles } from 'drizzle-orm/migrator';
import postgres from 'postgres';
import type { Config } from './config.js';
import { connectDatabase, type DatabaseHandle } from './db/client.js';
import { MIGRATIONS_FOLDER } from './db/migrate.js';
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

/** The database a process was pointed at cannot serve it; the message names DATABASE_URL. */
export class StartupCheckError extends Error {
  override name = 'StartupCheckError';
}

/** DATABASE_URL without its password, for messages. */
function describeDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/**
 * Checks, once at start-up, that DATABASE_URL's database answers, exists and has every migration of
 * this build applied. Without it a process pointed at a wrong or missing database starts anyway and
 * fails every job (a worker idled forever that way). Bounded: a server that accepts connections but
 * never answers fails the check after `deadlineMs`. Once the process runs, postgres.js reconnects by
 * itself on the next query, so a lost connection then is retried, not fatal.
 */
export async function checkDatabase(databaseUrl: string, deadlineMs = 10_000): Promise<void> {
  const where = describeDatabaseUrl(databaseUrl);
  const sql = postgres(databaseUrl, {
    max: 1,
    onnotice: () => {},
    connect_timeout: Math.max(1, Math.ceil(deadlineMs / 1000)),
    idle_timeout: 1,
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StartupCheckError(`DATABASE_URL: the database at ${where} did not answer within ${deadlineMs} ms`)), deadlineMs);
  });
  try {
    const check = async () => {
      let last: string | null = null;
      try {
        const [table] = await sql<Array<{ present: boolean }>>`select to_regclass('drizzle.__drizzle_migrations') is not null as present`;
        if (table?.present) {
          const [row] = await sql<Array<{ last: string | null }>>`select max(created_at)::text as last from drizzle.__drizzle_migrations`;
          last = row?.last ?? null;
        }
      } catch (err) {
        const e = err as { code?: string; message?: string };
        if (e.code === '3D000') throw new StartupCheckError(`DATABASE_URL: the database at ${where} does not exist (${e.message})`);
        throw new StartupCheckError(`DATABASE_URL: cannot reach the database at ${where} (${e.code ?? 'error'}: ${e.message ?? String(err)})`);
      }
      // drizzle's migrator applies every migration newer than the last one recorded; the same test
      // here says whether this build's migrations are all in.
      const migrations = readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER });
      const newest = Math.max(...migrations.map((m) => m.folderMillis));
      if (last === null) {
        throw new StartupCheckError(`DATABASE_URL: the database at ${where} is not migrated (no migrations applied; run the release step)`);
      }
      if (Number(last) < newest) {
        throw new StartupCheckError(`DATABASE_URL: the database at ${where} is not migrated to this version (run the release step)`);
      }
    };
    await Promise.race([check(), deadline]);
  } finally {
    clearTimeout(timer);
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** For process entry points: a database that cannot serve the process ends it with one clear line. */
export async function checkDatabaseOrExit(config: Readonly<Config>, role: ProcessRole): Promise<void> {
  try {
    await checkDatabase(config.databaseUrl);
  } catch (err) {
    const message = err instanceof StartupCheckError ? err.message : `DATABASE_URL: start-up check failed (${(err as Error).message})`;
    process.stderr.write(`${JSON.stringify({ level: 60, role, msg: 'cannot start: database not usable', error: message })}\n`);
    process.exit(1);
  }
}
