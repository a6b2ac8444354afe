import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { connectDatabase, SESSION_SETTINGS } from '../../src/db/client.js';
import { BACKLOG_RETRY_AFTER_S } from '../../src/inbox/intake.js';
import { createDatabaseFromTemplate, dropDatabase } from '../helpers/test-database.js';
import { eventually, registerOrder, shipEvent, startExtraWeb, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * What keeps the hub's latency when partners outrun it: admission by backlog, partner calls on their
 * own budget, connections opened at start-up without JIT, and a relay woken by commits rather than a poll.
 */
// Large enough that a test sending one event at a time (each counted until the next reading of the queue) stays under it.
const MAX_BACKLOG = 20;
const PARTNER_CALL_CONCURRENCY = 2;
/** How long a new event waits at the door of a full backlog before it is refused. */
const ADMISSION_WAIT_MS = 5000;

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({
    inProcessWorkers: false,
    env: {
      INTAKE_MAX_BACKLOG: String(MAX_BACKLOG),
      INTAKE_ADMISSION_WAIT_MS: String(ADMISSION_WAIT_MS),
      PARTNER_CALL_CONCURRENCY: String(PARTNER_CALL_CONCURRENCY),
      // The relay's poll is ten minutes: anything published sooner was woken by the commit.
      OUTBOX_POLL_MS: '600000',
      SLICK_TIMEOUT_MS: '5000',
    },
  });
});
afterAll(async () => {
  await hub?.close();
});

const WAIT = { prefer: 'wait=10' };

async function eventState(eventId: string) {
  return hub.clients.viewer.get(`/api/events/${eventId}`);
}

describe('intake admission by backlog', () => {
  it('holds a new event at the door of a full queue, refuses it with 503 backlog_full and Retry-After if no room comes, stores none of them, and takes one that waits while the queue drains', async () => {
    // No worker runs: every accepted event waits in the queue.
    const accepted: string[] = [];
    let refused: { eventId: string; tookMs: number; res: { status: number; headers: Record<string, unknown>; body: any } } | undefined;
    for (let i = 0; i < 4 * MAX_BACKLOG && !refused; i++) {
      const orderId = await registerOrder(hub);
      const event = shipEvent(orderId, 'picking');
      const startedAt = performance.now();
      const res = await hub.clients.slick.post('/api/fulfillment/ship-events', event);
      if (res.status === 202) accepted.push(event.eventId);
      else refused = { eventId: event.eventId, tookMs: performance.now() - startedAt, res };
    }
    expect(refused, 'intake never refused an event').toBeDefined();
    expect(accepted.length).toBeGreaterThanOrEqual(MAX_BACKLOG);
    const { res } = refused!;
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe(String(BACKLOG_RETRY_AFTER_S));
    expect(res.body.error).toMatchObject({ code: 'backlog_full', details: { limit: MAX_BACKLOG } });
    expect(res.body.error.details.waiting).toBeGreaterThanOrEqual(MAX_BACKLOG);
    // Refused means not stored: the partner must send it again.
    expect((await eventState(refused!.eventId)).status).toBe(404);

    // It was held at the door before it was refused.
    expect(refused!.tookMs).toBeGreaterThanOrEqual(ADMISSION_WAIT_MS);

    // Answered later: an event that arrives while the queue is full waits, and is taken once workers make room.
    const waitingOrder = await registerOrder(hub);
    const waitingEvent = shipEvent(waitingOrder, 'picking');
    const answer = hub.clients.slick.post('/api/fulfillment/ship-events', waitingEvent);
    hub.startInProcessWorkers();
    const res2 = await answer;
    expect(res2.status, JSON.stringify(res2.body)).toBe(202);
    accepted.push(waitingEvent.eventId);
    for (const eventId of accepted) {
      await eventually(async () => (await eventState(eventId)).body.state === 'applied', `accepted event ${eventId} to be applied`);
    }
    // The same event, sent again once the queue drained, is taken.
    const again = await eventually(async () => {
      const orderId = await registerOrder(hub);
      const r = await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picking'), WAIT);
      return r.status === 200 ? r : undefined;
    }, 'intake to accept again');
    expect(again.body).toMatchObject({ state: 'applied', orderStatus: 3500 });
  });
});

describe('outbox relay', () => {
  it('publishes a change within moments of its commit, woken by NOTIFY, though its poll is ten minutes', async () => {
    const orderId = await registerOrder(hub);
    const res = await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picking'), WAIT);
    expect(res.status).toBe(200);
    const message = await eventually(
      async () => {
        const messages = await hub.topicMessages();
        return messages.find((m) => m.orderId === orderId && m.type === 'status.changed' && JSON.parse(m.payload!).to === 3500);
      },
      'the 3500 change on the topic',
      10_000,
    );
    expect(JSON.parse(message.payload!)).toMatchObject({ from: 3000, to: 3500 });
    // Marked published in the relay's transaction, which commits just after Redis took the messages.
    await eventually(
      async () => {
        const unpublished = await hub.web.pg`select count(*)::int as n from outbox where published_at is null`;
        return unpublished[0]!.n === 0;
      },
      'every outbox row marked published',
      10_000,
    );
  });
});

