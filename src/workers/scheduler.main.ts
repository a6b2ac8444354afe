import { loadConfigOrExit } from '../config.js';
import { buildHubDeps, checkDatabaseOrExit, stopOnSignals } from '../runtime.js';
import { startSchedulerTasks } from './scheduler-tasks.js';

/**
 * Composition root of the `scheduler` process: the outbox relay, the sweeper, the partners' health probe
 * and the incident watch (src/workers/scheduler-tasks.ts). One is enough; two are safe.
 */
const config = loadConfigOrExit();
await checkDatabaseOrExit(config, 'scheduler');
const deps = buildHubDeps(config, 'scheduler', { dbPoolSize: 4 });
const tasks = startSchedulerTasks(deps);

stopOnSignals(deps.logger, async () => {
  await tasks.stop();
  await deps.close();
});
deps.logger.info({ outboxPollMs: config.outboxPollMs, sweepIntervalMs: config.sweepIntervalMs }, 'scheduler started');
