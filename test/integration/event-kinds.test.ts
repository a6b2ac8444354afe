import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES } from '../../src/config.js';
import { EVENT_KINDS, eventKind, type EventKindName } from '../../src/event-kinds/index.js';
import { INBOUND_EVENT_JOB, inboundEventJobId } from '../../src/queues/inbound-events.queue.js';
import { sweepOnce } from '../../src/workers/event-sweeper.js';
import { eventually, registerOrder, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The registry of inbound event kinds is what the routes, the engine and the sweeper read: every kind
 * must have a route its partner can reach, a schema that refuses a bad body, rules, and a way back
 * from a lost job. A sample per kind is required by the type below, so a new kind without one does
 * not compile.
 */
const SAMPLES: { [K in EventKindName]: (orderId: string, eventId: string) => Record<string, unknown> } = {
  'ship-event': (orderId, eventId) => ({ eventId, orderId, shipFromLocationId: 'STORE-007', eventType: 'picking', occurredAt: new Date().toISOString() }),
  'courier-status': (orderId, eventId) => ({ eventId, orderId, trackingId: 'GRB-1', carrierCode: 'GRAB', status: 'SHIPPED', occurredAt: new Date().toISOString() }),
};
const CLIENT_OF_ROLE = { 'partner:slick': 'slick', 'partner:grab': 'grab', 'partner:pmp': 'pmp', 'partner:mao': 'mao' } as const;

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ inProcessWorkers: false, scheduler: false, env: { SWEEP_AFTER_MS: '100' } });
});
afterAll(() => hub.close());

describe('the registry of inbound event kinds', () => {
  const kinds = Object.entries(EVENT_KINDS) as Array<[EventKindName, (typeof EVENT_KINDS)[EventKindName]]>;

  it('names each kind by its key, gives each a partner role, a distinct route and rules', () => {
    expect(kinds.length).toBeGreaterThanOrEqual(2);
    const routes = new Set<string>();
    for (const [name, kind] of kinds) {
      expect(kind.name).toBe(name);
      expect(eventKind(name)).toBe(kind);
      expect(ROLES).toContain(kind.role);
      expect(kind.role).toBe(`partner:${kind.source}`);
      expect(kind.path).toMatch(/^\/api\//);
      routes.add(`${kind.method} ${kind.path}`);
      expect(typeof kind.plan).toBe('function');
    }
    expect(routes.size).toBe(kinds.length);
    expect(eventKind('no-such-kind')).toBeUndefined();
    expect(eventKind('toString')).toBeUndefined();
  });

  for (const [name, kind] of Object.entries(EVENT_KINDS) as Array<[EventKindName, (typeof EVENT_KINDS)[EventKindName]]>) {
    it(`${name}: its schema refuses a bad body and takes a good one; its route stores the event with kind and partner type; the sweeper brings back its lost job`, async () => {
      expect(kind.schema.safeParse({}).success).toBe(false);
      const orderId = await registerOrder(hub);
      const eventId = `registry-${name}-${Date.now()}`;
      const body = SAMPLES[name](orderId, eventId);
      const parsed = kind.schema.parse(body);
      expect(kind.partnerType(parsed as never)).toBe(body.eventType ?? body.status);

      const client = hub.clients[CLIENT_OF_ROLE[kind.role as keyof typeof CLIENT_OF_ROLE]];
      const res = await client.send(kind.method.toUpperCase() as 'POST' | 'PUT', kind.path, body);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      // Another partner may not use this kind's route.
      const other = kind.source === 'slick' ? hub.clients.grab : hub.clients.slick;
      expect((await other.send(kind.method.toUpperCase() as 'POST' | 'PUT', kind.path, { ...body, eventId: `${eventId}-x` })).status).toBe(403);

      const [row] = await hub.web.db.execute<{ kind: string; type: string; source: string }>(sql`select kind, type, source from inbound_events where event_id = ${eventId}`);
      expect(row).toEqual({ kind: name, type: kind.partnerType(parsed as never), source: kind.source });

      await hub.emptyRedis();
      expect(await hub.web.queues.inboundEvents.getJob(inboundEventJobId(eventId))).toBeUndefined();
      // The sweeper takes events queued for longer than SWEEP_AFTER_MS: look again until this one is.
      const job = await eventually(async () => {
        await sweepOnce(hub.worker);
        return hub.web.queues.inboundEvents.getJob(inboundEventJobId(eventId));
      }, 'the sweeper to re-create the job');
      expect(job?.name).toBe(INBOUND_EVENT_JOB);
      expect(job?.data).toEqual({ eventId });
    });
  }

  it('a job queued under the name jobs had before event kinds (ship-event) is still worked', async () => {
    const orderId = await registerOrder(hub);
    const eventId = `old-job-name-${Date.now()}`;
    const res = await hub.clients.slick.post('/api/fulfillment/ship-events', SAMPLES['ship-event'](orderId, eventId));
    expect(res.status).toBe(202);
    const jobId = inboundEventJobId(eventId);
    await (await hub.web.queues.inboundEvents.getJob(jobId))!.remove();
    await hub.web.queues.inboundEvents.add('ship-event', { eventId }, { jobId });
    hub.startInProcessWorkers();
    try {
      const outcome = await eventually(async () => {
        const e = (await hub.clients.viewer.get(`/api/events/${eventId}`)).body;
        return e.state !== 'queued' ? e : undefined;
      }, 'the old-named job applied');
      expect(outcome).toMatchObject({ state: 'applied', orderStatus: 3500, type: 'picking' });
    } finally {
      await hub.stopInProcessWorkers();
    }
  });
});
