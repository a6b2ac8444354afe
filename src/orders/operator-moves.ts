import { asc, sql } from 'drizzle-orm';
import { z } from 'zod';
import { codLedger, orderCalls, orders, orderTiers } from '../db/schema/index.js';
import type { Tx } from '../db/types.js';
import type { HubDeps } from '../deps.js';
import { NotFoundError, TransitionError } from '../errors.js';
import { decideTransition, isStatusCode, STATUS_CODES, type OrderEvent, type StatusCode, type SubStep } from '../machines/order.machine.js';
import {
  applyTransition,
  countTransition,
  lockOrder,
  planTransition,
  writeRecords,
  type LockedOrder,
  type TransitionRecord,
  type TransitionRequest,
  type TransitionResult,
} from './apply-transition.js';
import { getOrder, orderIdSchema, type OrderWithCalls } from './order-registration.js';

/**
 * Status changes made by people (SPEC §2, §6): an operator's move (one step along the main line or a
 * branch, or to 9000), the same for many orders at once, and the admin override (anywhere, backwards
 * included, flagged as an override in history). All of them go through the one transition path
 * (apply-transition.ts) and ask the order machine; none decides a rule itself.
 *
 * Live stream: every change made here writes its `status.changed` messages to the outbox in the same
 * transaction (planTransition), and the relay publishes them on `order.fulfillment.v1`. The SSE stream
 * is read from that topic, so SSE clients are notified of these changes without anything more here.
 */

export const OPERATOR_SOURCE = 'operator' as const;
export const MAX_BULK_ORDERS = 1000;

const statusSchema = z
  .number()
  .int()
  .refine((n) => isStatusCode(n), { message: `unknown status code; one of ${STATUS_CODES.join(', ')}` })
  .transform((n) => n as StatusCode);
const reasonCodeSchema = z.string().trim().min(1).max(64);
const noteSchema = z.string().max(1000);

export const statusMoveSchema = z.object({ status: statusSchema, reasonCode: reasonCodeSchema, note: noteSchema.optional() }).strict();
export type StatusMove = z.infer<typeof statusMoveSchema>;

export const bulkStatusMoveSchema = z
  .object({
    orderIds: z
      .array(orderIdSchema)
      .min(1)
      .max(MAX_BULK_ORDERS)
      .refine((ids) => new Set(ids).size === ids.length, { message: 'order ids must be distinct' }),
    status: statusSchema,
    reasonCode: reasonCodeSchema,
    note: noteSchema.optional(),
  })
  .strict();
export type BulkStatusMove = z.infer<typeof bulkStatusMoveSchema>;

export const overrideSchema = z.object({ status: statusSchema, reasonCode: reasonCodeSchema, note: noteSchema.trim().min(1) }).strict();
export type StatusOverride = z.infer<typeof overrideSchema>;

export interface OperatorActor {
  clientId: string;
}

/** One order of a bulk move that cannot move: unknown, or refused by the machine (with its status then). */
export interface BulkFailure {
  orderId: string;
  code: 'not_found' | 'invalid_transition';
  reason: string;
  from?: StatusCode;
  allowed?: StatusCode[];
}

/** The statuses an operator may move an order at `from` to, as the machine answers (for error details). */
export function operatorMovesFrom(from: StatusCode, subStep: SubStep | null): StatusCode[] {
  return STATUS_CODES.filter((to) => decideTransition(from, subStep, { type: 'OPERATOR_MOVE', to }).kind === 'moved');
}

function request(event: OrderEvent, input: { reasonCode: string; note?: string | undefined }, actor: OperatorActor): TransitionRequest {
  return { event, actor: actor.clientId, source: OPERATOR_SOURCE, reasonCode: input.reasonCode, note: input.note ?? null };
}

/** Moves one order by an operator (OPERATOR_MOVE): 404 if unknown, 422 `invalid_transition` if the machine refuses. */
export async function moveStatus(deps: HubDeps, orderId: string, input: StatusMove, actor: OperatorActor): Promise<OrderWithCalls> {
  const result = await deps.db.transaction(async (tx) => {
    const order = await lockOrder(tx, orderId);
    if (!order) throw new NotFoundError('order', orderId);
    const moved = await applyTransition(tx, order, request({ type: 'OPERATOR_MOVE', to: input.status }, input, actor), deps.clock);
    if (moved.kind !== 'moved') {
      const from = order.status as StatusCode;
      throw new TransitionError('invalid_transition', refusal(moved, `order ${orderId} cannot move from ${from} to ${input.status}`), {
        orderId,
        from,
        to: input.status,
        allowed: operatorMovesFrom(from, (order.subStep as SubStep | null) ?? null),
      });
    }
    return moved;
  });
  countTransition(deps.metrics, result, OPERATOR_SOURCE);
  deps.logger.info(
    { orderId, from: result.kind === 'moved' ? result.from : undefined, to: input.status, reasonCode: input.reasonCode, by: actor.clientId },
    'status moved by operator',
  );
  return getOrder(deps.db, orderId);
}

/**
 * The admin override (OVERRIDE): any status, backwards included; history flags it as an override with
 * the actor, reason code and note. Moving an order to the status it has is refused (422).
 */
export async function overrideStatus(deps: HubDeps, orderId: string, input: StatusOverride, actor: OperatorActor): Promise<OrderWithCalls> {
  const result = await deps.db.transaction(async (tx) => {
    const order = await lockOrder(tx, orderId);
    if (!order) throw new NotFoundError('order', orderId);
    const moved = await applyTransition(tx, order, request({ type: 'OVERRIDE', to: input.status }, input, actor), deps.clock);
    if (moved.kind !== 'moved') {
      throw new TransitionError('invalid_transition', refusal(moved, `order ${orderId} cannot be overridden to ${input.status}`), {
        orderId,
        from: order.status,
        to: input.status,
      });
    }
    return moved;
  });
  countTransition(deps.metrics, result, OPERATOR_SOURCE);
  deps.logger.info(
    { orderId, from: result.kind === 'moved' ? result.from : undefined, to: input.status, reasonCode: input.reasonCode, by: actor.clientId },
    'status overridden',
  );
  return getOrder(deps.db, orderId);
}

