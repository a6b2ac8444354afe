import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureOrderCallJob, orderCallJobId } from '../../src/partner-calls/schedule.js';
import { eventually, registerOrder, shipEvent, startTestHub, SLICK_TOKEN, type TestHub } from '../helpers/test-hub.js';

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(async () => {
  await hub?.close();
});
beforeEach(() => hub.sims.reset());

const WAIT = { prefer: 'wait=10' };

async function send(event: Record<string, unknown>, headers: Record<string, string> = WAIT) {
  return hub.clients.slick.post('/api/fulfillment/ship-events', event, headers);
}
async function order(orderId: string) {
  return (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body;
}
async function history(orderId: string) {
  return (await hub.clients.viewer.get(`/api/orders/${orderId}/history`)).body.history as Array<Record<string, any>>;
}

describe('ship events end to end', () => {
  it('moves an order 3000 → 3500 → 3600 → 3700 → 7000 with one Slick call and topic messages', async () => {
    const orderId = await registerOrder(hub);
    for (const [type, status] of [
      ['picking', 3500],
      ['picked', 3600],
      ['packing', 3600],
      ['packed', 3700],
    ] as const) {
      const res = await send(shipEvent(orderId, type));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ state: 'applied', orderStatus: status });
    }
    expect((await order(orderId)).subStep).toBeNull();

    const shipped = shipEvent(orderId, 'shipped');
    const res = await send(shipped);
    expect(res.status).toBe(200);
    expect(res.body.state).toBe('applied');

    const done = await eventually(async () => {
      const o = await order(orderId);
      return o.status === 7000 && o.slickConfirmation === 'confirmed' ? o : undefined;
    }, 'order to reach 7000');
    expect(done.tracking).toMatchObject({ trackingId: `GRB-${orderId}`, carrierCode: 'GRAB' });

    // Exactly one call to Slick, with the SPEC §4.2 payload and the token.
    const calls = hub.sims.slick.requests.filter((r) => r.path === '/api/fulfillment/ship-events');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers.authorization).toBe(`Bearer ${SLICK_TOKEN}`);
    expect(calls[0]!.body).toEqual({
      orderId,
      shipFromLocationId: 'STORE-007',
      eventType: 'shipped',
      timestamp: shipped.occurredAt,
      tracking: shipped.tracking,
    });

    const rows = await history(orderId);
    expect(rows.map((r) => [r.from, r.to, r.subStep, r.implied])).toEqual([
      [null, 3000, null, false],
      [3000, 3500, null, false],
      [3500, 3600, null, false],
      [3600, 3600, 'packing', false],
      [3600, 3700, null, false],
      [3700, 7000, null, false],
    ]);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rows.at(-1)).toMatchObject({ source: 'slick', actor: 'slick', eventId: shipped.eventId });

    const messages = await eventually(async () => {
      const all = (await hub.topicMessages()).filter((m) => m.orderId === orderId);
      return all.filter((m) => m.type === 'status.changed').length >= 6 ? all : undefined;
    }, 'topic messages');
    const changes = messages.filter((m) => m.type === 'status.changed').map((m) => JSON.parse(m.payload!).to);
    expect(changes).toEqual([3000, 3500, 3600, 3600, 3700, 7000]);
    expect(new Set(messages.map((m) => m.id)).size).toBe(messages.length);
    for (const m of messages) expect(Object.keys(m).sort()).toEqual(['id', 'occurredAt', 'orderId', 'payload', 'type']);
  });

  it("Slick's confirmation carries the event's time and sender; one owed before they were carried reads them from the event", async () => {
    // The new way: the call's job says when the event happened and who sent it.
    const carried = await registerOrder(hub);
    const carriedShip = shipEvent(carried, 'shipped');
    expect((await send(carriedShip)).body.state).toBe('applied');
    const [record] = await hub.web.db.execute<{ data: Record<string, unknown> }>(
      sql`select data from order_calls where order_id = ${carried} and kind = 'slick.ship-confirmation'`,
    );
    expect(record!.data).toEqual({ orderId: carried, shipEventId: carriedShip.eventId, occurredAt: carriedShip.occurredAt, actor: 'slick' });

    // A call owed by an earlier release: its job and record hold only the order and the event's id.
    await hub.stopInProcessWorkers();
    try {
      const earlier = await registerOrder(hub);
      const earlierShip = shipEvent(earlier, 'shipped');
      expect((await send(earlierShip, {})).body.state).toBe('applied');
      const call = { kind: 'slick.ship-confirmation' as const, orderId: earlier, key: '' };
      const oldData = { orderId: earlier, shipEventId: earlierShip.eventId };
      await (await hub.web.queues.partnerCalls.getJob(orderCallJobId(call)))!.remove();
      await hub.web.db.execute(sql`update order_calls set data = ${JSON.stringify(oldData)}::jsonb where order_id = ${earlier} and kind = ${call.kind}`);
      // Another sender on the stored event, so the 7000 move's actor shows where it was read from.
      await hub.web.db.execute(sql`update inbound_events set actor = 'slick-store-7' where event_id = ${earlierShip.eventId}`);
      expect(await ensureOrderCallJob(hub.web, { ...call, data: oldData })).toBe(true);
      hub.startInProcessWorkers();
      await eventually(async () => ((await order(earlier)).status === 7000 ? true : undefined), 'the earlier call to reach 7000');
      const sent = hub.sims.slick.requests.filter((r) => r.path === '/api/fulfillment/ship-events' && (r.body as { orderId: string }).orderId === earlier);
      expect(sent.map((r) => (r.body as { timestamp: string }).timestamp)).toEqual([earlierShip.occurredAt]);
      expect((await history(earlier)).at(-1)).toMatchObject({ to: 7000, actor: 'slick-store-7', eventId: earlierShip.eventId });
    } finally {
      hub.startInProcessWorkers();
    }
  });

  it('answers 202 without Prefer, in the state committed (the web stores and applies it at once), and GET /api/events shows the outcome', async () => {
    const orderId = await registerOrder(hub);
    const event = shipEvent(orderId, 'picking');
    const res = await send(event, {});
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ eventId: event.eventId, state: 'applied' });
    const outcome = await eventually(async () => {
      const r = await hub.clients.slick.get(`/api/events/${encodeURIComponent(event.eventId)}`);
      return r.body.state === 'applied' ? r.body : undefined;
    }, 'event applied');
    expect(outcome).toMatchObject({ eventId: event.eventId, orderId, source: 'slick', type: 'picking', reason: null, orderStatus: 3500 });
    expect(Date.parse(outcome.processedAt)).toBeGreaterThanOrEqual(Date.parse(outcome.receivedAt));
    // Another partner cannot read Slick's events.
    expect((await hub.clients.grab.get(`/api/events/${encodeURIComponent(event.eventId)}`)).status).toBe(404);
  });

  it('accepts the eventId as Idempotency-Key, and refuses a key that differs from the body', async () => {
    const orderId = await registerOrder(hub);
    const { eventId, ...rest } = shipEvent(orderId, 'picking');
    const ok = await send(rest, { ...WAIT, 'idempotency-key': eventId });
    expect(ok.status).toBe(200);
    expect(ok.body.eventId).toBe(eventId);
    const bad = await send({ ...rest, eventId: 'other' }, { 'idempotency-key': eventId });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('idempotency_key_mismatch');
  });

  it('answers a duplicate like the first, applies it once, and refuses a conflicting duplicate with 409', async () => {
    const orderId = await registerOrder(hub);
    const event = shipEvent(orderId, 'picking');
    const first = await send(event);
    const again = await send({ ...event });
    expect(first.body).toMatchObject({ state: 'applied', orderStatus: 3500 });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ eventId: event.eventId, state: 'applied', duplicate: true });
    const reordered = Object.fromEntries(Object.entries(event).reverse());
    expect((await send(reordered)).body.duplicate).toBe(true);

    const conflict = await send({ ...event, occurredAt: new Date(Date.now() - 1000).toISOString() });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBe('idempotency_conflict');

    const rows = await history(orderId);
    expect(rows.filter((r) => r.to === 3500)).toHaveLength(1);
    const events = (await hub.clients.viewer.get(`/api/orders/${orderId}/events`)).body.events;
    expect(events).toHaveLength(1);
  });

  it('applies an event ahead of the current step with implied steps, and fills in their time when late events arrive', async () => {
    const orderId = await registerOrder(hub);
    const packed = shipEvent(orderId, 'packed');
    expect((await send(packed)).body).toMatchObject({ state: 'applied', orderStatus: 3700 });
    let rows = await history(orderId);
    expect(rows.map((r) => [r.from, r.to, r.implied])).toEqual([
      [null, 3000, false],
      [3000, 3500, true],
      [3500, 3600, true],
      [3600, 3700, false],
    ]);
    expect(rows[1]!.occurredAt).toBeNull();

    const lateOccurredAt = new Date(Date.now() - 60_000).toISOString();
    const late = await send(shipEvent(orderId, 'picking', { occurredAt: lateOccurredAt }));
    expect(late.body).toMatchObject({ state: 'ignored', reason: 'stale', orderStatus: 3700 });
    rows = await history(orderId);
    expect(rows).toHaveLength(4);
    expect(rows[1]).toMatchObject({ to: 3500, implied: true, occurredAt: lateOccurredAt });
    expect((await order(orderId)).status).toBe(3700);
  });

  it('treats packing as a sub-step of 3600 and repeated or older events as stale', async () => {
    const orderId = await registerOrder(hub);
    expect((await send(shipEvent(orderId, 'picked'))).body).toMatchObject({ state: 'applied', orderStatus: 3600 });
    expect((await send(shipEvent(orderId, 'packing'))).body).toMatchObject({ state: 'applied', orderStatus: 3600 });
    expect((await order(orderId)).subStep).toBe('packing');
    expect((await send(shipEvent(orderId, 'packing'))).body).toMatchObject({ state: 'ignored', reason: 'stale' });
    expect((await send(shipEvent(orderId, 'picked'))).body).toMatchObject({ state: 'ignored', reason: 'stale' });
    expect((await send(shipEvent(orderId, 'picking'))).body).toMatchObject({ state: 'ignored', reason: 'stale' });
  });

  it('rejects events for an unknown order, a mismatched location and a cancelled order with 422 outcomes', async () => {
    const unknown = await send(shipEvent('SO-DOES-NOT-EXIST', 'picking'));
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe('unknown_order');
    expect(unknown.body.error.details).toMatchObject({ state: 'rejected', reason: 'unknown_order' });

    const orderId = await registerOrder(hub);
    const mismatch = await send(shipEvent(orderId, 'picking', { shipFromLocationId: 'STORE-008' }));
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.error.code).toBe('location_mismatch');
    expect((await order(orderId)).status).toBe(3000);

    const cancel = await hub.clients.operator.post(`/api/orders/${orderId}/cancel`, { reasonCode: 'customer_request' });
    expect(cancel.status).toBe(200);
    expect(cancel.body.status).toBe(9000);
    const afterCancel = await send(shipEvent(orderId, 'picking'));
    expect(afterCancel.status).toBe(422);
    expect(afterCancel.body.error.code).toBe('invalid_transition');
    // Rejected events are kept in the event log.
    const events = (await hub.clients.viewer.get(`/api/orders/${orderId}/events`)).body.events;
    expect(events.map((e: any) => e.reason).sort()).toEqual(['invalid_transition', 'location_mismatch']);
  });

  it('calls a ship event at 7000 stale', async () => {
    const orderId = await registerOrder(hub);
    await send(shipEvent(orderId, 'packed'));
    // Without an estimated delivery time: Slick gets the tracking without that field.
    await send(shipEvent(orderId, 'shipped', { tracking: { trackingId: 'GRB-NO-ETA', carrierCode: 'GRAB' } }));
    await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), 'order at 7000');
    expect(hub.sims.slick.requests.find((r) => r.path === '/api/fulfillment/ship-events')!.body).toMatchObject({
      tracking: { trackingId: 'GRB-NO-ETA', carrierCode: 'GRAB' },
    });
    expect((await send(shipEvent(orderId, 'packed'))).body).toMatchObject({ state: 'ignored', reason: 'stale', orderStatus: 7000 });
    expect((await send(shipEvent(orderId, 'shipped'))).body).toMatchObject({ state: 'ignored', reason: 'stale', orderStatus: 7000 });
    expect(hub.sims.slick.requests.filter((r) => r.path === '/api/fulfillment/ship-events')).toHaveLength(1);
  });

  it('keeps the status and opens an intervention when Slick refuses the shipment (400)', async () => {
    const orderId = await registerOrder(hub);
    await send(shipEvent(orderId, 'packed'));
    hub.sims.slick.setFailureMode({ status: 400 });
    await send(shipEvent(orderId, 'shipped'));
    const o = await eventually(async () => {
      const current = await order(orderId);
      return current.slickConfirmation === 'failed' ? current : undefined;
    }, 'confirmation failed');
    expect(o.status).toBe(3700);
    expect(hub.sims.slick.requests.filter((r) => r.path === '/api/fulfillment/ship-events')).toHaveLength(1);
    const cases = (await hub.clients.operator.get(`/api/interventions?state=open&orderId=${orderId}`)).body.interventions;
    expect(cases).toHaveLength(1);
    expect(cases[0]).toMatchObject({ orderId, cause: 'slick_ship_confirmation_failed', state: 'open' });
    expect(cases[0].detail).toMatchObject({ status: 400, errorClass: 'non_retriable' });
  });
});
