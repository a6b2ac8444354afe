import type { RenderedStatement } from '../db/pipelined-transaction.js';
import { columnsOf, fromRow, selectList } from '../db/raw-rows.js';
import { inboundEvents, orders, type OrderCallState, type TierState } from '../db/schema/index.js';
import type { InboundEventRow } from '../db/types.js';
import type { LockedOrder, TierRecord } from '../orders/apply-transition.js';

const ORDER_COLUMNS = columnsOf(orders);
const EVENT_COLUMNS = columnsOf(inboundEvents);

/** At most this many waiting events (of one or several orders) are applied in one transaction. */
export const INBOX_BATCH = 200;

/** One order's queued events (of every kind), oldest first, with the order's row; `order` is undefined when it does not exist. */
export interface LockedInbox {
  order: LockedOrder | undefined;
  events: InboundEventRow[];
}

/**
 * With `skipLockedOrders`, an order whose row another transaction holds is left out, its events with
 * it (they stay queued, for whoever applies them next), instead of this transaction waiting for it.
 *
 * Locks, for each order that one of `eventIds` belongs to, the order's row and its events still
 * `queued` (whatever their kind) that arrived no later than the newest of those events, in one
 * statement: a backlog is then applied in the order received, and the events of many orders in one
 * transaction. Under READ COMMITTED a row that was locked by another transaction is re-checked at its
 * newest version once the lock is granted, so an event another transaction processed meanwhile drops
 * out. Rows are locked in one global order (order id; for each order its row, then its events in the
 * order received), so two transactions locking overlapping orders cannot deadlock. At most INBOX_BATCH
 * events; the orders sorted last are cut off first.
 *
 * Written so that every table is reached by key whatever the planner knows: the lateral subqueries
 * run once per order with the order id as their index key, so a backlog of other orders' events is
 * never read (a join here was planned as a scan of every queued event, once per transaction).
 */
export function lockInboxesStatement(eventIds: readonly string[], options: { skipLockedOrders?: boolean } = {}): RenderedStatement {
  return {
    sql: `select ${selectList('e', EVENT_COLUMNS)}, ${selectList('o', ORDER_COLUMNS)}
          from (select order_id, max(received_at) as upto from inbound_events
                where event_id = any($1::text[]) group by order_id order by order_id) r
          cross join lateral (select * from orders where order_id = r.order_id for update${options.skipLockedOrders ? ' skip locked' : ''}) o
          cross join lateral (select * from inbound_events
                              where order_id = o.order_id and state = 'queued' and received_at <= r.upto
                              order by received_at, event_id
                              limit ${INBOX_BATCH}
                              for update) e
          limit ${INBOX_BATCH}`,
    params: [eventIds],
  };
}

/**
 * The state of the calls owed about the orders of `eventIds` (order_calls) and of their delivery tiers
 * (order_tiers), which some rules read (is Slick's confirmation already owed? is tier 2 done?), one
 * row each. Sent right after the lock statement in the same round
 * trip, so under READ COMMITTED it reads what was committed once the order locks were granted: a
 * transaction that changed an order and its calls and committed while we waited for the lock is
 * seen whole (a subquery of the lock statement would read the calls as they were before the wait).
 */
export function orderCallStatesStatement(eventIds: readonly string[]): RenderedStatement {
  return {
    sql: `with o as (select array(select distinct order_id from inbound_events where event_id = any($1::text[])) as ids) ${CALL_AND_TIER_STATES}`,
    params: [eventIds],
  };
}

/** The calls' and tiers' states of the orders in `o.ids`, one row each (see callAndTierStates). */
const CALL_AND_TIER_STATES = `select 'call' as what, c.order_id, c.kind || ':' || c.key as name, c.state, null::jsonb as detail
          from order_calls c, o where c.order_id = any(o.ids)
          union all
          select 'tier', t.order_id, t.tier::text, t.state, t.detail
          from order_tiers t, o where t.order_id = any(o.ids)`;

/**
 * The rows of `orderIds` in one statement, in order id order (the global lock order, as above), for
 * whoever changes many orders at once by id (partner answers settled together): locked, waiting for a
 * row another transaction holds (`lock: 'wait'`), or only read (`lock: 'none'`, in a snapshot whose
 * writes lock them with lockOrdersNowaitStatement).
 */
export function ordersByIdStatement(orderIds: readonly string[], lock: 'wait' | 'none'): RenderedStatement {
  return {
    sql: `select ${selectList('o', ORDER_COLUMNS)} from orders o where o.order_id = any($1::text[]) order by o.order_id${lock === 'wait' ? ' for update' : ''}`,
    params: [orderIds],
  };
}

