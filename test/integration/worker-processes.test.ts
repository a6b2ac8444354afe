import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { expectSequentialHistory } from '../helpers/history-checks.js';
import { eventually, registerOrder, shipEvent, startExtraWeb, startTestHub, type TestHub } from '../helpers/test-hub.js';

let hub: TestHub | undefined;
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

function shuffle<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

async function eventStates(h: TestHub) {
  return h.web.db.execute<{ state: string; n: number }>(sql`select state, count(*)::int as n from inbound_events group by state`);
}

async function allProcessed(h: TestHub, total: number) {
  const rows = await eventStates(h);
  const queued = rows.find((r) => r.state === 'queued')?.n ?? 0;
  const all = rows.reduce((s, r) => s + r.n, 0);
  return all === total && queued === 0 ? rows : undefined;
}

describe('worker processes', () => {
  it('200 events over 20 orders, sent concurrently with duplicates, handled by two worker processes', async () => {
    hub = await startTestHub({ inProcessWorkers: false });
    await Promise.all([hub.spawnWorker(), hub.spawnWorker()]);
    const orders = await Promise.all(Array.from({ length: 20 }, () => registerOrder(hub!)));
    const events = orders.flatMap((o) => ['picking', 'picked', 'packing', 'packed', 'shipped'].map((t) => shipEvent(o, t)));
    // Every event twice: 200 requests in random order, all in flight at once.
    const answers = await Promise.all(shuffle([...events, ...events]).map((e) => hub!.clients.slick.post('/api/fulfillment/ship-events', e)));
    expect(answers.every((a) => a.status === 202)).toBe(true);
    expect(answers.filter((a) => a.body.duplicate === true)).toHaveLength(100);

    await eventually(() => allProcessed(hub!, 100), 'all events processed', 30_000);
    await eventually(
      async () => {
        const rows = await hub!.web.db.execute<{ n: number }>(
          sql`select count(*)::int as n from orders o join order_calls c on c.order_id = o.order_id and c.kind = 'slick.ship-confirmation' where o.status = 7000 and c.state = 'confirmed'`,
        );
        return rows[0]!.n === 20 ? true : undefined;
      },
      'all orders at 7000',
      30_000,
    );

    for (const orderId of orders) {
      const rows = await expectSequentialHistory(hub, orderId);
      expect(rows.at(-1)!.to).toBe(7000);
      expect(rows.map((r) => r.to).filter((s) => s !== 3600)).toEqual([3000, 3500, 3700, 7000]);
    }
    // One Slick confirmation per order, never two.
    const calls = hub.sims.slick.requests.filter((r) => r.path === '/api/fulfillment/ship-events');
    expect(calls).toHaveLength(20);
    expect(new Set(calls.map((c) => (c.body as { orderId: string }).orderId)).size).toBe(20);
    const states = await eventStates(hub);
    expect(states.find((r) => r.state === 'rejected')).toBeUndefined();
  });

  it('a worker killed with SIGKILL mid-stream: a new worker finishes, every event applied exactly once', async () => {
    hub = await startTestHub({ inProcessWorkers: false, env: { JOB_LOCK_MS: '1500', WORKER_CONCURRENCY: '4' } });
    const first = await hub.spawnWorker();
    const orders = await Promise.all(Array.from({ length: 30 }, () => registerOrder(hub!)));
    const perOrder = orders.map((o) => ['picking', 'picked', 'packing', 'packed'].map((t) => shipEvent(o, t)));
    // Each order's events in sequence, orders in parallel: a steady stream.
    const sending = Promise.all(
      perOrder.map(async (list) => {
        for (const e of list) expect((await hub!.clients.slick.post('/api/fulfillment/ship-events', e)).status).toBe(202);
      }),
    );
    await eventually(async () => {
      const rows = await eventStates(hub!);
      return (rows.find((r) => r.state === 'applied')?.n ?? 0) >= 10 ? true : undefined;
    }, 'some events applied');
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    await sending;
    await hub.spawnWorker();

    const states = await eventually(() => allProcessed(hub!, 120), 'all events processed after the restart', 30_000);
    // Each order's events were accepted one after another, so they are applied in that order: none stale.
    expect(states).toEqual([{ state: 'applied', n: 120 }]);
    const outcomes = await hub.web.db.execute<{ event_id: string; own_rows: number }>(sql`
      select e.event_id,
        (select count(*)::int from status_history h where h.event_id = e.event_id and not h.implied) as own_rows
      from inbound_events e`);
    for (const o of outcomes) expect(o.own_rows, o.event_id).toBe(1);
    for (const orderId of orders) {
      const rows = await expectSequentialHistory(hub, orderId);
      expect(rows.map((r) => [r.to, r.subStep, r.implied])).toEqual([
        [3000, null, false],
        [3500, null, false],
        [3600, null, false],
        [3600, 'packing', false],
        [3700, null, false],
      ]);
    }
  });

  it("a backlog of one order's events is applied in the order received, whatever order the jobs run in", async () => {
    hub = await startTestHub({ inProcessWorkers: false, env: { WORKER_CONCURRENCY: '8' } });
    const orders = await Promise.all(Array.from({ length: 6 }, () => registerOrder(hub!)));
    await Promise.all(
      orders.map(async (o) => {
        for (const t of ['picking', 'picked', 'packing', 'packed']) {
          expect((await hub!.clients.slick.post('/api/fulfillment/ship-events', shipEvent(o, t))).status).toBe(202);
        }
      }),
    );
    hub.startInProcessWorkers();
    const states = await eventually(() => allProcessed(hub!, 24), 'backlog processed');
    expect(states).toEqual([{ state: 'applied', n: 24 }]);
    for (const orderId of orders) {
      const rows = await expectSequentialHistory(hub, orderId);
      expect(rows.every((r) => !r.implied)).toBe(true);
      expect(rows.map((r) => r.to)).toEqual([3000, 3500, 3600, 3600, 3700]);
    }
  });

  it('Redis emptied after events were accepted: the sweeper re-creates the jobs and all get applied', async () => {
    // The sweeper starts only after Redis was emptied, so the emptiness below is not a race with it.
    hub = await startTestHub({ inProcessWorkers: false, scheduler: false, env: { SWEEP_AFTER_MS: '200', SWEEP_INTERVAL_MS: '100' } });
    const orders = await Promise.all(Array.from({ length: 10 }, () => registerOrder(hub!)));
    const events = orders.flatMap((o) => ['picking', 'packed'].map((t) => shipEvent(o, t)));
    for (const e of events) expect((await hub.clients.slick.post('/api/fulfillment/ship-events', e)).status).toBe(202);
    // Nobody is working the queue: a partner that waits gets 202 (not yet done) at its deadline.
    const waited = await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orders[0]!, 'picked'), { prefer: 'wait=1' });
    expect(waited.status).toBe(202);
    expect(waited.body.state).toBe('queued');
    await hub.emptyRedis();
    expect(await hub.web.queues.inboundEvents.getJobCounts('waiting')).toEqual({ waiting: 0 });

    hub.startInProcessWorkers();
    hub.startScheduler();
    await eventually(() => allProcessed(hub!, 21), 'swept events processed', 20_000);
    for (const orderId of orders) {
      const o = (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body;
      expect(o.status).toBe(3700);
      await expectSequentialHistory(hub, orderId);
    }
    const metrics = await hub.worker.metrics.registry.getSingleMetricAsString('hub_events_swept_total');
    expect(metrics).toMatch(/kind="inbound-event"[^}]*} ([1-9]\d*)/);
  });
});

describe('Redis down at intake', () => {
  it('still answers 202 for a stored event, and the sweeper gets it applied once Redis is reachable', async () => {
    hub = await startTestHub({ env: { SWEEP_AFTER_MS: '200', SWEEP_INTERVAL_MS: '100' } });
    const orderId = await registerOrder(hub);
    // A second web process whose Redis does not answer, on the same database.
    const web = await startExtraWeb(hub, { REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      const event = shipEvent(orderId, 'picking');
      const res = await web.clients.slick.post('/api/fulfillment/ship-events', event);
      expect(res.status).toBe(202);
      expect((await web.clients.slick.get('/api/health/ready')).status).toBe(503);
      const applied = await eventually(async () => {
        const e = (await hub!.clients.slick.get(`/api/events/${event.eventId}`)).body;
        return e.state === 'applied' ? e : undefined;
      }, 'event applied after the sweep');
      expect(applied.orderStatus).toBe(3500);
    } finally {
      await web.close();
    }
  });
});
