import { sql } from 'drizzle-orm';
import type { Clock } from '../deps.js';
import type { Metrics } from '../metrics.js';
import { decideTransition, isStatusCode, STATUS, type Decision, type OrderEvent, type StatusCode, type Step, type SubStep } from '../machines/order.machine.js';
import { orders, statusHistory, type OrderCallState, type TierNumber, type TierState } from '../db/schema/index.js';
import type { OrderRow, Source, Tx } from '../db/types.js';
import { columnsOf, fromRow, selectList } from '../db/raw-rows.js';
import { outboxInsert, type TopicMessage } from './topic-messages.js';
import { asDrizzle, statement, type RenderedStatement } from '../db/pipelined-transaction.js';

/**
 * The one way an order changes: with the order row locked, ask the order machine, and record the
 * order as it is left, one history row per step and the topic messages (`planTransition`); then write
 * any number of such records in a constant number of statements (`transitionWrites`) inside the
 * caller's transaction, which commits them together. Operators, registration's followers, Slick's
 * confirmation and the inbox engine all go through here.
 */

declare const lockedBrand: unique symbol;
/** A tier of an order as its rules see it (order_tiers); a tier without a row has not started. */
export interface TierRecord {
  state: TierState;
  detail: Record<string, unknown>;
}
export type OrderTiers = Readonly<Partial<Record<TierNumber, TierRecord>>>;

/**
 * An order row read FOR UPDATE inside the current transaction, with the state of each call owed about
 * it (`calls`, keyed `<kind>:<key>`, see order_calls) and its delivery tiers (`tiers`, order_tiers),
 * both read once the lock was granted. Made by `lockOrder` and by the inbox lock
 * (src/inbox/inbox-lock.ts), and by the plans below for the next event of the same order.
 */
export type LockedOrder = OrderRow & {
  readonly calls: Readonly<Record<string, OrderCallState>>;
  readonly tiers: OrderTiers;
  readonly [lockedBrand]: true;
};

/** The state of the call of `kind` (and `key`) owed about a locked order, if there is one. */
export function callState(order: LockedOrder, kind: string, key = ''): OrderCallState | undefined {
  return order.calls[`${kind}:${key}`];
}

const ORDER_COLUMNS = columnsOf(orders);
/** The order's columns under drizzle's names: the SQL is written once, not built on every lock. */
const LOCK_ORDER_SELECT = sql.raw(`select ${selectList('o', ORDER_COLUMNS)} from orders o where o.order_id = `);

export async function lockOrder(tx: Tx, orderId: string): Promise<LockedOrder | undefined> {
  // One round trip: the three statements go down the transaction's connection together and Postgres
  // runs them in order, so the calls and tiers are read after the row lock is held (as if awaited one by one).
  const [[row], calls, tiers] = await Promise.all([
    tx.execute<Record<string, unknown>>(sql`${LOCK_ORDER_SELECT}${orderId} for update`),
    tx.execute<{ kind: string; key: string; state: OrderCallState }>(sql`select kind, key, state from order_calls where order_id = ${orderId}`),
    tx.execute<{ tier: TierNumber; state: TierState; detail: Record<string, unknown> }>(
      sql`select tier, state, detail from order_tiers where order_id = ${orderId}`,
    ),
  ]);
  if (!row) return undefined;
  return {
    ...fromRow<OrderRow>(row, 'o', ORDER_COLUMNS),
    calls: Object.fromEntries(calls.map((c) => [`${c.kind}:${c.key}`, c.state])),
    tiers: Object.fromEntries(tiers.map((t) => [t.tier, { state: t.state, detail: t.detail }])),
  } as LockedOrder;
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
  /** Other columns of the order to set in the same write when the order moves (tracking, delivery). */
  orderChanges?: OrderChanges;
  /** More messages for the topic, written only if the order moves (or, held, is changed). */
  extraMessages?: TopicMessage[];
  /**
   * The move waits for a partner's confirmation (Slick's, for `shipped` → 7000): the machine is asked
   * whether it may happen now, and if so only `orderChanges` and `extraMessages` are recorded — no
   * status, no history row — and the result is `held`. The confirmation makes the move later.
   */
  holdStatus?: boolean;
}

/** The columns besides status a transition or an order change may set. */
export type OrderChanges = Partial<
  Pick<OrderRow, 'trackingId' | 'carrierCode' | 'estimatedDelivery' | 'deliveryAttempts' | 'delivery' | 'partnerId' | 'partnerName'>
>;

export type TransitionResult =
  | { kind: 'moved'; order: LockedOrder; from: StatusCode; steps: Step[]; subStep: SubStep | null }
  | { kind: 'held'; order: LockedOrder }
  | { kind: 'stale'; order: LockedOrder }
  | { kind: 'invalid'; order: LockedOrder; reason: string };

