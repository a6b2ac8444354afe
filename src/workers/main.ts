import { loadConfigOrExit } from '../config.js';
import { connectRedis } from '../queues/redis-connection.js';
import { buildHubDeps, checkDatabaseOrExit, stopOnSignals } from '../runtime.js';
import { startHubWorkers } from './hub-workers.js';
import { startMetricsServerOrExit } from '../observability/metrics-server.js';
import { initialiseWorkerSeries } from '../observability/role-series.js';

/** Composition root of a `worker` process. Scale by running more of them. */
const config = loadConfigOrExit();
await checkDatabaseOrExit(config, 'worker');
const deps = buildHubDeps(config, 'worker');
// Every connection of the pool opened now, before any work: no burst of new connections under load.
await deps.database.openPool();
const connection = connectRedis(config.redisUrl, 'worker', 'hub-worker-queues');
connection.on('error', (err: Error) => deps.logger.warn({ err: err.message }, 'redis connection error'));
const workers = startHubWorkers(deps, connection);

// Each worker serves its own metrics (event latency, transitions, partner calls); Prometheus scrapes each.
initialiseWorkerSeries(deps.metrics);
const metricsServer = await startMetricsServerOrExit(deps.metrics.registry, config.workerMetricsPort, deps.logger);

stopOnSignals(deps.logger, async () => {
  await workers.close();
  await metricsServer.close();
  connection.disconnect();
  await deps.close();
});
// Logged only once the signal handlers are in place, so whoever waits for it may stop us at once.
deps.logger.info({ concurrency: config.workerConcurrency, metricsPort: metricsServer.port }, 'worker started');
