import type { HubDeps } from '../deps.js';
import type { InboundEventRow, Source } from '../db/types.js';
import { twoRoundTripTransaction, type RenderedStatement } from '../db/pipelined-transaction.js';
import { eventKind } from '../event-kinds/index.js';
import { countTransition, transitionWrites } from '../orders/apply-transition.js';
import { enqueuePartnerCalls, pendingCallsStatement } from '../partner-calls/schedule.js';
import type { EventOutcome, EventPlan } from './event-kind.js';
import { announceOutcomes } from './event-outcomes.js';
import { bodyHash, insertEventsStatement, storedEventsStatement, storeResults, type NewInboundEvent, type StoreResult } from './event-store.js';
import { ConflictError } from '../errors.js';
import { withinEnqueueDeadline } from '../deadlines.js';
import { INBOX_BATCH, lockedInboxes, lockEventsWithoutOrderStatement, lockInboxesStatement, orderCallStatesStatement } from './inbox-lock.js';

/**
 * The inbox engine: applies stored partner events of every kind exactly once, each by its own kind's
 * rules (src/event-kinds), in the order they were received per order, many orders per transaction.
 */

export type InboundEventResult = EventOutcome | 'already_processed';

/** A job's request: apply this stored event; `announce` when a partner waits for the outcome. */
export interface InboundEventRequest {
  eventId: string;
  announce?: boolean;
}

/** What the engine does with one locked event: its kind's plan, or the engine's own answer. */
function planEvent(deps: HubDeps, order: EventPlan['order'] | undefined, row: InboundEventRow): EventPlan | { outcome: EventOutcome; order: undefined } {
  if (!order) return { outcome: { state: 'rejected', reason: 'unknown_order', orderStatus: null }, order: undefined };
  const kind = eventKind(row.kind);
  // Only an event stored by a kind's route reaches here; a row of a kind this build does not know
  // (written by a newer release, say) is failed rather than guessed at, and stays in the log.
  if (!kind) return { outcome: { state: 'failed', reason: 'unknown_event_kind', orderStatus: order.status }, order: undefined };
  return kind.plan(order, row.payload as never, row, deps.clock);
}

/** The outcomes of a transaction's events, in one statement (processed_at is the commit's wall time). */
function recordOutcomesStatement(outcomes: Array<EventOutcome & { eventId: string }>): RenderedStatement {
  return {
    sql: `update inbound_events e
          set state = o.state, reason = o.reason, order_status = o.order_status, processed_at = clock_timestamp()
          from unnest($1::text[], $2::text[], $3::text[], $4::int[]) as o(event_id, state, reason, order_status)
          where e.event_id = o.event_id and e.event_id = any($1::text[])`,
    params: [outcomes.map((o) => o.eventId), outcomes.map((o) => o.state), outcomes.map((o) => o.reason), outcomes.map((o) => o.orderStatus)],
  };
}

interface Applied {
  row: InboundEventRow;
  outcome: EventOutcome;
  plan?: EventPlan;
}

/**
 * One inbox transaction: BEGIN with `leading` statements (the intake's INSERT, say) and the locking
 * reads of the orders of `eventIds`, then every write with COMMIT (see applyInboundEvents). Returns
 * what it applied, whether the lock statement was cut off at INBOX_BATCH, and the leading statements'
 * rows.
 */
/**
 * How an inbox transaction takes its locks: `skipLockedOrders` leaves out the orders another
 * transaction holds (see lockInboxesStatement); `timeoutMs` bounds every lock wait (lock_timeout).
 */
interface InboxLocking {
  skipLockedOrders?: boolean;
  timeoutMs?: number;
}

async function inboxTransaction(
  deps: HubDeps,
  eventIds: readonly string[],
  leading: readonly RenderedStatement[] = [],
  lock: InboxLocking = {},
): Promise<{ batch: Applied[]; cutOff: boolean; leadingRows: Array<ReadonlyArray<Record<string, unknown>>> }> {
  const batch: Applied[] = [];
  let cutOff = false;
  let leadingRows: Array<ReadonlyArray<Record<string, unknown>>> = [];
  const timeout: RenderedStatement[] = lock.timeoutMs === undefined ? [] : [{ sql: `set local lock_timeout = '${Math.trunc(lock.timeoutMs)}ms'`, params: [] }];
  await twoRoundTripTransaction<void>(
    deps.pg,
    [...timeout, ...leading, lockInboxesStatement(eventIds, lock), orderCallStatesStatement(eventIds), lockEventsWithoutOrderStatement(eventIds)],
    async (rows) => {
      leadingRows = rows.slice(timeout.length, timeout.length + leading.length);
      const [withOrder, callStates, withoutOrder] = rows.slice(timeout.length + leading.length);
      cutOff = withOrder!.length === INBOX_BATCH;
      for (const inbox of lockedInboxes(withOrder!, callStates!, withoutOrder!)) {
        let order = inbox.order;
        for (const row of inbox.events) {
          if (row.state !== 'queued') continue;
          const planned = planEvent(deps, order, row);
          if ('calls' in planned) {
            order = planned.order;
            batch.push({ row, outcome: planned.outcome, plan: planned });
          } else batch.push({ row, outcome: planned.outcome });
        }
      }
      const plans = batch.flatMap((b) => (b.plan ? [b.plan] : []));
      const calls = plans.flatMap((p) => p.calls);
      const writes: RenderedStatement[] = [
        ...transitionWrites(plans.flatMap((p) => (p.record ? [p.record] : []))),
        ...plans.flatMap((p) => p.fixes),
        ...(calls.length ? [pendingCallsStatement(calls)] : []),
      ];
      if (batch.length > 0) writes.push(recordOutcomesStatement(batch.map((b) => ({ eventId: b.row.eventId, ...b.outcome }))));
      return { writes, value: undefined };
    },
  );
  return { batch, cutOff, leadingRows };
}