/** A history row as a transition writes it. */
export type HistoryRow = Omit<typeof statusHistory.$inferInsert, 'id'>;

/**
 * What a change of an order writes, as data: the order as it is left (every column, since the row is
 * locked), its history rows and its topic messages. `transitionWrites` renders any number of them as
 * three statements.
 */
export interface TransitionRecord {
  order: LockedOrder;
  history: HistoryRow[];
  messages: TopicMessage[];
  /** Tiers as the change leaves them (the order's `tiers` already show them). */
  tiers?: TierWrite[];
  /** Discrepancies found, each opening its case (src/tiers/discrepancies.ts). */
  discrepancies?: DiscrepancyWrite[];
  /** The order's COD ledger as the change leaves it. */
  ledger?: LedgerWrite;
  /** Manual-intervention cases the change opens (one open per order and cause; an open one is left as it is). */
  cases?: CaseWrite[];
}

export interface CaseWrite {
  orderId: string;
  cause: string;
  detail: Record<string, unknown>;
}

export interface TierWrite {
  orderId: string;
  tier: TierNumber;
  state: TierState;
  detail: Record<string, unknown>;
}

export interface DiscrepancyWrite {
  orderId: string;
  code: string;
  tier: TierNumber | null;
  detail: Record<string, unknown>;
}

/** The columns of cod_ledger a change sets; amounts as decimal strings. */
export interface LedgerWrite {
  orderId: string;
  expectedAmount: string;
  collectedAmount: string | null;
  collectedAt: string | null;
  collectedBy: string | null;
  eventId: string | null;
  relay: 'pending' | 'confirmed' | 'failed' | 'withheld' | null;
  confirmedAt: string | null;
}

export type TransitionPlan = { result: TransitionResult; record?: TransitionRecord };

/**
 * Asks the machine what `req` does to the locked order and records what it would write (the order,
 * one history row per step, the topic messages) without writing it. `applyTransition` writes it in the
 * caller's transaction; the inbox engine writes the records of many events with its other writes.
 * Times come from `clock`.
 */
export function planTransition(order: LockedOrder, req: TransitionRequest, clock: Clock): TransitionPlan {
  if (!isStatusCode(order.status)) throw new Error(`order ${order.orderId} has unknown status ${order.status}`);
  const from = order.status;
  const decision: Decision = decideTransition(from, (order.subStep as SubStep | null) ?? null, req.event);
  if (decision.kind === 'stale') return { result: { kind: 'stale', order } };
  if (decision.kind === 'invalid') return { result: { kind: 'invalid', order, reason: decision.reason } };
  if (req.holdStatus) {
    const record = planOrderChange(order, req.orderChanges ?? {}, req.extraMessages ?? [], clock);
    return { result: { kind: 'held', order: record.order }, record };
  }

  const now = new Date(clock.now());
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

  // Reaching 7000 starts the order's delivery tiers (SPEC §5.3): whoever made the move.
  const starting = decision.steps.some((s) => s.to === STATUS.FULFILLED) ? tiersAtFulfilment(order) : [];
  const updated: LockedOrder = {
    ...order,
    ...req.orderChanges,
    ...(starting.length ? { tiers: { ...order.tiers, ...Object.fromEntries(starting.map((t) => [t.tier, { state: t.state, detail: t.detail }])) } } : {}),
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
    // An implied step's real time is unknown until its own (late) event arrives: see impliedStepTimeFix.
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
    record: { order: updated, history, messages, ...(starting.length ? { tiers: starting } : {}) },
  };
}

/** The tiers an order starts with on reaching 7000; a tier that already has a row keeps it. */
function tiersAtFulfilment(order: LockedOrder): TierWrite[] {
  const initial: Array<[TierNumber, TierState]> = [
    [1, 'pending'],
    [2, 'pending'],
    [3, order.paymentMethod === 'COD' ? 'pending' : 'not_applicable'],
  ];
  return initial.filter(([tier]) => !order.tiers[tier]).map(([tier, state]) => ({ orderId: order.orderId, tier, state, detail: {} }));
}

/**
 * A change of a locked order that moves no status (a held transition, a partner assigned, a tier
 * settled): the order with its other columns changed, and its topic messages; no history row.
 */
export function planOrderChange(order: LockedOrder, changes: OrderChanges, messages: TopicMessage[], clock: Clock): TransitionRecord {
  const updated: LockedOrder = { ...order, ...changes, version: order.version + 1, updatedAt: new Date(clock.now()) };
  return { order: updated, history: [], messages };
}

/**
 * A late event for a step that an earlier-applied later event implied gives that step its real time
 * (and names itself as its cause); any kind of event that skips steps uses this.
 */
