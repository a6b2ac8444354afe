import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InboxBatches } from '../../src/inbox/inbox-batches.js';
import { applyInboundEvents } from '../../src/inbox/inbox-engine.js';
import { INBOX_BATCH } from '../../src/inbox/inbox-lock.js';
import { storeInboundEvents } from '../../src/inbox/event-store.js';
import { ConflictError, UnavailableError } from '../../src/errors.js';
import { PartnerEventIntake } from '../../src/inbox/intake.js';
import { expectSequentialHistory } from '../helpers/history-checks.js';
import { eventually, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * Group commit at intake (events of concurrent requests stored by one statement) and in the worker
 * (the events that a worker's jobs ask for while its transactions are busy are applied together). Nobody works the queue here; the test calls the worker's code itself, so which
 * events share a transaction is decided by the test, and read back from Postgres (`xmin` is the id of
 * the transaction that last wrote a row).
 */
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({ inProcessWorkers: false, scheduler: false });
});
afterAll(() => hub.close());

async function store(events: Array<ReturnType<typeof shipEvent>>) {
  for (const e of events) expect((await hub.clients.slick.post('/api/fulfillment/ship-events', e)).status).toBe(202);
}

async function writers(eventIds: string[]) {
  const rows = await hub.web.db.execute<{ event_id: string; state: string; tx: string }>(
    sql`select event_id, state, xmin::text as tx from inbound_events where event_id in ${eventIds}`,
  );
  return new Map(rows.map((r) => [r.event_id, r]));
}