/**
 * What follows an inbox transaction's commit: metrics and log lines per event, the owed partner
 * calls' jobs, and the news for partners waiting on other web processes. `requested`: the events some
 * caller asked for; `announce`: one of them has a partner waiting elsewhere.
 */
async function afterInboxCommit(deps: HubDeps, batch: readonly Applied[], requested: ReadonlySet<string>, announce: boolean): Promise<void> {
  const now = deps.clock.now();
  for (const { row, outcome, plan } of batch) {
    const ids = { eventId: row.eventId, orderId: row.orderId };
    if (plan?.moved) countTransition(deps.metrics, plan.moved, row.source as Source);
    for (const d of plan?.record?.discrepancies ?? []) {
      deps.metrics.tierDiscrepancies.inc({ code: d.code });
      deps.logger.warn({ ...ids, code: d.code }, 'delivery discrepancy found; case opened');
    }
    deps.metrics.eventReceiptToCommit.observe({ kind: row.kind, state: outcome.state }, Math.max(0, (now - row.receivedAt.getTime()) / 1000));
    deps.metrics.eventsProcessed.inc({ kind: row.kind, state: outcome.state, reason: outcome.reason ?? '' });
    if (outcome.state === 'rejected' || outcome.state === 'failed') {
      deps.logger.info({ ...ids, kind: row.kind, type: row.type, reason: outcome.reason }, `inbound event ${outcome.state}`);
    }
  }
  const calls = batch.flatMap((b) => b.plan?.calls ?? []);
  if (calls.length > 0) {
    // If Redis cannot take them now, the calls stay pending in Postgres and the sweeper schedules them
    // (BullMQ waits for a lost connection to come back; the partner waiting for its answer must not).
    await withinEnqueueDeadline(enqueuePartnerCalls(deps, calls)).catch((err: unknown) =>
      deps.logger.warn(
        { eventIds: [...requested], orderIds: calls.map((c) => c.orderId), err: (err as Error).message },
        'partner calls not scheduled; the sweeper will',
      ),
    );
  }
  // A partner waiting with `Prefer: wait` needs the news; events applied for another request
  // (earlier events of the same order) may have waiters of their own.
  if (batch.length > 0 && (announce || batch.some((b) => !requested.has(b.row.eventId)))) {
    await withinEnqueueDeadline(
      announceOutcomes(
        deps.redis,
        deps.config.redisPrefix,
        batch.map((b) => b.row.eventId),
      ),
    ).catch((err: unknown) => deps.logger.warn({ eventIds: [...requested], err }, 'could not announce event outcomes; waiters read them at their deadline'));
  }
}

/**
 * Applies stored events exactly once, each together with any earlier events of its order still
 * waiting (of any kind), in the order they were received, and the events of all their orders in one
 * transaction: the orders' rows and their queued events' rows are locked together; an event no longer
 * `queued` is left alone (a job run twice applies once; the job of an event applied in an earlier batch
 * finds nothing to do). Outcomes, status changes, history, topic messages and the partner calls the
 * events made owed commit at once; the calls' jobs are scheduled after the commit.
 *
 * This is the hot path, so it is a two-round-trip transaction: BEGIN with the locking reads, then every
 * write with COMMIT, a constant number of statements however many events and kinds are in it.
 * Returns each requested event's outcome, or `already_processed`.
 */
