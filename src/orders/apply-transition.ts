import { eq, sql } from 'drizzle-orm';
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

/**
 * Locks an inbound event's row and its order's row in one round trip. Under READ COMMITTED the
 * re-check after waiting for the lock reads the newest version of both rows, so a job that waited
 * behind a duplicate of itself sees the event already processed.
 */
export async function lockEventAndOrder(
  tx: Tx,
  eventId: string,
): Promise<{ event: InboundEventRow | undefined; order: LockedOrder | undefined }> {
  const [row] = await tx
    .select({ event: inboundEvents, order: orders })
    .from(inboundEvents)
    .innerJoin(orders, eq(orders.orderId, inboundEvents.orderId))
    .where(eq(inboundEvents.eventId, eventId))
    .for('update');
  if (row) return { event: row.event, order: row.order as LockedOrder };
  const [event] = await tx.select().from(inboundEvents).where(eq(inboundEvents.eventId, eventId)).for('update');
  return { event, order: undefined };
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

export async function applyTransition(tx: Tx, order: LockedOrder, req: TransitionRequest): Promise<TransitionResult> {
  if (!isStatusCode(order.status)) throw new Error(`order ${order.orderId} has unknown status ${order.status}`);
  const from = order.status;
  const decision: Decision = decideTransition(from, (order.subStep as SubStep | null) ?? null, req.event);
  if (decision.kind === 'stale') return { kind: 'stale', order };
  if (decision.kind === 'invalid') return { kind: 'invalid', order, reason: decision.reason };

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

  // Issued together so postgres.js pipelines them on the transaction's connection: one round trip.
  await Promise.all([
    tx
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
    tx.insert(statusHistory).values(
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
    writeToOutbox(tx, messages),
  ]);
  return { kind: 'moved', order: updated, from, steps: decision.steps, subStep: decision.subStep };
}
