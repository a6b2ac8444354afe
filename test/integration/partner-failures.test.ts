import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEVELOPMENT_CLIENTS } from '../../src/config.js';
import { expectSequentialHistory } from '../helpers/history-checks.js';
import { eventually, registerOrder, shipEvent, SLICK_TOKEN, startTestHub, type TestHub } from '../helpers/test-hub.js';

const SHIP_PATH = '/api/fulfillment/ship-events';
const DELAYS = [200, 400, 800];

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({
    env: {
      SLICK_RETRY_DELAYS_MS: DELAYS.join(','),
      SLICK_TIMEOUT_MS: '300',
      // The breaker has its own test; here it must not interfere with counting retries.
      CIRCUIT_FAILURE_THRESHOLD: '1000',
    },
  });
});
afterAll(async () => {
  await hub?.close();
});
beforeEach(() => hub.sims.reset());

/** An order at 3700 whose `shipped` event has been applied, so its Slick confirmation is under way. */
async function shipOrder(): Promise<string> {
  const orderId = await registerOrder(hub);
  const packed = await hub.clients.slick.post(SHIP_PATH, shipEvent(orderId, 'packed'), { prefer: 'wait=10' });
  expect(packed.body.state).toBe('applied');
  const shipped = await hub.clients.slick.post(SHIP_PATH, shipEvent(orderId, 'shipped'), { prefer: 'wait=10' });
  expect(shipped.body.state).toBe('applied');
  return orderId;
}
const slickCalls = (orderId: string) => hub.sims.slick.requests.filter((r) => r.path === SHIP_PATH && (r.body as { orderId?: string }).orderId === orderId);
const order = async (orderId: string) => (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body;
const openCases = async (orderId: string) => (await hub.clients.operator.get(`/api/interventions?state=open&orderId=${orderId}`)).body.interventions;
const audit = async (orderId: string) => (await hub.clients.viewer.get(`/api/orders/${orderId}/partner-calls`)).body.partnerCalls as Array<Record<string, any>>;
async function deadLetterFor(orderId: string) {
  const list = (await hub.clients.operator.get('/api/dlq')).body.deadLetters as Array<Record<string, any>>;
  return list.find((d) => d.name === 'slick.ship-confirmation' && d.data.orderId === orderId);
}
async function untilConfirmationFailed(orderId: string) {
  return eventually(async () => {
    const o = await order(orderId);
    return o.slickConfirmation === 'failed' ? o : undefined;
  }, `${orderId} confirmation failed`);
}

describe('Slick failures', () => {
  it('500 always: 1 + 3 calls spaced by at least ¾ of each delay, status kept, one intervention, job dead-lettered', async () => {
    hub.sims.slick.setFailureMode({ status: 500 });
    const orderId = await shipOrder();
    const failed = await untilConfirmationFailed(orderId);
    expect(failed.status).toBe(3700);

    const calls = slickCalls(orderId);
    expect(calls).toHaveLength(4);
    for (let i = 1; i < calls.length; i++) {
      const gap = calls[i]!.at - calls[i - 1]!.at;
      expect(gap, `gap before retry ${i}`).toBeGreaterThanOrEqual(0.75 * DELAYS[i - 1]!);
    }
    const cases = await openCases(orderId);
    expect(cases).toHaveLength(1);
    expect(cases[0].detail).toMatchObject({ errorClass: 'retriable', status: 500, attempts: 4 });

    const dead = await eventually(() => deadLetterFor(orderId), 'dead letter');
    expect(dead.error).toMatch(/slick answered 500/);
    expect(dead.attemptsMade).toBe(4);

    const rows = await audit(orderId);
    expect(rows.filter((r) => r.operation === 'ship-confirmation').map((r) => [r.attempt, r.status, r.errorClass])).toEqual([
      [4, 500, 'retriable'],
      [3, 500, 'retriable'],
      [2, 500, 'retriable'],
      [1, 500, 'retriable'],
    ]);
    // Each interaction is summarised on the topic.
    const interactions = await eventually(async () => {
      const m = (await hub.topicMessages()).filter((x) => x.orderId === orderId && x.type === 'slick.interaction');
      return m.length === 4 ? m : undefined;
    }, 'slick.interaction messages');
    expect(JSON.parse(interactions[0]!.payload!)).toMatchObject({ operation: 'ship-confirmation', status: 500, outcome: 'retriable' });
  });

  it('a hang: each attempt is cut at the timeout, then an intervention opens', async () => {
    hub.sims.slick.setFailureMode({ hang: true });
    const orderId = await shipOrder();
    await untilConfirmationFailed(orderId);
    expect(slickCalls(orderId)).toHaveLength(4);
    const rows = (await audit(orderId)).filter((r) => r.operation === 'ship-confirmation');
    expect(rows).toHaveLength(4);
    for (const r of rows) {
      expect(r).toMatchObject({ status: null, errorClass: 'retriable', error: expect.stringMatching(/timed out/) });
      expect(r.latencyMs).toBeGreaterThanOrEqual(290);
      expect(r.latencyMs).toBeLessThan(5_000);
    }
    expect(await openCases(orderId)).toHaveLength(1);
  });

  it('fails twice, then 200: the order reaches 7000 with one applied transition and no case', async () => {
    hub.sims.slick.setFailureMode({ failTimes: 2, status: 503 });
    const orderId = await shipOrder();
    await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), 'order at 7000');
    expect(slickCalls(orderId).map((c) => c.status)).toEqual([503, 503, 200]);
    const history = await expectSequentialHistory(hub, orderId);
    expect(history.filter((h) => h.to === 7000)).toHaveLength(1);
    expect(await openCases(orderId)).toHaveLength(0);
    expect(await deadLetterFor(orderId)).toBeUndefined();
  });

  it('429 with Retry-After waits at least that long', async () => {
    hub.sims.slick.setFailureMode({ failTimes: 1, status: 429, retryAfterSeconds: 1 });
    const orderId = await shipOrder();
    await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), 'order at 7000');
    const calls = slickCalls(orderId);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(1000);
  });

  it('a dead letter retried applies once; retrying it again is refused', async () => {
    hub.sims.slick.setFailureMode({ status: 500 });
    const orderId = await shipOrder();
    await untilConfirmationFailed(orderId);
    const dead = await eventually(() => deadLetterFor(orderId), 'dead letter');
    hub.sims.slick.resetFailureMode();

    const retried = await hub.clients.operator.post(`/api/dlq/${encodeURIComponent(dead.id)}/retry`, {});
    expect(retried.status).toBe(202);
    const again = await hub.clients.operator.post(`/api/dlq/${encodeURIComponent(dead.id)}/retry`, {});
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('not_dead_lettered');

    await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), 'order at 7000');
    expect(slickCalls(orderId)).toHaveLength(5);
    const history = await expectSequentialHistory(hub, orderId);
    expect(history.filter((h) => h.to === 7000)).toHaveLength(1);
    // The case the failure opened was closed by the successful retry.
    expect(await openCases(orderId)).toHaveLength(0);
    expect((await hub.clients.viewer.post(`/api/dlq/${encodeURIComponent(dead.id)}/retry`, {})).status).toBe(403);
  });

  it('an intervention retried runs the call again once, and keeps who resolved it and why', async () => {
    hub.sims.slick.setFailureMode({ status: 400 });
    const orderId = await shipOrder();
    await untilConfirmationFailed(orderId);
    const [kase] = await openCases(orderId);
    hub.sims.slick.resetFailureMode();

    const resolved = await hub.clients.operator.post(`/api/interventions/${kase.id}/resolve`, { action: 'retry', note: 'Slick fixed the SKU mapping' });
    expect(resolved.status).toBe(200);
    expect(resolved.body).toMatchObject({ state: 'resolved', resolution: 'retry', resolvedBy: 'operator', note: 'Slick fixed the SKU mapping' });
    const twice = await hub.clients.operator.post(`/api/interventions/${kase.id}/resolve`, { action: 'retry' });
    expect(twice.status).toBe(409);

    await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), 'order at 7000');
    expect(slickCalls(orderId)).toHaveLength(2);
    expect((await expectSequentialHistory(hub, orderId)).filter((h) => h.to === 7000)).toHaveLength(1);
  });

  it('an intervention overridden sets the status through the machine, flagged in history; dismiss needs a note', async () => {
    hub.sims.slick.setFailureMode({ status: 422 });
    const first = await shipOrder();
    const second = await shipOrder();
    await untilConfirmationFailed(first);
    await untilConfirmationFailed(second);
    const [a] = await openCases(first);
    const [b] = await openCases(second);

    const bad = await hub.clients.operator.post(`/api/interventions/${a.id}/resolve`, { action: 'override', status: 4242, note: 'x' });
    expect(bad.status).toBe(400);
    const over = await hub.clients.operator.post(`/api/interventions/${a.id}/resolve`, {
      action: 'override',
      status: 7000,
      reasonCode: 'confirmed_by_phone',
      note: 'Store confirmed pickup by phone',
    });
    expect(over.status).toBe(200);
    const history = await expectSequentialHistory(hub, first);
    expect(history.at(-1)).toMatchObject({ from: 3700, to: 7000, override: true, actor: 'operator', source: 'operator', reasonCode: 'confirmed_by_phone' });
    const counted = await hub.web.metrics.registry.getSingleMetricAsString('hub_status_transitions_total');
    expect(counted).toMatch(/hub_status_transitions_total\{[^}]*from="3700",to="7000",source="operator"[^}]*\} 1\b/);

    expect((await hub.clients.operator.post(`/api/interventions/${b.id}/resolve`, { action: 'dismiss' })).status).toBe(400);
    const dismissed = await hub.clients.operator.post(`/api/interventions/${b.id}/resolve`, { action: 'dismiss', note: 'order will be re-shipped' });
    expect(dismissed.body).toMatchObject({ state: 'dismissed', resolvedBy: 'operator', note: 'order will be re-shipped' });
    expect((await order(second)).status).toBe(3700);
    expect((await hub.clients.operator.post(`/api/interventions/00000000-0000-4000-8000-000000000000/resolve`, { action: 'dismiss', note: 'x' })).status).toBe(
      404,
    );
  });

  it('keeps secrets out of audit rows and logs', async () => {
    const orderId = await shipOrder();
    await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), 'order at 7000');
    const rows = await hub.web.db.execute<{ row: string }>(sql`select row_to_json(p)::text as row from partner_calls p`);
    const logs = hub.logLines.join('\n');
    const secrets = [SLICK_TOKEN, ...DEVELOPMENT_CLIENTS.flatMap((c) => [c.key!, c.secret].filter(Boolean) as string[])];
    expect(rows.length).toBeGreaterThan(0);
    expect(logs).toContain('partner call');
    for (const secret of secrets) {
      expect(JSON.stringify(rows)).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
    // Slick did receive the token: it was sent, just never recorded.
    expect(hub.sims.slick.requests.some((r) => r.headers.authorization === `Bearer ${SLICK_TOKEN}`)).toBe(true);
  });

  it('sends one customer notification for 7000', async () => {
    const orderId = await shipOrder();
    await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), 'order at 7000');
    const notes = await eventually(async () => {
      const n = hub.sims.notify.requests.filter((r) => (r.body as { orderId?: string }).orderId === orderId);
      return n.length ? n : undefined;
    }, 'notification');
    expect(notes).toHaveLength(1);
    expect(notes[0]!.body).toEqual({ orderId, customerId: 'CUST-1', status: 7000, template: 'order_shipped' });
  });
});

describe('a new shipped event after a failed confirmation', () => {
  it('confirms again with Slick, reusing the dead-lettered job', async () => {
    hub.sims.reset();
    hub.sims.slick.setFailureMode({ status: 400 });
    const orderId = await shipOrder();
    await untilConfirmationFailed(orderId);
    hub.sims.slick.resetFailureMode();
    const again = await hub.clients.slick.post(SHIP_PATH, shipEvent(orderId, 'shipped'), { prefer: 'wait=10' });
    expect(again.body.state).toBe('applied');
    await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), 'order at 7000');
    expect(slickCalls(orderId)).toHaveLength(2);
    // A new shipped event makes a new call: it never reuses the failed call's Idempotency-Key.
    const keys = slickCalls(orderId).map((r) => r.headers['idempotency-key']);
    expect(keys.every((k) => typeof k === 'string' && k.startsWith(`slick.ship-confirmation:${orderId}:`))).toBe(true);
    expect(new Set(keys).size).toBe(2);
    expect(await openCases(orderId)).toHaveLength(0);
  });
});
