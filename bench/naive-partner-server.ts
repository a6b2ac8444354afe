import { once } from 'node:events';
import { loadConfig } from '../src/config.js';
import { ALL_EVENT_KINDS } from '../src/event-kinds/index.js';
import { applyInboundEvent } from '../src/inbox/inbox-engine.js';
import { registerOrder } from '../src/orders/order-registration.js';
import { connectRedis } from '../src/queues/redis-connection.js';
import { buildHubDeps } from '../src/runtime.js';
import { startHubWorkers } from '../src/workers/hub-workers.js';
import { startSchedulerTasks } from '../src/workers/scheduler-tasks.js';
import { insertEventOfKind, serveReference } from './reference-common.js';

/**
 * Reference "naive" for the partner scenario: every partner endpoint in one process, no inbound
 * queue. MAO's registration and each partner event (ship event, courier status, PMP event) are
 * stored with one INSERT and applied by the hub's own `applyInboundEvent` inside the request, which
 * is answered once the change is committed. The partner calls the changes owe (Slick's confirmation,
 * PMP's assignment, MAO's status, notifications, Slick's COD) are made as the hub makes them, by its
 * outbox relay and partner-call jobs, run in this same process. No authentication, signatures or
 * validation beyond what applying needs.
 */
const config = loadConfig();
const deps = buildHubDeps(config, 'web', { dbPoolSize: Number(process.env.NAIVE_DB_POOL ?? 20) });
if (deps.redis.status !== 'ready') await once(deps.redis, 'ready'); // the web connection has no offline queue
await deps.database.openPool();
const workerConnection = connectRedis(config.redisUrl, 'worker', 'naive-partner-calls');
const workers = startHubWorkers(deps, workerConnection);
const tasks = startSchedulerTasks(deps);

const kindByRoute = new Map<string, (typeof ALL_EVENT_KINDS)[number]>(
  ALL_EVENT_KINDS.flatMap((k) => (k.route ? [[`${k.route.method.toUpperCase()} ${k.route.path}`, k] as const] : [])),
);

await serveReference(
  config.port,
  async (raw, req) => {
    const route = `${req.method} ${req.url}`;
    if (route === 'POST /api/orders') {
      const { order } = await registerOrder(deps.db, JSON.parse(raw), { clientId: 'mao', source: 'mao' });
      return [201, { orderId: order.orderId, status: order.status }];
    }
    const kind = kindByRoute.get(route);
    if (!kind) return [404, { error: { code: 'not_found', message: route } }];
    const body = JSON.parse(raw) as Record<string, unknown> & { eventId: string; orderId: string };
    await insertEventOfKind(deps.pg, {
      kind: kind.name,
      source: kind.source,
      type: kind.partnerType(body as never),
      raw,
      eventId: body.eventId,
      orderId: body.orderId,
    });
    const outcome = await applyInboundEvent(deps, body.eventId);
    return [200, { eventId: body.eventId, outcome }];
  },
  async () => {
    await tasks.stop();
    await workers.close();
    workerConnection.disconnect();
    await deps.close();
  },
);
