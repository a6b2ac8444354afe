import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { applyShipEvents } from '../../src/orders/ship-events.js';
import { registerOrder, shipEvent, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The hub's statements are prepared once per connection. Postgres would switch such a statement to a
 * generic plan after five runs and keep it for the life of the connection; chosen while the inbox is
 * nearly empty, that plan is a sequential scan that later reads every event ever received, on every
 * ship event. Each run must be planned for its own parameters instead.
 */
let hub: TestHub;
let single: DatabaseHandle;
beforeAll(async () => {
  hub = await startTestHub({ inProcessWorkers: false, scheduler: false });
  // One connection, so every statement below runs in the session whose plan cache is read back.
  single = connectDatabase(hub.databaseUrl, { max: 1 });
});
afterAll(async () => {
  await single?.close();
  await hub.close();
});

describe('query plans of the hot path', () => {
  it('ship events applied one after another on one connection are each planned for their own parameters', async () => {
    const deps = { ...hub.worker, db: single.db, pg: single.sql };
    const orderId = await registerOrder(hub);
    const steps = ['picking', 'picked', 'packing', 'packed'];
    for (let round = 0; round < 12; round++) {
      const event = shipEvent(orderId, steps[round % steps.length]!);
      expect((await hub.clients.slick.post('/api/fulfillment/ship-events', event)).status).toBe(202);
      const results = await applyShipEvents(deps, [{ eventId: event.eventId }]);
      expect(results.get(event.eventId)).not.toBe('already_processed');
    }

    const prepared = await single.sql<Array<{ statement: string; generic_plans: string; custom_plans: string }>>`
      select statement, generic_plans::text, custom_plans::text from pg_prepared_statements
      where cardinality(parameter_types) > 0`; // without parameters there is only one plan to make
    const lockInbox = prepared.filter((p) => /from inbound_events e\s+join orders o/.test(p.statement));
    const outcomes = prepared.filter((p) => /^update inbound_events e/.test(p.statement.trim()));
    expect(lockInbox).toHaveLength(1);
    expect(outcomes).toHaveLength(1);
    expect(Number(lockInbox[0]!.custom_plans)).toBeGreaterThanOrEqual(12);
    expect(Number(outcomes[0]!.custom_plans)).toBeGreaterThanOrEqual(12);
    expect(prepared.filter((p) => Number(p.generic_plans) > 0).map((p) => p.statement)).toEqual([]);
  });

  it('every connection of the pool asks for it', async () => {
    const [web] = await hub.web.pg<Array<{ plan_cache_mode: string }>>`show plan_cache_mode`;
    expect(web!.plan_cache_mode).toBe('force_custom_plan');
  });
});
