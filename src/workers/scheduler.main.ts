import { loadConfigOrExit } from '../config.js';
import { buildHubDeps, checkDatabaseOrExit, stopOnSignals } from '../runtime.js';
import { startSchedulerTasks } from './scheduler-tasks.js';
import { startMetricsServerOrExit } from '../observability/metrics-server.js';
import { initialiseSchedulerSeries } from '../observability/role-series.js';
import { registerStageDurations } from '../observability/stage-durations.js';
import { registerStoreGauges } from '../observability/store-gauges.js';

/**
 * Composition root of the `scheduler` process: the outbox relay, the sweeper, the partners' health probe
 * and the incident watch (src/workers/scheduler-tasks.ts). One is enough; two are safe.
 */
const config = loadConfigOrExit();
await checkDatabaseOrExit(config, 'scheduler');
const deps = buildHubDeps(config, 'scheduler', { dbPoolSize: 4 });
// Every connection of the pool opened now, before any work: no burst of new connections under load.
await deps.database.openPool();
const tasks = startSchedulerTasks(deps);

// The scheduler alone exports what Postgres and Redis know (queues, dead letters, breakers, orders,
// deliveries, tiers, cases), so Prometheus never adds up copies of it; and its own counters.
initialiseSchedulerSeries(deps.metrics);
registerStoreGauges(deps, deps.metrics.registry);
registerStageDurations(deps, deps.metrics.registry);
const metricsServer = await startMetricsServerOrExit(deps.metrics.registry, config.schedulerMetricsPort, deps.logger);

stopOnSignals(deps.logger, async () => {
  await tasks.stop();
  await metricsServer.close();
  await deps.close();
});
deps.logger.info({ outboxPollMs: config.outboxPollMs, sweepIntervalMs: config.sweepIntervalMs, metricsPort: metricsServer.port }, 'scheduler started');
