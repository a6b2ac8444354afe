import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyInboundEvents } from '../../src/inbox/inbox-engine.js';
import { expectSequentialHistory } from '../helpers/history-checks.js';
import { courierEvent, eventually, registerOrder, shipEvent, startExtraWeb, startTestHub, type TestHub } from '../helpers/test-hub.js';

/** The courier's delivery status (SPEC §5.1) over signed HTTP, from a fulfilled order to 7500 and its branches. */
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(async () => {
  await hub?.close();
});
beforeEach(() => hub.sims.reset());

const PATH = '/api/delivery/status';
const WAIT = { prefer: 'wait=10' };

const send = (body: Record<string, unknown>, headers: Record<string, string> = WAIT) => hub.clients.grab.put(PATH, body, headers);
const order = async (orderId: string) => (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body;
const history = async (orderId: string) => (await hub.clients.viewer.get(`/api/orders/${orderId}/history`)).body.history as Array<Record<string, any>>;

/** An order taken through fulfillment to 7000 by Slick, as the courier finds it. */
async function fulfilledOrder(overrides: Record<string, unknown> = {}): Promise<string> {
  const orderId = await registerOrder(hub, overrides);
  for (const type of ['picking', 'packed', 'shipped']) {
    const res = await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, type), WAIT);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
  await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), `${orderId} at 7000`);
  return orderId;
}

async function expectApplied(body: Record<string, unknown>, orderStatus: number) {
  const res = await send(body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body).toMatchObject({ eventId: body.eventId, state: 'applied', orderStatus, source: 'grab', type: body.status });
  return res;
}

async function expectRejected(body: Record<string, unknown>, reason: string) {
  const res = await send(body);
  expect(res.status, JSON.stringify(res.body)).toBe(422);
  expect(res.body.error).toMatchObject({ code: reason, details: { state: 'rejected', reason } });
  return res;
}

function notificationsOf(orderId: string) {
  return hub.sims.notify.requests.filter((r) => (r.body as { orderId?: string }).orderId === orderId).map((r) => r.body as Record<string, unknown>);
}

async function topicOf(orderId: string, until: (messages: Array<Record<string, string>>) => boolean) {
  return eventually(async () => {
    const all = (await hub.topicMessages()).filter((m) => m.orderId === orderId);
    return until(all) ? all : undefined;
  }, `topic messages of ${orderId}`);
}

