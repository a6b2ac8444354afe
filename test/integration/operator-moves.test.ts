import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectSequentialHistory } from '../helpers/history-checks.js';
import { eventually, newOrderId, registerOrder, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * Status changes by people (SPEC §2, §6) over HTTP: an operator's one-step moves and cancellations,
 * every refusal of the status model, bulk moves (all or nothing, in one transaction), the admin
 * override, who may call what, and what each change records (history, topic, metrics).
 */
let hub: TestHub;
beforeAll(async () => {
  hub = await startTestHub();
});
afterAll(async () => {
  await hub?.close();
});

const MAIN_LINE = [1000, 1500, 2000, 3000, 3500, 3600, 3700, 7000, 7100, 7200, 7300, 7500];

const created = () => registerOrder(hub, { status: 1000 });

async function move(orderId: string, status: number, extra: Record<string, unknown> = {}, as: 'operator' | 'admin' = 'operator') {
  return hub.clients[as].post(`/api/orders/${orderId}/status`, { status, reasonCode: 'ops_check', ...extra });
}

async function history(orderId: string): Promise<Array<Record<string, any>>> {
  return (await hub.clients.viewer.get(`/api/orders/${orderId}/history`)).body.history;
}

async function statusOf(orderId: string): Promise<number> {
  return (await hub.clients.viewer.get(`/api/orders/${orderId}`)).body.status;
}

/** An order walked by operator moves from 1000 to `status` along the main line. */
async function orderAt(status: number): Promise<string> {
  const orderId = await created();
  for (const to of MAIN_LINE.slice(1, MAIN_LINE.indexOf(status) + 1)) expect((await move(orderId, to)).status).toBe(200);
  return orderId;
}

/** hub_status_transitions_total for one transition and source, as the web process counts it. */
async function transitions(from: number, to: number, source = 'operator'): Promise<number> {
  const metric = await hub.web.metrics.registry.getSingleMetric('hub_status_transitions_total')!.get();
  return metric.values.find((v) => v.labels.from === String(from) && v.labels.to === String(to) && v.labels.source === source)?.value ?? 0;
}

async function statusMessages(orderId: string, count: number) {
  return eventually(async () => {
    const all = (await hub.topicMessages()).filter((m) => m.orderId === orderId && m.type === 'status.changed').map((m) => JSON.parse(m.payload!));
    return all.length >= count ? all : undefined;
  }, `${count} status messages of ${orderId}`);
}

describe('operator status moves', () => {
  it('walk the main line one step at a time, each with its reason, note, actor and source in history and on the topic', async () => {
    const before = await transitions(1000, 1500);
    const orderId = await created();
    for (const to of MAIN_LINE.slice(1)) {
      const res = await move(orderId, to, { reasonCode: `step_${to}`, note: `moved to ${to}` });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toMatchObject({ orderId, status: to, statusName: expect.any(String) });
    }
    const rows = await expectSequentialHistory(hub, orderId);
    expect(rows.map((r) => r.to)).toEqual(MAIN_LINE);
    for (const r of rows.slice(1)) {
      expect(r).toMatchObject({ actor: 'operator', source: 'operator', reasonCode: `step_${r.to}`, note: `moved to ${r.to}`, implied: false, override: false });
    }
    // Registration's message and one per move, each naming the operator and the reason.
    const messages = await statusMessages(orderId, MAIN_LINE.length);
    expect(messages.slice(1).map((m) => [m.from, m.to])).toEqual(MAIN_LINE.slice(1).map((to, i) => [MAIN_LINE[i], to]));
    for (const m of messages.slice(1))
      expect(m).toMatchObject({ source: 'operator', actor: 'operator', override: false, reasonCode: `step_${m.to}`, locationId: 'STORE-007' });
    expect(await transitions(1000, 1500)).toBe(before + 1);
  });

  it('take the branches off the main line one step at a time: 7400 from 7300, then 7300, 7200, 7500 or 8500', async () => {
    for (const path of [
      [7400, 7300, 7500],
      [7400, 7200],
      [7400, 7500],
      [7400, 8500],
    ]) {
      const orderId = await orderAt(7300);
      for (const to of path) expect((await move(orderId, to)).body.status, `${path.join(' → ')}: ${to}`).toBe(to);
      const rows = await expectSequentialHistory(hub, orderId);
      expect(rows.slice(-path.length).map((r) => r.to)).toEqual(path);
    }
  });

  it('cancel (9000) from every status before 7000, with the reason kept', async () => {
    for (const from of [1000, 1500, 2000, 3000, 3500, 3600, 3700]) {
      const orderId = await orderAt(from);
      const before = await transitions(from, 9000);
      const res = await move(orderId, 9000, { reasonCode: 'customer_request', note: 'called the store' });
      expect(res.status, `${from} → 9000`).toBe(200);
      expect(res.body.status).toBe(9000);
      expect((await history(orderId)).at(-1)).toMatchObject({
        from,
        to: 9000,
        reasonCode: 'customer_request',
        note: 'called the store',
        actor: 'operator',
        source: 'operator',
      });
      expect(await transitions(from, 9000)).toBe(before + 1);
    }
  });

  it('refuse every move SPEC §2 forbids with 422 invalid_transition, naming from, to and what is allowed, and write nothing', async () => {
    const at1000 = await created();
    const at1500 = await orderAt(1500);
    const at7000 = await orderAt(7000);
    const at7500 = await orderAt(7500);
    const cancelled = await created();
    expect((await move(cancelled, 9000)).status).toBe(200);

    const refusals: Array<[string, string, number, number, number[]]> = [
      ['backwards', at1500, 1000, 1500, [2000, 9000]],
      ['skipping a step', at1000, 2000, 1000, [1500, 9000]],
      ['skipping to the end', at1000, 7500, 1000, [1500, 9000]],
      ['to the same status', at1000, 1000, 1000, [1500, 9000]],
      ['cancel after 7000', at7000, 9000, 7000, [7100]],
      ['backwards after 7000', at7000, 3700, 7000, [7100]],
      ['from 7500 (terminal)', at7500, 8500, 7500, []],
      ['from 9000 (terminal)', cancelled, 1000, 9000, []],
      ['from 9000 onwards', cancelled, 1500, 9000, []],
      ['from 9000 to itself', cancelled, 9000, 9000, []],
    ];
    for (const [what, orderId, to, from, allowed] of refusals) {
      const rowsBefore = (await history(orderId)).length;
      const res = await move(orderId, to);
      expect(res.status, what).toBe(422);
      expect(res.body.error.code, what).toBe('invalid_transition');
      expect(res.body.error.details, what).toEqual({ orderId, from, to, allowed });
      expect(res.body.error.message, what).toContain(`${from} cannot move to ${to}`);
      expect(await statusOf(orderId), what).toBe(from);
      expect((await history(orderId)).length, what).toBe(rowsBefore);
    }
    expect(await transitions(1000, 2000)).toBe(0);
    expect(await transitions(9000, 1000)).toBe(0);
  });

  it('answer 404 for an unknown order and 400 for a bad body, an unknown status or a bad order id', async () => {
    expect((await move('SO-DOES-NOT-EXIST', 1500)).status).toBe(404);
    expect((await move('SO-DOES-NOT-EXIST', 1500)).body.error.code).toBe('not_found');
    const orderId = await created();
    const bad: Array<[string, unknown]> = [
      ['unknown status', { status: 1234, reasonCode: 'x' }],
      ['status as text', { status: '1500', reasonCode: 'x' }],
      ['no status', { reasonCode: 'x' }],
      ['no reasonCode', { status: 1500 }],
      ['empty reasonCode', { status: 1500, reasonCode: ' ' }],
      ['unknown field', { status: 1500, reasonCode: 'x', force: true }],
      ['not an object', [1500]],
    ];
    for (const [what, body] of bad) {
      const res = await hub.clients.operator.post(`/api/orders/${orderId}/status`, body);
      expect(res.status, what).toBe(400);
      expect(res.body.error.code, what).toBe('validation_failed');
    }
    expect((await hub.clients.operator.post(`/api/orders/${orderId}/status`, '{"status": 1500,')).body.error.code).toBe('malformed_json');
    expect((await hub.clients.operator.post('/api/orders/bad%20id/status', { status: 1500, reasonCode: 'x' })).status).toBe(400);
    expect(await statusOf(orderId)).toBe(1000);
    expect(await history(orderId)).toHaveLength(1);
  });
});

describe('bulk status moves', () => {
  const bulk = (body: Record<string, unknown>, as: 'operator' | 'admin' = 'operator') => hub.clients[as].post('/api/orders/bulk-status', body);

  it('move nothing when one order is unknown or at the wrong status, and name every failure', async () => {
    const good = await Promise.all(Array.from({ length: 5 }, created));
    const wrong = await orderAt(1500);
    const unknown = newOrderId('SO-UNKNOWN');
    const res = await bulk({ orderIds: [...good, wrong, unknown], status: 1500, reasonCode: 'validated_in_bulk' });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('bulk_move_refused');
    expect(res.body.error.details.moved).toBe(0);
    const failures = res.body.error.details.failures as Array<Record<string, unknown>>;
    expect(failures).toHaveLength(2);
    expect(failures).toContainEqual({ orderId: unknown, code: 'not_found', reason: `order ${unknown} not found` });
    expect(failures).toContainEqual({
      orderId: wrong,
      code: 'invalid_transition',
      reason: expect.stringContaining('1500 cannot move to 1500'),
      from: 1500,
      allowed: [2000, 9000],
    });
    for (const orderId of good) {
      expect(await statusOf(orderId)).toBe(1000);
      expect(await history(orderId)).toHaveLength(1);
    }
    expect(await statusOf(wrong)).toBe(1500);
    // Nothing reached the outbox either: the relay has nothing of these orders to publish.
    const rows = await hub.web.db.execute<{ n: number }>(
      sql`select count(*)::int as n from outbox where order_id = any(${sql.param(good)}::text[]) and type = 'status.changed'`,
    );
    expect(rows[0]!.n).toBe(good.length); // their registrations only
  });

  it('name each of several failures, unknown and refused alike', async () => {
    const cancelled = await created();
    expect((await move(cancelled, 9000)).status).toBe(200);
    const at3000 = await orderAt(3000);
    const ok = await created();
    const unknownA = newOrderId('SO-NONE');
    const unknownB = newOrderId('SO-NONE');
    const res = await bulk({ orderIds: [unknownA, ok, cancelled, at3000, unknownB], status: 1500, reasonCode: 'x' });
    expect(res.status).toBe(422);
    const failures = res.body.error.details.failures as Array<{ orderId: string; code: string; from?: number }>;
    expect(failures.map((f) => [f.orderId, f.code, f.from]).sort()).toEqual(
      [
        [unknownA, 'not_found', undefined],
        [unknownB, 'not_found', undefined],
        [cancelled, 'invalid_transition', 9000],
        [at3000, 'invalid_transition', 3000],
      ].sort(),
    );
    expect(await statusOf(ok)).toBe(1000);
  });

  it('move 50 orders in one transaction, written set-based, each with its history row, topic message and count', async () => {
    const orderIds = await Promise.all(Array.from({ length: 50 }, created));
    const before = await transitions(1000, 1500);
    const res = await bulk({ orderIds, status: 1500, reasonCode: 'validated_in_bulk', note: 'morning batch' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.moved).toBe(50);
    expect(res.body.orders.map((o: { orderId: string }) => o.orderId)).toEqual(orderIds);
    expect(res.body.orders.every((o: { status: number; statusName: string }) => o.status === 1500 && o.statusName === 'Validated')).toBe(true);

    const ids = sql.param(orderIds);
    const orderTx = await hub.web.db.execute<{ tx: string }>(sql`select xmin::text as tx from orders where order_id = any(${ids}::text[])`);
    expect(orderTx).toHaveLength(50);
    expect(new Set(orderTx.map((r) => r.tx)).size).toBe(1);
    const historyRows = await hub.web.db.execute<{ tx: string; actor: string; source: string; reason_code: string; note: string }>(
      sql`select xmin::text as tx, actor, source, reason_code, note from status_history where order_id = any(${ids}::text[]) and to_status = 1500`,
    );
    expect(historyRows).toHaveLength(50);
    expect(new Set(historyRows.map((r) => r.tx))).toEqual(new Set(orderTx.map((r) => r.tx)));
    expect(
      historyRows.every((r) => r.actor === 'operator' && r.source === 'operator' && r.reason_code === 'validated_in_bulk' && r.note === 'morning batch'),
    ).toBe(true);

    await eventually(async () => {
      const moved = (await hub.topicMessages()).filter(
        (m) => m.type === 'status.changed' && orderIds.includes(m.orderId!) && JSON.parse(m.payload!).to === 1500,
      );
      return moved.length === 50;
    }, 'a topic message for each order moved');
    expect(await transitions(1000, 1500)).toBe(before + 50);
    await expectSequentialHistory(hub, orderIds[0]!);
  });

  it('let two bulks over the same orders, given in opposite orders, run together without deadlocking', async () => {
    for (let round = 0; round < 4; round++) {
      const orderIds = await Promise.all(Array.from({ length: 30 }, created));
      const [a, b] = await Promise.all([
        bulk({ orderIds, status: 1500, reasonCode: 'a' }),
        bulk({ orderIds: [...orderIds].reverse(), status: 9000, reasonCode: 'b' }, 'admin'),
      ]);
      // Whichever locks first goes whole: A then B is 1000 → 1500 → 9000 for all; B then A refuses A
      // whole (9000 → 1500). Never a deadlock (500), never a mix.
      expect(b.status, JSON.stringify(b.body)).toBe(200);
      expect([200, 422], JSON.stringify(a.body)).toContain(a.status);
      if (a.status === 422) expect(a.body.error.details.failures).toHaveLength(30);
      const statuses = new Set(await Promise.all(orderIds.map(statusOf)));
      expect(statuses).toEqual(new Set([9000]));
      await expectSequentialHistory(hub, orderIds[0]!);
    }
  });

  it('refuse bad bodies with 400: no ids, duplicates, more than 1,000, a bad id, an unknown status, no reason', async () => {
    const orderId = await created();
    const tooMany = Array.from({ length: 1001 }, (_, i) => `SO-${i}`);
    const bad: Array<[string, unknown]> = [
      ['no ids', { orderIds: [], status: 1500, reasonCode: 'x' }],
      ['duplicates', { orderIds: [orderId, orderId], status: 1500, reasonCode: 'x' }],
      ['over 1,000', { orderIds: tooMany, status: 1500, reasonCode: 'x' }],
      ['a bad id', { orderIds: [orderId, 'bad id'], status: 1500, reasonCode: 'x' }],
      ['unknown status', { orderIds: [orderId], status: 1600, reasonCode: 'x' }],
      ['no reasonCode', { orderIds: [orderId], status: 1500 }],
      ['ids not an array', { orderIds: orderId, status: 1500, reasonCode: 'x' }],
      ['unknown field', { orderIds: [orderId], status: 1500, reasonCode: 'x', dryRun: true }],
    ];
    for (const [what, body] of bad) {
      const res = await hub.clients.operator.post('/api/orders/bulk-status', body);
      expect(res.status, what).toBe(400);
      expect(res.body.error.code, what).toBe('validation_failed');
    }
    expect(await statusOf(orderId)).toBe(1000);
  });

  it('take up to 1,000 orders', async () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `SO-NONE-${i}`);
    const res = await hub.clients.operator.post('/api/orders/bulk-status', { orderIds: ids, status: 1500, reasonCode: 'x' });
    expect(res.status).toBe(422);
    expect(res.body.error.details.failures).toHaveLength(1000);
  });
});