export function impliedStepTimeFix(orderId: string, to: StatusCode, occurredAt: Date, eventId: string): RenderedStatement {
  return statement`update status_history
    set occurred_at = ${occurredAt.toISOString()}::timestamptz, event_id = ${eventId}::text, note = ${`implied step confirmed by late event ${eventId}`}::text
    where order_id = ${orderId}::text and to_status = ${to}::int and implied and occurred_at is null`;
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

/**
 * The statements that write `records` (of one or many orders, in the order they happened): one update
 * of the orders to the state the last record of each leaves them in, one insert of all history rows,
 * one insert of all topic messages.
 */
export function transitionWrites(records: readonly TransitionRecord[]): RenderedStatement[] {
  if (records.length === 0) return [];
  const last = new Map<string, OrderRow>();
  for (const r of records) last.set(r.order.orderId, r.order);
  const history = records.flatMap((r) => r.history);
  const messages = records.flatMap((r) => r.messages);
  // One row each: a later record of the same order saw the earlier one's state and supersedes it.
  const tiers = new Map<string, TierWrite>();
  for (const t of records.flatMap((r) => r.tiers ?? [])) tiers.set(`${t.orderId}:${t.tier}`, t);
  const ledgers = new Map<string, LedgerWrite>();
  for (const r of records) if (r.ledger) ledgers.set(r.ledger.orderId, r.ledger);
  const discrepancies = records.flatMap((r) => r.discrepancies ?? []);
  const cases = records.flatMap((r) => r.cases ?? []);
  return [
    orderStatesUpdate([...last.values()]),
    ...(history.length ? [historyInsert(history)] : []),
    ...(messages.length ? [outboxInsert(messages)] : []),
    ...(tiers.size ? [tiersUpsert([...tiers.values()])] : []),
    ...(ledgers.size ? [ledgersUpsert([...ledgers.values()])] : []),
    ...(discrepancies.length ? [discrepanciesInsert(discrepancies)] : []),
    ...(cases.length ? [openCasesStatement(cases)] : []),
  ];
}

/** Opens each case (one open per order and cause; an open one is left as it is), one statement for all. */
export function openCasesStatement(rows: readonly CaseWrite[]): RenderedStatement {
  const col = <T>(f: (c: CaseWrite) => T) => rows.map(f);
  return statement`insert into interventions (order_id, cause, detail)
    select c.order_id, c.cause, c.detail::jsonb
    from unnest(${col((c) => c.orderId)}::text[], ${col((c) => c.cause)}::text[], ${col((c) => JSON.stringify(c.detail))}::text[]) as c(order_id, cause, detail)
    on conflict (order_id, cause) where state = 'open' do nothing`;
}

function tiersUpsert(rows: readonly TierWrite[]): RenderedStatement {
  const col = <T>(f: (t: TierWrite) => T) => rows.map(f);
  return statement`insert into order_tiers (order_id, tier, state, detail, created_at, updated_at)
    select t.order_id, t.tier, t.state, t.detail::jsonb, clock_timestamp(), clock_timestamp()
    from unnest(${col((t) => t.orderId)}::text[], ${col((t) => t.tier)}::int[], ${col((t) => t.state)}::text[],
                ${col((t) => JSON.stringify(t.detail))}::text[]) as t(order_id, tier, state, detail)
    on conflict (order_id, tier) do update set state = excluded.state, detail = excluded.detail, updated_at = excluded.updated_at`;
}

function ledgersUpsert(rows: readonly LedgerWrite[]): RenderedStatement {
  const col = <T>(f: (l: LedgerWrite) => T) => rows.map(f);
  return statement`insert into cod_ledger (order_id, expected_amount, collected_amount, collected_at, collected_by, event_id, relay, confirmed_at, updated_at)
    select l.order_id, l.expected_amount::numeric, l.collected_amount::numeric, l.collected_at::timestamptz, l.collected_by, l.event_id, l.relay,
           l.confirmed_at::timestamptz, clock_timestamp()
    from unnest(${col((l) => l.orderId)}::text[], ${col((l) => l.expectedAmount)}::text[], ${col((l) => l.collectedAmount)}::text[],
                ${col((l) => l.collectedAt)}::text[], ${col((l) => l.collectedBy)}::text[], ${col((l) => l.eventId)}::text[],
                ${col((l) => l.relay)}::text[], ${col((l) => l.confirmedAt)}::text[])
      as l(order_id, expected_amount, collected_amount, collected_at, collected_by, event_id, relay, confirmed_at)
    on conflict (order_id) do update set collected_amount = excluded.collected_amount, collected_at = excluded.collected_at,
      collected_by = excluded.collected_by, event_id = excluded.event_id, relay = excluded.relay, confirmed_at = excluded.confirmed_at,
      updated_at = excluded.updated_at`;
}

/**
 * Opens each discrepancy with its manual-intervention case (cause = the discrepancy's code), one
 * statement for all; one already open for the order and code is left as it is, and so is its case.
 */
function discrepanciesInsert(rows: readonly DiscrepancyWrite[]): RenderedStatement {
  const col = <T>(f: (d: DiscrepancyWrite) => T) => rows.map(f);
  return statement`with opened as (
      insert into order_discrepancies (order_id, code, tier, detail, opened_at)
      select d.order_id, d.code, d.tier, d.detail::jsonb, clock_timestamp()
      from unnest(${col((d) => d.orderId)}::text[], ${col((d) => d.code)}::text[], ${col((d) => d.tier)}::int[],
                  ${col((d) => JSON.stringify(d.detail))}::text[]) as d(order_id, code, tier, detail)
      on conflict (order_id, code) where resolved_at is null do nothing
      returning id, order_id, code, tier, detail)
    insert into interventions (order_id, cause, detail)
    select o.order_id, o.code, o.detail || jsonb_build_object('discrepancyId', o.id, 'tier', o.tier) from opened o
    on conflict (order_id, cause) where state = 'open' do nothing`;
}

/**
 * Sets locked orders to the given states (the columns a transition or an order change may set). Times,
 * JSON and booleans go as text (here and below): the drizzle driver passes timestamp arrays to
 * postgres.js unserialized, and postgres.js declares a boolean array's type as boolean.
 */
function orderStatesUpdate(states: readonly OrderRow[]): RenderedStatement {
  const col = <T>(f: (o: OrderRow) => T) => states.map(f);
  return statement`update orders o
    set status = v.status, sub_step = v.sub_step, version = v.version, history_seq = v.history_seq,
        tracking_id = v.tracking_id, carrier_code = v.carrier_code, estimated_delivery = v.estimated_delivery::timestamptz,
        delivery_attempts = v.delivery_attempts, delivery = v.delivery::jsonb, partner_id = v.partner_id, partner_name = v.partner_name,
        updated_at = v.updated_at::timestamptz, status_changed_at = v.status_changed_at::timestamptz
    from unnest(${col((o) => o.orderId)}::text[], ${col((o) => o.status)}::int[], ${col((o) => o.subStep)}::text[],
                ${col((o) => o.version)}::int[], ${col((o) => o.historySeq)}::int[], ${col((o) => o.trackingId)}::text[],
                ${col((o) => o.carrierCode)}::text[], ${col((o) => iso(o.estimatedDelivery))}::text[],
                ${col((o) => o.deliveryAttempts)}::int[], ${col((o) => (o.delivery ? JSON.stringify(o.delivery) : null))}::text[],
                ${col((o) => o.partnerId)}::text[], ${col((o) => o.partnerName)}::text[],
                ${col((o) => iso(o.updatedAt))}::text[], ${col((o) => iso(o.statusChangedAt))}::text[])
      as v(order_id, status, sub_step, version, history_seq, tracking_id, carrier_code, estimated_delivery, delivery_attempts, delivery,
           partner_id, partner_name, updated_at, status_changed_at)
    where o.order_id = v.order_id and o.order_id = any(${col((o) => o.orderId)}::text[])`;
}

function historyInsert(rows: readonly HistoryRow[]): RenderedStatement {
  const col = <T>(f: (h: HistoryRow) => T) => rows.map(f);
  return statement`insert into status_history
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

/** Runs the writes of `records` in `tx`, issued together (one round trip); the caller's transaction commits them. */
export async function writeRecords(tx: Tx, records: readonly TransitionRecord[]): Promise<void> {
  await Promise.all(transitionWrites(records).map((w) => tx.execute(asDrizzle(w))));
}

/** Plans the transition and runs its writes in `tx`; the caller's transaction commits them. */
export async function applyTransition(tx: Tx, order: LockedOrder, req: TransitionRequest, clock: Clock): Promise<TransitionResult> {
  const plan = planTransition(order, req, clock);
  // Issued together so postgres.js pipelines them on the transaction's connection: one round trip.
  if (plan.record) await Promise.all(transitionWrites([plan.record]).map((w) => tx.execute(asDrizzle(w))));
  return plan.result;
}

/**
 * Counts a committed status change in `hub_status_transitions_total`, one per step (implied steps
 * included, each from the step before it), whoever made it: partner events, operators, override.
 */
export function countTransition(metrics: Metrics, result: TransitionResult, source: Source): void {
  if (result.kind !== 'moved') return;
  let from: StatusCode = result.from;
  for (const step of result.steps) {
    metrics.transitions.inc({ from: String(from), to: String(step.to), source });
    from = step.to;
  }
}
