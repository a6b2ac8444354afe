import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { INTEGRATIONS } from '../../src/config.js';
import { orderCalls } from '../../src/db/schema/index.js';
import type { CallKind } from '../../src/partner-calls/call-kind.js';
import { callIdempotencyKey, callKind, callKindForCause, callKinds } from '../../src/partner-calls/call-kinds.js';
import { getOrder } from '../../src/orders/order-registration.js';
import { reopenFailedCalls } from '../../src/partner-calls/order-call-records.js';
import { NOTIFIED_STATUSES } from '../../src/partner-calls/customer-notification.js';
import { orderCallJobId } from '../../src/partner-calls/schedule.js';
import { callsOwedOnReaching, STATUS_REACTIONS } from '../../src/partner-calls/status-reactions.js';
import type { PartnerCallJobDataOf, PartnerCallJobName } from '../../src/queues/partner-calls.queue.js';
import { sweepOnce } from '../../src/workers/event-sweeper.js';
import { eventually, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * Outbound calls as data: the registry of call kinds, and the per-order record of each owed call
 * (order_calls) that the processor, the sweeper, a dead-letter retry and an intervention retry all
 * handle the same way for every kind.
 */

const SHIP_PATH = '/api/fulfillment/ship-events';
const WAIT = { prefer: 'wait=10' };

/** One job payload per call kind; a kind without one does not compile. */
const SAMPLES: { [N in PartnerCallJobName]: PartnerCallJobDataOf<N> } = {
  'slick.ship-confirmation': { orderId: 'SO-SAMPLE', shipEventId: 'evt-sample' },
  'notify.customer': { orderId: 'SO-SAMPLE', status: 7000 },
  'incident.notify': { incidentId: '00000000-0000-4000-8000-000000000000', action: 'trigger' },
  'pmp.assignment': { orderId: 'SO-SAMPLE' },
  'mao.order-status': { orderId: 'SO-SAMPLE' },
  'slick.cod-collected': { orderId: 'SO-SAMPLE', eventId: 'pmp-evt-sample' },
};
const kinds = Object.values(callKinds) as Array<CallKind<PartnerCallJobName>>;

describe('the registry of outbound call kinds', () => {
  it('names each kind by its job name and gives it an integration, a data schema and a processor', () => {
    expect(kinds.length).toBeGreaterThanOrEqual(3);
    for (const [name, kind] of Object.entries(callKinds)) {
      expect(kind.name).toBe(name);
      expect(callKind(name)).toBe(kind);
      expect(INTEGRATIONS).toContain(kind.integration);
      expect(kind.data.safeParse({}).success, `${name} refuses an empty payload`).toBe(false);
      expect(kind.data.parse(SAMPLES[kind.name])).toEqual(SAMPLES[kind.name]);
      expect(typeof kind.run).toBe('function');
    }
    expect(callKind('no.such-kind')).toBeUndefined();
    expect(callKind('toString')).toBeUndefined();
  });

  for (const kind of kinds) {
    it(`${kind.name}: a record key rule and a sweeper path, or declared not per order with its reason`, () => {
      const sample = SAMPLES[kind.name];
      const key = callIdempotencyKey(kind, sample);
      if (kind.perOrder) {
        const record = kind.record(sample);
        expect(record.orderId).toBe((sample as { orderId: string }).orderId);
        expect(typeof record.key).toBe('string');
        expect(kind.sweep).toBe('owed-call-records');
        expect(kind.intervention.cause).toMatch(/^[a-z_]+$/);
        // The case's cause leads back to its kind: that is how `retry` of a case finds the call.
        expect(callKindForCause(kind.intervention.cause)).toBe(kind);
        expect(typeof kind.intervention.about(sample)).toBe('object');
        expect(key).toBe(`${kind.name}:${record.orderId}:${record.key}${kind.instance ? `:${kind.instance(sample)}` : ''}`);
      } else {
        expect(kind.sweep.notSwept.length).toBeGreaterThan(20);
        const { subject, key: k } = kind.identity(sample);
        expect(key).toBe(`${kind.name}:${subject}:${k}`);
      }
    });
  }

  it('says in one table which calls each status owes: the notified statuses notify, 7000 also assigns a partner and tells MAO', () => {
    for (const [status, reactions] of Object.entries(STATUS_REACTIONS)) {
      for (const r of reactions) expect(callKind(r.kind)?.perOrder, `${r.kind} is a per-order kind`).toBe(true);
      expect(reactions.some((r) => r.kind === 'notify.customer')).toBe(NOTIFIED_STATUSES[Number(status)] !== undefined);
    }
    for (const status of Object.keys(NOTIFIED_STATUSES)) expect(STATUS_REACTIONS[Number(status)]?.map((r) => r.kind)).toContain('notify.customer');
    const all = () => true;
    expect(callsOwedOnReaching('SO-1', 7000, all)).toEqual([
      { kind: 'notify.customer', orderId: 'SO-1', key: '7000', data: { orderId: 'SO-1', status: 7000 } },
      { kind: 'pmp.assignment', orderId: 'SO-1', key: '', data: { orderId: 'SO-1' } },
      { kind: 'mao.order-status', orderId: 'SO-1', key: '', data: { orderId: 'SO-1' } },
    ]);
    for (const call of callsOwedOnReaching('SO-1', 7000, all)) expect(callKinds[call.kind].data.safeParse(call.data).success).toBe(true);
    // An integration without a base URL owes nothing.
    expect(callsOwedOnReaching('SO-1', 7000, (i) => i === 'mao').map((c) => c.kind)).toEqual(['mao.order-status']);
    expect(callsOwedOnReaching('SO-1', 7100, all).map((c) => c.kind)).toEqual(['notify.customer']);
    expect(callsOwedOnReaching('SO-1', 3700, all)).toEqual([]);
  });

  it('gives every per-order kind its own intervention cause', () => {
    const causes = kinds.flatMap((k) => (k.perOrder ? [k.intervention.cause] : []));
    expect(new Set(causes).size).toBe(causes.length);
    expect(callKindForCause('slick_confirmed_order_moved')).toBeUndefined();
  });
});

describe('per-order call records on a running hub', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({
      env: {
        SLICK_RETRY_DELAYS_MS: '100,100,100',
        NOTIFY_RETRY_DELAYS_MS: '100,100,100',
        // The breaker has its own test; here it must not interfere with counting attempts.
        CIRCUIT_FAILURE_THRESHOLD: '1000',
      },
    });
  });
  afterAll(async () => {
    await hub?.close();
  });
  // A failure mode counts every call to a simulator: the calls an earlier test left under way (the
  // notification of an order it took to 7000) must be done before the next test sets one.
  beforeEach(async () => {
    await eventually(async () => {
      const [unpublished] = await hub.web.db.execute<{ n: number }>(sql`select count(*)::int as n from outbox where published_at is null`);
      // A call is owed (its record pending) from the relay's commit, a moment before its job is queued.
      const [pending] = await hub.web.db.execute<{ n: number }>(sql`select count(*)::int as n from order_calls where state = 'pending'`);
      const jobs = await hub.web.queues.partnerCalls.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return unpublished!.n === 0 && pending!.n === 0 && Object.values(jobs).every((n) => n === 0) ? true : undefined;
    }, 'earlier calls done');
    hub.sims.reset();
  });

  const record = async (orderId: string, kind: PartnerCallJobName, key: string) => {
    const [row] = await hub.web.db
      .select()
      .from(orderCalls)
      .where(and(eq(orderCalls.orderId, orderId), eq(orderCalls.kind, kind), eq(orderCalls.key, key)));
    return row;
  };
  const untilRecord = (orderId: string, kind: PartnerCallJobName, key: string, state: string) =>
    eventually(async () => {
      const row = await record(orderId, kind, key);
      return row?.state === state ? row : undefined;
    }, `${kind}:${key} of ${orderId} ${state}`);
  const order = async (orderId: string) => (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body;
  const openCases = async (orderId: string) =>
    (await hub.clients.operator.get(`/api/interventions?state=open&orderId=${orderId}`)).body.interventions as Array<Record<string, any>>;
  const slickCalls = (orderId: string) => hub.sims.slick.requests.filter((r) => r.path === SHIP_PATH && (r.body as { orderId?: string }).orderId === orderId);
  const notifyCalls = (orderId: string) => hub.sims.notify.requests.filter((r) => (r.body as { orderId?: string }).orderId === orderId);
  async function deadLetter(kind: PartnerCallJobName, orderId: string) {
    return eventually(async () => {
      const list = (await hub.clients.operator.get('/api/dlq')).body.deadLetters as Array<Record<string, any>>;
      return list.find((d) => d.name === kind && d.data.orderId === orderId);
    }, `${kind} dead letter of ${orderId}`);
  }

  /** An order whose `shipped` event was applied: its Slick confirmation is owed. */
  async function appliedShippedEventId(orderId: string): Promise<string> {
    const rows = await hub.web.db.execute<{ event_id: string }>(
      sql`select event_id from inbound_events where order_id = ${orderId} and type = 'shipped' and state = 'applied' order by processed_at desc limit 1`,
    );
    return rows[0]!.event_id;
  }
  async function shipOrder(): Promise<string> {
    const orderId = await registerOrder(hub);
    for (const type of ['packed', 'shipped']) {
      const res = await hub.clients.slick.post(SHIP_PATH, shipEvent(orderId, type), WAIT);
      expect(res.body.state).toBe('applied');
    }
    return orderId;
  }
  async function fulfilledOrder(): Promise<string> {
    const orderId = await shipOrder();
    await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), `${orderId} at 7000`);
    return orderId;
  }

  /** With the workers stopped, `retry` leaves the record reopened for anyone to see; then they run it. */
  async function retried(orderId: string, kind: PartnerCallJobName, key: string, retry: () => Promise<void>) {
    await hub.stopInProcessWorkers();
    try {
      await retry();
      expect(await record(orderId, kind, key)).toMatchObject({ state: 'pending', attempts: 0, lastError: null });
    } finally {
      hub.startInProcessWorkers();
    }
    return untilRecord(orderId, kind, key, 'confirmed');
  }

  describe('Slick ship confirmation', () => {
    it('goes pending → confirmed, counting the attempts it took; the order view and the lock read the same record', async () => {
      hub.sims.slick.setFailureMode({ failTimes: 2, status: 503 });
      const orderId = await shipOrder();
      const confirmed = await untilRecord(orderId, 'slick.ship-confirmation', '', 'confirmed');
      expect(confirmed).toMatchObject({ attempts: 3, lastError: null, data: { orderId } });
      expect((await order(orderId)).status).toBe(7000);
      expect((await getOrder(hub.web.db, orderId)).calls['slick.ship-confirmation:']).toBe('confirmed');
      // Slick's confirmation id is kept in the history of the step it made.
      const history = (await hub.clients.viewer.get(`/api/orders/${orderId}/history`)).body.history as Array<Record<string, any>>;
      expect(history.at(-1)).toMatchObject({ to: 7000, note: expect.stringMatching(/^Slick confirmation SLK-/) });
    });

    it('a failure: failed with attempts and last error; a dead-letter retry reopens it and it is confirmed', async () => {
      hub.sims.slick.setFailureMode({ status: 500 });
      const orderId = await shipOrder();
      const failed = await untilRecord(orderId, 'slick.ship-confirmation', '', 'failed');
      expect(failed).toMatchObject({ attempts: 4, lastError: expect.stringMatching(/slick answered 500/) });
      const [kase] = await openCases(orderId);
      expect(kase).toMatchObject({ cause: 'slick_ship_confirmation_failed' });
      expect(kase!.detail).toMatchObject({
        callKind: 'slick.ship-confirmation',
        callKey: '',
        shipEventId: failed.data.shipEventId,
        attempts: 4,
        errorClass: 'retriable',
        status: 500,
        error: expect.stringMatching(/slick answered 500/),
        orderStatus: 3700,
      });

      const dead = await deadLetter('slick.ship-confirmation', orderId);
      hub.sims.slick.resetFailureMode();
      const confirmed = await retried(orderId, 'slick.ship-confirmation', '', async () => {
        expect((await hub.clients.operator.post(`/api/dlq/${encodeURIComponent(dead.id)}/retry`, {})).status).toBe(202);
      });
      expect(confirmed).toMatchObject({ attempts: 1, lastError: null });
      expect((await order(orderId)).status).toBe(7000);
      expect(await openCases(orderId)).toHaveLength(0);
    });

    it('a refusal: failed after one attempt; an intervention retry reopens it the same way', async () => {
      hub.sims.slick.setFailureMode({ status: 400 });
      const orderId = await shipOrder();
      const failed = await untilRecord(orderId, 'slick.ship-confirmation', '', 'failed');
      expect(failed).toMatchObject({ attempts: 1, lastError: expect.stringMatching(/slick answered 400/) });
      const [kase] = await openCases(orderId);
      expect(kase!.detail).toMatchObject({ errorClass: 'non_retriable', status: 400, attempts: 1 });

      hub.sims.slick.resetFailureMode();
      const confirmed = await retried(orderId, 'slick.ship-confirmation', '', async () => {
        const res = await hub.clients.operator.post(`/api/interventions/${kase!.id}/resolve`, { action: 'retry', note: 'mapping fixed' });
        expect(res.status).toBe(200);
      });
      expect(confirmed).toMatchObject({ attempts: 1, lastError: null });
      expect(slickCalls(orderId)).toHaveLength(2);
    });
  });

  describe('customer notification', () => {
    it('goes pending → confirmed once per order and status, counting the attempts it took', async () => {
      hub.sims.notify.setFailureMode({ failTimes: 2, status: 503 });
      const orderId = await fulfilledOrder();
      const confirmed = await untilRecord(orderId, 'notify.customer', '7000', 'confirmed');
      expect(confirmed).toMatchObject({ attempts: 3, lastError: null, data: { orderId, status: 7000 } });
      expect(notifyCalls(orderId).map((r) => r.status)).toEqual([503, 503, 202]);
      expect(notifyCalls(orderId).at(-1)!.body).toEqual({ orderId, customerId: 'CUST-1', status: 7000, template: 'order_shipped' });
      await untilRecord(orderId, 'pmp.assignment', '', 'confirmed');
      await untilRecord(orderId, 'mao.order-status', '', 'confirmed');
      expect((await getOrder(hub.web.db, orderId)).calls).toEqual({
        'slick.ship-confirmation:': 'confirmed',
        'notify.customer:7000': 'confirmed',
        'pmp.assignment:': 'confirmed',
        'mao.order-status:': 'confirmed',
      });
    });

    it('a failure: failed with attempts and last error and a case; a dead-letter retry reopens it and it is sent', async () => {
      hub.sims.notify.setFailureMode({ status: 500 });
      const orderId = await fulfilledOrder();
      const failed = await untilRecord(orderId, 'notify.customer', '7000', 'failed');
      expect(failed).toMatchObject({ attempts: 4, lastError: expect.stringMatching(/notify answered 500/) });
      const [kase] = await openCases(orderId);
      expect(kase).toMatchObject({ cause: 'customer_notification_failed' });
      expect(kase!.detail).toMatchObject({
        callKind: 'notify.customer',
        callKey: '7000',
        notifiedStatus: 7000,
        template: 'order_shipped',
        attempts: 4,
        errorClass: 'retriable',
        status: 500,
        orderStatus: 7000,
      });

      const dead = await deadLetter('notify.customer', orderId);
      hub.sims.notify.resetFailureMode();
      const confirmed = await retried(orderId, 'notify.customer', '7000', async () => {
        expect((await hub.clients.operator.post(`/api/dlq/${encodeURIComponent(dead.id)}/retry`, {})).status).toBe(202);
      });
      expect(confirmed).toMatchObject({ attempts: 1, lastError: null });
      expect(notifyCalls(orderId).filter((r) => r.status === 202)).toHaveLength(1);
      // The case its failure opened is closed by the call that succeeded.
      expect(await openCases(orderId)).toHaveLength(0);
    });

    it('a refusal: failed after one attempt; an intervention retry reopens it the same way', async () => {
      hub.sims.notify.setFailureMode({ status: 400 });
      const orderId = await fulfilledOrder();
      const failed = await untilRecord(orderId, 'notify.customer', '7000', 'failed');
      expect(failed).toMatchObject({ attempts: 1, lastError: expect.stringMatching(/notify answered 400/) });
      const [kase] = await openCases(orderId);
      expect(kase!.detail).toMatchObject({ errorClass: 'non_retriable', status: 400 });

      hub.sims.notify.resetFailureMode();
      const confirmed = await retried(orderId, 'notify.customer', '7000', async () => {
        expect((await hub.clients.operator.post(`/api/interventions/${kase!.id}/resolve`, { action: 'retry' })).status).toBe(200);
      });
      expect(confirmed).toMatchObject({ attempts: 1, lastError: null });
      expect(notifyCalls(orderId).map((r) => r.status)).toEqual([400, 202]);
    });

    it('is not scheduled again for a status whose notification is already confirmed', async () => {
      const orderId = await fulfilledOrder();
      await untilRecord(orderId, 'notify.customer', '7000', 'confirmed');
      // The same status.changed row published again (a relay crash between XADD and commit).
      await hub.web.db.execute(sql`update outbox set published_at = null where order_id = ${orderId} and type = 'status.changed'`);
      await eventually(async () => {
        const [row] = await hub.web.db.execute<{ n: number }>(sql`select count(*)::int as n from outbox where order_id = ${orderId} and published_at is null`);
        return row!.n === 0 ? true : undefined;
      }, 'outbox republished');
      await new Promise((r) => setTimeout(r, 300));
      expect(notifyCalls(orderId)).toHaveLength(1);
    });
  });

  describe('Idempotency-Key', () => {
    it('is the same on every attempt and retry of one call, and differs between calls', async () => {
      hub.sims.slick.setFailureMode({ failTimes: 2, status: 503 });
      const orderId = await shipOrder();
      await untilRecord(orderId, 'slick.ship-confirmation', '', 'confirmed');
      await untilRecord(orderId, 'notify.customer', '7000', 'confirmed');
      const shippedId = await appliedShippedEventId(orderId);
      expect(slickCalls(orderId).map((r) => r.headers['idempotency-key'])).toEqual(Array(3).fill(`slick.ship-confirmation:${orderId}::${shippedId}`));
      expect(notifyCalls(orderId).map((r) => r.headers['idempotency-key'])).toEqual([`notify.customer:${orderId}:7000`]);

      // A dead-lettered call retried by an operator is still the same call.
      hub.sims.slick.setFailureMode({ status: 400 });
      const second = await shipOrder();
      await untilRecord(second, 'slick.ship-confirmation', '', 'failed');
      hub.sims.slick.resetFailureMode();
      const dead = await deadLetter('slick.ship-confirmation', second);
      expect((await hub.clients.operator.post(`/api/dlq/${encodeURIComponent(dead.id)}/retry`, {})).status).toBe(202);
      await untilRecord(second, 'slick.ship-confirmation', '', 'confirmed');
      const secondShipped = await appliedShippedEventId(second);
      expect(slickCalls(second).map((r) => [r.status, r.headers['idempotency-key']])).toEqual([
        [400, `slick.ship-confirmation:${second}::${secondShipped}`],
        [200, `slick.ship-confirmation:${second}::${secondShipped}`],
      ]);
    });
  });

  // Last in this block: it empties Redis.
  describe('the sweeper', () => {
    it('re-creates the lost job of a pending record of each per-order kind, which then completes', async () => {
      // A call of each kind that failed, reopened while Redis lost its job (an intervention retry whose
      // enqueue after commit did not happen, say), and untouched since.
      hub.sims.slick.setFailureMode({ status: 400 });
      const slickOrder = await shipOrder();
      await untilRecord(slickOrder, 'slick.ship-confirmation', '', 'failed');
      hub.sims.slick.resetFailureMode();
      for (const sim of [hub.sims.notify, hub.sims.pmp, hub.sims.mao]) sim.setFailureMode({ status: 400 });
      const notifyOrder = await fulfilledOrder();
      await untilRecord(notifyOrder, 'notify.customer', '7000', 'failed');
      await untilRecord(notifyOrder, 'pmp.assignment', '', 'failed');
      await untilRecord(notifyOrder, 'mao.order-status', '', 'failed');
      for (const sim of [hub.sims.notify, hub.sims.pmp, hub.sims.mao]) sim.resetFailureMode();
      // A COD collection to relay whose record was written while Redis lost its job.
      const codOrder = await registerOrder(hub, { paymentMethod: 'COD', codAmount: 120 });
      for (const type of ['packed', 'shipped']) expect((await hub.clients.slick.post(SHIP_PATH, shipEvent(codOrder, type), WAIT)).body.state).toBe('applied');
      for (const kind of ['pmp.assignment', 'mao.order-status'] as const) await untilRecord(codOrder, kind, '', 'confirmed');
      await hub.web.db.execute(sql`insert into cod_ledger (order_id, expected_amount, collected_amount, collected_at, collected_by, event_id, relay)
        values (${codOrder}, 120, 120, now(), 'PTN-TEST', 'pmp-evt-swept', 'pending')`);
      const owed = {
        'slick.ship-confirmation': { orderId: slickOrder, key: '' },
        'notify.customer': { orderId: notifyOrder, key: '7000' },
        'pmp.assignment': { orderId: notifyOrder, key: '' },
        'mao.order-status': { orderId: notifyOrder, key: '' },
        'slick.cod-collected': { orderId: codOrder, key: '' },
      } as const;
      expect(Object.keys(owed).sort()).toEqual(
        kinds
          .filter((k) => k.perOrder)
          .map((k) => k.name)
          .sort(),
      );

      await hub.stopInProcessWorkers();
      await hub.emptyRedis();
      await hub.web.db.execute(sql`insert into order_calls (order_id, kind, key, state, data)
        values (${codOrder}, 'slick.cod-collected', '', 'failed', ${JSON.stringify({ orderId: codOrder, eventId: 'pmp-evt-swept' })}::jsonb)`);
      for (const [kind, call] of Object.entries(owed) as Array<[keyof typeof owed, (typeof owed)[keyof typeof owed]]>) {
        expect(await reopenFailedCalls(hub.web.db, { orderId: call.orderId, kind })).toHaveLength(1);
        await hub.web.db.execute(sql`update order_calls set updated_at = now() - interval '10 minutes' where order_id = ${call.orderId} and kind = ${kind}`);
        expect(await hub.web.queues.partnerCalls.getJob(orderCallJobId({ kind, ...call }))).toBeUndefined();
      }
      // A record its kind cannot read is failed with its case, not rescheduled for ever.
      const unreadable = await registerOrder(hub);
      await hub.web.db.execute(sql`insert into order_calls (order_id, kind, key, state, data, updated_at)
        values (${unreadable}, 'slick.ship-confirmation', '', 'pending', ${JSON.stringify({ orderId: unreadable })}::jsonb, now() - interval '10 minutes')`);

      expect(await sweepOnce(hub.worker)).toBeGreaterThanOrEqual(2);
      for (const [kind, call] of Object.entries(owed) as Array<[keyof typeof owed, (typeof owed)[keyof typeof owed]]>) {
        const job = await hub.web.queues.partnerCalls.getJob(orderCallJobId({ kind, ...call }));
        expect(job?.name).toBe(kind);
        expect(job?.data).toEqual((await record(call.orderId, kind, call.key))!.data);
      }
      expect(await record(unreadable, 'slick.ship-confirmation', '')).toMatchObject({
        state: 'failed',
        lastError: expect.stringMatching(/not a slick.ship-confirmation job/),
      });
      expect((await openCases(unreadable))[0]).toMatchObject({ cause: 'slick_ship_confirmation_failed', detail: { errorClass: 'non_retriable' } });

      hub.startInProcessWorkers();
      for (const [kind, call] of Object.entries(owed) as Array<[keyof typeof owed, (typeof owed)[keyof typeof owed]]>) {
        await untilRecord(call.orderId, kind, call.key, 'confirmed');
      }
      expect((await order(slickOrder)).status).toBe(7000);
      expect((await order(notifyOrder)).partner).toMatchObject({ partnerId: expect.stringMatching(/^PTN-/) });
      expect(
        hub.sims.slick.requests.filter(
          (r) => (r.body as { eventType?: string }).eventType === 'collected' && (r.body as { orderId?: string }).orderId === codOrder,
        ),
      ).toHaveLength(1);
      const metrics = await hub.worker.metrics.registry.getSingleMetricAsString('hub_events_swept_total');
      expect(metrics).toMatch(/kind="slick.ship-confirmation"[^}]*} [1-9]/);
      expect(metrics).toMatch(/kind="notify.customer"[^}]*} [1-9]/);
    });
  });
});