describe('admin override', () => {
  const override = (orderId: string, body: Record<string, unknown>, as: 'admin' | 'operator' = 'admin') =>
    hub.clients[as].post(`/api/orders/${orderId}/override`, body);

  it('moves anywhere, backwards included, flagged as an override with actor, reason and note', async () => {
    const orderId = await orderAt(3500);
    const before = await transitions(3500, 1000);
    const res = await override(orderId, { status: 1000, reasonCode: 'wrong_store', note: 'restart at the right store' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.status).toBe(1000);
    const rows = await expectSequentialHistory(hub, orderId);
    expect(rows.at(-1)).toMatchObject({
      from: 3500,
      to: 1000,
      override: true,
      actor: 'admin',
      source: 'operator',
      reasonCode: 'wrong_store',
      note: 'restart at the right store',
    });
    expect(rows.slice(0, -1).every((r) => r.override === false)).toBe(true);
    const messages = await statusMessages(orderId, rows.length);
    expect(messages.at(-1)).toMatchObject({ from: 3500, to: 1000, override: true, actor: 'admin', source: 'operator', reasonCode: 'wrong_store' });
    expect(await transitions(3500, 1000)).toBe(before + 1);

    // Out of a terminal status, and skipping forward, are overrides too.
    const cancelled = await created();
    expect((await move(cancelled, 9000)).status).toBe(200);
    expect((await override(cancelled, { status: 3000, reasonCode: 'cancelled_by_mistake', note: 'customer still wants it' })).body.status).toBe(3000);
    expect((await override(cancelled, { status: 7500, reasonCode: 'delivered_offline', note: 'signed paper POD' })).body.status).toBe(7500);
    expect((await history(cancelled)).slice(-2).map((r) => [r.from, r.to, r.override])).toEqual([
      [9000, 3000, true],
      [3000, 7500, true],
    ]);
  });

  it('refuses a move to the status the order has (422), an unknown order (404) and a bad body (400)', async () => {
    const orderId = await created();
    const same = await override(orderId, { status: 1000, reasonCode: 'x', note: 'y' });
    expect(same.status).toBe(422);
    expect(same.body.error).toMatchObject({ code: 'invalid_transition', details: { orderId, from: 1000, to: 1000 } });
    expect((await override('SO-DOES-NOT-EXIST', { status: 1000, reasonCode: 'x', note: 'y' })).status).toBe(404);
    for (const body of [
      { status: 1500, reasonCode: 'x' },
      { status: 1500, reasonCode: 'x', note: '  ' },
      { status: 42, reasonCode: 'x', note: 'y' },
      { status: 1500, note: 'y' },
    ]) {
      const res = await override(orderId, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    expect(await history(orderId)).toHaveLength(1);
  });

  it('is for admins only: an operator gets 403 and nothing moves', async () => {
    const orderId = await orderAt(1500);
    const res = await override(orderId, { status: 1000, reasonCode: 'x', note: 'y' }, 'operator');
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('forbidden');
    expect(await statusOf(orderId)).toBe(1500);
  });
});

describe('who may change a status', () => {
  it('refuses the viewer and the partners every write (403), and lets the admin make operator moves', async () => {
    const orderId = await created();
    const writes: Array<[string, Record<string, unknown>]> = [
      [`/api/orders/${orderId}/status`, { status: 1500, reasonCode: 'x' }],
      ['/api/orders/bulk-status', { orderIds: [orderId], status: 1500, reasonCode: 'x' }],
      [`/api/orders/${orderId}/override`, { status: 1500, reasonCode: 'x', note: 'y' }],
    ];
    for (const [path, body] of writes) {
      for (const who of ['viewer', 'mao', 'slick', 'grab', 'pmp'] as const) {
        const res = await hub.clients[who].post(path, body);
        expect(res.status, `${who} ${path}`).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
      }
      // Even with a body that would not parse: the role is checked first.
      expect((await hub.clients.viewer.post(path, { nonsense: true })).status).toBe(403);
    }
    expect(await statusOf(orderId)).toBe(1000);
    const byAdmin = await move(orderId, 1500, {}, 'admin');
    expect(byAdmin.status).toBe(200);
    expect((await history(orderId)).at(-1)).toMatchObject({ actor: 'admin', source: 'operator', override: false });
    expect((await hub.clients.admin.post('/api/orders/bulk-status', { orderIds: [orderId], status: 2000, reasonCode: 'x' })).body.moved).toBe(1);
  });
});
