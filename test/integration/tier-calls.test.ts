import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { codLedger, orderCalls, orderTiers } from '../../src/db/schema/index.js';
import { PartnerHttp } from '../../src/integrations/partner-http.js';
import { PmpClient } from '../../src/integrations/pmp.js';
import { orderCallJobId, enqueuePartnerCalls, recordOwedCalls } from '../../src/partner-calls/schedule.js';
import { slickCodCollectedCall } from '../../src/partner-calls/slick-cod-collected.js';
import type { PartnerCallJobName } from '../../src/queues/partner-calls.queue.js';
import { partnerForOrder } from '../../src/simulators/pmp.simulator.js';
import { eventually, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The outbound calls of the three-tier delivery flow (SPEC §5.2, §5.3), against real simulators: PMP's
 * assignment and MAO's "Shipped" owed when an order reaches 7000, an operator's assignment by hand, and
 * the COD collection relayed to Slick.
 */

const SHIP_PATH = '/api/fulfillment/ship-events';
const ASSIGN_PATH = '/api/assignments';
const WAIT = { prefer: 'wait=10' };
const THRESHOLD = 2;
const OPEN_MS = 1000;
const PMP_RETRIES = 20;

let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub({
    env: {
      SLICK_RETRY_DELAYS_MS: '100,100,100',
      MAO_RETRY_DELAYS_MS: '100,100,100',
      // More retries than an outage of a few open periods could use up: the breaker, not the budget, decides.
      PMP_RETRY_DELAYS_MS: Array(PMP_RETRIES).fill('100').join(','),
      CIRCUIT_FAILURE_THRESHOLD: String(THRESHOLD),
      CIRCUIT_OPEN_MS: String(OPEN_MS),
    },
  });
});
afterAll(async () => {
  await hub?.close();
});
// A failure mode counts every call to a simulator: what an earlier test left under way must be done first.
beforeEach(async () => {
  await eventually(async () => {
    const [unpublished] = await hub.web.db.execute<{ n: number }>(sql`select count(*)::int as n from outbox where published_at is null`);
    const jobs = await hub.web.queues.partnerCalls.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return unpublished!.n === 0 && Object.values(jobs).every((n) => n === 0) ? true : undefined;
  }, 'previous calls done');
  hub.sims.reset();
});

const order = async (orderId: string) => (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body;
const history = async (orderId: string) => (await hub.clients.viewer.get(`/api/orders/${orderId}/history`)).body.history as Array<Record<string, any>>;
const openCases = async (orderId: string) =>
  (await hub.clients.operator.get(`/api/interventions?state=open&orderId=${orderId}`)).body.interventions as Array<Record<string, any>>;
const bodyOf = (r: { body: unknown }) => r.body as Record<string, any>;
const pmpAssignments = (orderId: string) => hub.sims.pmp.requests.filter((r) => r.path === ASSIGN_PATH && bodyOf(r).orderId === orderId);
const maoCalls = (orderId: string) => hub.sims.mao.requests.filter((r) => r.path === `/api/orders/${orderId}/status`);
const slickCollected = (orderId: string) =>
  hub.sims.slick.requests.filter((r) => r.path === SHIP_PATH && bodyOf(r).orderId === orderId && bodyOf(r).eventType === 'collected');

async function record(orderId: string, kind: PartnerCallJobName) {
  const [row] = await hub.web.db
    .select()
    .from(orderCalls)
    .where(and(eq(orderCalls.orderId, orderId), eq(orderCalls.kind, kind), eq(orderCalls.key, '')));
  return row;
}
const untilRecord = (orderId: string, kind: PartnerCallJobName, state: string) =>
  eventually(async () => {
    const row = await record(orderId, kind);
    return row?.state === state ? row : undefined;
  }, `${kind} of ${orderId} ${state}`);

async function tiers(orderId: string) {
  const rows = await hub.web.db.select().from(orderTiers).where(eq(orderTiers.orderId, orderId)).orderBy(orderTiers.tier);
  return Object.fromEntries(rows.map((r) => [r.tier, r])) as Record<number, (typeof rows)[number]>;
}

/** An order Slick confirmed to 7000; returns it with its `shipped` event. */
async function fulfilledOrder(overrides: Record<string, unknown> = {}) {
  const orderId = await registerOrder(hub, overrides);
  expect((await hub.clients.slick.post(SHIP_PATH, shipEvent(orderId, 'packed'), WAIT)).body.state).toBe('applied');
  const shipped = shipEvent(orderId, 'shipped');
  expect((await hub.clients.slick.post(SHIP_PATH, shipped, WAIT)).body.state).toBe('applied');
  await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), `${orderId} at 7000`);
  return { orderId, shipped };
}

