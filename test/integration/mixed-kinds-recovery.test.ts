import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { expectSequentialHistory } from '../helpers/history-checks.js';
import { courierEvent, eventually, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * Slick and Grab events for the same orders, through the crashes and losses the inbox promises to
 * survive: every event of every kind applied exactly once, in order.
 */
let hub: TestHub | undefined;
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

const SHIP = '/api/fulfillment/ship-events';
const DELIVERY = '/api/delivery/status';

async function eventStates(h: TestHub) {
  return h.web.db.execute<{ kind: string; state: string; n: number }>(
    sql`select kind, state, count(*)::int as n from inbound_events group by kind, state order by kind, state`,
  );
}

/** Each event's own (not implied) history rows: exactly one per event that moved its order. */
async function ownRowsPerEvent(h: TestHub) {
  return h.web.db.execute<{ event_id: string; kind: string; own_rows: number }>(sql`
    select e.event_id, e.kind,
      (select count(*)::int from status_history s where s.event_id = e.event_id and not s.implied) as own_rows
    from inbound_events e`);
}

async function orderStatus(h: TestHub, orderId: string): Promise<number> {
  return (await h.clients.viewer.get(`/api/orders/${orderId}`)).body.status;
}

describe('Slick and Grab events for the same orders', () => {
  it('a worker killed with SIGKILL mid-stream: a new worker finishes, every event of both kinds applied exactly once', async () => {
    hub = await startTestHub({ inProcessWorkers: false, env: { JOB_LOCK_MS: '1500', WORKER_CONCURRENCY: '4' } });
    const h = hub;
    const first = await h.spawnWorker();
    const orders = await Promise.all(Array.from({ length: 12 }, () => registerOrder(h)));
    // Each order as its partners send it: Slick's events one after another, then (once Slick's
    // confirmation made it 7000) the courier's, one after another; orders in parallel.
    const flows = Promise.all(
      orders.map(async (orderId) => {
        for (const t of ['picking', 'picked', 'packing', 'packed', 'shipped'])
          expect((await h.clients.slick.post(SHIP, shipEvent(orderId, t))).status).toBe(202);
        await eventually(async () => ((await orderStatus(h, orderId)) === 7000 ? true : undefined), `${orderId} at 7000`, 60_000);
        for (const s of ['SHIPPED', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED'])
          expect((await h.clients.grab.put(DELIVERY, courierEvent(orderId, s))).status).toBe(202);
      }),
    );
    // Kill the worker once courier events are flowing too.
    await eventually(
      async () => {
        const rows = await eventStates(h);
        return rows.some((r) => r.kind === 'courier-status' && r.state === 'applied') ? true : undefined;
      },
      'courier events being applied',
      60_000,
    );
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    await h.spawnWorker();
    await flows;

    const total = orders.length * 9;
    const states = await eventually(
      async () => {
        const rows = await eventStates(h);
        return rows.reduce((s, r) => s + r.n, 0) === total && !rows.some((r) => r.state === 'queued') ? rows : undefined;
      },
      'every event processed',
      60_000,
    );
    expect(states.map((r) => [r.kind, r.state, r.n])).toEqual([
      ['courier-status', 'applied', orders.length * 4],
      ['ship-event', 'applied', orders.length * 5],
    ]);
    // A ship event `shipped` moves no status itself: its 7000 row is written by Slick's confirmation, under its id.
    for (const row of await ownRowsPerEvent(h)) expect(row.own_rows, `${row.kind} ${row.event_id}`).toBe(1);
    for (const orderId of orders) {
      const rows = await expectSequentialHistory(h, orderId);
      expect(rows.map((r) => [r.to, r.implied])).toEqual([
        [3000, false],
        [3500, false],
        [3600, false],
        [3600, false],
        [3700, false],
        [7000, false],
        [7100, false],
        [7200, false],
        [7300, false],
        [7500, false],
      ]);
    }
    // One Slick confirmation per order, however the crash fell.
    const confirmations = h.sims.slick.requests.filter((r) => r.path === SHIP && r.status === 200);
    expect(new Set(confirmations.map((c) => (c.body as { orderId: string }).orderId)).size).toBe(orders.length);
  });

  it('Redis emptied after both kinds were accepted: the sweeper re-creates every job and each event applies once', async () => {
    // The web leaves its events to the queue: the jobs Redis loses here are the queue's.
    hub = await startTestHub({ scheduler: false, env: { INTAKE_APPLY: 'queue', SWEEP_AFTER_MS: '200', SWEEP_INTERVAL_MS: '100' } });
    const h = hub;
    // Orders fulfilled (7000) with workers running, then nobody works the queue while partners send.
    const orders = await Promise.all(Array.from({ length: 6 }, () => registerOrder(h)));
    for (const orderId of orders) {
      for (const t of ['packed', 'shipped']) expect((await h.clients.slick.post(SHIP, shipEvent(orderId, t), { prefer: 'wait=10' })).status).toBe(200);
    }
    for (const orderId of orders) await eventually(async () => ((await orderStatus(h, orderId)) === 7000 ? true : undefined), `${orderId} at 7000`);
    await h.stopInProcessWorkers();

    const accepted: string[] = [];
    for (const orderId of orders) {
      // A late Slick event between two courier events of the same order: the order is in delivery by
      // then (7100), which ship-event rules refuse.
      const events: Array<[string, Record<string, unknown>, 'post' | 'put']> = [
        [DELIVERY, courierEvent(orderId, 'SHIPPED'), 'put'],
        [SHIP, shipEvent(orderId, 'packing'), 'post'],
        [DELIVERY, courierEvent(orderId, 'OUT_FOR_DELIVERY'), 'put'],
      ];
      for (const [path, body, method] of events) {
        const res = method === 'put' ? await h.clients.grab.put(path, body) : await h.clients.slick.post(path, body);
        expect(res.status).toBe(202);
        accepted.push(body.eventId as string);
      }
    }
    await h.emptyRedis();
    expect(await h.web.queues.inboundEvents.getJobCounts('waiting')).toEqual({ waiting: 0 });

    h.startInProcessWorkers();
    h.startScheduler();
    const outcomes = await eventually(
      async () => {
        const rows = await h.web.db.execute<{ event_id: string; kind: string; state: string; reason: string | null }>(
          sql`select event_id, kind, state, reason from inbound_events where event_id in ${accepted}`,
        );
        return rows.every((r) => r.state !== 'queued') ? rows : undefined;
      },
      'swept events processed',
      30_000,
    );
    const byId = new Map(outcomes.map((r) => [r.event_id, r]));
    for (let i = 0; i < accepted.length; i++) {
      const r = byId.get(accepted[i]!)!;
      if (i % 3 === 1) expect([r.kind, r.state, r.reason]).toEqual(['ship-event', 'rejected', 'invalid_transition']);
      else expect([r.kind, r.state]).toEqual(['courier-status', 'applied']);
    }
    for (const orderId of orders) {
      expect(await orderStatus(h, orderId)).toBe(7300);
      const rows = await expectSequentialHistory(h, orderId);
      expect(rows.slice(-3).map((r) => [r.to, r.implied])).toEqual([
        [7100, false],
        [7200, true],
        [7300, false],
      ]);
    }
    const swept = await h.worker.metrics.registry.getSingleMetricAsString('hub_events_swept_total');
    expect(swept).toMatch(/kind="inbound-event"[^}]*} ([1-9]\d*)/);
  });

  it('a worker killed with SIGKILL through the three tiers of COD orders: no partner call lost, no tier applied twice', async () => {
    hub = await startTestHub({ inProcessWorkers: false, env: { JOB_LOCK_MS: '1500', WORKER_CONCURRENCY: '4' } });
    const h = hub;
    const first = await h.spawnWorker();
    const orders = await Promise.all(Array.from({ length: 8 }, () => registerOrder(h, { paymentMethod: 'COD', codAmount: 450 })));
    const tiersOf = async (orderId: string) =>
      ((await h.clients.viewer.get(`/api/orders/${orderId}/tiers`)).body.tiers as Array<{ state: string }>).map((t) => t.state);
    const flows = Promise.all(
      orders.map(async (orderId) => {
        for (const t of ['packed', 'shipped']) expect((await h.clients.slick.post(SHIP, shipEvent(orderId, t))).status).toBe(202);
        await eventually(async () => ((await orderStatus(h, orderId)) === 7000 ? true : undefined), `${orderId} at 7000`, 60_000);
        const partnerId = await eventually(
          async () => (await h.clients.viewer.get(`/api/orders/${orderId}`)).body.partner?.partnerId as string | undefined,
          `${orderId} assigned`,
          60_000,
        );
        const pmp = (type: string, extra: Record<string, unknown> = {}) => ({
          eventId: `pmp-${orderId}-${type}`,
          orderId,
          partnerId,
          type,
          occurredAt: new Date().toISOString(),
          ...extra,
        });
        expect((await h.clients.pmp.post('/api/pmp/events', pmp('delivery.delivered'))).status).toBe(202);
        await eventually(async () => ((await orderStatus(h, orderId)) === 7500 ? true : undefined), `${orderId} at 7500`, 60_000);
        expect((await h.clients.pmp.post('/api/pmp/events', pmp('cod.collected', { amount: 450 }))).status).toBe(202);
      }),
    );
    await eventually(async () => (h.sims.mao.requests.length >= 2 ? true : undefined), 'MAO calls under way', 60_000);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    await h.spawnWorker();
    await flows;

    for (const orderId of orders)
      await eventually(async () => ((await tiersOf(orderId)).every((s) => s === 'done') ? true : undefined), `${orderId} tiers done`, 60_000);
    // Every call reached its partner (at least once: one cut by the kill may be made again) …
    for (const orderId of orders) {
      const about = (reqs: ReadonlyArray<{ path: string; body: unknown }>) =>
        reqs.filter((r) => r.path.includes(orderId) || (r.body as { orderId?: string })?.orderId === orderId);
      expect(about(h.sims.mao.requests).length, `${orderId} MAO`).toBeGreaterThanOrEqual(1);
      expect(about(h.sims.pmp.requests.filter((r) => r.path === '/api/assignments')).length, `${orderId} PMP`).toBeGreaterThanOrEqual(1);
      expect(
        about(h.sims.slick.requests.filter((r) => (r.body as { eventType?: string } | undefined)?.eventType === 'collected')).length,
        `${orderId} Slick collected`,
      ).toBeGreaterThanOrEqual(1);
    }
    // … and each tier was settled once: one `done` message per order and tier.
    const done = await h.web.db.execute<{ order_id: string; tier: number; n: number }>(sql`
      select order_id, (payload->>'tier')::int as tier, count(*)::int as n from outbox
      where type = 'tier.updated' and payload->>'state' = 'done' group by 1, 2`);
    expect(done).toHaveLength(orders.length * 3);
    for (const row of done) expect(row.n, `${row.order_id} tier ${row.tier}`).toBe(1);
  });
});
