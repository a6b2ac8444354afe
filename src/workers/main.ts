import { createServer } from 'node:http';
import { loadConfigOrExit } from '../config.js';
import { connectRedis } from '../queues/redis-connection.js';
import { buildHubDeps, checkDatabaseOrExit, stopOnSignals } from '../runtime.js';
import { startHubWorkers } from './hub-workers.js';

/** Composition root of a `worker` process. Scale by running more of them. */
const config = loadConfigOrExit();
await checkDatabaseOrExit(config, 'worker');
const deps = buildHubDeps(config, 'worker');
const connection = connectRedis(config.redisUrl, 'worker', 'hub-worker-queues');
connection.on('error', (err: Error) => deps.logger.warn({ err: err.message }, 'redis connection error'));
const workers = startHubWorkers(deps, connection);

// Workers keep their own metrics (event latency, transitions, partner calls); Prometheus scrapes each.
const metricsPort = config.workerMetricsPort;
const metricsServer = metricsPort !== undefined
  ? createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      deps.metrics.registry.metrics().then((text) => res.writeHead(200, { 'content-type': deps.metrics.registry.contentType }).end(text));
    }).listen(metricsPort)
  : undefined;

stopOnSignals(deps.logger, async () => {
  await workers.close();
  metricsServer?.close();
  connection.disconnect();
  await deps.close();
});
// Logged only once the signal handlers are in place, so whoever waits for it may stop us at once.
deps.logger.info({ concurrency: config.workerConcurrency, metricsPort: metricsPort ?? null }, 'worker started');