describe('an order reaching 7000', () => {
  it('prepaid: PMP assigns a partner, stored on the order; MAO is told SHIPPED with the tracking; tier 2 done', async () => {
    const { orderId, shipped } = await fulfilledOrder();
    await untilRecord(orderId, 'pmp.assignment', 'confirmed');
    await untilRecord(orderId, 'mao.order-status', 'confirmed');

    const expected = partnerForOrder(orderId);
    expect((await order(orderId)).partner).toEqual({ partnerId: expected.partnerId, partnerName: expected.partnerName });
    const [assignment] = pmpAssignments(orderId);
    expect(pmpAssignments(orderId)).toHaveLength(1);
    expect(assignment!.body).toEqual({ orderId, locationId: 'STORE-007', codAmount: 0 });
    expect(assignment!.headers['idempotency-key']).toBe(`pmp.assignment:${orderId}:`);

    expect(maoCalls(orderId)).toHaveLength(1);
    expect(maoCalls(orderId)[0]!.headers['idempotency-key']).toBe(`mao.order-status:${orderId}:`);
    // The time the order reached 7000 is the shipped event's: Slick confirmed that shipment.
    expect(hub.sims.mao.lastStatusFor(orderId)).toEqual({
      status: 'SHIPPED',
      trackingId: `GRB-${orderId}`,
      carrierCode: 'GRAB',
      occurredAt: shipped.occurredAt,
    });

    const t = await tiers(orderId);
    expect(t[1]).toMatchObject({ state: 'pending' });
    expect(t[2]).toMatchObject({ state: 'done', detail: { trackingId: `GRB-${orderId}`, carrierCode: 'GRAB', shippedAt: shipped.occurredAt } });
    expect(t[3]).toMatchObject({ state: 'not_applicable' });
    expect(await openCases(orderId)).toHaveLength(0);

    const audit = (await hub.clients.viewer.get(`/api/orders/${orderId}/partner-calls`)).body.partnerCalls as Array<Record<string, any>>;
    expect(audit.filter((r) => r.integration === 'pmp').map((r) => [r.operation, r.status])).toEqual([['assignment', 200]]);
    expect(audit.filter((r) => r.integration === 'mao').map((r) => [r.operation, r.status])).toEqual([['order-status', 200]]);
    const messages = await eventually(async () => {
      const all = (await hub.topicMessages()).filter((m) => m.orderId === orderId);
      return all.some((m) => m.type === 'tier.updated') &&
        all.some((m) => m.type === 'delivery.updated' && JSON.parse(m.payload!).change === 'partner_assigned')
        ? all
        : undefined;
    }, 'tier and partner messages');
    expect(messages.filter((m) => m.type === 'tier.updated').map((m) => JSON.parse(m.payload!))).toEqual([expect.objectContaining({ tier: 2, state: 'done' })]);
    expect(JSON.parse(messages.find((m) => m.type === 'delivery.updated' && JSON.parse(m.payload!).change === 'partner_assigned')!.payload!)).toMatchObject({
      partnerId: expected.partnerId,
      source: 'pmp',
    });
  });

  it('COD: PMP is told the amount its partner collects', async () => {
    const { orderId } = await fulfilledOrder({ paymentMethod: 'COD', codAmount: 350.5 });
    await untilRecord(orderId, 'pmp.assignment', 'confirmed');
    expect(pmpAssignments(orderId).map((r) => r.body)).toEqual([{ orderId, locationId: 'STORE-007', codAmount: 350.5 }]);
  });

  it('MAO 400: not retried, tier 2 failed, a mao_status_failed case; retrying the case tells MAO and settles tier 2 done', async () => {
    hub.sims.mao.setFailureMode({ status: 400 });
    const { orderId } = await fulfilledOrder();
    const failed = await untilRecord(orderId, 'mao.order-status', 'failed');
    expect(failed).toMatchObject({ attempts: 1, lastError: expect.stringMatching(/mao answered 400/) });
    expect(maoCalls(orderId)).toHaveLength(1);
    expect((await tiers(orderId))[2]).toMatchObject({ state: 'failed', detail: { error: expect.stringMatching(/mao answered 400/), attempts: 1 } });
    const cases = await openCases(orderId);
    expect(cases).toHaveLength(1);
    expect(cases[0]).toMatchObject({
      cause: 'mao_status_failed',
      detail: { callKind: 'mao.order-status', tier: 2, errorClass: 'non_retriable', status: 400, attempts: 1, orderStatus: 7000 },
    });
    // The order itself stays at 7000 and its partner is assigned: only tier 2 is held up. PMP's
    // assignment is a call of its own, owed with MAO's, so it may settle after MAO's failure.
    await untilRecord(orderId, 'pmp.assignment', 'confirmed');
    expect(await order(orderId)).toMatchObject({ status: 7000, partner: { partnerId: partnerForOrder(orderId).partnerId } });

    hub.sims.mao.resetFailureMode();
    expect((await hub.clients.operator.post(`/api/interventions/${cases[0]!.id}/resolve`, { action: 'retry', note: 'MAO mapping fixed' })).status).toBe(200);
    await untilRecord(orderId, 'mao.order-status', 'confirmed');
    expect((await tiers(orderId))[2]).toMatchObject({ state: 'done' });
    expect(maoCalls(orderId).map((r) => r.status)).toEqual([400, 200]);
    expect(await openCases(orderId)).toHaveLength(0);
  });

  it('MAO 503 through every retry: tier 2 failed with the case once the retries run out', async () => {
    hub.sims.mao.setFailureMode({ status: 503 });
    const { orderId } = await fulfilledOrder();
    const failed = await eventually(
      async () => {
        const row = await record(orderId, 'mao.order-status');
        return row?.state === 'failed' ? row : undefined;
      },
      'MAO call failed',
      30_000,
    );
    expect(failed.attempts).toBe(maoCalls(orderId).length);
    expect((await tiers(orderId))[2]).toMatchObject({ state: 'failed' });
    expect((await openCases(orderId)).map((c) => c.cause)).toEqual(['mao_status_failed']);
  });
});