/**
 * Locks the rows of `orderIds` in order id order without waiting: fails with lock_not_available if
 * another transaction holds one, and — in a repeatable-read transaction — with serialization_failure
 * if one changed since the snapshot was taken.
 */
export function lockOrdersNowaitStatement(orderIds: readonly string[]): RenderedStatement {
  return { sql: `select o.order_id from orders o where o.order_id = any($1::text[]) order by o.order_id for update nowait`, params: [orderIds] };
}

/** orderCallStatesStatement for orders named by id; sent after ordersByIdStatement in the same round trip. */
export function callAndTierStatesStatement(orderIds: readonly string[]): RenderedStatement {
  return { sql: `with o as (select $1::text[] as ids) ${CALL_AND_TIER_STATES}`, params: [orderIds] };
}

/** The rows of ordersByIdStatement and callAndTierStatesStatement as locked orders, by order id. */
export function lockedOrders(orderRows: ReadonlyArray<Record<string, unknown>>, callStates: ReadonlyArray<Record<string, unknown>>): Map<string, LockedOrder> {
  const { calls, tiers } = callAndTierStates(callStates);
  const locked = new Map<string, LockedOrder>();
  for (const row of orderRows) {
    const order = lockedOrderOf(row, calls, tiers);
    locked.set(order.orderId, order);
  }
  return locked;
}

/**
 * Those of `eventIds` whose order does not exist, locked: the queued ones are rejected as
 * unknown_order (the caller skips the others). Found by primary key only.
 */
export function lockEventsWithoutOrderStatement(eventIds: readonly string[]): RenderedStatement {
  return {
    sql: `select ${selectList('e', EVENT_COLUMNS)}
          from inbound_events e
          where e.event_id = any($1::text[])
            and not exists (select 1 from orders o where o.order_id = e.order_id)
          order by e.received_at, e.event_id
          for update of e`,
    params: [eventIds],
  };
}

/** The rows of the three statements above, as one inbox per order in the order they were locked. */
export function lockedInboxes(
  withOrder: ReadonlyArray<Record<string, unknown>>,
  callStates: ReadonlyArray<Record<string, unknown>>,
  withoutOrder: ReadonlyArray<Record<string, unknown>>,
): LockedInbox[] {
  const { calls, tiers } = callAndTierStates(callStates);
  const inboxes = new Map<string, LockedInbox>();
  for (const row of withOrder) {
    const event = fromRow<InboundEventRow>(row, 'e', EVENT_COLUMNS);
    let inbox = inboxes.get(event.orderId);
    if (!inbox) {
      inbox = { order: lockedOrderOf(row, calls, tiers), events: [] };
      inboxes.set(event.orderId, inbox);
    }
    inbox.events.push(event);
  }
  // An event whose order does not exist stands alone: its order may be created before the next one arrives.
  const orphans = withoutOrder.map((row): LockedInbox => ({ order: undefined, events: [fromRow<InboundEventRow>(row, 'e', EVENT_COLUMNS)] }));
  return [...inboxes.values(), ...orphans];
}

/** A locked order's row (its columns under `o.`) with the states of its calls and tiers. */
function lockedOrderOf(row: Record<string, unknown>, calls: CallAndTierStates['calls'], tiers: CallAndTierStates['tiers']): LockedOrder {
  const order = fromRow<Omit<LockedOrder, 'calls' | 'tiers'>>(row, 'o', ORDER_COLUMNS);
  return { ...order, calls: calls.get(order.orderId) ?? {}, tiers: tiers.get(order.orderId) ?? {} } as LockedOrder;
}

type CallAndTierStates = ReturnType<typeof callAndTierStates>;

/** The rows of a call-and-tier states statement, as each order's call states and tiers. */
function callAndTierStates(callStates: ReadonlyArray<Record<string, unknown>>) {
  const calls = new Map<string, Record<string, OrderCallState>>();
  const tiers = new Map<string, Record<number, TierRecord>>();
  for (const c of callStates) {
    const orderId = String(c.order_id);
    if (c.what === 'tier') {
      let states = tiers.get(orderId);
      if (!states) {
        states = {};
        tiers.set(orderId, states);
      }
      states[Number(c.name)] = { state: c.state as TierState, detail: parseJson(c.detail) };
      continue;
    }
    let states = calls.get(orderId);
    if (!states) {
      states = {};
      calls.set(orderId, states);
    }
    states[String(c.name)] = c.state as OrderCallState;
  }
  return { calls, tiers };
}

function parseJson(value: unknown): Record<string, unknown> {
  if (typeof value === 'string') return JSON.parse(value) as Record<string, unknown>;
  return (value ?? {}) as Record<string, unknown>;
}