describe('a Slick 200 whose body is not an acceptance of the order', () => {
  /** Stands in for Slick answering 200 with a body the hub cannot use. */
  let slick: Server;
  let answer: unknown = { status: 'accepted' };
  const received: Array<{ path: string; body: unknown }> = [];
  let hub: TestHub;
  beforeAll(async () => {
    slick = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        received.push({ path: req.url ?? '', body: text ? JSON.parse(text) : undefined });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(req.url === SHIP_PATH ? answer : { status: 'ok' }));
      });
    }).listen(0, '127.0.0.1');
    await once(slick, 'listening');
    hub = await startTestHub({ env: { SLICK_BASE_URL: `http://127.0.0.1:${(slick.address() as AddressInfo).port}`, SLICK_RETRY_DELAYS_MS: '100,100,100' } });
  });
  afterAll(async () => {
    await hub?.close();
    slick?.close();
  });

  const answers: Array<[string, (orderId: string) => unknown]> = [
    ['without a confirmation id', (orderId) => ({ status: 'accepted', orderId })],
    ['for another order', () => ({ status: 'accepted', orderId: 'SO-SOMEONE-ELSE', confirmationId: 'SLK-1' })],
    ['that is a bare string', () => 'OK'],
  ];
  for (const [what, body] of answers) {
    it(`${what}: not retried, the order stays at 3700, the call is failed with a case and dead-lettered`, async () => {
      const orderId = await registerOrder(hub);
      answer = body(orderId);
      for (const type of ['packed', 'shipped']) expect((await hub.clients.slick.post(SHIP_PATH, shipEvent(orderId, type), WAIT)).body.state).toBe('applied');
      const failed = await eventually(async () => {
        const states = (await getOrder(hub.web.db, orderId)).calls;
        return states['slick.ship-confirmation:'] === 'failed' ? states : undefined;
      }, 'confirmation failed');
      expect(failed).toBeDefined();
      expect(received.filter((r) => r.path === SHIP_PATH && (r.body as { orderId: string }).orderId === orderId)).toHaveLength(1);
      expect((await hub.clients.viewer.get(`/api/orders/${orderId}`)).body).toMatchObject({ status: 3700, slickConfirmation: 'failed' });
      const [kase] = (await hub.clients.operator.get(`/api/interventions?state=open&orderId=${orderId}`)).body.interventions;
      expect(kase.detail).toMatchObject({
        errorClass: 'non_retriable',
        status: 200,
        attempts: 1,
        error: expect.stringMatching(/slick answered 200 with a body the hub cannot use/),
      });
      const audit = (await hub.clients.viewer.get(`/api/orders/${orderId}/partner-calls`)).body.partnerCalls as Array<Record<string, any>>;
      expect(audit.filter((r) => r.operation === 'ship-confirmation')).toMatchObject([{ status: 200, errorClass: 'non_retriable' }]);
      await eventually(async () => {
        const list = (await hub.clients.operator.get('/api/dlq')).body.deadLetters as Array<Record<string, any>>;
        return list.some((d) => d.name === 'slick.ship-confirmation' && d.data.orderId === orderId) ? true : undefined;
      }, 'dead letter');
    });
  }
});