describe('assigning the partner by hand: POST /api/orders/{id}/partner', () => {
  const assign = (orderId: string, body: unknown, as: 'operator' | 'admin' | 'viewer' = 'operator') =>
    hub.clients[as].post(`/api/orders/${orderId}/partner`, body);
  const byHand = { partnerId: 'PTN-HAND', partnerName: 'Hand Couriers', reason: 'PMP could not assign' };

  it('is for operators and admins, refuses a bad body and an unknown order', async () => {
    const orderId = await registerOrder(hub);
    expect((await assign(orderId, byHand, 'viewer')).status).toBe(403);
    expect((await assign('SO-NO-SUCH-ORDER', byHand)).status).toBe(404);
    for (const bad of [{}, { ...byHand, reason: '' }, { ...byHand, partnerId: 7 }, { ...byHand, extra: true }]) {
      const res = await assign(orderId, bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    const res = await assign(orderId, byHand, 'admin');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ orderId, status: 3000, partner: { partnerId: 'PTN-HAND', partnerName: 'Hand Couriers' } });
  });

  it('settles a failed PMP assignment: the record confirmed, its case closed, the change in history as the operator', async () => {
    hub.sims.pmp.setFailureMode({ status: 422 });
    const { orderId } = await fulfilledOrder();
    await untilRecord(orderId, 'pmp.assignment', 'failed');
    const [kase] = await openCases(orderId);
    expect(kase).toMatchObject({ cause: 'pmp_assignment_failed', detail: { errorClass: 'non_retriable', status: 422 } });

    const res = await assign(orderId, byHand);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 7000, partner: { partnerId: 'PTN-HAND', partnerName: 'Hand Couriers' } });
    expect(await record(orderId, 'pmp.assignment')).toMatchObject({ state: 'confirmed', lastError: null });
    expect(await openCases(orderId)).toHaveLength(0);
    const closed = (await hub.clients.operator.get(`/api/interventions?orderId=${orderId}`)).body.interventions as Array<Record<string, any>>;
    expect(closed.find((c) => c.id === kase!.id)).toMatchObject({
      state: 'resolved',
      resolvedBy: 'operator',
      resolution: 'partner_assigned',
      note: 'assigned by hand',
    });
    expect((await history(orderId)).at(-1)).toMatchObject({
      from: 7000,
      to: 7000,
      actor: 'operator',
      source: 'operator',
      reasonCode: 'partner_assigned',
      note: 'PMP could not assign',
      implied: false,
      override: false,
    });
    // A dead-lettered assignment retried later finds the record confirmed: PMP is not asked again.
    hub.sims.pmp.resetFailureMode();
    const dead = await eventually(async () => {
      const list = (await hub.clients.operator.get('/api/dlq')).body.deadLetters as Array<Record<string, any>>;
      return list.find((d) => d.name === 'pmp.assignment' && d.data.orderId === orderId);
    }, 'dead letter');
    expect((await hub.clients.operator.post(`/api/dlq/${encodeURIComponent(dead.id)}/retry`, {})).status).toBe(202);
    const jobId = orderCallJobId({ kind: 'pmp.assignment', orderId, key: '' });
    await eventually(
      async () => ((await (await hub.web.queues.partnerCalls.getJob(jobId))?.getState()) === 'completed' ? true : undefined),
      'retried job done',
    );
    expect(pmpAssignments(orderId).map((r) => r.status)).toEqual([422]);
    expect((await order(orderId)).partner.partnerId).toBe('PTN-HAND');
  });

  it('PMP down: the assignment waits behind the open breaker, spending no retries and opening no case; by hand it is settled, and PMP back assigns nothing twice', async () => {
    hub.sims.pmp.setFailureMode({ status: 503 });
    const { orderId } = await fulfilledOrder();
    await eventually(async () => {
      const health = (await hub.clients.viewer.get('/api/health/integrations')).body.integrations as Array<Record<string, any>>;
      return health.find((i) => i.integration === 'pmp')?.circuit.state === 'open' ? true : undefined;
    }, 'PMP breaker open');
    const openedAt = Date.now();
    // Over a few open periods: without the breaker, 1 + 20 attempts 100 ms apart would all be spent in about 2.5 s.
    await new Promise((r) => setTimeout(r, 3 * OPEN_MS));
    const waiting = await eventually(async () => {
      const row = await record(orderId, 'pmp.assignment');
      // Every attempt counted is a call PMP received: the job waited without counting any.
      return row && row.attempts === pmpAssignments(orderId).length ? row : undefined;
    }, 'attempts matching the calls made');
    expect(waiting.state).toBe('pending');
    const periods = Math.ceil((Date.now() - openedAt) / OPEN_MS);
    expect(waiting.attempts).toBeLessThanOrEqual(THRESHOLD + periods + 1);
    expect(waiting.attempts).toBeLessThan(PMP_RETRIES + 1);
    expect(await openCases(orderId)).toHaveLength(0);
    expect((await order(orderId)).partner).toBeNull();

    const res = await assign(orderId, { ...byHand, reason: 'PMP is down' });
    expect(res.status).toBe(200);
    expect(await record(orderId, 'pmp.assignment')).toMatchObject({ state: 'confirmed' });
    expect(await openCases(orderId)).toHaveLength(0);

    hub.sims.pmp.resetFailureMode();
    const jobId = orderCallJobId({ kind: 'pmp.assignment', orderId, key: '' });
    await eventually(
      async () => ((await (await hub.web.queues.partnerCalls.getJob(jobId))?.getState()) === 'completed' ? true : undefined),
      'the waiting job done',
      15_000,
    );
    expect(pmpAssignments(orderId).filter((r) => r.status === 200)).toHaveLength(0);
    expect(await order(orderId)).toMatchObject({ status: 7000, partner: { partnerId: 'PTN-HAND', partnerName: 'Hand Couriers' } });
    expect(await record(orderId, 'pmp.assignment')).toMatchObject({ state: 'confirmed' });
  });
});

