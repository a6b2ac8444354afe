import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { inject } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { answerClientErrorsAsJson } from '../../src/api/error-handler.js';
import { StatusStream } from '../../src/api/status-stream.js';
import { HubClient } from '../../src/api/hub-client.js';
import { DEVELOPMENT_CLIENTS, loadConfig, type Config } from '../../src/config.js';
import { EventOutcomeWaiters, eventOutcomeChannel } from '../../src/inbox/event-outcomes.js';
import { PartnerEventIntake } from '../../src/inbox/intake.js';
import { connectRedis } from '../../src/queues/redis-connection.js';
import { buildHubDeps } from '../../src/runtime.js';
import { hubPartnerEnv, startAllSimulators, type AllSimulators } from '../../src/simulators/index.js';
import { startHubWorkers, type HubWorkers } from '../../src/workers/hub-workers.js';
import { startSchedulerTasks } from '../../src/workers/scheduler-tasks.js';
import { createDatabaseFromTemplate, dropDatabase } from './test-database.js';
import { deleteKeys, REDIS_URL } from './test-redis.js';

export { eventually } from './eventually.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export { REDIS_URL };
export const SLICK_TOKEN = 'slick-test-token-0123456789';

let counter = 0;

export interface TestHubOptions {
  /** Run BullMQ workers inside the test process (default true). */
  inProcessWorkers?: boolean;
  /** Run the outbox relay and the sweeper inside the test process (default true). */
  scheduler?: boolean;
  env?: Record<string, string>;
}

export type ClientId = 'slick' | 'grab' | 'pmp' | 'mao' | 'viewer' | 'operator' | 'admin';

/**
 * A whole hub for one test file: its own database (from the migrated template) and Redis prefix,
 * the real web app on port 0, optionally in-process workers and scheduler, and real simulator servers.
 */
export async function startTestHub(options: TestHubOptions = {}) {
  const runId = inject('runId');
  const n = ++counter;
  const suffix = `${runId}_${process.pid}_${n}`;
  const dbName = `hub_test_${suffix}`;
  const databaseUrl = await createDatabaseFromTemplate(dbName, inject('templateDatabase'));
  const prefix = `hubtest:${suffix}`;
  const sims = await startAllSimulators({ slickToken: SLICK_TOKEN });

  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    REDIS_PREFIX: prefix,
    TOPIC_STREAM: `${prefix}:order.fulfillment.v1`,
    ...hubPartnerEnv(sims, SLICK_TOKEN),
    SLICK_TIMEOUT_MS: '2000',
    SLICK_RETRY_DELAYS_MS: '100,200,400',
    WORKER_CONCURRENCY: '8',
    OUTBOX_POLL_MS: '20',
    SWEEP_AFTER_MS: '60000',
    SWEEP_INTERVAL_MS: '60000',
    // Without workers nothing applies events, the web included, unless a test asks for it.
    ...(options.inProcessWorkers === false ? { INTAKE_APPLY: 'queue' } : {}),
    ...options.env,
  };
  const config: Readonly<Config> = loadConfig(env);
  const logLines: string[] = [];
  // Logs are captured so tests can assert what reaches them (e.g. that no secret does).
  const logger = pino(
    { level: 'info', redact: { paths: ['req.headers.authorization'], censor: '[redacted]' } },
    { write: (line: string) => void logLines.push(line) },
  );

  // A smaller pool than a web process's 10 (its intake uses four at most): two test files run at once,
  // some beside real processes (a chaos run's take 60), within Postgres's 100 connections.
  const web = buildHubDeps(config, 'web', { logger: logger.child({ role: 'web' }), dbPoolSize: 6 });
  const subscriber = connectRedis(config.redisUrl, 'subscriber', 'test-outcomes');
  const waiters = new EventOutcomeWaiters(subscriber, eventOutcomeChannel(prefix));
  await waiters.start();
  const statusStream = new StatusStream(
    connectRedis(config.redisUrl, 'subscriber', 'test-status-stream'),
    web.redis,
    config.topicStream,
    logger.child({ role: 'web' }),
    web.metrics,
  );
  const intake = new PartnerEventIntake(web);
  const server: Server = createApp(web, { waiters, statusStream, intake }).listen(0, '127.0.0.1');
  // As the web process does: what Node's HTTP parser refuses is answered in the JSON error format.
  answerClientErrorsAsJson(server);
  await once(server, 'listening');
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const worker = buildHubDeps(config, 'worker', { logger: logger.child({ role: 'worker' }) });
  const workerConnection = connectRedis(config.redisUrl, 'worker', 'test-worker');
  let workers: HubWorkers | undefined = options.inProcessWorkers === false ? undefined : startHubWorkers(worker, workerConnection);
  let scheduler = options.scheduler === false ? undefined : startSchedulerTasks(worker);
  const redis = new Redis(REDIS_URL);
  const children = new Set<ChildProcess>();

  const clients = Object.fromEntries(DEVELOPMENT_CLIENTS.map((c) => [c.id, new HubClient(baseUrl, c)])) as Record<ClientId, HubClient>;

  const hub = {
    config,
    env,
    prefix,
    databaseUrl,
    baseUrl,
    /** The web's live stream of status changes (GET /api/stream). */
    statusStream,
    /** The web's intake of partner events. */
    intake,
    sims: sims as AllSimulators,
    web,
    worker,
    redis,
    logLines,
    clients,
    startInProcessWorkers() {
      workers ??= startHubWorkers(worker, workerConnection);
    },
    startScheduler() {
      scheduler ??= startSchedulerTasks(worker);
    },
    async stopInProcessWorkers() {
      await workers?.close();
      workers = undefined;
    },
    /** A real `worker` process with this hub's configuration; resolves once it says it started. */
    async spawnWorker(extraEnv: Record<string, string> = {}) {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/workers/main.ts'], {
        cwd: REPO_ROOT,
        env: { ...process.env, ...env, LOG_LEVEL: 'info', ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null }));
      exited.finally(() => children.delete(child));
      let output = '';
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => {
          output += d.toString();
          if (output.includes('"worker started"')) resolve();
        });
        exited.then(({ code }) => reject(new Error(`worker exited (${code}) before starting:\n${output}`)));
      });
      return { child, exited, output: () => output };
    },
    /** Topic messages on this hub's stream, as field maps. */
    async topicMessages(): Promise<Array<Record<string, string>>> {
      const entries = await redis.xrange(config.topicStream, '-', '+');
      return entries.map(([, fields]) => {
        const m: Record<string, string> = {};
        for (let i = 0; i < fields.length; i += 2) m[fields[i]!] = fields[i + 1]!;
        return m;
      });
    },
    /** Deletes every Redis key of this hub (as if Redis restarted empty). */
    async emptyRedis() {
      await deleteKeys(redis, `${prefix}*`);
    },
    async close() {
      for (const child of children) child.kill('SIGKILL');
      await scheduler?.stop();
      await workers?.close();
      await statusStream.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await intake.drained();
      subscriber.disconnect();
      workerConnection.disconnect();
      await Promise.allSettled([web.close(), worker.close(), sims.close()]);
      await hub.emptyRedis();
      redis.disconnect();
      await dropDatabase(dbName);
    },
  };
  return hub;
}
export type TestHub = Awaited<ReturnType<typeof startTestHub>>;