describe('ship events applied together', () => {
  it("events of many orders asked for together commit in one transaction, each order's in the order received", async () => {
    const orders = await Promise.all(Array.from({ length: 5 }, () => registerOrder(hub)));
    const picking = orders.map((o) => shipEvent(o, 'picking'));
    const packed = orders.map((o) => shipEvent(o, 'packed'));
    await store([...picking, ...packed]);

    // Only the `packed` events are asked for; each brings its order's earlier `picking` with it.
    const results = await applyInboundEvents(
      hub.worker,
      packed.map((e) => ({ eventId: e.eventId })),
    );
    expect([...results.values()]).toEqual(packed.map(() => ({ state: 'applied', reason: null, orderStatus: 3700 })));

    const written = await writers([...picking, ...packed].map((e) => e.eventId));
    expect([...written.values()].every((r) => r.state === 'applied')).toBe(true);
    expect(new Set([...written.values()].map((r) => r.tx)).size).toBe(1);
    for (const orderId of orders) {
      const history = await expectSequentialHistory(hub, orderId);
      // picking really happened (not implied), then packed implied 3600.
      expect(history.map((h) => [h.to, h.implied])).toEqual([
        [3000, false],
        [3500, false],
        [3600, true],
        [3700, false],
      ]);
    }

    // One statement wrote the topic messages of all five orders, each order's in the order of its steps.
    const messages = await hub.web.db.execute<{ order_id: string; to: number; tx: string }>(
      sql`select order_id, (payload->>'to')::int as to, xmin::text as tx from outbox
          where order_id in ${orders} and type = 'status.changed' and (payload->>'to')::int > 3000 order by position`,
    );
    expect(new Set(messages.map((m) => m.tx))).toEqual(new Set([...written.values()].map((r) => r.tx)));
    for (const orderId of orders) expect(messages.filter((m) => m.order_id === orderId).map((m) => m.to)).toEqual([3500, 3600, 3700]);

    // Asked again (a job run twice): nothing happens a second time.
    const again = await applyInboundEvents(
      hub.worker,
      [...picking, ...packed].map((e) => ({ eventId: e.eventId })),
    );
    expect(new Set(again.values())).toEqual(new Set(['already_processed']));
    const unchanged = await writers([...picking, ...packed].map((e) => e.eventId));
    expect([...unchanged.values()].map((r) => r.tx)).toEqual([...written.values()].map((r) => r.tx));
  });

  it('a backlog longer than one transaction takes is applied in several, and the job asking gets its own outcome', async () => {
    const orderId = await registerOrder(hub);
    // INBOX_BATCH + 20 events of one order: the first moves it to 3500, the rest are repeats (stale).
    const backlog = Array.from({ length: INBOX_BATCH + 20 }, () => shipEvent(orderId, 'picking'));
    const stored = await storeInboundEvents(
      hub.worker.pg,
      backlog.map((e) => ({ eventId: e.eventId, kind: 'ship-event', source: 'slick', type: e.eventType, orderId, actor: 'slick', payload: e })),
    );
    expect(stored.every((r) => !(r instanceof Error) && !r.duplicate)).toBe(true);

    const last = backlog.at(-1)!.eventId;
    const results = await applyInboundEvents(hub.worker, [{ eventId: last }]);
    expect(results.get(last)).toEqual({ state: 'ignored', reason: 'stale', orderStatus: 3500 });
    const written = await writers(backlog.map((e) => e.eventId));
    expect([...written.values()].filter((r) => r.state === 'queued')).toEqual([]);
    expect(new Set([...written.values()].map((r) => r.tx)).size).toBe(2);
    expect(written.get(backlog[0]!.eventId)!.state).toBe('applied');
  });

  it('jobs that ask while a transaction is busy share the next one; a lone job goes straight in', async () => {
    const orders = await Promise.all(Array.from({ length: 6 }, () => registerOrder(hub)));
    const events = orders.map((o) => shipEvent(o, 'picking'));
    await store(events);

    const batches = new InboxBatches(hub.worker, 1);
    // The first request starts a transaction at once; the other five arrive while it runs.
    const results = await Promise.all(events.map((e) => batches.apply({ eventId: e.eventId })));
    expect(results).toEqual(events.map(() => ({ state: 'applied', reason: null, orderStatus: 3500 })));

    const written = await writers(events.map((e) => e.eventId));
    const first = written.get(events[0]!.eventId)!.tx;
    const rest = new Set(events.slice(1).map((e) => written.get(e.eventId)!.tx));
    expect(rest.size).toBe(1);
    expect(rest.has(first)).toBe(false);
  });

  it('an event that fails its transaction fails only its own job: the others are applied one by one', async () => {
    const orders = await Promise.all(Array.from({ length: 3 }, () => registerOrder(hub)));
    const good = orders.map((o) => shipEvent(o, 'picking'));
    await store(good);
    // A stored `shipped` event without tracking (intake refuses one now; an older version may have
    // stored it): planning it throws, which fails the whole shared transaction.
    const broken = shipEvent(orders[0]!, 'shipped');
    delete (broken as { tracking?: unknown }).tracking;
    await hub.web.db.execute(
      sql`insert into inbound_events (event_id, kind, source, type, order_id, actor, body_hash, payload)
          values (${`broken-${broken.eventId}`}, 'ship-event', 'slick', 'shipped', ${orders[1]}, 'slick', 'x', ${JSON.stringify({ ...broken, orderId: orders[1] })}::jsonb)`,
    );

    const batches = new InboxBatches(hub.worker, 1);
    const blocker = shipEvent(orders[2]!, 'picked');
    await store([blocker]);
    const asked = [blocker.eventId, ...good.map((e) => e.eventId), `broken-${broken.eventId}`];
    const settled = await Promise.allSettled(asked.map((eventId) => batches.apply({ eventId })));

    expect(settled.at(-1)!.status).toBe('rejected');
    expect(settled.slice(0, -1).every((s) => s.status === 'fulfilled')).toBe(true);
    const written = await writers(asked);
    expect(written.get(`broken-${broken.eventId}`)!.state).toBe('queued');
    expect(good.map((e) => written.get(e.eventId)!.state)).toEqual(['applied', 'applied', 'applied']);
    const order1 = (await hub.clients.viewer.get(`/api/orders/${orders[1]}`)).body;
    expect(order1.status).toBe(3500);
  });
});

