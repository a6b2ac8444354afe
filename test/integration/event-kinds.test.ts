import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES } from '../../src/config.js';
import { EVENT_KINDS, eventKind, type EventKindName } from '../../src/event-kinds/index.js';
import { storeInboundEvents } from '../../src/inbox/event-store.js';
import { INBOUND_EVENT_JOB, inboundEventJobId } from '../../src/queues/inbound-events.queue.js';
import { sweepOnce } from '../../src/workers/event-sweeper.js';
import { eventually, registerOrder, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The registry of inbound event kinds is what the routes, the engine and the sweeper read: every kind
 * must have a route its partner can reach, a schema that refuses a bad body, rules, and a way back
 * from a lost job. A sample per kind is required by the type below, so a new kind without one does
 * not compile.
 */
const SAMPLES: { [K in EventKindName]: (orderId: string, eventId: string) => { body: Record<string, unknown>; type: string } } = {
  'ship-event': (orderId, eventId) => ({
    body: { eventId, orderId, shipFromLocationId: 'STORE-007', eventType: 'picking', occurredAt: new Date().toISOString() },
    type: 'picking',
  }),
  'courier-status': (orderId, eventId) => ({
    body: { eventId, orderId, trackingId: 'GRB-1', carrierCode: 'GRAB', status: 'SHIPPED', occurredAt: new Date().toISOString() },
    type: 'SHIPPED',
  }),
  'pmp-event': (orderId, eventId) => ({
    body: { eventId, orderId, partnerId: 'PTN-GRAB', type: 'delivery.delivered', occurredAt: new Date().toISOString() },
    type: 'delivery.delivered',
  }),
  'pmp-delivery-state': (orderId, eventId) => ({
    body: { eventId, orderId, partnerId: 'PTN-GRAB', status: 'DELIVERED', occurredAt: new Date().toISOString() },
    type: 'reconciled.DELIVERED',
  }),
};
const CLIENT_OF_ROLE = { 'partner:slick': 'slick', 'partner:grab': 'grab', 'partner:pmp': 'pmp', 'partner:mao': 'mao' } as const;

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ inProcessWorkers: false, scheduler: false, env: { SWEEP_AFTER_MS: '100' } });
});
afterAll(() => hub.close());

describe('the registry of inbound event kinds', () => {
  const kinds = Object.entries(EVENT_KINDS) as Array<[EventKindName, (typeof EVENT_KINDS)[EventKindName]]>;

  it('names each kind by its key, gives each a route for its partner only (or says what stores it), and rules', () => {
    expect(kinds.length).toBeGreaterThanOrEqual(4);
    const routes = new Set<string>();
    for (const [name, kind] of kinds) {
      expect(kind.name).toBe(name);
      expect(eventKind(name)).toBe(kind);
      expect(typeof kind.plan).toBe('function');
      if (kind.route) {
        expect(ROLES).toContain(kind.route.role);
        expect(kind.route.role).toBe(`partner:${kind.source}`);
        expect(kind.route.path).toMatch(/^\/api\//);
        routes.add(`${kind.route.method} ${kind.route.path}`);
      } else {
        expect(kind.storedBy?.length ?? 0, `${name} has no route and must say what stores it`).toBeGreaterThan(10);
      }
    }
    expect(routes.size).toBe(kinds.filter(([, k]) => k.route).length);
    expect(eventKind('no-such-kind')).toBeUndefined();
    expect(eventKind('toString')).toBeUndefined();
  });

  for (const [name, kind] of Object.entries(EVENT_KINDS) as Array<[EventKindName, (typeof EVENT_KINDS)[EventKindName]]>) {
    it(`${name}: its schema refuses a bad body and takes a good one; its route stores the event with kind and partner type; the sweeper brings back its lost job`, async () => {
      expect(kind.schema.safeParse({}).success).toBe(false);
      const orderId = await registerOrder(hub);
      const eventId = `registry-${name}-${Date.now()}`;
      const { body, type } = SAMPLES[name](orderId, eventId);
      const parsed = kind.schema.parse(body);
      expect(kind.partnerType(parsed as never)).toBe(type);

      if (kind.route) {
        const { method, path, role } = kind.route;
        const client = hub.clients[CLIENT_OF_ROLE[role as keyof typeof CLIENT_OF_ROLE]];
        const res = await client.send(method.toUpperCase() as 'POST' | 'PUT', path, body);
        expect(res.status, JSON.stringify(res.body)).toBe(202);
        // Another partner may not use this kind's route.
        const other = kind.source === 'slick' ? hub.clients.grab : hub.clients.slick;
        expect((await other.send(method.toUpperCase() as 'POST' | 'PUT', path, { ...body, eventId: `${eventId}-x` })).status).toBe(403);
      } else {
        // Stored by the hub itself, through the same store every route uses.
        const [stored] = await storeInboundEvents(hub.worker.pg, [
          { eventId, kind: name, source: kind.source, type, orderId, actor: 'system:test', payload: body },
        ]);
        expect(stored).toMatchObject({ duplicate: false });
      }

      const [row] = await hub.web.db.execute<{ kind: string; type: string; source: string }>(
        sql`select kind, type, source from inbound_events where event_id = ${eventId}`,
      );
      expect(row).toEqual({ kind: name, type, source: kind.source });

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
    const res = await hub.clients.slick.post('/api/fulfillment/ship-events', SAMPLES['ship-event'](orderId, eventId).body);
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