describe('the COD collection relayed to Slick (tier 3)', () => {
  /** A COD order at 7500 (Grab delivered it) whose collection PMP reported: the ledger row, tier 1 done. */
  async function collectedOrder(amount: number) {
    const { orderId } = await fulfilledOrder({ paymentMethod: 'COD', codAmount: amount });
    await untilRecord(orderId, 'mao.order-status', 'confirmed');
    const delivered = {
      eventId: `grab-${orderId}-delivered`,
      orderId,
      trackingId: `GRB-${orderId}`,
      carrierCode: 'GRAB',
      status: 'DELIVERED',
      occurredAt: new Date().toISOString(),
      proofOfDelivery: { receivedBy: 'Somchai', photoUrl: 'https://example.com/pod.jpg' },
    };
    const res = await hub.clients.grab.put('/api/delivery/status', delivered, WAIT);
    expect(res.body, JSON.stringify(res.body)).toMatchObject({ state: 'applied', orderStatus: 7500 });
    const collectedAt = new Date(Date.now() - 60_000).toISOString();
    const eventId = `pmp-${orderId}-collected`;
    await hub.web.db.execute(sql`insert into cod_ledger (order_id, expected_amount, collected_amount, collected_at, collected_by, event_id, relay)
      values (${orderId}, ${amount}, ${amount}, ${collectedAt}::timestamptz, 'PTN-KERRY', ${eventId}, 'pending')`);
    await hub.web.db.execute(sql`insert into order_tiers (order_id, tier, state, detail) values (${orderId}, 1, 'done', '{"source":"test"}'::jsonb)
      on conflict (order_id, tier) do update set state = 'done'`);
    await hub.web.db.execute(sql`update order_tiers set detail = detail || '{"relay":"pending"}'::jsonb where order_id = ${orderId} and tier = 3`);
    return { orderId, eventId, collectedAt };
  }
  async function relay(orderId: string, eventId: string) {
    const owed = await hub.web.db.transaction((tx) => recordOwedCalls(tx, [slickCodCollectedCall(orderId, eventId)]));
    expect(owed).toHaveLength(1);
    await enqueuePartnerCalls(hub.web, owed);
  }
  const ledger = async (orderId: string) => (await hub.web.db.select().from(codLedger).where(eq(codLedger.orderId, orderId)))[0];

  it('Slick gets `collected` with the amount and the time collected; tier 3 done, the ledger relay confirmed', async () => {
    const { orderId, eventId, collectedAt } = await collectedOrder(350);
    await relay(orderId, eventId);
    await untilRecord(orderId, 'slick.cod-collected', 'confirmed');

    const [call] = slickCollected(orderId);
    expect(slickCollected(orderId)).toHaveLength(1);
    expect(call!.body).toEqual({
      orderId,
      shipFromLocationId: 'STORE-007',
      eventType: 'collected',
      timestamp: collectedAt,
      tracking: { trackingId: `GRB-${orderId}`, carrierCode: 'GRAB' },
      codAmount: 350,
    });
    expect(call!.headers['idempotency-key']).toBe(`slick.cod-collected:${orderId}::${eventId}`);
    const t = await tiers(orderId);
    expect(t[3]).toMatchObject({ state: 'done', detail: { relay: 'confirmed', codAmount: 350, confirmationId: expect.stringMatching(/^SLK-/) } });
    const row = await ledger(orderId);
    expect(row).toMatchObject({ relay: 'confirmed', collectedAmount: '350.00', collectedBy: 'PTN-KERRY', eventId });
    expect(row!.confirmedAt).toBeInstanceOf(Date);
    expect(await openCases(orderId)).toHaveLength(0);
    const audit = (await hub.clients.viewer.get(`/api/orders/${orderId}/partner-calls`)).body.partnerCalls as Array<Record<string, any>>;
    expect(audit.filter((r) => r.operation === 'cod-collected').map((r) => r.status)).toEqual([200]);
  });

  it('Slick refusing it: tier 3 failed, the ledger relay failed, a slick_cod_collected_failed case', async () => {
    const { orderId, eventId } = await collectedOrder(99.5);
    hub.sims.slick.setFailureMode({ status: 400 });
    await relay(orderId, eventId);
    const failed = await untilRecord(orderId, 'slick.cod-collected', 'failed');
    expect(failed).toMatchObject({ attempts: 1 });
    expect(slickCollected(orderId).map((r) => bodyOf(r).codAmount)).toEqual([99.5]);
    expect((await tiers(orderId))[3]).toMatchObject({ state: 'failed', detail: { relay: 'failed', error: expect.stringMatching(/slick answered 400/) } });
    expect(await ledger(orderId)).toMatchObject({ relay: 'failed', confirmedAt: null });
    expect((await openCases(orderId)).map((c) => [c.cause, c.detail.callKind, c.detail.eventId])).toEqual([
      ['slick_cod_collected_failed', 'slick.cod-collected', eventId],
    ]);
  });
});

describe('PmpClient.delivery, the lookup the reconciliation uses', () => {
  it('answers PMP’s delivery state of an order, validated, or null when PMP knows none', async () => {
    const pmp = new PmpClient(new PartnerHttp(hub.config.integrations.pmp));
    const orderId = 'SO-LOOKUP-1';
    const set = hub.sims.pmp.setDelivery(orderId, { status: 'OUT_FOR_DELIVERY', occurredAt: '2026-11-24T10:00:00.000Z' });
    expect(await pmp.delivery(orderId)).toEqual({ orderId, partnerId: set.partnerId, status: 'OUT_FOR_DELIVERY', occurredAt: '2026-11-24T10:00:00.000Z' });
    expect(await pmp.delivery('SO-LOOKUP-UNKNOWN')).toBeNull();
    hub.sims.pmp.setFailureMode({ status: 503, failTimes: 1 });
    await expect(pmp.delivery(orderId)).rejects.toMatchObject({ name: 'RetriableIntegrationError', status: 503 });
  });
});