function refusal(result: TransitionResult, fallback: string): string {
  return result.kind === 'invalid' ? `${fallback}: ${result.reason}` : fallback;
}

/**
 * Moves many orders to one status (OPERATOR_MOVE each) in ONE transaction. The orders are locked in
 * one statement in one global order (order id), so two bulk moves over overlapping orders cannot
 * deadlock; every order is put to the machine, and if any is unknown or refused nothing is written and
 * the 422 lists every failure. Otherwise all records are written together, set-based
 * (`transitionWrites`: a constant number of statements whatever the number of orders).
 */
export async function moveStatusInBulk(deps: HubDeps, input: BulkStatusMove, actor: OperatorActor): Promise<OrderWithCalls[]> {
  const orderIds = [...input.orderIds].sort();
  const results = await deps.db.transaction(async (tx) => {
    const locked = await lockOrders(tx, orderIds);
    const failures: BulkFailure[] = [];
    const records: TransitionRecord[] = [];
    const moved: TransitionResult[] = [];
    for (const orderId of orderIds) {
      const order = locked.get(orderId);
      if (!order) {
        failures.push({ orderId, code: 'not_found', reason: `order ${orderId} not found` });
        continue;
      }
      const plan = planTransition(order, request({ type: 'OPERATOR_MOVE', to: input.status }, input, actor), deps.clock);
      if (plan.result.kind !== 'moved' || !plan.record) {
        const from = order.status as StatusCode;
        failures.push({
          orderId,
          code: 'invalid_transition',
          reason: plan.result.kind === 'invalid' ? plan.result.reason : `${from} cannot move to ${input.status}`,
          from,
          allowed: operatorMovesFrom(from, (order.subStep as SubStep | null) ?? null),
        });
        continue;
      }
      records.push(plan.record);
      moved.push(plan.result);
    }
    if (failures.length > 0) {
      throw new TransitionError('bulk_move_refused', `${failures.length} of ${orderIds.length} orders cannot move to ${input.status}; none was moved`, {
        status: input.status,
        moved: 0,
        failures,
      });
    }
    await writeRecords(tx, records);
    return moved;
  });
  for (const result of results) countTransition(deps.metrics, result, OPERATOR_SOURCE);
  deps.logger.info({ orders: results.length, to: input.status, reasonCode: input.reasonCode, by: actor.clientId }, 'statuses moved in bulk by operator');
  return readOrders(deps, input.orderIds);
}

/**
 * Locks the rows of `orderIds` FOR UPDATE in one statement, in order id order (the sort sits below the
 * lock, so rows are locked as they are sorted), then reads the calls owed and the tiers of them all,
 * which under READ COMMITTED sees what was committed once the locks were granted. Unknown ids are
 * simply absent from the answer.
 */
async function lockOrders(tx: Tx, orderIds: readonly string[]): Promise<Map<string, LockedOrder>> {
  const ids = sql.param([...orderIds]);
  const rows = await tx.select().from(orders).where(sql`${orders.orderId} = any(${ids}::text[])`).orderBy(asc(orders.orderId)).for('update');
  const [calls, tiers] = await Promise.all([
    tx
      .select({ orderId: orderCalls.orderId, kind: orderCalls.kind, key: orderCalls.key, state: orderCalls.state })
      .from(orderCalls)
      .where(sql`${orderCalls.orderId} = any(${ids}::text[])`),
    tx
      .select({ orderId: orderTiers.orderId, tier: orderTiers.tier, state: orderTiers.state, detail: orderTiers.detail })
      .from(orderTiers)
      .where(sql`${orderTiers.orderId} = any(${ids}::text[])`),
  ]);
  const locked = new Map<string, LockedOrder>();
  for (const row of rows) locked.set(row.orderId, { ...row, calls: {}, tiers: {} } as unknown as LockedOrder);
  for (const c of calls) (locked.get(c.orderId)!.calls as Record<string, unknown>)[`${c.kind}:${c.key}`] = c.state;
  for (const t of tiers) (locked.get(t.orderId)!.tiers as Record<number, unknown>)[t.tier] = { state: t.state, detail: t.detail };
  return locked;
}

/** The orders as operators read them (with their calls and COD ledger), in the order asked, three statements for all. */
async function readOrders(deps: HubDeps, orderIds: readonly string[]): Promise<OrderWithCalls[]> {
  const ids = sql.param([...orderIds]);
  const [rows, calls, ledgers] = await Promise.all([
    deps.db.select().from(orders).where(sql`${orders.orderId} = any(${ids}::text[])`),
    deps.db
      .select({ orderId: orderCalls.orderId, kind: orderCalls.kind, key: orderCalls.key, state: orderCalls.state })
      .from(orderCalls)
      .where(sql`${orderCalls.orderId} = any(${ids}::text[])`),
    deps.db.select().from(codLedger).where(sql`${codLedger.orderId} = any(${ids}::text[])`),
  ]);
  const byId = new Map<string, OrderWithCalls>(rows.map((r) => [r.orderId, { ...r, calls: {}, ledger: undefined }]));
  for (const c of calls) byId.get(c.orderId)!.calls[`${c.kind}:${c.key}`] = c.state;
  for (const l of ledgers) byId.get(l.orderId)!.ledger = l;
  return orderIds.flatMap((id) => byId.get(id) ?? []);
}
