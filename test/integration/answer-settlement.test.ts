import { execFileSync } from 'node:child_process';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planOrderChange } from '../../src/orders/apply-transition.js';
import { AnswerSettlement } from '../../src/partner-calls/answer-settlement.js';
import type { OrderCallRef } from '../../src/partner-calls/call-kind.js';
import { readOrderCallsWithOrders } from '../../src/partner-calls/order-call-records.js';
import { recordOwedCalls } from '../../src/partner-calls/schedule.js';
import { eventually } from '../helpers/eventually.js';
import { registerOrder, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * Partners' answers are settled in group commits (src/partner-calls/answer-settlement.ts): answers
 * that arrive together share one transaction, each decided with its order locked and its record
 * still pending; a decision that cannot be made fails only its own answer.
 */

let hub: TestHub;
let settlement: AnswerSettlement;

beforeAll(async () => {
  // Nothing else settles these calls: no workers, no relay.
  hub = await startTestHub({ inProcessWorkers: false, scheduler: false });
  settlement = new AnswerSettlement(hub.worker);
});
afterAll(async () => {
  await hub.close();
});

/** Orders, each owing one call of `kind` (pending). */
async function ordersOwing(n: number, kind: OrderCallRef['kind'] = 'pmp.assignment'): Promise<OrderCallRef[]> {
  const ids = await Promise.all(Array.from({ length: n }, () => registerOrder(hub)));
  await hub.worker.db.transaction((tx) =>
    recordOwedCalls(
      tx,
      ids.map((orderId) => ({ kind, orderId, key: '', data: { orderId } })),
    ),
  );
  return ids.map((orderId) => ({ kind, orderId, key: '' }));
}

/** The decision of a PMP answer: the partner on the order, the record confirmed. */
const assignPartner = (partnerId: string) => (view: Parameters<Parameters<AnswerSettlement['settle']>[2]>[0]) => ({
  records: [planOrderChange(view.order, { partnerId, partnerName: `Partner ${partnerId}` }, [], hub.worker.clock)],
  confirmNote: `assigned ${partnerId}`,
  value: view.order.version,
});

/**
 * Takes both settlements under way with answers of two other orders, so that what is submitted right
 * after waits and goes in one settlement. `done`: those two answers' completion.
 */
async function bothSettlementsBusy(): Promise<{ done: Promise<unknown> }> {
  const busy = await ordersOwing(2);
  return { done: Promise.all(busy.map((ref) => settlement.settle(ref, 'pmp_assignment_failed', assignPartner('P-busy')))) };
}

async function callRows(refs: readonly OrderCallRef[]) {
  const rows = await hub.worker.db.execute<{ order_id: string; kind: string; state: string; attempts: number; tx: string }>(
    sql`select order_id, kind, state, attempts, xmin::text as tx from order_calls where order_id = any(${sql.param(refs.map((r) => r.orderId))}::text[])`,
  );
  return rows;
}

describe('settling partner answers', () => {
  it('answers arriving together share a transaction; each order changed once and its record confirmed', async () => {
    const refs = await ordersOwing(12);
    const values = await Promise.all(refs.map((ref, i) => settlement.settle(ref, 'pmp_assignment_failed', assignPartner(`P-${i}`))));
    expect(values.every((v) => typeof v === 'number')).toBe(true);

    const rows = await callRows(refs);
    expect(rows.map((r) => [r.state, r.attempts])).toEqual(refs.map(() => ['confirmed', 1]));
    // Two settlements may start at once; every answer that came while they were under way went in the
    // next one. Answer by answer, this would be twelve transactions.
    expect(new Set(rows.map((r) => r.tx)).size).toBeLessThanOrEqual(3);

    const orders = await hub.worker.db.execute<{ order_id: string; partner_id: string; version: number }>(
      sql`select order_id, partner_id, version from orders where order_id = any(${sql.param(refs.map((r) => r.orderId))}::text[])`,
    );
    for (const [i, ref] of refs.entries()) {
      const order = orders.find((o) => o.order_id === ref.orderId)!;
      expect(order.partner_id).toBe(`P-${i}`);
      expect(order.version).toBe(values[i]! + 1);
    }
  });

  it('two answers about one order in one settlement: the second sees the order as the first left it', async () => {
    const [first] = await ordersOwing(1);
    await hub.worker.db.transaction((tx) =>
      recordOwedCalls(tx, [{ kind: 'mao.order-status', orderId: first!.orderId, key: '', data: { orderId: first!.orderId } }]),
    );
    const second: OrderCallRef = { kind: 'mao.order-status', orderId: first!.orderId, key: '' };
    // Two answers of other orders take both settlements first, so the two about one order wait and go together.
    const busy = await ordersOwing(2);
    const busyDone = busy.map((ref) => settlement.settle(ref, 'pmp_assignment_failed', assignPartner('P-busy')));
    const [seenByFirst, seenBySecond] = await Promise.all([
      settlement.settle(first!, 'pmp_assignment_failed', assignPartner('P-first')),
      settlement.settle(second, 'mao_status_failed', (view) => ({
        records: [planOrderChange(view.order, { carrierCode: 'FLASH' }, [], hub.worker.clock)],
        confirmNote: 'told',
        value: { version: view.order.version, partnerId: view.order.partnerId },
      })),
    ]);
    await Promise.all(busyDone);
    expect(seenBySecond).toEqual({ version: seenByFirst! + 1, partnerId: 'P-first' });
    const [order] = await hub.worker.db.execute<{ partner_id: string; carrier_code: string; version: number }>(
      sql`select partner_id, carrier_code, version from orders where order_id = ${first!.orderId}`,
    );
    expect(order).toEqual({ partner_id: 'P-first', carrier_code: 'FLASH', version: seenByFirst! + 2 });
    const rows = await callRows([first!]);
    expect(rows.map((r) => r.state)).toEqual(['confirmed', 'confirmed']);
    expect(new Set(rows.map((r) => r.tx)).size).toBe(1);
  });

  it('a decision that throws fails only its own answer, in a settlement shared with others; a record no longer pending settles nothing', async () => {
    const refs = await ordersOwing(4);
    await hub.worker.db.execute(sql`update order_calls set state = 'confirmed' where order_id = ${refs[2]!.orderId}`);
    const busy = await bothSettlementsBusy();
    const [ok, thrown, settledBefore, alsoOk] = await Promise.allSettled([
      settlement.settle(refs[0]!, 'pmp_assignment_failed', assignPartner('P-ok')),
      settlement.settle(refs[1]!, 'pmp_assignment_failed', () => {
        throw new Error('the answer cannot be used');
      }),
      settlement.settle(refs[2]!, 'pmp_assignment_failed', assignPartner('P-late')),
      settlement.settle(refs[3]!, 'pmp_assignment_failed', assignPartner('P-also')),
    ]);
    await busy.done;
    expect(ok.status).toBe('fulfilled');
    expect(alsoOk.status).toBe('fulfilled');
    expect(thrown).toMatchObject({ status: 'rejected', reason: { message: 'the answer cannot be used' } });
    expect(settledBefore).toEqual({ status: 'fulfilled', value: undefined });
    const orders = await hub.worker.db.execute<{ order_id: string; partner_id: string | null }>(
      sql`select order_id, partner_id from orders where order_id = any(${sql.param(refs.map((r) => r.orderId))}::text[]) order by order_id`,
    );
    const partnerOf = (ref: OrderCallRef) => orders.find((o) => o.order_id === ref.orderId)!.partner_id;
    expect(refs.map(partnerOf)).toEqual(['P-ok', null, null, 'P-also']);
    const rows = await callRows(refs);
    const rowOf = (ref: OrderCallRef) => rows.find((r) => r.order_id === ref.orderId)!;
    expect(refs.map((r) => rowOf(r).state)).toEqual(['confirmed', 'pending', 'confirmed', 'confirmed']);
    // The two that settled did so in one transaction, the one the failed decision was part of.
    expect(rowOf(refs[0]!).tx).toBe(rowOf(refs[3]!).tx);
  });

  it('a confirmation resolves the open case of its cause, unless another call of its kind is still failed', async () => {
    const [ref, stillFailed] = await ordersOwing(2);
    for (const r of [ref!, stillFailed!]) {
      await hub.worker.db.execute(sql`insert into interventions (order_id, cause, detail) values (${r.orderId}, 'pmp_assignment_failed', '{}'::jsonb)`);
    }
    // Another call of the same kind for the second order failed for good and was not retried.
    await hub.worker.db.execute(
      sql`insert into order_calls (order_id, kind, key, state, attempts, data) values (${stillFailed!.orderId}, 'pmp.assignment', 'other', 'failed', 4, '{}'::jsonb)`,
    );
    const busy = await bothSettlementsBusy();
    await Promise.all([ref!, stillFailed!].map((r) => settlement.settle(r, 'pmp_assignment_failed', assignPartner('P-case'))));
    await busy.done;
    const cases = await hub.worker.db.execute<{ order_id: string; state: string; resolved_by: string | null; note: string | null }>(
      sql`select order_id, state, resolved_by, note from interventions where order_id in (${ref!.orderId}, ${stillFailed!.orderId})`,
    );
    expect(cases.find((c) => c.order_id === ref!.orderId)).toMatchObject({ state: 'resolved', resolved_by: 'system', note: 'assigned P-case' });
    expect(cases.find((c) => c.order_id === stillFailed!.orderId)).toMatchObject({ state: 'open', resolved_by: null });
    const confirmed = (await callRows([ref!, stillFailed!])).filter((r) => r.state === 'confirmed');
    expect(confirmed).toHaveLength(2);
    expect(new Set(confirmed.map((r) => r.tx)).size).toBe(1);
  });

  it('an order another transaction holds does not hold up the answers settled with it; its own answer settles once the lock goes', async () => {
    const [held, free] = await ordersOwing(2);
    const holder = await hub.web.pg.reserve();
    try {
      await holder`begin`;
      await holder`select order_id from orders where order_id = ${held!.orderId} for update`;
      // Both settlements busy, so the two answers go into one settlement together.
      const busy = await bothSettlementsBusy();
      let heldSettled = false;
      const heldAnswer = settlement.settle(held!, 'pmp_assignment_failed', assignPartner('P-held')).then((v) => {
        heldSettled = true;
        return v;
      });
      const freeAnswer = settlement.settle(free!, 'pmp_assignment_failed', assignPartner('P-free'));
      await busy.done;
      expect(typeof (await freeAnswer)).toBe('number');
      expect(heldSettled).toBe(false);
      expect((await callRows([held!]))[0]!.state).toBe('pending');
      await holder`rollback`;
      expect(typeof (await heldAnswer)).toBe('number');
      const rows = await callRows([held!, free!]);
      expect(rows.map((r) => r.state)).toEqual(['confirmed', 'confirmed']);
      expect(new Set(rows.map((r) => r.tx)).size).toBe(2);
    } finally {
      await holder`rollback`.catch(() => {});
      holder.release();
    }
  });

  it('a shared settlement reads its orders without waiting for their locks and locks them only to write: decided while another transaction holds the order, settled on the order as that one left it', async () => {
    const [ref] = await ordersOwing(1);
    const [before] = await hub.worker.db.execute<{ version: number }>(sql`select version from orders where order_id = ${ref!.orderId}`);
    const holder = await hub.web.pg.reserve();
    try {
      await holder`begin`;
      await holder`select order_id from orders where order_id = ${ref!.orderId} for update`;
      const seen: Array<{ carrierCode: string | null; version: number }> = [];
      const answer = settlement.settle(ref!, 'pmp_assignment_failed', (view) => {
        seen.push({ carrierCode: view.order.carrierCode, version: view.order.version });
        return assignPartner('P-answer')(view);
      });
      // Decided with the order still held: reading it did not wait for the lock.
      await eventually(async () => seen.length > 0, 'the answer decided while its order is held');
      expect(seen[0]).toEqual({ carrierCode: null, version: before!.version });
      expect((await callRows([ref!]))[0]!.state).toBe('pending');
      // The holder changes the order and commits: the write of the first decision is refused, and the
      // answer is decided again on the order as changed.
      await holder`update orders set carrier_code = 'HELD-BY-TEST' where order_id = ${ref!.orderId}`;
      await holder`commit`;
      expect(await answer).toBe(before!.version);
      expect(seen.at(-1)).toEqual({ carrierCode: 'HELD-BY-TEST', version: before!.version });
      const [order] = await hub.worker.db.execute<{ partner_id: string; carrier_code: string; version: number }>(
        sql`select partner_id, carrier_code, version from orders where order_id = ${ref!.orderId}`,
      );
      expect(order).toEqual({ partner_id: 'P-answer', carrier_code: 'HELD-BY-TEST', version: before!.version + 1 });
      expect((await callRows([ref!]))[0]).toMatchObject({ state: 'confirmed', attempts: 1 });
    } finally {
      await holder`rollback`.catch(() => {});
      holder.release();
    }
  });

  it('an order changed and committed between the snapshot of a settlement and its write: nothing of the first decision is kept, and the answer is decided again on the order as changed', async () => {
    const [ref] = await ordersOwing(1);
    const seen: Array<string | null> = [];
    const value = await settlement.settle(ref!, 'pmp_assignment_failed', (view) => {
      seen.push(view.order.carrierCode);
      // Decisions are synchronous: the change is made and committed by another process before this
      // one returns, so it lands between the snapshot the decision saw and the write that follows.
      if (seen.length === 1) {
        execFileSync(
          'psql',
          [hub.databaseUrl, '-qAtc', `update orders set carrier_code = 'CHANGED', version = version + 1 where order_id = '${ref!.orderId}'`],
          {
            timeout: 10_000,
          },
        );
      }
      return assignPartner('P-after-change')(view);
    });
    expect(seen).toEqual([null, 'CHANGED']);
    const [order] = await hub.worker.db.execute<{ partner_id: string; carrier_code: string; version: number }>(
      sql`select partner_id, carrier_code, version from orders where order_id = ${ref!.orderId}`,
    );
    expect(order).toEqual({ partner_id: 'P-after-change', carrier_code: 'CHANGED', version: value! + 1 });
    expect((await callRows([ref!]))[0]).toMatchObject({ state: 'confirmed', attempts: 1 });
  });

  it('a call whose answer changes nothing is confirmed without its order, with the confirmations that arrive together', async () => {
    const refs = await ordersOwing(6, 'notify.customer');
    await Promise.all(refs.map((ref) => settlement.confirm(ref, 'customer_notification_failed', 'sent')));
    const rows = await callRows(refs);
    expect(rows.map((r) => [r.state, r.attempts])).toEqual(refs.map(() => ['confirmed', 1]));
    // The first two go alone, the other four together: six statements, one by one.
    expect(new Set(rows.map((r) => r.tx)).size).toBeLessThanOrEqual(3);
    // Confirmed already: left as it is.
    await settlement.confirm(refs[0]!, 'customer_notification_failed', 'again');
    expect((await callRows([refs[0]!]))[0]!.attempts).toBe(1);

    // The order held by another transaction (an inbound event applying) does not hold it up.
    const [held] = await ordersOwing(1, 'notify.customer');
    const holder = await hub.web.pg.reserve();
    try {
      await holder`begin`;
      await holder`select order_id from orders where order_id = ${held!.orderId} for update`;
      await settlement.confirm(held!, 'customer_notification_failed', 'sent while the order is locked');
      expect((await callRows([held!]))[0]!.state).toBe('confirmed');
    } finally {
      await holder`rollback`;
      holder.release();
    }
  });
});

describe('reading calls together', () => {
  it('one statement reads each call with its order, in the order asked: never owed, or no such order, each its own answer', async () => {
    const [owed] = await ordersOwing(1);
    const neverOwed: OrderCallRef = { kind: 'mao.order-status', orderId: owed!.orderId, key: '' };
    const noOrder: OrderCallRef = { kind: 'pmp.assignment', orderId: 'SO-NOT-THERE', key: '' };
    const read = await readOrderCallsWithOrders(hub.worker.pg, [noOrder, owed!, neverOwed, owed!]);
    expect(read.map((r) => [r.order?.orderId, r.record?.kind, r.record?.state])).toEqual([
      [undefined, undefined, undefined],
      [owed!.orderId, 'pmp.assignment', 'pending'],
      [owed!.orderId, undefined, undefined],
      [owed!.orderId, 'pmp.assignment', 'pending'],
    ]);
    // Mapped as drizzle maps the row: times as Dates, JSON as objects.
    expect(read[1]!.order!.createdAt).toBeInstanceOf(Date);
    expect(read[1]!.order!.customer).toMatchObject({ id: 'CUST-1' });
    expect(read[1]!.record!.data).toEqual({ orderId: owed!.orderId });
  });
});