/**
 * Another web process of the same hub, with some settings changed (e.g. a Postgres or Redis that does
 * not answer), on its own port; `close` releases it.
 */
export async function startExtraWeb(hub: TestHub, envOverrides: Record<string, string>) {
  const config = loadConfig({ ...hub.env, ...envOverrides });
  const deps = buildHubDeps(config, 'web', { logger: pino({ level: 'silent' }) });
  const reader = connectRedis(config.redisUrl, 'subscriber', 'test-extra-status-stream');
  reader.on('error', () => {}); // a web pointed at a Redis that does not answer, on purpose
  const statusStream = new StatusStream(reader, deps.redis, config.topicStream, deps.logger, deps.metrics);
  const intake = new PartnerEventIntake(deps);
  const server = createApp(deps, { waiters: new EventOutcomeWaiters(deps.redis, 'unused'), statusStream, intake }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    baseUrl,
    /** This web's intake of partner events. */
    intake,
    clients: Object.fromEntries(DEVELOPMENT_CLIENTS.map((c) => [c.id, new HubClient(baseUrl, c)])) as Record<ClientId, HubClient>,
    async close() {
      await statusStream.stop();
      server.close();
      server.closeAllConnections();
      await deps.close();
    },
  };
}

let orderCounter = 0;
export function newOrderId(tag = 'SO'): string {
  return `${tag}-${process.pid}-${Date.now().toString(36)}-${++orderCounter}`;
}

export async function registerOrder(hub: TestHub, overrides: Record<string, unknown> = {}) {
  const orderId = (overrides.orderId as string | undefined) ?? newOrderId();
  const res = await hub.clients.mao.post('/api/orders', {
    orderId,
    shipFromLocationId: 'STORE-007',
    customer: { id: 'CUST-1', name: 'Somchai', phone: '+66800000000', email: 'somchai@example.com' },
    paymentMethod: 'PREPAID',
    status: 3000,
    ...overrides,
  });
  if (res.status !== 201) throw new Error(`order registration failed: ${res.status} ${JSON.stringify(res.body)}`);
  return orderId;
}

let eventCounter = 0;
/** A Grab courier status for PUT /api/delivery/status (a RESCHEDULED one carries its new date). */
export function courierEvent(orderId: string, status: string, extra: Record<string, unknown> = {}) {
  return {
    eventId: `grab-${orderId}-${status}-${++eventCounter}`,
    orderId,
    trackingId: `GRB-${orderId}`,
    carrierCode: 'GRAB',
    status,
    occurredAt: new Date().toISOString(),
    ...(status === 'RESCHEDULED' ? { rescheduledFor: new Date(Date.now() + 86_400_000).toISOString() } : {}),
    ...extra,
  };
}

export function shipEvent(orderId: string, eventType: string, overrides: Record<string, unknown> = {}) {
  return {
    eventId: `evt-${orderId}-${eventType}-${++eventCounter}`,
    orderId,
    shipFromLocationId: 'STORE-007',
    eventType,
    occurredAt: new Date().toISOString(),
    ...(eventType === 'shipped'
      ? { tracking: { trackingId: `GRB-${orderId}`, carrierCode: 'GRAB', estimatedDelivery: new Date(Date.now() + 3600_000).toISOString() } }
      : {}),
    ...overrides,
  };
}