export async function applyInboundEvents(
  deps: HubDeps,
  requests: readonly InboundEventRequest[],
  lock: InboxLocking = {},
): Promise<Map<string, InboundEventResult>> {
  const eventIds = [...new Set(requests.map((r) => r.eventId))];
  const { batch, cutOff } = await inboxTransaction(deps, eventIds, [], lock);
  const requested = new Set(eventIds);
  await afterInboxCommit(
    deps,
    batch,
    requested,
    requests.some((r) => r.announce),
  );

  const results = new Map<string, InboundEventResult>();
  for (const b of batch) if (requested.has(b.row.eventId)) results.set(b.row.eventId, b.outcome);
  const left = requests.filter((r) => !results.has(r.eventId));
  // A full batch may have left some requested events for the next transaction.
  if (cutOff && left.length > 0) for (const [id, result] of await applyInboundEvents(deps, left, lock)) results.set(id, result);
  for (const id of eventIds) if (!results.has(id)) results.set(id, 'already_processed');
  return results;
}

/** A new event stored and, in the same transaction, applied: its store result and outcome. */
export interface StoredAndApplied {
  stored: StoreResult;
  /** Its outcome, committed with it; `already_processed` for a duplicate processed earlier. */
  outcome: InboundEventResult;
}

/**
 * Stores new partner events and applies them in one transaction (the intake of a web with
 * INTAKE_APPLY=web): the INSERT goes out with the locking reads, so an event is stored and applied in
 * two round trips and one commit, never committed as stored without its outcome, nor the other way
 * round. Each event: its store result (see storeResults; a ConflictError fails only its own) and its
 * outcome. Applying follows the rules of applyInboundEvents: a duplicate still queued is applied, and
 * the earlier queued events of the same orders with them. Throws when the transaction failed: nothing
 * of it is stored.
 */
export async function storeAndApplyInboundEvents(deps: HubDeps, inputs: readonly NewInboundEvent[]): Promise<Array<StoredAndApplied | ConflictError>> {
  const hashes = inputs.map((i) => bodyHash(i.payload));
  const eventIds = [...new Set(inputs.map((i) => i.eventId))];
  const { batch, cutOff, leadingRows } = await inboxTransaction(deps, eventIds, [insertEventsStatement(inputs, hashes), storedEventsStatement(eventIds)], {
    // An order another transaction holds is waited for, briefly: a partner's answer being settled holds
    // it only while its writes commit (src/partner-calls/answer-settlement.ts), for less than a second
    // transaction of its event would take. A lock held longer (an operator's bulk move, a worker
    // applying a backlog, a session idle in a transaction) must not hold up the other orders' events:
    // past INTAKE_BATCH_LOCK_WAIT_MS the transaction fails, its events are tried one by one, and the one
    // whose order is still held is stored alone and applied on its own (see PartnerEventIntake.accept).
    timeoutMs: deps.config.intakeBatchLockWaitMs,
  });
  const stored = storeResults(inputs, hashes, leadingRows[0]!, leadingRows[1]!);
  const requested = new Set(eventIds);
  await afterInboxCommit(deps, batch, requested, false);
  const outcomes = new Map<string, InboundEventResult>();
  for (const b of batch) if (requested.has(b.row.eventId)) outcomes.set(b.row.eventId, b.outcome);
  const left = eventIds.filter((id) => !outcomes.has(id));
  // A full lock statement may have left some for another transaction (a long backlog of one order).
  // The events are committed already: if that fails, they stay queued (`already_processed` here) and
  // the caller hands them to the queue, rather than the whole batch being tried again as duplicates.
  if (cutOff && left.length > 0) {
    try {
      // Skipping held orders here too: their events are the caller's to apply on their own.
      for (const [id, result] of await applyInboundEvents(
        deps,
        left.map((eventId) => ({ eventId })),
        { skipLockedOrders: true },
      ))
        outcomes.set(id, result);
    } catch (err) {
      deps.logger.warn({ eventIds: left, err: (err as Error).message }, 'events stored, but the rest of their backlog not applied; handed to the queue');
    }
  }
  return stored.map((s) => (s instanceof ConflictError ? s : { stored: s, outcome: outcomes.get(s.event.eventId) ?? 'already_processed' }));
}

/**
 * Applies stored events that the web's store-and-apply transaction left queued because another
 * transaction held their order (see storeAndApplyInboundEvents), in a transaction of their own that
 * waits for those locks, at most `lockTimeoutMs`: only these events wait, not the batch they came in.
 * Each event's outcome, or `already_processed` for one still left (the caller hands it to the queue).
 */
export async function applyHeldInboundEvents(deps: HubDeps, eventIds: readonly string[], lockTimeoutMs: number): Promise<InboundEventResult[]> {
  const results = await applyInboundEvents(
    deps,
    eventIds.map((eventId) => ({ eventId })),
    { timeoutMs: lockTimeoutMs },
  );
  return eventIds.map((id) => results.get(id)!);
}

/** Applies one stored event (with its order's earlier waiting events); see `applyInboundEvents`. */
export async function applyInboundEvent(deps: HubDeps, eventId: string, options: { announce?: boolean } = {}): Promise<InboundEventResult> {
  const results = await applyInboundEvents(deps, [{ eventId, ...options }]);
  return results.get(eventId)!;
}
