import { and, asc, eq, lt, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import type postgres from 'postgres';
import { columnsOf, fromRow, selectList } from '../db/raw-rows.js';
import { orderCalls, orders } from '../db/schema/index.js';
import type { OrderRow } from '../db/types.js';
import type { Tx } from '../db/types.js';
import { lockOrder, writeRecords, type LockedOrder, type TransitionRecord } from '../orders/apply-transition.js';
import { openIntervention } from '../orders/intervention-cases.js';
import type { PartnerCallJobName } from '../queues/partner-calls.queue.js';
import type { OrderCallRef } from './call-kind.js';
import type { OrderCallRequest } from './call-kind.js';

/**
 * The per-order record of each owed partner call (order_calls): pending until the partner took it
 * (confirmed) or it failed for good (failed), with its attempts and last error. Every state change
 * is conditional on the state it leaves, so a late job, a retry and a sweep cannot undo each other.
 * Records are made owed by `pendingCallsStatement` (schedule.ts), in the transaction that decided them.
 */

export type OrderCallRow = typeof orderCalls.$inferSelect;
type Db = Database | Tx;

const refIs = (ref: OrderCallRef) => and(eq(orderCalls.orderId, ref.orderId), eq(orderCalls.kind, ref.kind), eq(orderCalls.key, ref.key));

const ORDER_COLUMNS = columnsOf(orders);
const CALL_COLUMNS = columnsOf(orderCalls);

/**
 * Every partner call's first read, for many calls in one statement: each call's record with its
 * order, in the order asked (the record is undefined when never owed; both are undefined when the
 * order does not exist). Calls that start together share it (see the processor's reads).
 */
export async function readOrderCallsWithOrders(
  pg: postgres.Sql,
  refs: readonly OrderCallRef[],
): Promise<Array<{ record: OrderCallRow | undefined; order: OrderRow | undefined }>> {
  const rows = await pg.unsafe(
    `select r.i, ${selectList('o', ORDER_COLUMNS)}, ${selectList('c', CALL_COLUMNS)}
     from unnest($1::text[], $2::text[], $3::text[]) with ordinality as r(order_id, kind, key, i)
     join orders o on o.order_id = r.order_id and o.order_id = any($1::text[])
     left join order_calls c on c.order_id = r.order_id and c.kind = r.kind and c.key = r.key and c.order_id = any($1::text[])`,
    [refs.map((r) => r.orderId), refs.map((r) => r.kind), refs.map((r) => r.key)],
    { prepare: true },
  );
  const found = new Map(rows.map((row) => [Number(row.i), row as Record<string, unknown>]));
  return refs.map((_, i) => {
    const row = found.get(i + 1);
    if (!row) return { record: undefined, order: undefined };
    return {
      order: fromRow<OrderRow>(row, 'o', ORDER_COLUMNS),
      record: row['c.orderId'] === null ? undefined : fromRow<OrderCallRow>(row, 'c', CALL_COLUMNS),
    };
  });
}

/**
 * Settles a call by hand (a person did what the call was for: assigned the delivery partner): the
 * record becomes confirmed whether it was pending or failed — or is made confirmed when none was owed
 * yet, so the call is never made later — and the open cases of `caseToClose.cause` of the order are
 * resolved by `resolvedBy`. A record already confirmed is left as it is. One statement, for the
 * transaction that made the change. Returns whether a record was settled and how many cases closed.
 */
export async function settleOrderCallByHand(
  db: Db,
  ref: OrderCallRef,
  data: Record<string, unknown>,
  caseToClose: { cause: string; note: string; resolvedBy: string; resolution: string },
): Promise<{ settled: boolean; casesClosed: number }> {
  const [row] = await db.execute<{ settled: number; closed: number }>(sql`
    with settled as (
      insert into order_calls (order_id, kind, key, state, attempts, data, created_at, updated_at)
      values (${ref.orderId}, ${ref.kind}, ${ref.key}, 'confirmed', 0, ${JSON.stringify(data)}::jsonb, now(), now())
      on conflict (order_id, kind, key) do update set state = 'confirmed', last_error = null, updated_at = now()
        where order_calls.state in ('pending', 'failed')
      returning 1
    ), closed as (
      update interventions
      set state = 'resolved', resolved_at = now(), updated_at = now(), resolved_by = ${caseToClose.resolvedBy},
          resolution = ${caseToClose.resolution}, note = ${caseToClose.note}
      where order_id = ${ref.orderId} and cause = ${caseToClose.cause} and state = 'open'
      returning 1
    )
    select (select count(*) from settled)::int as settled, (select count(*) from closed)::int as closed`);
  return { settled: (row?.settled ?? 0) > 0, casesClosed: row?.closed ?? 0 };
}

/**
 * Counts a failed attempt of a pending call and keeps its error; `final` also marks it failed.
 * Returns the attempts so far and the order's status, or undefined when the call was no longer
 * pending (settled meanwhile: nothing to record).
 */
export async function recordFailedAttempt(
  db: Db,
  ref: OrderCallRef,
  failure: { error: string; final: boolean },
): Promise<{ attempts: number; orderStatus: number | null } | undefined> {
  const [row] = await db
    .update(orderCalls)
    .set({
      attempts: sql`${orderCalls.attempts} + 1`,
      lastError: failure.error,
      state: failure.final ? 'failed' : 'pending',
      updatedAt: sql`now()`,
    })
    .where(and(refIs(ref), eq(orderCalls.state, 'pending')))
    .returning({ attempts: orderCalls.attempts, orderStatus: sql<number | null>`(select o.status from orders o where o.order_id = ${ref.orderId})` });
  return row;
}

/**
 * A pending call's final failure, in one transaction: the record is marked failed (counting the
 * attempt, keeping the error) and the case for a person opens, with the call's kind, key, attempts,
 * error and the order's status beside `detail`. Nothing happens when the call was no longer pending.
 */
export async function failOrderCall(
  db: Database,
  ref: OrderCallRef,
  failure: {
    cause: string;
    error: string;
    detail: Record<string, unknown>;
    /**
     * What the order records with the failure (its kind's onFinalFailure): the order is locked before
     * the record is touched, and the changes are written with the failure, only if it was still pending.
     */
    alsoRecord?: (tx: Tx, order: LockedOrder, attempts: number) => Promise<TransitionRecord[]>;
  },
): Promise<{ attempts: number; orderStatus: number | null } | undefined> {
  return db.transaction(async (tx) => {
    const order = failure.alsoRecord ? await lockOrder(tx, ref.orderId) : undefined;
    const recorded = await recordFailedAttempt(tx, ref, { error: failure.error, final: true });
    if (!recorded) return undefined;
    if (order && failure.alsoRecord) {
      const records = await failure.alsoRecord(tx, order, recorded.attempts);
      if (records.length > 0) await writeRecords(tx, records);
    }
    await openIntervention(tx, {
      orderId: ref.orderId,
      cause: failure.cause,
      detail: {
        callKind: ref.kind,
        callKey: ref.key,
        ...failure.detail,
        attempts: recorded.attempts,
        error: failure.error,
        orderStatus: recorded.orderStatus,
      },
    });
    return recorded;
  });
}

/**
 * Puts failed calls back to pending with a fresh count, so a retried job has work to do: the one
 * call `ref` names, or every failed call of a kind for an order. Returns the reopened records.
 */
export async function reopenFailedCalls(db: Db, which: { orderId: string; kind: PartnerCallJobName; key?: string }): Promise<OrderCallRow[]> {
  return db
    .update(orderCalls)
    .set({ state: 'pending', attempts: 0, lastError: null, updatedAt: sql`now()` })
    .where(
      and(
        eq(orderCalls.orderId, which.orderId),
        eq(orderCalls.kind, which.kind),
        which.key !== undefined ? eq(orderCalls.key, which.key) : undefined,
        eq(orderCalls.state, 'failed'),
      ),
    )
    .returning();
}

/** The calls of one kind an order still owes. */
export async function pendingCallsOf(db: Db, orderId: string, kind: PartnerCallJobName): Promise<OrderCallRow[]> {
  return db
    .select()
    .from(orderCalls)
    .where(and(eq(orderCalls.orderId, orderId), eq(orderCalls.kind, kind), eq(orderCalls.state, 'pending')));
}

/** Owed calls nobody touched since `cutoff`, oldest first (order_calls_pending_idx). */
export async function callsOwedSince(db: Db, cutoff: Date, limit: number): Promise<OrderCallRow[]> {
  return db
    .select()
    .from(orderCalls)
    .where(and(eq(orderCalls.state, 'pending'), lt(orderCalls.updatedAt, cutoff)))
    .orderBy(asc(orderCalls.updatedAt))
    .limit(limit);
}

/** A record as the request that schedules its job. */
export function callRequestOf(row: OrderCallRow): OrderCallRequest {
  return { kind: row.kind as PartnerCallJobName, orderId: row.orderId, key: row.key, data: row.data };
}
