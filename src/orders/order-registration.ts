import { eq } from 'drizzle-orm';
import { z } from 'zod';
import type { Database } from '../db/client.js';
import { columnsOf, fromRow, selectList } from '../db/raw-rows.js';
import { codLedger, inboundEvents, locations, orders, statusHistory, type OrderCallState } from '../db/schema/index.js';
import type { HubDeps } from '../deps.js';
import type { CodLedgerRow, HistoryRow, InboundEventRow, OrderRow, Source } from '../db/types.js';
import { ConflictError, NotFoundError, TransitionError } from '../errors.js';
import { STATUS, STATUS_NAMES, type StatusCode } from '../machines/order.machine.js';
import { applyTransition, countTransition, lockOrder, type TransitionResult } from './apply-transition.js';
import { SHIP_CONFIRMATION_CALL } from '../event-kinds/ship-events.js';
import { bodyHash } from '../inbox/event-store.js';
import { outboxInsert, type TopicMessage } from './topic-messages.js';
import { sqlText, statement, type RenderedStatement } from '../db/pipelined-transaction.js';

/** Orders: registration by MAO or an operator, cancellation, and what operators read (SPEC §6). */

export const orderIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, . _ - (at most 64)');

export const newOrderSchema = z
  .object({
    orderId: orderIdSchema,
    shipFromLocationId: z.string().min(1).max(64),
    customer: z
      .object({
        id: z.string().min(1).max(128),
        name: z.string().max(200).optional(),
        phone: z.string().max(40).optional(),
        email: z.email().optional(),
      })
      .strict(),
    paymentMethod: z.enum(['PREPAID', 'COD']),
    codAmount: z.number().nonnegative().max(1_000_000).multipleOf(0.01).optional(),
    status: z.union([z.literal(STATUS.CREATED), z.literal(STATUS.RELEASED)]).default(STATUS.RELEASED),
  })
  .strict()
  .refine((o) => o.paymentMethod !== 'COD' || (o.codAmount ?? 0) > 0, { message: 'COD orders need a codAmount above 0', path: ['codAmount'] })
  .refine((o) => o.paymentMethod !== 'PREPAID' || !o.codAmount, { message: 'PREPAID orders carry no codAmount', path: ['codAmount'] });
export type NewOrder = z.infer<typeof newOrderSchema>;

export const cancelSchema = z.object({ reasonCode: z.string().min(1).max(64), note: z.string().max(1000).optional() }).strict();

export interface Actor {
  clientId: string;
  source: Source;
}

/**
 * Registration in one statement (one round trip, atomic): the order inserted if its location exists
 * and its id is new, with its first history row and its topic message; the row returned as inserted,
 * or as it already was (`existing`). No row: the location is unknown, or another registration of the
 * same id committed while this one ran (its row is not in this statement's snapshot).
 */
function registrationStatement(input: NewOrder, hash: string, actor: Actor, now: Date): RenderedStatement {
  const at = now.toISOString();
  const message: TopicMessage = {
    type: 'status.changed',
    orderId: input.orderId,
    occurredAt: now,
    payload: { orderId: input.orderId, locationId: input.shipFromLocationId, from: null, to: input.status, source: actor.source, actor: actor.clientId, at },
  };
  const codAmount = input.codAmount !== undefined ? input.codAmount.toFixed(2) : null;
  return statement`with loc as (select 1 from locations where location_id = ${input.shipFromLocationId}::text),
    ins as (
      insert into orders (order_id, ship_from_location_id, customer, payment_method, cod_amount, status, history_seq, registration_hash,
                          created_at, updated_at, status_changed_at)
      select ${input.orderId}::text, ${input.shipFromLocationId}::text, ${JSON.stringify(input.customer)}::jsonb, ${input.paymentMethod}::text,
             ${codAmount}::numeric, ${input.status}::int, 1, ${hash}::text, ${at}::timestamptz, ${at}::timestamptz, ${at}::timestamptz
      from loc
      on conflict (order_id) do nothing
      returning *),
    hist as (
      insert into status_history (order_id, seq, from_status, to_status, occurred_at, recorded_at, actor, source, reason_code)
      select order_id, 1, null, status, ${at}::timestamptz, ${at}::timestamptz, ${actor.clientId}::text, ${actor.source}::text, 'registered' from ins),
    msg as (${outboxInsert([message], sqlText('exists (select 1 from ins)'))})
    select 'inserted' as outcome, ${REGISTERED_COLUMNS} from ins o
    union all
    select 'existing', ${REGISTERED_COLUMNS} from orders o
    where o.order_id = ${input.orderId}::text and exists (select 1 from loc) and not exists (select 1 from ins)`;
}

