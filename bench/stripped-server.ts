import { once } from 'node:events';
import { createServer } from 'node:http';
import { loadConfig } from '../src/config.js';
import { inboundEventJobId } from '../src/queues/inbound-events.queue.js';
import { buildHubDeps } from '../src/runtime.js';
import { answer, insertEvent, readBody, stopOn } from './reference-common.js';

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

const server = createServer((req, res) => {
  if (req.method === 'GET') return answer(res, 200, { status: 'ok' });
  readBody(req)
    .then(async (raw) => {
      const event = await insertEvent(sql, raw);
      await queue.add('ship-event', { eventId: event.eventId }, { jobId: inboundEventJobId(event.eventId) });
      answer(res, 202, { eventId: event.eventId, state: 'queued' });
    })
    .catch((err: unknown) => answer(res, 503, { error: { code: 'unavailable', message: (err as Error).message } }));
});
server.keepAliveTimeout = 60_000;
server.listen(config.port, '127.0.0.1');
await once(server, 'listening');

stopOn(['SIGTERM', 'SIGINT'], () => deps.close(), server);
