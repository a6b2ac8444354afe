import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStoreGauges } from '../../src/observability/store-gauges.js';
import { eventually, newOrderId, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(async () => {
  await hub?.close();
});

const order = (overrides: Record<string, unknown> = {}) => ({
  orderId: newOrderId(),
  shipFromLocationId: 'STORE-003',
  customer: { id: 'C-9', name: 'Nok' },
  paymentMethod: 'COD',
  codAmount: 350,
  status: 3000,
  ...overrides,
});

describe('orders', () => {
  it('registers an order (201), answers a repeat with 200, and a different body with 409', async () => {
    const body = order();
    const created = await hub.clients.mao.post('/api/orders', body);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ orderId: body.orderId, status: 3000, statusName: 'Released', paymentMethod: 'COD', codAmount: 350 });
    const again = await hub.clients.mao.post('/api/orders', { ...body });
    expect(again.status).toBe(200);
    expect(again.body.orderId).toBe(body.orderId);
    const other = await hub.clients.mao.post('/api/orders', { ...body, codAmount: 351 });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('order_conflict');
    const history = (await hub.clients.viewer.get(`/api/orders/${body.orderId}/history`)).body.history;
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ seq: 1, from: null, to: 3000, actor: 'mao', source: 'mao' });
  });

  it('the same registration sent several times at once: one 201, the others 200 with the same order, one history row and one topic message', async () => {
    const body = order();
    const answers = await Promise.all(Array.from({ length: 8 }, () => hub.clients.mao.post('/api/orders', { ...body })));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
    for (const a of answers) expect(a.body).toMatchObject({ orderId: body.orderId, status: 3000 });
    expect((await hub.clients.viewer.get(`/api/orders/${body.orderId}/history`)).body.history).toHaveLength(1);
    const [messages] = await hub.web.pg<Array<{ n: number }>>`select count(*)::int as n from outbox where order_id = ${body.orderId}`;
    expect(messages!.n).toBe(1);
  });

  it('lets an operator register at 1000, and refuses bad registrations with clear errors', async () => {
    const byOperator = await hub.clients.operator.post('/api/orders', order({ status: 1000, paymentMethod: 'PREPAID', codAmount: undefined }));
    expect(byOperator.status).toBe(201);
    expect(byOperator.body.status).toBe(1000);
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [order({ status: 3500 }), 400, 'validation_failed'],
      [order({ paymentMethod: 'COD', codAmount: undefined }), 400, 'validation_failed'],
      [order({ paymentMethod: 'PREPAID', codAmount: 10 }), 400, 'validation_failed'],
      [order({ orderId: 'bad id with spaces' }), 400, 'validation_failed'],
      [order({ customer: { id: 'x', email: 'not-an-email' } }), 400, 'validation_failed'],
      [order({ shipFromLocationId: 'STORE-999' }), 422, 'unknown_location'],
    ];
    for (const [body, status, code] of cases) {
      const res = await hub.clients.mao.post('/api/orders', body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.error.code).toBe(code);
    }
    expect((await hub.clients.viewer.post('/api/orders', order())).status).toBe(403);
    expect((await hub.clients.slick.post('/api/orders', order())).status).toBe(403);
  });

  it('cancels before 7000 (repeatable), refuses after, and writes history with the reason', async () => {
    const orderId = await registerOrder(hub);
    const res = await hub.clients.mao.post(`/api/orders/${orderId}/cancel`, { reasonCode: 'out_of_stock', note: 'no stock at store' });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe(9000);
    expect((await hub.clients.mao.post(`/api/orders/${orderId}/cancel`, { reasonCode: 'out_of_stock' })).body.status).toBe(9000);
    const history = (await hub.clients.viewer.get(`/api/orders/${orderId}/history`)).body.history;
    expect(history.at(-1)).toMatchObject({ from: 3000, to: 9000, reasonCode: 'out_of_stock', note: 'no stock at store', source: 'mao' });
    expect(history).toHaveLength(2);
    // Counted like any other status change, once (the repeat moved nothing).
    const counted = await hub.web.metrics.registry.getSingleMetricAsString('hub_status_transitions_total');
    expect(counted).toMatch(/hub_status_transitions_total\{[^}]*from="3000",to="9000",source="mao"[^}]*\} 1\b/);

    const shipped = await registerOrder(hub);
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(shipped, 'packed'), { prefer: 'wait=5' });
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(shipped, 'shipped'), { prefer: 'wait=5' });
    await eventually(async () => (await hub.clients.viewer.get(`/api/orders/${shipped}`)).body.status === 7000, 'order at 7000');
    const late = await hub.clients.operator.post(`/api/orders/${shipped}/cancel`, { reasonCode: 'customer_request' });
    expect(late.status).toBe(422);
    expect(late.body.error.code).toBe('invalid_transition');
    expect((await hub.clients.operator.post('/api/orders/SO-NONE/cancel', { reasonCode: 'x' })).status).toBe(404);
    expect((await hub.clients.operator.post(`/api/orders/${orderId}/cancel`, {})).status).toBe(400);
  });

  it('lists the seeded store locations', async () => {
    const res = await hub.clients.viewer.get('/api/locations');
    expect(res.status).toBe(200);
    expect(res.body.locations.length).toBeGreaterThanOrEqual(26);
    expect(res.body.locations).toContainEqual({ locationId: 'STORE-007', name: 'QC SMF Store 007', region: expect.any(String) });
  });

  it('exports request, event latency and transition metrics', async () => {
    const orderId = await registerOrder(hub);
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picking'), { prefer: 'wait=5' });
    const web = (await hub.clients.viewer.get('/metrics')).body as string;
    expect(web).toMatch(/hub_http_request_duration_seconds_count\{[^}]*method="POST",route="\/api\/fulfillment\/ship-events",status="200"/);
    // Queue depths are the scheduler's to export (src/observability/store-gauges.ts), never web's.
    expect(web).not.toMatch(/^hub_queue_jobs/m);
    expect(await readStoreGauges(hub.web)).toMatch(/hub_queue_jobs\{[^}]*queue="inbound-events",state="waiting"/);
    // The web applied the event (INTAKE_APPLY=web), so it counts it.
    expect(web).toMatch(/hub_event_receipt_to_commit_seconds_count\{[^}]*kind="ship-event",state="applied"[^}]*\} [1-9]/);
    expect(web).toMatch(/hub_status_transitions_total\{[^}]*from="3000",to="3500",source="slick"[^}]*\} [1-9]/);
  });
});