/** Registers an order. The same registration again: `created: false`; the same id with another body: 409. */
export async function registerOrder(db: Database, input: NewOrder, actor: Actor): Promise<{ created: boolean; order: OrderRow }> {
  const hash = bodyHash(input);
  const register = registrationStatement(input, hash, actor, new Date());
  const run = async () => (await db.$client.unsafe(register.sql, register.params as never[], { prepare: true }))[0];
  let row = await run();
  if (!row) {
    // An unknown location, or a change this statement's snapshot missed (a registration of the same
    // id, a location added, committed while it ran): run once more, on a new snapshot, if the location exists.
    const [location] = await db.select({ id: locations.locationId }).from(locations).where(eq(locations.locationId, input.shipFromLocationId));
    if (!location) {
      throw new TransitionError('unknown_location', `location ${input.shipFromLocationId} is not a known store location`, {
        shipFromLocationId: input.shipFromLocationId,
      });
    }
    row = await run();
    if (!row) throw new Error(`order ${input.orderId} neither registered nor found`);
  }
  const order = fromRow<OrderRow>(row, 'o', ORDER_COLUMNS);
  const created = row.outcome === 'inserted';
  if (!created && order.registrationHash !== hash) {
    throw new ConflictError(`order ${input.orderId} is already registered with different details`, { orderId: input.orderId }, 'order_conflict');
  }
  return { created, order };
}

/** Cancels an order not yet fulfilled. Cancelling a cancelled order answers with it unchanged. */
export async function cancelOrder(deps: HubDeps, orderId: string, input: z.infer<typeof cancelSchema>, actor: Actor): Promise<OrderRow> {
  const { order, result } = await deps.db.transaction(async (tx): Promise<{ order: OrderRow; result?: TransitionResult }> => {
    const order = await lockOrder(tx, orderId);
    if (!order) throw new NotFoundError('order', orderId);
    if (order.status === STATUS.CANCELLED) return { order };
    const result = await applyTransition(
      tx,
      order,
      {
        event: { type: 'OPERATOR_MOVE', to: STATUS.CANCELLED },
        actor: actor.clientId,
        source: actor.source,
        reasonCode: input.reasonCode,
        note: input.note ?? null,
      },
      deps.clock,
    );
    if (result.kind !== 'moved') {
      throw new TransitionError('invalid_transition', `order ${orderId} at ${order.status} cannot be cancelled (only before 7000)`, {
        orderId,
        status: order.status,
      });
    }
    return { order: result.order, result };
  });
  if (result) countTransition(deps.metrics, result, actor.source);
  return order;
}

/** An order with the state of each call owed about it (keyed `<kind>:<key>`), as operators read it. */
export type OrderWithCalls = OrderRow & { calls: Record<string, OrderCallState>; ledger?: CodLedgerRow | undefined };

const ORDER_COLUMNS = columnsOf(orders);
const REGISTERED_COLUMNS = sqlText(selectList('o', ORDER_COLUMNS));
const LEDGER_COLUMNS = columnsOf(codLedger);
const HISTORY_COLUMNS = columnsOf(statusHistory);
const EVENT_COLUMNS = columnsOf(inboundEvents);

/**
 * The order, its COD ledger and the states of its calls: one prepared statement, written once, its
 * rows mapped without drizzle's query machinery (reads by id are the API's most frequent request,
 * and what each one allocates is what their tail latency is made of: README, Benchmark → Reads).
 */
const ORDER_WITH_CALLS = `select ${selectList('o', ORDER_COLUMNS)}, ${selectList('l', LEDGER_COLUMNS)},
    (select json_agg(json_build_array(c.kind, c.key, c.state)) from order_calls c where c.order_id = o.order_id) as calls
  from orders o left join cod_ledger l on l.order_id = o.order_id
  where o.order_id = $1`;

export async function getOrder(db: Database, orderId: string): Promise<OrderWithCalls> {
  const [row] = await db.$client.unsafe(ORDER_WITH_CALLS, [orderId]);
  if (!row) throw new NotFoundError('order', orderId);
  const calls: Record<string, OrderCallState> = {};
  for (const [kind, key, state] of (row.calls as Array<[string, string, OrderCallState]> | null) ?? []) calls[`${kind}:${key}`] = state;
  const ledger = row['l.orderId'] === null ? undefined : fromRow<CodLedgerRow>(row, 'l', LEDGER_COLUMNS);
  return { ...fromRow<OrderRow>(row, 'o', ORDER_COLUMNS), calls, ledger };
}

/**
 * The COD ledger of a cash-on-delivery order (null for a prepaid one): what is expected from
 * registration, what the partner collected, when and who, and its relay to Slick (pending, confirmed,
 * failed, or withheld for a discrepancy).
 */
