import { eq, getTableColumns, sql } from 'drizzle-orm';
import type { RenderedStatement, StatementRunner } from '../db/pipelined-transaction.js';
import { decideTransition, isStatusCode, type Decision, type OrderEvent, type StatusCode, type Step, type SubStep } from '../machines/order.machine.js';
import { inboundEvents, orders, statusHistory } from '../db/schema/index.js';
import type { InboundEventRow, OrderRow, Source, Tx } from '../db/types.js';
import { writeToOutbox, type TopicMessage } from './topic-messages.js';

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

const ORDER_COLUMNS = Object.entries(getTableColumns(orders));
const EVENT_COLUMNS = Object.entries(getTableColumns(inboundEvents));
const selectList = (alias: string, columns: typeof ORDER_COLUMNS | typeof EVENT_COLUMNS) =>
  columns.map(([key, column]) => `${alias}."${column.name}" as "${alias}.${key}"`).join(', ');

function fromRow<T>(row: Record<string, unknown>, alias: string, columns: typeof ORDER_COLUMNS | typeof EVENT_COLUMNS): T {
  return Object.fromEntries(
    columns.map(([key, column]) => {
      const value = row[`${alias}.${key}`];
      return [key, value === null || value === undefined ? null : column.mapFromDriverValue(value)];
    }),
  ) as T;
}

/** At most this many waiting events of one order are applied in one transaction. */
export const INBOX_BATCH = 50;

/**
 * Locks an order's row with its events still `queued` that arrived no later than `eventId`, oldest
 * first, in one statement: a backlog of one order's events is then applied in the order received, in
 * one transaction. Under READ COMMITTED, a row that was locked by another transaction is re-checked
 * at its newest version once the lock is granted, so an event another job processed meanwhile drops
 * out. Everyone locks in receipt order, so two jobs of one order cannot deadlock. No row: the event
 * is not queued any more, or its order does not exist.
 */
export function lockOrderInboxStatement(eventId: string): RenderedStatement {
  return {
    sql: `select ${selectList('e', EVENT_COLUMNS)}, ${selectList('o', ORDER_COLUMNS)}
          from inbound_events e join orders o on o.order_id = e.order_id
          where e.order_id = (select order_id from inbound_events where event_id = $1)
            and e.state = 'queued'
            and e.received_at <= (select received_at from inbound_events where event_id = $1)
          order by e.received_at, e.event_id
          limit ${INBOX_BATCH}
          for update`,
    params: [eventId],
  };
}

export function lockedOrderInbox(rows: ReadonlyArray<Record<string, unknown>>): { events: InboundEventRow[]; order: LockedOrder } {
  return {
    events: rows.map((r) => fromRow<InboundEventRow>(r, 'e', EVENT_COLUMNS)),
    order: fromRow<LockedOrder>(rows[0]!, 'o', ORDER_COLUMNS),
  };
}

/** The event alone, locked: for an event whose order does not exist. */
export async function lockEventAlone(run: StatementRunner, eventId: string): Promise<{ events: InboundEventRow[]; order: undefined }> {
  const [row] = await run({ sql: `select ${selectList('e', EVENT_COLUMNS)} from inbound_events e where e.event_id = $1 for update`, params: [eventId] });
  return { events: row ? [fromRow<InboundEventRow>(row, 'e', EVENT_COLUMNS)] : [], order: undefined };
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

/** A write the transition needs: a drizzle query, run by awaiting it or rendered with `toSQL()`. */
export interface PlannedWrite extends PromiseLike<unknown> {
  toSQL(): { sql: string; params: unknown[] };
}
type QueryBuilder = Pick<Tx, 'update' | 'insert'>;

export type TransitionPlan = { result: TransitionResult; writes: PlannedWrite[] };

/**
 * Asks the machine what `req` does to the locked order and builds the writes that record it (the
 * order, one history row per step, the topic messages) without running them. `applyTransition` runs
 * them in the caller's transaction; the ship-event path pipelines them with its other writes.
 */
export function planTransition(qb: QueryBuilder, order: LockedOrder, req: TransitionRequest): TransitionPlan {
  if (!isStatusCode(order.status)) throw new Error(`order ${order.orderId} has unknown status ${order.status}`);
  const from = order.status;
  const decision: Decision = decideTransition(from, (order.subStep as SubStep | null) ?? null, req.event);
  if (decision.kind === 'stale') return { result: { kind: 'stale', order }, writes: [] };
  if (decision.kind === 'invalid') return { result: { kind: 'invalid', order, reason: decision.reason }, writes: [] };

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

  const writes: PlannedWrite[] = [
    qb
      .update(orders)
      .set({
        ...req.orderChanges,
        status: updated.status,
        subStep: updated.subStep,
        version: sql`${orders.version} + 1`,
        historySeq: updated.historySeq,
        updatedAt: now,
        statusChangedAt: updated.statusChangedAt,
      })
      .where(eq(orders.orderId, order.orderId)),
    qb.insert(statusHistory).values(
      rows.map((r, i) => ({
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
      })),
    ),
    writeToOutbox(qb, messages),
  ];
  return { result: { kind: 'moved', order: updated, from, steps: decision.steps, subStep: decision.subStep }, writes };
}

/** Plans the transition and runs its writes in `tx`; the caller's transaction commits them. */
export async function applyTransition(tx: Tx, order: LockedOrder, req: TransitionRequest): Promise<TransitionResult> {
  const plan = planTransition(tx, order, req);
  // Issued together so postgres.js pipelines them on the transaction's connection: one round trip.
  await Promise.all(plan.writes);
  return plan.result;
}
