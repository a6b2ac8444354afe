import { eq, sql, type SQL } from 'drizzle-orm';
import { columnsOf, fromRow, selectList } from '../db/raw-rows.js';
import type { RenderedStatement } from '../db/pipelined-transaction.js';
import { decideTransition, isStatusCode, type Decision, type OrderEvent, type StatusCode, type Step, type SubStep } from '../machines/order.machine.js';
import { inboundEvents, orders, statusHistory } from '../db/schema/index.js';
import type { InboundEventRow, OrderRow, Source, Tx } from '../db/types.js';
import { outboxInsert, type TopicMessage } from './topic-messages.js';

/**
 * The one way an order's status changes: lock the order row, ask the order machine, write the order,
 * its history rows and the outbox messages. The caller's `db.transaction` commits all of it at once.
 */

declare const lockedBrand: unique symbol;
/** An order row read with FOR UPDATE inside the current transaction; only `lockOrder` makes one. */
export type LockedOrder = OrderRow & { readonly [lockedBrand]: true };

export async function lockOrder(tx: Tx, orderId: string): Promise<LockedOrder | undefined> {
  const [row] = await tx.select().from(orders).where(eq(orders.orderId, orderId)).for('update');
  return row as LockedOrder | undefined;
}

const ORDER_COLUMNS = columnsOf(orders);
const EVENT_COLUMNS = columnsOf(inboundEvents);

/** At most this many waiting events (of one or several orders) are applied in one transaction. */
export const INBOX_BATCH = 200;

/** One order's queued events, oldest first, with the order's row; `order` is undefined when it does not exist. */
export interface LockedInbox {
  order: LockedOrder | undefined;
  events: InboundEventRow[];
}

/**
 * Locks, for each order that one of `eventIds` belongs to, the order's row and its events still
 * `queued` that arrived no later than the newest of those events, in one statement: a backlog is then
 * applied in the order received, and the events of many orders in one transaction. Under READ
 * COMMITTED a row that was locked by another transaction is re-checked at its newest version once the
 * lock is granted, so an event another transaction processed meanwhile drops out. Rows are locked in
 * one global order (order id; for each order its row, then its events in the order received), so two
 * transactions locking overlapping orders cannot deadlock. At most INBOX_BATCH events; the orders
 * sorted last are cut off first.
 *
 * Written so that every table is reached by key whatever the planner knows: the lateral subqueries
 * run once per order with the order id as their index key, so a backlog of other orders' events is
 * never read (a join here was planned as a scan of every queued event, once per transaction).
 */