function codView(o: OrderRow & { ledger?: CodLedgerRow | undefined }) {
  if (o.paymentMethod !== 'COD') return null;
  const l = o.ledger;
  return {
    expectedAmount: o.codAmount !== null ? Number(o.codAmount) : null,
    collectedAmount: l?.collectedAmount != null ? Number(l.collectedAmount) : null,
    collectedAt: l?.collectedAt?.toISOString() ?? null,
    collectedBy: l?.collectedBy ?? null,
    eventId: l?.eventId ?? null,
    relay: l?.relay ?? null,
    confirmedAt: l?.confirmedAt?.toISOString() ?? null,
  };
}

/** The order's history in one statement: no row at all when the order does not exist, one without an entry when it has none. */
const ORDER_HISTORY = `select o.order_id as "orderId", ${selectList('h', HISTORY_COLUMNS)}
  from orders o left join status_history h on h.order_id = o.order_id
  where o.order_id = $1
  order by h.seq`;

export async function getHistory(db: Database, orderId: string): Promise<HistoryRow[]> {
  const rows = await db.$client.unsafe(ORDER_HISTORY, [orderId]);
  if (rows.length === 0) throw new NotFoundError('order', orderId);
  return rows.flatMap((r) => (r['h.id'] === null ? [] : [fromRow<HistoryRow>(r, 'h', HISTORY_COLUMNS)]));
}

/** The order's last 500 events, newest first, the same way (no row: no such order). */
const ORDER_EVENTS = `select o.order_id as "orderId", ${selectList('e', EVENT_COLUMNS)}
  from orders o left join inbound_events e on e.order_id = o.order_id
  where o.order_id = $1
  order by e.received_at desc
  limit 500`;

export async function getOrderEvents(db: Database, orderId: string): Promise<InboundEventRow[]> {
  const rows = await db.$client.unsafe(ORDER_EVENTS, [orderId]);
  if (rows.length === 0) throw new NotFoundError('order', orderId);
  return rows.flatMap((r) => (r['e.eventId'] === null ? [] : [fromRow<InboundEventRow>(r, 'e', EVENT_COLUMNS)]));
}

export function orderView(o: OrderRow & { calls?: Record<string, OrderCallState>; ledger?: CodLedgerRow | undefined }) {
  const d = o.delivery;
  return {
    orderId: o.orderId,
    shipFromLocationId: o.shipFromLocationId,
    status: o.status,
    statusName: STATUS_NAMES[o.status as StatusCode] ?? 'Unknown',
    subStep: o.subStep,
    customer: o.customer,
    paymentMethod: o.paymentMethod,
    codAmount: o.codAmount !== null ? Number(o.codAmount) : null,
    tracking: o.trackingId ? { trackingId: o.trackingId, carrierCode: o.carrierCode, estimatedDelivery: o.estimatedDelivery?.toISOString() ?? null } : null,
    // The state of the Slick ship confirmation call (SPEC §4.1), null until `shipped` made it owed.
    slickConfirmation: o.calls?.[`${SHIP_CONFIRMATION_CALL}:`] ?? null,
    // The delivery partner PMP assigned, or an operator by hand (SPEC §5.2); null until then.
    partner: o.partnerId ? { partnerId: o.partnerId, partnerName: o.partnerName } : null,
    cod: codView(o),
    deliveryAttempts: o.deliveryAttempts,
    delivery: {
      courierStatus: d?.courierStatus ?? null,
      courierStatusAt: d?.courierStatusAt ?? null,
      estimatedDelivery: o.estimatedDelivery?.toISOString() ?? null,
      location: d?.location ?? null,
      locationAt: d?.locationAt ?? null,
      deliveredAt: d?.deliveredAt ?? null,
      proofOfDelivery: d?.proofOfDelivery ?? null,
      lastFailure: d?.lastFailure ?? null,
      rescheduledFor: d?.rescheduledFor ?? null,
      returnedAt: d?.returnedAt ?? null,
    },
    version: o.version,
    createdAt: o.createdAt.toISOString(),
    updatedAt: o.updatedAt.toISOString(),
    statusChangedAt: o.statusChangedAt.toISOString(),
  };
}

export function historyView(h: HistoryRow) {
  return {
    seq: h.seq,
    from: h.fromStatus,
    to: h.toStatus,
    subStep: h.subStep,
    occurredAt: h.occurredAt?.toISOString() ?? null,
    recordedAt: h.recordedAt.toISOString(),
    actor: h.actor,
    source: h.source,
    reasonCode: h.reasonCode,
    eventId: h.eventId,
    note: h.note,
    implied: h.implied,
    override: h.override,
  };
}
