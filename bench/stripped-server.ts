import { once } from 'node:events';
import { loadConfig } from '../src/config.js';
import { INBOUND_EVENT_JOB, inboundEventJobId } from '../src/queues/inbound-events.queue.js';
import { buildHubDeps } from '../src/runtime.js';
import { insertEvent, serveReference } from './reference-common.js';

/**
 * Reference "stripped" intake: no authentication, no signature, no validation, no idempotency
 * read-back. It stores the event with one INSERT and enqueues the same BullMQ job the hub's intake
 * enqueues (same queue, job name, job id and job options), then answers 202.
 */
const config = loadConfig();
const deps = buildHubDeps(config, 'web');
if (deps.redis.status !== 'ready') await once(deps.redis, 'ready'); // the web connection has no offline queue
const queue = deps.queues.inboundEvents;
const sql = deps.database.sql;

await serveReference(
  config.port,
  async (raw) => {
    const event = await insertEvent(sql, raw);
    await queue.add(INBOUND_EVENT_JOB, { eventId: event.eventId }, { jobId: inboundEventJobId(event.eventId) });
    return [202, { eventId: event.eventId, state: 'queued' }];
  },
  () => deps.close(),
);
