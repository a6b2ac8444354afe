import { Worker } from 'bullmq';
import { loadConfig } from '../src/config.js';
import { InboxBatches } from '../src/inbox/inbox-batches.js';
import { INBOUND_EVENTS_QUEUE, type InboundEventJobData, type InboundEventJobName } from '../src/queues/inbound-events.queue.js';
import { connectRedis } from '../src/queues/redis-connection.js';
import { buildHubDeps } from '../src/runtime.js';
import { stopOn } from './reference-common.js';

/**
 * Reference "stripped" worker: one BullMQ worker on the inbound-events queue, with the hub's
 * concurrency, whose processor runs the hub's own transaction the way the hub's worker does
 * (`InboxBatches`: the events of concurrent jobs in one transaction; lock events + orders, ask the
 * machine, write orders, history, outbox and outcomes, commit). No partner-calls worker, no job-data
 * validation, no failure logging.
 */
const config = loadConfig();
const deps = buildHubDeps(config, 'worker');
const connection = connectRedis(config.redisUrl, 'worker', 'bench-stripped-worker');
const shipEvents = new InboxBatches(deps);
const worker = new Worker<InboundEventJobData, void, InboundEventJobName>(
  INBOUND_EVENTS_QUEUE,
  async (job) => {
    await shipEvents.apply({ eventId: job.data.eventId });
  },
  { connection, prefix: config.redisPrefix, concurrency: config.workerConcurrency },
);
worker.on('error', (err) => console.error('stripped worker error:', err.message));

stopOn(['SIGTERM', 'SIGINT'], async () => {
  await worker.close();
  connection.disconnect();
  await deps.close();
});
