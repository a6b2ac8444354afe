import { Worker } from 'bullmq';
import { loadConfig } from '../src/config.js';
import { applyShipEvent } from '../src/orders/ship-events.js';
import { INBOUND_EVENTS_QUEUE, type InboundEventJobData, type InboundEventJobName } from '../src/queues/inbound-events.queue.js';
import { connectRedis } from '../src/queues/redis-connection.js';
import { buildHubDeps } from '../src/runtime.js';
import { stopOn } from './reference-common.js';

/**
 * Reference "stripped" worker: one BullMQ worker on the inbound-events queue, with the hub's
 * concurrency, whose processor is the hub's own `applyShipEvent` (lock event + order, ask the machine,
 * update the order, insert history and outbox, mark the event, commit; then the outcome PUBLISH).
 * No partner-calls worker, no job-data validation, no failure logging.
 */
const config = loadConfig();
const deps = buildHubDeps(config, 'worker');
const connection = connectRedis(config.redisUrl, 'worker', 'bench-stripped-worker');
const worker = new Worker<InboundEventJobData, void, InboundEventJobName>(
  INBOUND_EVENTS_QUEUE,
  async (job) => {
    await applyShipEvent(deps, job.data.eventId);
  },
  { connection, prefix: config.redisPrefix, concurrency: config.workerConcurrency },
);
worker.on('error', (err) => console.error('stripped worker error:', err.message));

stopOn(['SIGTERM', 'SIGINT'], async () => {
  await worker.close();
  connection.disconnect();
  await deps.close();
});