describe('partner calls on their own budget', () => {
  it('runs at most PARTNER_CALL_CONCURRENCY calls at once while inbound events keep being applied', async () => {
    hub.startInProcessWorkers();
    hub.sims.slick.setFailureMode({ hang: true, paths: '/api/fulfillment/ship-events' });
    const shippedOrders: string[] = [];
    for (let i = 0; i < PARTNER_CALL_CONCURRENCY + 2; i++) {
      const orderId = await registerOrder(hub);
      for (const type of ['picking', 'picked', 'packing', 'packed', 'shipped']) {
        const r = await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, type), WAIT);
        expect(r.status, JSON.stringify(r.body)).toBe(200);
      }
      shippedOrders.push(orderId);
    }
    const confirmations = () =>
      hub.sims.slick.requests.filter((r) => r.path === '/api/fulfillment/ship-events' && shippedOrders.includes((r.body as { orderId: string }).orderId));
    await eventually(async () => confirmations().length >= PARTNER_CALL_CONCURRENCY, 'the first confirmations to reach Slick');

    // Slick holds every call until its 5 s timeout; meanwhile other orders' events are applied at once.
    const other = await registerOrder(hub);
    for (const [type, status] of [
      ['picking', 3500],
      ['picked', 3600],
      ['packing', 3600],
      ['packed', 3700],
    ] as const) {
      const r = await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(other, type), WAIT);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ state: 'applied', orderStatus: status });
    }
    // The calls beyond the budget are still waiting for a slot, not at Slick.
    expect(confirmations()).toHaveLength(PARTNER_CALL_CONCURRENCY);
    const waiting = await hub.worker.queues.partnerCalls.getJobCounts('waiting', 'active');
    expect(waiting.active).toBe(PARTNER_CALL_CONCURRENCY);
    expect(waiting.waiting).toBeGreaterThanOrEqual(2);
  });
});

describe('hub connections', () => {
  it('run without JIT (and without sequential scans), so the catalogue lookup of a new connection is not compiled', async () => {
    const [settings] = await hub.web.pg`select current_setting('jit') as jit, current_setting('enable_seqscan') as seqscan`;
    expect(settings).toEqual({ jit: 'off', seqscan: 'off' });
    expect(SESSION_SETTINGS).toMatchObject({ jit: 'off' });

    // The statement postgres.js runs on every new connection to learn the array types.
    const typeLookup = `explain (format json) select b.oid, b.typarray from pg_catalog.pg_type a
      left join pg_catalog.pg_type b on b.oid = a.typelem where a.typcategory = 'A' group by b.oid, b.typarray order by b.oid`;
    const jitOf = (rows: Array<Record<string, unknown>>) => (rows[0]!['QUERY PLAN'] as Array<Record<string, unknown>>)[0]!.JIT;
    const onHub = await hub.web.pg.unsafe(typeLookup);
    expect(jitOf(onHub as never)).toBeUndefined();

    // The check can fail: with sequential scans off and JIT left on, Postgres would compile it.
    const [{ available }] = (await hub.web.pg`select pg_jit_available() as available`) as unknown as [{ available: boolean }];
    if (available) {
      const plain = postgres(hub.databaseUrl, { max: 1, onnotice: () => {}, connection: { enable_seqscan: 'off' } });
      try {
        expect(jitOf((await plain.unsafe(typeLookup)) as never)).toBeDefined();
      } finally {
        await plain.end();
      }
    }
  });

  it('openPool opens every connection of the pool at once', async () => {
    const name = `hub_pool_${process.pid}_${Date.now()}`;
    const url = await createDatabaseFromTemplate(name, inject('templateDatabase'));
    const handle = connectDatabase(url, { max: 4 });
    try {
      await handle.openPool();
      const admin = postgres(hub.databaseUrl, { max: 1, onnotice: () => {} });
      try {
        const [{ n }] = (await admin`select count(*)::int as n from pg_stat_activity where datname = ${name}`) as unknown as [{ n: number }];
        expect(n).toBe(4);
      } finally {
        await admin.end();
      }
    } finally {
      await handle.close();
      await dropDatabase(name);
    }
  });
});

describe('a Postgres too slow to store', () => {
  it('answers 503 store_timeout with Retry-After after INTAKE_STORE_DEADLINE_MS, never a 2xx before the commit; the same event sent again is taken once', async () => {
    hub.startInProcessWorkers();
    const STORE_DEADLINE_MS = 500;
    const web = await startExtraWeb(hub, { INTAKE_STORE_DEADLINE_MS: String(STORE_DEADLINE_MS) });
    const blocker = postgres(hub.databaseUrl, { max: 1, onnotice: () => {} });
    const orderId = await registerOrder(hub);
    const event = shipEvent(orderId, 'picking');
    try {
      // Inserts into the inbox wait behind this lock (reads do not), as behind a Postgres that cannot keep up.
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let locked!: () => void;
      const lockHeld = new Promise<void>((r) => (locked = r));
      const holding = blocker.begin(async (tx) => {
        await tx`lock table inbound_events in share mode`;
        locked();
        await released;
      });
      await lockHeld;
      const startedAt = performance.now();
      const res = await web.clients.slick.post('/api/fulfillment/ship-events', event);
      const tookMs = performance.now() - startedAt;
      release();
      await holding;
      expect(res.status, JSON.stringify(res.body)).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.body.error.code).toBe('store_timeout');
      expect(tookMs).toBeGreaterThanOrEqual(STORE_DEADLINE_MS);

      // The partner sends it again: taken (the late INSERT may have committed meanwhile: then it is a duplicate), applied once.
      const again = await web.clients.slick.post('/api/fulfillment/ship-events', event, { prefer: 'wait=10' });
      expect([200, 202]).toContain(again.status);
      const applied = await eventually(async () => {
        const e = (await hub.clients.viewer.get(`/api/events/${event.eventId}`)).body;
        return e.state === 'applied' ? e : undefined;
      }, 'the event applied');
      expect(applied.orderStatus).toBe(3500);
      const [{ n }] = (await hub.web.pg`select count(*)::int as n from status_history where order_id = ${orderId} and to_status = 3500`) as unknown as [
        { n: number },
      ];
      expect(n).toBe(1);
    } finally {
      await blocker.end();
      await web.close();
    }
  });
});