export function lockInboxesStatement(eventIds: readonly string[]): RenderedStatement {
  return {
    sql: `select ${selectList('e', EVENT_COLUMNS)}, ${selectList('o', ORDER_COLUMNS)}
          from (select order_id, max(received_at) as upto from inbound_events
                where event_id = any($1::text[]) group by order_id order by order_id) r
          cross join lateral (select * from orders where order_id = r.order_id for update) o
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

/** The rows of the two statements above, as one inbox per order in the order they were locked. */
export function lockedInboxes(
  withOrder: ReadonlyArray<Record<string, unknown>>,
  withoutOrder: ReadonlyArray<Record<string, unknown>>,
): LockedInbox[] {
  const inboxes = new Map<string, LockedInbox>();
  for (const row of withOrder) {
    const event = fromRow<InboundEventRow>(row, 'e', EVENT_COLUMNS);
    let inbox = inboxes.get(event.orderId);
    if (!inbox) {
      inbox = { order: fromRow<LockedOrder>(row, 'o', ORDER_COLUMNS), events: [] };
      inboxes.set(event.orderId, inbox);
    }
    inbox.events.push(event);
  }
  // An event whose order does not exist stands alone: its order may be created before the next one arrives.
  const orphans = withoutOrder.map((row): LockedInbox => ({ order: undefined, events: [fromRow<InboundEventRow>(row, 'e', EVENT_COLUMNS)] }));
  return [...inboxes.values(), ...orphans];
}

export interface TransitionRequest {
  event: OrderEvent;
  actor: string;
  source: Source;
  /** When the change happened in the world (the event's occurredAt); defaults to now. */
  occurredAt?: Date | null;
  reasonCode?: string | null;
  eventId?: string | null;
  note?: string | null;
  /** Other columns of the order to set in the same write when the order moves (tracking, confirmation). */
  orderChanges?: Partial<Pick<OrderRow, 'trackingId' | 'carrierCode' | 'estimatedDelivery' | 'slickConfirmation'>>;
  /** More messages for the topic, written only if the order moves. */
  extraMessages?: TopicMessage[];
}

export type TransitionResult =
  | { kind: 'moved'; order: OrderRow; from: StatusCode; steps: Step[]; subStep: SubStep | null }
  | { kind: 'stale'; order: OrderRow }
  | { kind: 'invalid'; order: OrderRow; reason: string };

/** A history row as a transition writes it. */
export type HistoryRow = Omit<typeof statusHistory.$inferInsert, 'id'>;

/**
 * What a transition writes, as data: the order as the transition leaves it (every column, since the
 * row is locked), its history rows and its topic messages. `transitionWrites` renders any number of
 * them as three statements.
 */
export interface TransitionRecord {
  order: OrderRow;
  history: HistoryRow[];
  messages: TopicMessage[];
}

export type TransitionPlan = { result: TransitionResult; record?: TransitionRecord };

/**
 * Asks the machine what `req` does to the locked order and records what it would write (the order,
 * one history row per step, the topic messages) without writing it. `applyTransition` writes it in the
 * caller's transaction; the ship-event path writes the records of many events with its other writes.
 */
export function planTransition(order: LockedOrder, req: TransitionRequest): TransitionPlan {
  if (!isStatusCode(order.status)) throw new Error(`order ${order.orderId} has unknown status ${order.status}`);
  const from = order.status;
  const decision: Decision = decideTransition(from, (order.subStep as SubStep | null) ?? null, req.event);
  if (decision.kind === 'stale') return { result: { kind: 'stale', order } };
  if (decision.kind === 'invalid') return { result: { kind: 'invalid', order, reason: decision.reason } };

  const now = new Date();
  const occurredAt = req.occurredAt ?? now;
  const override = req.event.type === 'OVERRIDE';
  // A sub-step change (packing) has no status step but is still a recorded change of the order.
  const rows: Array<{ from: StatusCode; to: StatusCode; implied: boolean; subStep: SubStep | null }> = [];
  let previous = from;
  for (const step of decision.steps) {
    const isLast = step === decision.steps.at(-1);
    rows.push({ from: previous, to: step.to, implied: step.implied, subStep: isLast ? decision.subStep : null });
    previous = step.to;
  }
  if (decision.steps.length === 0) rows.push({ from, to: from, implied: false, subStep: decision.subStep });
  const to = rows.at(-1)!.to;

  const updated: OrderRow = {
    ...order,
    ...req.orderChanges,
    status: to,
    subStep: decision.subStep,
    version: order.version + 1,
    historySeq: order.historySeq + rows.length,
    updatedAt: now,
    statusChangedAt: to !== from ? now : order.statusChangedAt,
  };

  const messages: TopicMessage[] = rows.map((r) => ({
    type: 'status.changed',
    orderId: order.orderId,
    occurredAt: r.implied ? now : occurredAt,
    payload: {
      orderId: order.orderId,
      locationId: order.shipFromLocationId,
      from: r.from,
      to: r.to,
      subStep: r.subStep,
      implied: r.implied,
      override,
      source: req.source,
      actor: req.actor,
      eventId: req.eventId ?? null,
      reasonCode: req.reasonCode ?? null,
      at: (r.implied ? now : occurredAt).toISOString(),
    },
  }));
  messages.push(...(req.extraMessages ?? []));

  const history: HistoryRow[] = rows.map((r, i) => ({
    orderId: order.orderId,
    seq: order.historySeq + i + 1,
    fromStatus: r.from,
    toStatus: r.to,
    subStep: r.subStep,
    // An implied step's real time is unknown until its own (late) event arrives.
    occurredAt: r.implied ? null : occurredAt,
    recordedAt: now,
    actor: req.actor,
    source: req.source,
    reasonCode: req.reasonCode ?? null,
    eventId: req.eventId ?? null,
    note: r.implied ? `implied by ${req.eventId ?? 'a later status'}` : (req.note ?? null),
    implied: r.implied,
    override,
  }));
  return {
    result: { kind: 'moved', order: updated, from, steps: decision.steps, subStep: decision.subStep },
    record: { order: updated, history, messages },
  };
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

/**
 * The statements that write `records` (of one or many orders, in the order they happened): one update
 * of the orders to the state the last record of each leaves them in, one insert of all history rows,
 * one insert of all topic messages.
 */
export function transitionWrites(records: readonly TransitionRecord[]): SQL[] {
  if (records.length === 0) return [];
  const last = new Map<string, OrderRow>();
  for (const r of records) last.set(r.order.orderId, r.order);
  const history = records.flatMap((r) => r.history);
  const messages = records.flatMap((r) => r.messages);
  return [
    orderStatesUpdate([...last.values()]),
    ...(history.length ? [historyInsert(history)] : []),
    ...(messages.length ? [outboxInsert(messages)] : []),
  ];
}

/**
 * Sets locked orders to the given states (the columns a transition or a ship event may change). Times
 * and booleans go as text (here and below): the drizzle driver passes timestamp arrays to postgres.js
 * unserialized, and postgres.js declares a boolean array's type as boolean.
 */
function orderStatesUpdate(states: readonly OrderRow[]): SQL {
  const col = <T>(f: (o: OrderRow) => T) => sql.param(states.map(f));
  return sql`update orders o
    set status = v.status, sub_step = v.sub_step, version = v.version, history_seq = v.history_seq,
        tracking_id = v.tracking_id, carrier_code = v.carrier_code, estimated_delivery = v.estimated_delivery::timestamptz,
        slick_confirmation = v.slick_confirmation, updated_at = v.updated_at::timestamptz, status_changed_at = v.status_changed_at::timestamptz
    from unnest(${col((o) => o.orderId)}::text[], ${col((o) => o.status)}::int[], ${col((o) => o.subStep)}::text[],
                ${col((o) => o.version)}::int[], ${col((o) => o.historySeq)}::int[], ${col((o) => o.trackingId)}::text[],
                ${col((o) => o.carrierCode)}::text[], ${col((o) => iso(o.estimatedDelivery))}::text[],
                ${col((o) => o.slickConfirmation)}::text[], ${col((o) => iso(o.updatedAt))}::text[],
                ${col((o) => iso(o.statusChangedAt))}::text[])
      as v(order_id, status, sub_step, version, history_seq, tracking_id, carrier_code, estimated_delivery, slick_confirmation, updated_at, status_changed_at)
    where o.order_id = v.order_id and o.order_id = any(${col((o) => o.orderId)}::text[])`;
}

function historyInsert(rows: readonly HistoryRow[]): SQL {
  const col = <T>(f: (h: HistoryRow) => T) => sql.param(rows.map(f));
  return sql`insert into status_history
      (order_id, seq, from_status, to_status, sub_step, occurred_at, recorded_at, actor, source, reason_code, event_id, note, implied, override)
    select h.order_id, h.seq, h.from_status, h.to_status, h.sub_step, h.occurred_at::timestamptz, h.recorded_at::timestamptz,
           h.actor, h.source, h.reason_code, h.event_id, h.note, h.implied::boolean, h.override::boolean
    from unnest(${col((h) => h.orderId)}::text[], ${col((h) => h.seq)}::int[], ${col((h) => h.fromStatus ?? null)}::int[],
                         ${col((h) => h.toStatus)}::int[], ${col((h) => h.subStep ?? null)}::text[], ${col((h) => iso(h.occurredAt))}::text[],
                         ${col((h) => iso(h.recordedAt))}::text[], ${col((h) => h.actor)}::text[], ${col((h) => h.source)}::text[],
                         ${col((h) => h.reasonCode ?? null)}::text[], ${col((h) => h.eventId ?? null)}::text[], ${col((h) => h.note ?? null)}::text[],
                         ${col((h) => String(h.implied ?? false))}::text[], ${col((h) => String(h.override ?? false))}::text[])
      as h(order_id, seq, from_status, to_status, sub_step, occurred_at, recorded_at, actor, source, reason_code, event_id, note, implied, override)`;
}

/** Plans the transition and runs its writes in `tx`; the caller's transaction commits them. */
export async function applyTransition(tx: Tx, order: LockedOrder, req: TransitionRequest): Promise<TransitionResult> {
  const plan = planTransition(order, req);
  // Issued together so postgres.js pipelines them on the transaction's connection: one round trip.
  if (plan.record) await Promise.all(transitionWrites([plan.record]).map((w) => tx.execute(w)));
  return plan.result;
}