describe('courier status end to end', () => {
  it('takes an order 7000 → 7100 → 7200 → 7300 → 7500, records the delivery, notifies and publishes', async () => {
    const orderId = await fulfilledOrder();
    await expectApplied(courierEvent(orderId, 'SHIPPED', { location: { lat: 13.7, lng: 100.5 } }), 7100);
    await expectApplied(courierEvent(orderId, 'IN_TRANSIT'), 7200);
    await expectApplied(courierEvent(orderId, 'OUT_FOR_DELIVERY'), 7300);
    const delivered = courierEvent(orderId, 'DELIVERED', {
      location: { lat: 13.7563, lng: 100.5018 },
      proofOfDelivery: { receivedBy: 'Somchai', photoUrl: 'https://example.com/pod.jpg' },
    });
    await expectApplied(delivered, 7500);

    const o = await order(orderId);
    expect(o).toMatchObject({ status: 7500, statusName: 'Delivered', deliveryAttempts: 0 });
    expect(o.delivery).toMatchObject({
      courierStatus: 'DELIVERED',
      deliveredAt: delivered.occurredAt,
      location: { lat: 13.7563, lng: 100.5018 },
      locationAt: delivered.occurredAt,
      proofOfDelivery: { receivedBy: 'Somchai', photoUrl: 'https://example.com/pod.jpg' },
      lastFailure: null,
    });
    expect(o.delivery.estimatedDelivery).toEqual(o.tracking.estimatedDelivery);

    const rows = await expectSequentialHistory(hub, orderId);
    expect(rows.slice(-4).map((r) => [r.from, r.to, r.source, r.actor, r.implied])).toEqual([
      [7000, 7100, 'grab', 'grab', false],
      [7100, 7200, 'grab', 'grab', false],
      [7200, 7300, 'grab', 'grab', false],
      [7300, 7500, 'grab', 'grab', false],
    ]);
    expect(rows.at(-1)).toMatchObject({ eventId: delivered.eventId, occurredAt: delivered.occurredAt });

    // One notification per status the customer hears about, each with its template.
    const notes = await eventually(async () => (notificationsOf(orderId).length >= 4 ? notificationsOf(orderId) : undefined), 'notifications');
    expect(notes.map((b) => [b.status, b.template]).sort()).toEqual([
      [7000, 'order_shipped'],
      [7100, 'parcel_picked_up'],
      [7300, 'out_for_delivery'],
      [7500, 'delivered'],
    ]);

    const messages = await topicOf(orderId, (all) => all.filter((m) => m.type === 'delivery.updated').length >= 5);
    const updates = messages.filter((m) => m.type === 'delivery.updated').map((m) => JSON.parse(m.payload!));
    expect(updates.filter((p) => p.source === 'grab').map((p) => [p.courierStatus, p.status])).toEqual([
      ['SHIPPED', 7100],
      ['IN_TRANSIT', 7200],
      ['OUT_FOR_DELIVERY', 7300],
      ['DELIVERED', 7500],
    ]);
    // The courier's last one (PMP's assignment, a partner call's result, may come before or after it).
    expect(updates.filter((p) => p.source === 'grab').at(-1)).toMatchObject({ proofOfDelivery: { receivedBy: 'Somchai' }, trackingId: `GRB-${orderId}` });
    const changes = messages.filter((m) => m.type === 'status.changed').map((m) => JSON.parse(m.payload!).to);
    expect(changes.slice(-4)).toEqual([7100, 7200, 7300, 7500]);

    // The outcome shows the courier's own status as the type.
    const outcome = (await hub.clients.grab.get(`/api/events/${delivered.eventId}`)).body;
    expect(outcome).toMatchObject({ type: 'DELIVERED', state: 'applied', orderStatus: 7500, source: 'grab' });
  });

  it('answers 202 without Prefer, repeats a duplicate as the first, and refuses the same eventId with another body', async () => {
    const orderId = await fulfilledOrder();
    const event = courierEvent(orderId, 'SHIPPED');
    const first = await send(event, {});
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ eventId: event.eventId, state: 'applied' }); // stored and applied at once by the web
    await eventually(async () => ((await order(orderId)).status === 7100 ? true : undefined), 'order at 7100');
    const again = await send(event);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ state: 'applied', duplicate: true, orderStatus: 7100 });
    const conflict = await send({ ...event, status: 'IN_TRANSIT' });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBeDefined();
    expect((await history(orderId)).filter((r) => r.to === 7100)).toHaveLength(1);
    expect((await order(orderId)).status).toBe(7100);
  });

  it("rejects a tracking id or carrier that is not the order's, an order not yet fulfilled, and an unknown order", async () => {
    const orderId = await fulfilledOrder();
    await expectRejected(courierEvent(orderId, 'SHIPPED', { trackingId: 'GRB-SOMEONE-ELSE' }), 'tracking_mismatch');
    await expectRejected(courierEvent(orderId, 'SHIPPED', { carrierCode: 'LALAMOVE' }), 'tracking_mismatch');
    expect((await order(orderId)).status).toBe(7000);

    const notFulfilled = await registerOrder(hub);
    await expectRejected(courierEvent(notFulfilled, 'SHIPPED'), 'invalid_transition');
    expect((await order(notFulfilled)).status).toBe(3000);

    const unknown = courierEvent('SO-NOBODY-KNOWS', 'SHIPPED');
    const res = await expectRejected(unknown, 'unknown_order');
    expect(res.body.error.details.orderStatus).toBeNull();
  });

  it('skips forward with implied steps, and a late event is stale and gives its implied step its real time', async () => {
    const orderId = await fulfilledOrder();
    const pickedUpAt = new Date(Date.now() - 60_000).toISOString();
    await expectApplied(courierEvent(orderId, 'OUT_FOR_DELIVERY'), 7300);
    let rows = await expectSequentialHistory(hub, orderId);
    expect(rows.slice(-3).map((r) => [r.to, r.implied, r.occurredAt === null])).toEqual([
      [7100, true, true],
      [7200, true, true],
      [7300, false, false],
    ]);

    const late = courierEvent(orderId, 'SHIPPED', { occurredAt: pickedUpAt });
    const res = await send(late);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ state: 'ignored', reason: 'stale', orderStatus: 7300, type: 'SHIPPED' });
    rows = await history(orderId);
    expect(rows.find((r) => r.to === 7100)).toMatchObject({ implied: true, occurredAt: pickedUpAt, eventId: late.eventId });
    expect(rows.find((r) => r.to === 7200)).toMatchObject({ implied: true, occurredAt: null });
    expect((await order(orderId)).status).toBe(7300);
    // Implied steps are not announced to the customer; the step that was reported is.
    await eventually(async () => (notificationsOf(orderId).some((b) => b.status === 7300) ? true : undefined), '7300 notification');
    expect(notificationsOf(orderId).some((b) => b.status === 7100)).toBe(false);
  });

  it('a failed attempt, then a re-attempt delivered: attempts counted, the reason kept, 7300 notified once', async () => {
    const orderId = await fulfilledOrder();
    await expectApplied(courierEvent(orderId, 'OUT_FOR_DELIVERY'), 7300);
    const failed = courierEvent(orderId, 'FAILED', { failureReason: 'customer not at home' });
    await expectApplied(failed, 7400);
    let o = await order(orderId);
    expect(o.deliveryAttempts).toBe(1);
    expect(o.delivery.lastFailure).toEqual({ reason: 'customer not at home', occurredAt: failed.occurredAt });
    expect((await history(orderId)).at(-1)).toMatchObject({ from: 7300, to: 7400, reasonCode: 'delivery_failed', note: 'customer not at home' });

    await expectApplied(courierEvent(orderId, 'OUT_FOR_DELIVERY'), 7300);
    await expectApplied(courierEvent(orderId, 'DELIVERED', { proofOfDelivery: { receivedBy: 'neighbour' } }), 7500);
    o = await order(orderId);
    expect(o).toMatchObject({ status: 7500, deliveryAttempts: 1 });
    expect(o.delivery.lastFailure.reason).toBe('customer not at home');

    const rows = await history(orderId);
    expect(rows.slice(-4).map((r) => [r.from, r.to])).toEqual([
      [7200, 7300],
      [7300, 7400],
      [7400, 7300],
      [7300, 7500],
    ]);
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
    await eventually(async () => (notificationsOf(orderId).some((b) => b.status === 7500) ? true : undefined), '7500 notification');
    const statuses = notificationsOf(orderId).map((b) => b.status);
    expect(statuses.filter((s) => s === 7300)).toHaveLength(1);
    expect(statuses.filter((s) => s === 7400)).toHaveLength(1);
    expect(notificationsOf(orderId).find((b) => b.status === 7400)).toMatchObject({ template: 'delivery_failed' });
  });

  it('a report from before a failure that arrives after it is stale: no going back to 7300, and its implied step gets its time', async () => {
    const orderId = await fulfilledOrder();
    await expectApplied(courierEvent(orderId, 'IN_TRANSIT'), 7200);
    const outAt = new Date(Date.now() - 30_000).toISOString();
    // The failure is received first; it implies 7300.
    await expectApplied(courierEvent(orderId, 'FAILED', { failureReason: 'gate locked' }), 7400);
    const late = courierEvent(orderId, 'OUT_FOR_DELIVERY', { occurredAt: outAt });
    const res = await send(late);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ state: 'ignored', reason: 'stale', orderStatus: 7400 });
    const o = await order(orderId);
    expect(o).toMatchObject({ status: 7400, deliveryAttempts: 1 });
    const rows = await history(orderId);
    expect(rows.slice(-2).map((r) => [r.from, r.to, r.implied])).toEqual([
      [7200, 7300, true],
      [7300, 7400, false],
    ]);
    expect(rows.at(-2)).toMatchObject({ occurredAt: outAt, eventId: late.eventId });
    // A real re-attempt (after the failure) still goes back out.
    await expectApplied(courierEvent(orderId, 'OUT_FOR_DELIVERY'), 7300);
  });

  it('names a wrong tracking id as such at any delivery status, before asking whether the move is allowed', async () => {
    const orderId = await fulfilledOrder();
    await expectApplied(courierEvent(orderId, 'OUT_FOR_DELIVERY'), 7300);
    // RETURNED is not allowed from 7300 either; the wrong tracking is what the courier must hear about.
    await expectRejected(courierEvent(orderId, 'RETURNED', { trackingId: 'GRB-NOT-THIS-ONE' }), 'tracking_mismatch');
    await expectRejected(courierEvent(orderId, 'RETURNED'), 'invalid_transition');
  });

  it('rescheduled, failed again and returned: two attempts, a terminal 8500, and DELIVERED after it rejected', async () => {
    const orderId = await fulfilledOrder();
    await expectApplied(courierEvent(orderId, 'SHIPPED'), 7100);
    await expectApplied(courierEvent(orderId, 'OUT_FOR_DELIVERY'), 7300);
    await expectApplied(courierEvent(orderId, 'FAILED', { failureReason: 'address not found' }), 7400);
    const rescheduled = courierEvent(orderId, 'RESCHEDULED');
    await expectApplied(rescheduled, 7200);
    expect((await order(orderId)).delivery.rescheduledFor).toBe(rescheduled.rescheduledFor);
    await expectApplied(courierEvent(orderId, 'OUT_FOR_DELIVERY'), 7300);
    await expectApplied(courierEvent(orderId, 'FAILED', { failureReason: 'refused' }), 7400);
    const returned = courierEvent(orderId, 'RETURNED');
    await expectApplied(returned, 8500);

    const o = await order(orderId);
    expect(o).toMatchObject({ status: 8500, statusName: 'Returned', deliveryAttempts: 2 });
    expect(o.delivery).toMatchObject({ returnedAt: returned.occurredAt, lastFailure: { reason: 'refused' }, rescheduledFor: rescheduled.rescheduledFor });

    await expectRejected(courierEvent(orderId, 'DELIVERED'), 'invalid_transition');
    expect((await order(orderId)).status).toBe(8500);
    expect((await history(orderId)).at(-1)).toMatchObject({ from: 7400, to: 8500 });
  });

  it('guards the endpoint like every partner endpoint: role, signature, schema', async () => {
    const orderId = await fulfilledOrder();
    const body = courierEvent(orderId, 'SHIPPED');
    expect((await hub.clients.slick.put(PATH, body)).status).toBe(403);
    expect((await hub.clients.grab.put(PATH, body, { 'x-signature': 't=1,v1=00' })).status).toBe(401);
    const bad = await send({ ...body, status: 'TELEPORTED' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('validation_failed');
    expect((await send({ ...courierEvent(orderId, 'RESCHEDULED'), rescheduledFor: undefined })).status).toBe(400);
    expect((await send({ ...body, location: { lat: 200, lng: 0 } })).status).toBe(400);
    expect((await hub.clients.grab.post(PATH, body)).status).toBe(404);
    // Nothing of the refused calls was stored.
    const stored = await hub.web.db.execute<{ n: number }>(sql`select count(*)::int as n from inbound_events where order_id = ${orderId} and source = 'grab'`);
    expect(stored[0]!.n).toBe(0);
  });
});

