import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { applyInboundEvents } from '../../src/inbox/inbox-engine.js';
import { getHistory, getOrder, getOrderEvents } from '../../src/orders/order-registration.js';
import { AnswerSettlement } from '../../src/partner-calls/answer-settlement.js';
import { readOrderCallsWithOrders } from '../../src/partner-calls/order-call-records.js';
import { orderTiersView } from '../../src/tiers/tiers-view.js';
import { wholeTableReads } from '../helpers/plan-checks.js';
import { registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The hub's statements are prepared once per connection, and Postgres plans each generically after
 * five runs and keeps that plan for the life of the connection. Made while the tables are nearly
 * empty, such a plan would be a sequential scan that later reads every event ever received, on every
 * ship event. Here the hot path runs on a nearly empty database, and each statement it prepared must
 * have a generic plan that reaches its rows by an index condition.
 */
/** The hub's growing tables, which no hot statement may read whole. */
const HUB_TABLES = ['inbound_events', 'orders', 'outbox', 'status_history', 'order_calls', 'order_tiers', 'order_discrepancies', 'cod_ledger'];

let hub: TestHub;
let single: DatabaseHandle;
beforeAll(async () => {
  hub = await startTestHub({ inProcessWorkers: false, scheduler: false });
  // One connection, so every statement below runs in the session whose prepared statements are read back.
  single = connectDatabase(hub.databaseUrl, { max: 1 });
});
afterAll(async () => {
  await single?.close();
  await hub.close();
});

describe('query plans of the hot path', () => {
  it('statements prepared on a nearly empty database reach their rows by key, never by reading a whole table', async () => {
    const deps = { ...hub.worker, db: single.db, pg: single.sql };
    const orderId = await registerOrder(hub);
    const steps = ['picking', 'picked', 'packing', 'packed'];
    for (let round = 0; round < 8; round++) {
      const event = shipEvent(orderId, steps[round % steps.length]!);
      expect((await hub.clients.slick.post('/api/fulfillment/ship-events', event)).status).toBe(202);
      const results = await applyInboundEvents(deps, [{ eventId: event.eventId }]);
      expect(results.get(event.eventId)).not.toBe('already_processed');
    }
    // The reads by id (GET /api/orders/{id}, /history, /events, /tiers), each prepared once, run past Postgres's five custom plans.
    for (let i = 0; i < 7; i++) {
      expect((await getOrder(single.db, orderId)).orderId).toBe(orderId);
      expect((await getHistory(single.db, orderId)).length).toBeGreaterThan(0);
      expect((await getOrderEvents(single.db, orderId)).length).toBe(8);
      expect((await orderTiersView(single.db, orderId)).tiers).toHaveLength(3);
    }
    // A partner call's first read, its answer's settlement and a confirmation, each run past the five custom plans.
    const settlement = new AnswerSettlement(deps);
    const call = { kind: 'pmp.assignment' as const, orderId, key: '' };
    const notification = { kind: 'notify.customer' as const, orderId, key: 'plan' };
    for (let i = 0; i < 7; i++) {
      await single.sql`insert into order_calls (order_id, kind, key, state, data) values (${orderId}, ${call.kind}, '', 'pending', '{}'::jsonb),
        (${orderId}, ${notification.kind}, 'plan', 'pending', '{}'::jsonb)
        on conflict (order_id, kind, key) do update set state = 'pending'`;
      expect((await readOrderCallsWithOrders(single.sql, [call]))[0]!.record?.state).toBe('pending');
      expect(await settlement.settle(call, 'pmp_assignment_failed', ({ order }) => ({ records: [], confirmNote: 'plan', value: order.orderId }))).toBe(orderId);
      await settlement.confirm(notification, 'customer_notification_failed', 'plan');
    }
    const [tables] = await single.sql<Array<{ events: number }>>`select count(*)::int as events from inbound_events`;
    expect(tables!.events).toBeLessThan(20);

    const prepared = await single.sql<Array<{ name: string; statement: string; params: number }>>`
      select name, statement, cardinality(parameter_types) as params from pg_prepared_statements
      where cardinality(parameter_types) > 0`;
    const hot = [
      /cross join lateral \(select \* from orders/,
      /^update inbound_events e/,
      /^update orders o/,
      /json_build_array\(c\.kind, c\.key, c\.state\)/,
      /left join status_history h on/,
      /left join inbound_events e on/,
      /from order_tiers t where/,
      /with ordinality as r\(order_id, kind, key, i\)/,
      /from orders o where o\.order_id = any\(\$1::text\[\]\) order by o\.order_id$/,
      /order by o\.order_id for update nowait$/,
      /from cod_ledger l where/,
      /^with r as \(/,
    ];
    for (const pattern of hot) expect(prepared.filter((p) => pattern.test(p.statement.trim()))).toHaveLength(1);

    // The plan each statement gets once Postgres stops planning it for its parameters.
    await single.sql.unsafe('set plan_cache_mode = force_generic_plan');
    const sequential: string[] = [];
    for (const p of prepared) {
      const plan = await single.sql.unsafe<Array<{ 'QUERY PLAN': string }>>(
        `explain execute "${p.name}"(${Array.from({ length: p.params }, () => 'null').join(', ')})`,
      );
      const lines = plan.map((r) => r['QUERY PLAN']);
      if (wholeTableReads(lines, HUB_TABLES).length > 0) sequential.push(`${p.statement.trim().slice(0, 80)}\n${lines.join('\n')}`);
    }
    await single.sql.unsafe('reset plan_cache_mode');
    expect(sequential).toEqual([]);
  });

  it('every connection of the pool turns sequential scans off', async () => {
    const [web] = await hub.web.pg<Array<{ enable_seqscan: string }>>`show enable_seqscan`;
    expect(web!.enable_seqscan).toBe('off');
  });
});
