import { once } from 'node:events';
import { loadConfig } from '../src/config.js';
import { applyInboundEvent } from '../src/inbox/inbox-engine.js';
import { buildHubDeps } from '../src/runtime.js';
import { insertEvent, serveReference } from './reference-common.js';

/**
 * Reference "naive": no queue. The HTTP handler stores the event with one INSERT and then runs the
 * hub's own `applyInboundEvent` inline, answering 200 with the outcome once it is committed. Like the
 * stripped reference it skips authentication, signatures and validation.
 * Postgres pool: NAIVE_DB_POOL (default 20) connections.
 */
const config = loadConfig();
const deps = buildHubDeps(config, 'web', { dbPoolSize: Number(process.env.NAIVE_DB_POOL ?? 20) });
if (deps.redis.status !== 'ready') await once(deps.redis, 'ready'); // the web connection has no offline queue
const sql = deps.database.sql;

await serveReference(
  config.port,
  async (raw) => {
    const event = await insertEvent(sql, raw);
    const outcome = await applyInboundEvent(deps, event.eventId);
    return [200, { eventId: event.eventId, outcome }];
  },
  () => deps.close(),
);