describe('events of two kinds for one order', () => {
  it("are applied in one transaction, each by its own kind's rules, in the order received", async () => {
    const orderId = await fulfilledOrder();
    await hub.stopInProcessWorkers();
    // Sent through a web that leaves its events to the queue (no worker takes them now).
    const queueing = await startExtraWeb(hub, { INTAKE_APPLY: 'queue' });
    try {
      // A Slick event from the wrong store (only ship-event rules check the location), then Grab's pick-up.
      const slick = shipEvent(orderId, 'packed', { shipFromLocationId: 'STORE-001' });
      const grab = courierEvent(orderId, 'IN_TRANSIT');
      expect((await queueing.clients.slick.post('/api/fulfillment/ship-events', slick)).status).toBe(202);
      expect((await queueing.clients.grab.put(PATH, grab)).status).toBe(202);

      const results = await applyInboundEvents(hub.worker, [{ eventId: grab.eventId }]);
      expect(results.get(grab.eventId)).toEqual({ state: 'applied', reason: null, orderStatus: 7200 });
      const rows = await hub.web.db.execute<{ event_id: string; kind: string; type: string; state: string; reason: string | null; tx: string }>(
        sql`select event_id, kind, type, state, reason, xmin::text as tx from inbound_events where event_id in (${slick.eventId}, ${grab.eventId}) order by received_at`,
      );
      expect(rows.map((r) => [r.kind, r.type, r.state, r.reason])).toEqual([
        ['ship-event', 'packed', 'rejected', 'location_mismatch'],
        ['courier-status', 'IN_TRANSIT', 'applied', null],
      ]);
      expect(new Set(rows.map((r) => r.tx)).size).toBe(1);
      const last = (await history(orderId)).slice(-2);
      expect(last.map((r) => [r.to, r.implied, r.source])).toEqual([
        [7100, true, 'grab'],
        [7200, false, 'grab'],
      ]);
    } finally {
      await queueing.close();
      hub.startInProcessWorkers();
    }
  });
});