describe('partner events stored together', () => {
  const event = (eventId: string, payload: Record<string, unknown> = { eventId, n: 1 }) => ({
    eventId,
    kind: 'ship-event',
    source: 'slick',
    type: 'picking',
    orderId: 'SO-STORED-TOGETHER',
    actor: 'slick',
    payload,
  });

  it('one statement stores new events in the order given, answers duplicates and conflicts each on its own', async () => {
    const id = (n: number) => `stored-together-${n}-${Date.now()}`;
    const [a, b, c] = [id(1), id(2), id(3)];
    const results = await storeInboundEvents(hub.worker.pg, [
      event(a),
      event(b),
      event(a), // the same event twice in one statement
      event(c),
      event(a, { eventId: a, n: 2 }), // same eventId, other body
    ]);
    expect(results.map((r) => (r instanceof Error ? r.constructor.name : r.duplicate))).toEqual([false, false, true, false, 'ConflictError']);
    const [ra, rb, ra2, rc] = results as Array<Exclude<(typeof results)[number], ConflictError>>;
    expect(ra2!.event.receivedAt).toEqual(ra!.event.receivedAt);
    expect(ra!.event.receivedAt.getTime()).toBeLessThanOrEqual(rb!.event.receivedAt.getTime());
    expect(rb!.event.receivedAt.getTime()).toBeLessThanOrEqual(rc!.event.receivedAt.getTime());

    const written = await writers([a, b, c]);
    expect([...written.values()].map((r) => r.state)).toEqual(['queued', 'queued', 'queued']);
    expect(new Set([...written.values()].map((r) => r.tx)).size).toBe(1);
    const order = await hub.web.db.execute<{ event_id: string }>(
      sql`select event_id from inbound_events where event_id in ${[a, b, c]} order by received_at, event_id`,
    );
    expect(order.map((r) => r.event_id)).toEqual([a, b, c]);

    // Sent again later: the stored rows come back as duplicates; another body is a conflict.
    const again = await storeInboundEvents(hub.worker.pg, [event(b), event(c, { eventId: c, n: 9 })]);
    expect(again[0]).toMatchObject({ duplicate: true, event: { eventId: b, state: 'queued', receivedAt: rb!.event.receivedAt } });
    expect(again[1]).toBeInstanceOf(ConflictError);
  });

  it('an event Postgres refuses fails only its own request, not the others stored with it', async () => {
    const intake = new PartnerEventIntake(hub.web);
    const run = Date.now();
    const id = (n: number) => `refused-together-${n}-${run}`;
    // The first two go straight in (one statement each); the last two arrive meanwhile and share one.
    // The third holds a U+0000, which jsonb refuses (HTTP intake answers 400 before it gets here).
    const answers = await Promise.allSettled([
      intake.store(event(id(1))),
      intake.store(event(id(2))),
      intake.store(event(id(3), { eventId: id(3), note: 'nul\u0000' })),
      intake.store(event(id(4))),
    ]);
    expect(answers.map((a) => a.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((answers[2] as PromiseRejectedResult).reason).toBeInstanceOf(UnavailableError);
    const written = await writers([1, 2, 3, 4].map(id));
    expect([...written.keys()].sort()).toEqual([id(1), id(2), id(4)].sort());
  });

  it('concurrent partner requests all get their own answer, and each stored event is enqueued once', async () => {
    const orderId = await registerOrder(hub);
    const events = ['picking', 'picked', 'packing', 'packed'].flatMap((t) => Array.from({ length: 5 }, () => shipEvent(orderId, t)));
    const answers = await Promise.all([...events, ...events.slice(0, 5)].map((e) => hub.clients.slick.post('/api/fulfillment/ship-events', e)));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202));
    expect(answers.filter((a) => a.body.duplicate === true)).toHaveLength(5);
    const jobs = await hub.web.queues.inboundEvents.getJobs(['waiting', 'prioritized', 'delayed', 'active']);
    const ours = jobs.filter((j) => events.some((e) => e.eventId === j.data.eventId));
    expect(ours.map((j) => j.data.eventId).sort()).toEqual(events.map((e) => e.eventId).sort());
  });
});

describe('what the inbox lock sees after waiting for it', () => {
  it('a transaction that changed an order and its owed calls while we waited is seen whole: a second shipped is stale', async () => {
    const orderId = await registerOrder(hub);
    const first = shipEvent(orderId, 'shipped');
    const second = shipEvent(orderId, 'shipped', { tracking: { trackingId: 'OTHER-1', carrierCode: 'GRAB' } });
    await store([first, second]);
    // A transaction of our own applies the first `shipped` as the engine would (lock the order, record
    // the tracking and the owed confirmation) and holds the lock while the engine takes the second.
    const holder = await hub.web.pg.reserve();
    try {
      await holder`begin`;
      await holder`select order_id from orders where order_id = ${orderId} for update`;
      await holder`update orders set tracking_id = 'FIRST-1', carrier_code = 'GRAB', version = version + 1 where order_id = ${orderId}`;
      await holder`insert into order_calls (order_id, kind, key, state, data) values (${orderId}, 'slick.ship-confirmation', '', 'pending', ${JSON.stringify({ orderId, shipEventId: first.eventId })}::jsonb)`;
      await holder`update inbound_events set state = 'applied', processed_at = now() where event_id = ${first.eventId}`;

      const applying = applyInboundEvents(hub.worker, [{ eventId: second.eventId }]);
      // Commit only once the engine is waiting for the order's lock.
      await eventually(async () => {
        const waiting = await hub.web.db.execute<{ n: number }>(sql`
          select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`);
        return waiting[0]!.n > 0 ? true : undefined;
      }, 'the engine to wait for the order lock');
      await holder`commit`;
      const results = await applying;
      expect(results.get(second.eventId)).toEqual({ state: 'ignored', reason: 'stale', orderStatus: 3000 });
    } finally {
      await holder`rollback`.catch(() => {});
      holder.release();
    }
    const order = (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body;
    expect(order.tracking.trackingId).toBe('FIRST-1');
    expect(order.slickConfirmation).toBe('pending');
  });
});
