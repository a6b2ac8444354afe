import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { loadConfigOrExit } from '../config.js';
import { EventOutcomeWaiters, eventOutcomeChannel } from '../inbox/event-outcomes.js';
import { PartnerEventIntake } from '../inbox/intake.js';
import { connectRedis } from '../queues/redis-connection.js';
import { buildHubDeps, checkDatabaseOrExit, stopOnSignals } from '../runtime.js';
import { createApp } from './app.js';
import { answerClientErrorsAsJson } from './error-handler.js';
import { StatusStream } from './status-stream.js';

/** Composition root of the `web` process: config → deps → app → listen → signals. */
const config = loadConfigOrExit();
await checkDatabaseOrExit(config, 'web');
const deps = buildHubDeps(config, 'web');
// Every connection of the pool opened now, before any work: no burst of new connections under load.
await deps.database.openPool();
if (config.usingDevelopmentClients) {
  deps.logger.warn('API_CLIENTS is not set: using the documented development clients (never in production)');
}
const subscriber = connectRedis(config.redisUrl, 'subscriber', 'hub-web-outcomes');
subscriber.on('error', (err: Error) => deps.logger.warn({ err: err.message }, 'redis subscriber error'));
const waiters = new EventOutcomeWaiters(subscriber, eventOutcomeChannel(config.redisPrefix));
await waiters.start();

const streamReader = connectRedis(config.redisUrl, 'subscriber', 'hub-web-status-stream');
streamReader.on('error', (err: Error) => deps.logger.warn({ err: err.message }, 'redis status stream reader error'));
// It reads the topic only while stream clients are connected (the first one starts it).
const statusStream = new StatusStream(streamReader, deps.redis, config.topicStream, deps.logger, deps.metrics);

// With INTAKE_APPLY=web it applies the events it stores itself (src/inbox/intake.ts).
const intake = new PartnerEventIntake(deps);
const server = createApp(deps, { waiters, statusStream, intake }).listen(config.port);
answerClientErrorsAsJson(server);
await once(server, 'listening');

stopOnSignals(deps.logger, async () => {
  // Stop intake first (in-flight requests finish; live streams are ended, their clients resume
  // elsewhere by Last-Event-ID), then release connections.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  await statusStream.stop();
  // Ended streams leave keep-alive sockets behind (a client reconnecting on one is refused now):
  // close the idle ones at once, and whatever is left after a short grace.
  server.closeIdleConnections();
  const grace = setTimeout(() => server.closeAllConnections(), 2000);
  grace.unref();
  await closed;
  clearTimeout(grace);
  server.closeAllConnections();
  // Events answered 202 may still be in hand: their outcomes commit before the pools close (a kill
  // here leaves them queued in Postgres for the sweeper).
  await intake.drained();
  subscriber.disconnect();
  await deps.close();
});
// Logged only once the signal handlers are in place, so whoever waits for it may stop us at once.
deps.logger.info({ port: (server.address() as AddressInfo).port }, 'web listening');
