import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { partnerForOrder } from '../../src/simulators/pmp.simulator.js';
import { createPartnerClients } from '../../src/workers/hub-workers.js';
import { reconcileOnce, type PmpDeliveryLookup } from '../../src/tiers/reconciliation.js';
import { openTierSlaBreaches } from '../../src/tiers/discrepancies.js';
import { courierEvent, eventually, registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * PMP's events (SPEC §5.2) and the three tiers (§5.3) over signed HTTP, with the real Slick, PMP, MAO
 * and Grab simulators: tier 2 (MAO told "Shipped") before tier 1 (PMP's "Delivered") before tier 3
 * (the COD collection relayed to Slick), and every discrepancy a case.
 */
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(async () => {
  await hub?.close();
});
beforeEach(() => hub.sims.reset());

const WAIT = { prefer: 'wait=10' };
let n = 0;
function pmp(orderId: string, type: string, extra: Record<string, unknown> = {}) {
  return {
    eventId: `pmp-test-${orderId}-${type}-${++n}`,
    orderId,
    partnerId: partnerForOrder(orderId).partnerId,
    type,
    occurredAt: new Date().toISOString(),
    ...extra,
  };
}
const sendPmp = (body: Record<string, unknown>) => hub.clients.pmp.post('/api/pmp/events', body, WAIT);
const sendCourier = (body: Record<string, unknown>) => hub.clients.grab.put('/api/delivery/status', body, WAIT);
const order = async (orderId: string) => (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body;
const tiers = async (orderId: string) => (await hub.clients.viewer.get(`/api/orders/${orderId}/tiers`)).body;
const tierStates = async (orderId: string) => ((await tiers(orderId)).tiers as Array<{ tier: number; state: string }>).map((t) => t.state);
const openCases = async (orderId: string) =>
  (await hub.clients.viewer.get(`/api/interventions?state=open&orderId=${orderId}`)).body.interventions as Array<Record<string, any>>;

/** An order Slick fulfilled (7000), with tier 2 done (MAO told) once the hub's call to MAO went through. */
async function fulfilledOrder(overrides: Record<string, unknown> = {}): Promise<string> {
  const orderId = await registerOrder(hub, overrides);
  for (const type of ['packed', 'shipped'])
    expect((await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, type), WAIT)).status).toBe(200);
  await eventually(async () => ((await order(orderId)).status === 7000 ? true : undefined), `${orderId} at 7000`);
  return orderId;
}
async function untilTier(orderId: string, tier: number, state: string) {
  return eventually(async () => {
    const t = (await tiers(orderId)).tiers.find((x: { tier: number }) => x.tier === tier);
    return t?.state === state ? t : undefined;
  }, `${orderId} tier ${tier} ${state}`);
}
const cod = { paymentMethod: 'COD', codAmount: 450 };

describe('PMP events and the three tiers', () => {
  it('prepaid: assignment stored, MAO told (tier 2), PMP delivered → 7500 (tier 1); tiers done / done / not applicable', async () => {
    const orderId = await fulfilledOrder();
    await untilTier(orderId, 2, 'done');
    const res = await sendPmp(pmp(orderId, 'delivery.delivered'));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ state: 'applied', orderStatus: 7500, source: 'pmp', type: 'delivery.delivered' });
    const view = await tiers(orderId);
    expect(view.tiers.map((t: Record<string, unknown>) => [t.tier, t.name, t.state])).toEqual([
      [1, 'PMP → OMS Delivered', 'done'],
      [2, 'Slick → MAO Shipped', 'done'],
      [3, 'PMP → Slick Collected', 'not_applicable'],
    ]);
    expect(view.discrepancies).toEqual([]);
    const history = (await hub.clients.viewer.get(`/api/orders/${orderId}/history`)).body.history as Array<Record<string, any>>;
    expect(history.slice(-4).map((h) => [h.from, h.to, h.implied, h.source])).toEqual([
      [7000, 7100, true, 'pmp'],
      [7100, 7200, true, 'pmp'],
      [7200, 7300, true, 'pmp'],
      [7300, 7500, false, 'pmp'],
    ]);
    const messages = await eventually(async () => {
      const all = (await hub.topicMessages()).filter((m) => m.orderId === orderId && m.type === 'tier.updated');
      return all.length >= 2 ? all : undefined;
    }, 'tier messages');
    expect(messages.map((m) => [JSON.parse(m.payload!).tier, JSON.parse(m.payload!).state])).toEqual(
      expect.arrayContaining([
        [2, 'done'],
        [1, 'done'],
      ]),
    );
  });

  it('tier 1 waits for tier 2: PMP delivered before MAO took the status leaves tier 1 ready, done once tier 2 is', async () => {
    hub.sims.mao.setFailureMode({ status: 400 });
    const orderId = await fulfilledOrder();
    await untilTier(orderId, 2, 'failed');
    const res = await sendPmp(pmp(orderId, 'delivery.delivered'));
    expect(res.body.orderStatus).toBe(7500);
    expect((await tiers(orderId)).tiers[0]).toMatchObject({ tier: 1, state: 'pending', detail: { ready: true, waitingFor: 2 } });
    // MAO fixed; the case's retry tells it again, and tier 1 follows tier 2.
    hub.sims.mao.resetFailureMode();
    const [open] = (await openCases(orderId)).filter((c) => c.cause === 'mao_status_failed');
    expect((await hub.clients.operator.post(`/api/interventions/${open!.id}/resolve`, { action: 'retry' })).status).toBe(200);
    await untilTier(orderId, 2, 'done');
    const settled = await untilTier(orderId, 1, 'done');
    expect(settled.detail).toMatchObject({ partnerId: partnerForOrder(orderId).partnerId });
  });

  it('COD with the right amount: relayed to Slick as collected, all three tiers done', async () => {
    const orderId = await fulfilledOrder(cod);
    await untilTier(orderId, 2, 'done');
    expect((await sendPmp(pmp(orderId, 'delivery.delivered'))).body.orderStatus).toBe(7500);
    const collected = await sendPmp(pmp(orderId, 'cod.collected', { amount: 450 }));
    expect(collected.body).toMatchObject({ state: 'applied', reason: null });
    await untilTier(orderId, 3, 'done');
    expect(await tierStates(orderId)).toEqual(['done', 'done', 'done']);
    const relayed = hub.sims.slick.requests.filter(
      (r) => (r.body as { eventType?: string; orderId?: string } | undefined)?.eventType === 'collected' && (r.body as { orderId: string }).orderId === orderId,
    );
    expect(relayed).toHaveLength(1);
    expect(relayed[0]!.body).toMatchObject({ orderId, eventType: 'collected', codAmount: 450 });
    const ledger = await hub.web.db.execute(
      sql`select expected_amount, collected_amount, collected_by, relay, confirmed_at from cod_ledger where order_id = ${orderId}`,
    );
    expect(ledger[0]).toMatchObject({
      expected_amount: '450.00',
      collected_amount: '450.00',
      collected_by: partnerForOrder(orderId).partnerId,
      relay: 'confirmed',
    });
    expect(ledger[0]!.confirmed_at).not.toBeNull();
    expect((await order(orderId)).cod).toMatchObject({
      expectedAmount: 450,
      collectedAmount: 450,
      collectedBy: partnerForOrder(orderId).partnerId,
      relay: 'confirmed',
    });
    // The relay publishes it once committed.
    const message = await eventually(
      async () => (await hub.topicMessages()).find((m) => m.orderId === orderId && m.type === 'cod.collected'),
      'cod.collected on the topic',
    );
    expect(JSON.parse(message.payload!)).toMatchObject({ amount: 450, expectedAmount: 450, relayed: true });
  });

  it('COD with a wrong amount: a discrepancy and its case, tier 3 not done, nothing relayed; resolving the case resolves it', async () => {
    const orderId = await fulfilledOrder(cod);
    await untilTier(orderId, 2, 'done');
    await sendPmp(pmp(orderId, 'delivery.delivered'));
    const res = await sendPmp(pmp(orderId, 'cod.collected', { amount: 400 }));
    expect(res.body).toMatchObject({ state: 'applied', reason: 'cod_amount_mismatch' });
    let view = await tiers(orderId);
    expect(view.tiers[2]).toMatchObject({ tier: 3, state: 'failed' });
    expect(view.discrepancies).toEqual([
      expect.objectContaining({
        code: 'cod_amount_mismatch',
        tier: 3,
        resolvedAt: null,
        detail: expect.objectContaining({ amount: 400, expectedAmount: 450 }),
      }),
    ]);
    const [open] = await openCases(orderId);
    expect(open).toMatchObject({ cause: 'cod_amount_mismatch' });
    expect(
      hub.sims.slick.requests.some(
        (r) =>
          (r.body as { eventType?: string; orderId?: string } | undefined)?.eventType === 'collected' && (r.body as { orderId: string }).orderId === orderId,
      ),
    ).toBe(false);

    const dismissed = await hub.clients.operator.post(`/api/interventions/${open!.id}/resolve`, {
      action: 'dismiss',
      note: 'partner paid the rest in cash at the store',
    });
    expect(dismissed.status).toBe(200);
    view = await tiers(orderId);
    expect(view.discrepancies[0].resolvedAt).not.toBeNull();
  });

  it('collected before delivered: a discrepancy, not relayed', async () => {
    const orderId = await fulfilledOrder(cod);
    const res = await sendPmp(pmp(orderId, 'cod.collected', { amount: 450 }));
    expect(res.body).toMatchObject({ state: 'applied', reason: 'collected_before_delivered', orderStatus: 7000 });
    const view = await tiers(orderId);
    expect(view.discrepancies.map((d: { code: string }) => d.code)).toEqual(['collected_before_delivered']);
    expect(view.tiers[2].state).toBe('pending');
    expect((await openCases(orderId)).map((c) => c.cause)).toContain('collected_before_delivered');
    expect(
      hub.sims.slick.requests.some(
        (r) => (r.body as { eventType?: string } | undefined)?.eventType === 'collected' && (r.body as { orderId: string }).orderId === orderId,
      ),
    ).toBe(false);
  });

  it('PMP delivery.failed → 7400, counted, escalated; the courier and PMP disagreeing are discrepancies', async () => {
    const orderId = await fulfilledOrder();
    const failed = await sendPmp(pmp(orderId, 'delivery.failed', { failureReason: 'customer refused' }));
    expect(failed.body).toMatchObject({ state: 'applied', orderStatus: 7400 });
    const o = await order(orderId);
    expect(o).toMatchObject({ deliveryAttempts: 1, delivery: { lastFailure: { reason: 'customer refused' } } });
    expect((await openCases(orderId)).map((c) => c.cause)).toContain('pmp_delivery_failed');

    // The courier then says FAILED too (agreeing), and PMP says delivered: 7500, but the courier's last word was FAILED.
    const other = await fulfilledOrder();
    expect((await sendCourier(courierEvent(other, 'OUT_FOR_DELIVERY'))).body.orderStatus).toBe(7300);
    expect((await sendCourier(courierEvent(other, 'FAILED', { failureReason: 'no one home' }))).body.orderStatus).toBe(7400);
    expect((await sendPmp(pmp(other, 'delivery.delivered'))).body).toMatchObject({ state: 'applied', orderStatus: 7500 });
    expect((await tiers(other)).discrepancies.map((d: { code: string }) => d.code)).toEqual(['courier_pmp_conflict']);

    // The reverse: PMP delivered, then the courier reports a failed attempt.
    const third = await fulfilledOrder();
    expect((await sendPmp(pmp(third, 'delivery.delivered'))).body.orderStatus).toBe(7500);
    const late = await sendCourier(courierEvent(third, 'FAILED'));
    expect(late.body).toMatchObject({ state: 'ignored', reason: 'stale', orderStatus: 7500 });
    expect((await tiers(third)).discrepancies.map((d: { code: string }) => d.code)).toEqual(['courier_pmp_conflict']);
    expect((await openCases(third)).map((c) => c.cause)).toContain('courier_pmp_conflict');
  });

  it('refuses events for orders not yet fulfilled, from another partner, and a non-COD collection', async () => {
    const early = await registerOrder(hub);
    const r1 = await sendPmp(pmp(early, 'delivery.delivered'));
    expect(r1.status).toBe(422);
    expect(r1.body.error.code).toBe('invalid_transition');
    const orderId = await fulfilledOrder();
    await eventually(async () => ((await order(orderId)).partner ? true : undefined), 'PMP assignment');
    const r2 = await sendPmp({ ...pmp(orderId, 'delivery.delivered'), partnerId: 'PTN-SOMEONE-ELSE' });
    expect(r2.body.error.code).toBe('partner_mismatch');
    const r3 = await sendPmp(pmp(orderId, 'cod.collected', { amount: 10 }));
    expect(r3.body.error.code).toBe('not_cod_order');
    expect((await hub.clients.pmp.post('/api/pmp/events', { ...pmp(orderId, 'cod.collected'), amount: undefined })).status).toBe(400);
    expect((await hub.clients.slick.post('/api/pmp/events', pmp(orderId, 'delivery.delivered'))).status).toBe(403);
  });

  it('reconciliation applies what PMP knows and the hub missed, once, even when run twice', async () => {
    const orderId = await fulfilledOrder();
    const occurredAt = new Date().toISOString();
    hub.sims.pmp.setDelivery(orderId, { status: 'OUT_FOR_DELIVERY', occurredAt });
    const { pmp: client } = createPartnerClients(hub.worker);
    const lookup: PmpDeliveryLookup = (id) => client.delivery(id);
    // As if RECONCILE_AFTER_MS passed without news of the order (the scheduler's own run waits that long).
    const later = { ...hub.worker, clock: { now: () => Date.now() + hub.config.reconcileAfterMs + 60_000 } };
    expect(await reconcileOnce(later, lookup)).toBeGreaterThanOrEqual(1);
    await eventually(async () => ((await order(orderId)).status === 7300 ? true : undefined), 'reconciled to 7300');
    // Asked again (the claim lapsed): the same state is a duplicate, nothing changes twice.
    await hub.redis.del(`${hub.config.redisPrefix}:reconciled:${orderId}`);
    await reconcileOnce(later, lookup);
    const events = await hub.web.db.execute<{ kind: string; actor: string; state: string }>(
      sql`select kind, actor, state from inbound_events where order_id = ${orderId} and kind = 'pmp-delivery-state'`,
    );
    expect(events).toEqual([{ kind: 'pmp-delivery-state', actor: 'system:reconciler', state: 'applied' }]);
    const history = (await hub.clients.viewer.get(`/api/orders/${orderId}/history`)).body.history as Array<Record<string, any>>;
    expect(history.filter((h) => h.to === 7300)).toHaveLength(1);
    expect(history.at(-1)).toMatchObject({ to: 7300, source: 'pmp', actor: 'system:reconciler' });
  });

  it('a tier not done within TIER_SLA_MS of 7000 is a discrepancy, once', async () => {
    const orderId = await fulfilledOrder();
    const later = { ...hub.worker, clock: { now: () => Date.now() + hub.config.tierSlaMs + 60_000 } };
    await openTierSlaBreaches(later);
    await openTierSlaBreaches(later);
    const view = await tiers(orderId);
    expect(view.discrepancies.filter((d: { code: string }) => d.code === 'tier_sla_breach')).toHaveLength(1);
    expect(view.discrepancies[0]).toMatchObject({
      code: 'tier_sla_breach',
      resolvedAt: null,
      detail: expect.objectContaining({ pendingTiers: expect.arrayContaining([1]) }),
    });
    expect((await openCases(orderId)).filter((c) => c.cause === 'tier_sla_breach')).toHaveLength(1);
  });

  it('what PMP says late does not move an order back, and its report of the failure the order is at is still escalated', async () => {
    const { pmp: client } = createPartnerClients(hub.worker);
    const later = { ...hub.worker, clock: { now: () => Date.now() + hub.config.reconcileAfterMs + 60_000 } };
    const orderId = await fulfilledOrder();
    await eventually(async () => ((await order(orderId)).partner ? true : undefined), 'PMP assignment');
    const outAt = new Date(Date.now() - 60_000).toISOString();
    expect((await sendCourier(courierEvent(orderId, 'OUT_FOR_DELIVERY', { occurredAt: outAt }))).body.orderStatus).toBe(7300);
    const failure = courierEvent(orderId, 'FAILED', { failureReason: 'no one home' });
    expect((await sendCourier(failure)).body.orderStatus).toBe(7400);
    // PMP still knows the parcel as out for delivery, from before the failure.
    hub.sims.pmp.setDelivery(orderId, { status: 'OUT_FOR_DELIVERY', occurredAt: outAt });
    await hub.redis.del(`${hub.config.redisPrefix}:reconciled:${orderId}`);
    await reconcileOnce(later, (id) => client.delivery(id));
    const reconciled = await eventually(async () => {
      const rows = await hub.web.db.execute<{ state: string; reason: string | null }>(
        sql`select state, reason from inbound_events where order_id = ${orderId} and kind = 'pmp-delivery-state'`,
      );
      return rows[0] && rows[0].state !== 'queued' ? rows[0] : undefined;
    }, 'the reconciled state processed');
    expect(reconciled).toEqual({ state: 'ignored', reason: 'stale' });
    expect((await order(orderId)).status).toBe(7400);
    // PMP reports the same failed attempt: nothing moves or is counted again, but it is escalated.
    const same = await sendPmp(pmp(orderId, 'delivery.failed', { occurredAt: failure.occurredAt, failureReason: 'no one home' }));
    expect(same.body).toMatchObject({ state: 'applied', orderStatus: 7400 });
    expect((await order(orderId)).deliveryAttempts).toBe(1);
    expect((await openCases(orderId)).map((c) => c.cause)).toContain('pmp_delivery_failed');
  });

  it('a collection withheld before delivery may be reported again after it, and is relayed then; amounts are in cents', async () => {
    const orderId = await fulfilledOrder(cod);
    await untilTier(orderId, 2, 'done');
    expect((await sendPmp(pmp(orderId, 'cod.collected', { amount: 450 }))).body.reason).toBe('collected_before_delivered');
    expect((await sendPmp(pmp(orderId, 'delivery.delivered'))).body.orderStatus).toBe(7500);
    expect((await hub.clients.pmp.post('/api/pmp/events', pmp(orderId, 'cod.collected', { amount: 449.996 }))).status).toBe(400);
    const again = await sendPmp(pmp(orderId, 'cod.collected', { amount: 450 }));
    expect(again.body).toMatchObject({ state: 'applied', reason: null });
    await untilTier(orderId, 3, 'done');
    // The discrepancy stays on record until its case is resolved.
    expect((await tiers(orderId)).discrepancies).toEqual([expect.objectContaining({ code: 'collected_before_delivered', resolvedAt: null })]);
  });

  it('a reconciled assignment without a name cannot replace the partner on the order', async () => {
    const orderId = await fulfilledOrder();
    const assigned = await eventually(async () => ((await order(orderId)).partner ?? undefined) as { partnerId: string } | undefined, 'PMP assignment');
    const { pmp: client } = createPartnerClients(hub.worker);
    const later = { ...hub.worker, clock: { now: () => Date.now() + hub.config.reconcileAfterMs + 60_000 } };
    hub.sims.pmp.setDelivery(orderId, { status: 'ASSIGNED', partnerId: 'PTN-OTHER' });
    await hub.redis.del(`${hub.config.redisPrefix}:reconciled:${orderId}`);
    await reconcileOnce(later, (id) => client.delivery(id));
    await eventually(async () => {
      const rows = await hub.web.db.execute<{ state: string; reason: string | null }>(
        sql`select state, reason from inbound_events where order_id = ${orderId} and kind = 'pmp-delivery-state'`,
      );
      return rows[0]?.state === 'rejected' && rows[0].reason === 'partner_mismatch' ? true : undefined;
    }, 'the reconciled assignment refused');
    expect((await order(orderId)).partner).toEqual(assigned);
  });
});
