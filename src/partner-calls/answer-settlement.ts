import { GroupCommit } from '../db/group-commit.js';
import { rowsTaken, twoRoundTripTransaction, type RenderedStatement } from '../db/pipelined-transaction.js';
import { columnsOf, fromRow, selectList } from '../db/raw-rows.js';
import { codLedger } from '../db/schema/index.js';
import type { HubDeps } from '../deps.js';
import { callAndTierStatesStatement, lockedOrders, lockOrdersNowaitStatement, ordersByIdStatement } from '../inbox/inbox-lock.js';
import { callState, openCasesStatement, transitionWrites, type CaseWrite, type LedgerWrite, type TransitionRecord } from '../orders/apply-transition.js';
import type { CodLedgerRow } from '../db/types.js';
import type { AnswerDecision, DecideOnAnswer, OrderCallRef } from './call-kind.js';

/**
 * Settling partners' answers: what a per-order call's answer does to its order (the 7000 move on
 * Slick's confirmation, PMP's partner, a tier done) is decided with the order locked and committed
 * with its record marked confirmed, in one transaction — and the answers of calls that end together
 * share that transaction, the way intake applies inbound events: the orders locked in one statement,
 * every change, case and confirmation written in a constant number of statements, one commit. A lone
 * answer goes straight in; under load, answers that arrive while a settlement is under way go together
 * in the next one. Two settlements under way never hold the same order.
 *
 * A shared settlement reads its orders without locking them, in one repeatable-read snapshot, and
 * locks them only with its writes, in the round trip that commits (NOWAIT): its row locks last as long
 * as Postgres takes to write, not as long as the worker takes to decide between two round trips (which
 * on a busy machine is where the time goes), so an inbound event of the same order is seldom held up
 * by it. If one of its orders changed since the snapshot, or another transaction holds one, nothing of
 * it is kept and each of its answers is settled again on its own, with its order locked for the whole
 * transaction (waiting for the lock).
 */

interface SettlementRequest {
  ref: OrderCallRef;
  /** The cause of the cases the call's kind opens when it fails for good; a confirmation closes them. */
  cause: string;
  decide: DecideOnAnswer<unknown>;
}

/** At most this many answers in one settlement. */
const SETTLEMENT_BATCH = 64;
/** Settlements under way at once in one process. */
const SETTLEMENT_CONCURRENCY = 2;
/** Snapshot settlements of a held answer, each after waiting for its order, before one that locks it throughout. */
const SNAPSHOT_ATTEMPTS = 3;

const LEDGER_COLUMNS = columnsOf(codLedger);

function ledgersStatement(orderIds: readonly string[]): RenderedStatement {
  return { sql: `select ${selectList('l', LEDGER_COLUMNS)} from cod_ledger l where l.order_id = any($1::text[])`, params: [orderIds] };
}

/** A ledger as a decision writes it, as the row the next decision about the order reads. */
function ledgerAsRow(w: LedgerWrite, before: CodLedgerRow | undefined): CodLedgerRow {
  const at = (iso: string | null) => (iso ? new Date(iso) : null);
  return {
    orderId: w.orderId,
    expectedAmount: w.expectedAmount,
    collectedAmount: w.collectedAmount,
    collectedAt: at(w.collectedAt),
    collectedBy: w.collectedBy,
    eventId: w.eventId,
    relay: w.relay,
    confirmedAt: at(w.confirmedAt),
    updatedAt: before?.updatedAt ?? new Date(),
  };
}

/**
 * Marks pending calls confirmed, counting the attempt that did it, and for each — when no other call
 * of its kind for the order is still failed — resolves the open cases of its cause. One statement for
 * all; a call no longer pending is left as it is.
 */
function confirmCallsStatement(confirms: ReadonlyArray<{ ref: OrderCallRef; cause: string; note: string }>): RenderedStatement {
  return {
    sql: `with r as (
            select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) as r(order_id, kind, key, cause, note)
          ), confirmed as (
            update order_calls c set state = 'confirmed', attempts = c.attempts + 1, last_error = null, updated_at = now()
            from r
            where c.order_id = r.order_id and c.kind = r.kind and c.key = r.key and c.state = 'pending' and c.order_id = any($1::text[])
            returning c.order_id, c.kind
          )
          update interventions i
          set state = 'resolved', resolved_at = now(), updated_at = now(), resolved_by = 'system', resolution = 'auto', note = r.note
          from r
          where i.order_id = r.order_id and i.cause = r.cause and i.state = 'open' and i.order_id = any($1::text[])
            and exists (select 1 from confirmed f where f.order_id = r.order_id and f.kind = r.kind)
            and not exists (select 1 from order_calls c where c.order_id = r.order_id and c.kind = r.kind and c.state = 'failed')`,
    params: [
      confirms.map((c) => c.ref.orderId),
      confirms.map((c) => c.ref.kind),
      confirms.map((c) => c.ref.key),
      confirms.map((c) => c.cause),
      confirms.map((c) => c.note),
    ],
  };
}

/** What a shared settlement answers for a request whose order another transaction held or changed. */
const ORDER_HELD = Symbol('order held');

export class AnswerSettlement {
  private readonly group: GroupCommit<SettlementRequest, unknown>;
  /** Answers whose order was held when their shared settlement ran: settled on their own, waiting for the lock. */
  private readonly held: GroupCommit<SettlementRequest, unknown>;
  private readonly confirming: GroupCommit<{ ref: OrderCallRef; cause: string; note: string }, void>;

  constructor(private readonly deps: HubDeps) {
    // A shared settlement locks its orders only as it writes, without waiting (see above); when one was
    // held or changed, its answers are settled right after, each in a settlement of its own that waits
    // for the lock.
    this.group = new GroupCommit((requests) => this.commitUnlessTaken(requests), {
      concurrency: SETTLEMENT_CONCURRENCY,
      maxBatch: SETTLEMENT_BATCH,
      keyOf: (r) => r.ref.orderId,
      onSharedFailure: (requests, err) => {
        // An order held or changed meanwhile is the expected case, not worth a warning.
        if (rowsTaken(err)) return;
        deps.logger.warn(
          { orderIds: requests.map((r) => r.ref.orderId), err: (err as Error).message },
          'a shared settlement of partner answers failed; settling each alone',
        );
      },
    });
    this.held = new GroupCommit((requests) => this.commitOnceFree(requests), {
      concurrency: SETTLEMENT_CONCURRENCY,
      maxBatch: 1,
    });
    this.confirming = new GroupCommit<{ ref: OrderCallRef; cause: string; note: string }, void>(
      async (confirms) => {
        const statement = confirmCallsStatement(confirms);
        await deps.pg.unsafe(statement.sql, statement.params as never[], { prepare: true });
        return confirms.map(() => undefined);
      },
      { concurrency: SETTLEMENT_CONCURRENCY, maxBatch: SETTLEMENT_BATCH },
    );
  }

  /**
   * Marks a call confirmed whose answer changes nothing of its order (a customer notification the
   * receiver took): no order lock, one statement shared with the confirmations that arrive together.
   * A record no longer pending is left as it is.
   */
  confirm(ref: OrderCallRef, cause: string, note: string): Promise<void> {
    return this.confirming.submit({ ref, cause, note });
  }

  /**
   * Settles one call's answer: with its order locked, if the call's record is still pending, `decide`
   * says what the answer changes, and that commits (with the record confirmed when the decision says
   * so). Resolves with the decision's value once committed, or undefined when there was nothing left to
   * settle (the order is gone, or the record was settled meanwhile — by another run of the same call,
   * or by hand). Rejects when the settlement did not commit.
   */
  async settle<T>(ref: OrderCallRef, cause: string, decide: DecideOnAnswer<T>): Promise<T | undefined> {
    const request: SettlementRequest = { ref, cause, decide };
    const value = await this.group.submit(request);
    return (value === ORDER_HELD ? await this.held.submit(request) : value) as T | undefined;
  }

  /**
   * A settlement from a snapshot; for a lone answer whose order was held or changed meanwhile,
   * ORDER_HELD. A shared one that met such an order throws, and GroupCommit settles each of its
   * answers alone through here again, so that one held order sends only its own answers the slow way.
   */
  private async commitUnlessTaken(requests: SettlementRequest[]): Promise<unknown[]> {
    try {
      return await this.commit(requests, 'snapshot');
    } catch (err) {
      if (rowsTaken(err) && requests.length === 1) return [ORDER_HELD];
      throw err;
    }
  }

  /**
   * A settlement of answers whose orders were held or changed: once whoever holds them is done (waited
   * for without keeping the lock: a lone `select … for update` is its own transaction), settled as a
   * shared settlement is, up to SNAPSHOT_ATTEMPTS times; if they were taken again each time, settled
   * with the orders locked throughout (which holds them across the two round trips: the last resort).
   */
  private async commitOnceFree(requests: SettlementRequest[]): Promise<unknown[]> {
    const orderIds = [...new Set(requests.map((r) => r.ref.orderId))].sort();
    const wait = ordersByIdStatement(orderIds, 'wait');
    for (let attempt = 1; attempt <= SNAPSHOT_ATTEMPTS; attempt++) {
      await this.deps.pg.unsafe(wait.sql, wait.params as never[], { prepare: true });
      const values = await this.commitUnlessTaken(requests);
      if (!values.some((v) => v === ORDER_HELD)) return values;
    }
    return this.commit(requests, 'locked');
  }

  /**
   * `snapshot`: the orders read unlocked in a repeatable-read snapshot and locked (NOWAIT) with the
   * writes, failing if one is held or changed; `locked`: locked for the whole transaction.
   */
  private async commit(requests: SettlementRequest[], mode: 'snapshot' | 'locked'): Promise<unknown[]> {
    const orderIds = [...new Set(requests.map((r) => r.ref.orderId))].sort();
    return twoRoundTripTransaction(
      this.deps.pg,
      [ordersByIdStatement(orderIds, mode === 'locked' ? 'wait' : 'none'), callAndTierStatesStatement(orderIds), ledgersStatement(orderIds)],
      async ([orderRows, callStates, ledgerRows]) => {
        const locked = lockedOrders(orderRows!, callStates!);
        const ledgers = new Map(ledgerRows!.map((row) => fromRow<CodLedgerRow>(row, 'l', LEDGER_COLUMNS)).map((l) => [l.orderId, l]));
        const records: TransitionRecord[] = [];
        const cases: CaseWrite[] = [];
        const confirms: Array<{ ref: OrderCallRef; cause: string; note: string }> = [];
        const values = requests.map((r): unknown => {
          const { orderId, kind, key } = r.ref;
          const order = locked.get(orderId);
          // A pending call's order always exists (orders are never deleted).
          if (!order) return undefined;
          if (callState(order, kind, key) !== 'pending') return undefined;
          let decision: AnswerDecision<unknown>;
          try {
            decision = r.decide({ order, ledger: ledgers.get(orderId) });
          } catch (err) {
            // A decision that cannot be made fails its own call; the others settle.
            return err instanceof Error ? err : new Error(String(err));
          }
          records.push(...decision.records);
          cases.push(...(decision.cases ?? []));
          let after = decision.records.at(-1)?.order ?? order;
          if (decision.confirmNote !== undefined) {
            confirms.push({ ref: r.ref, cause: r.cause, note: decision.confirmNote });
            after = { ...after, calls: { ...after.calls, [`${kind}:${key}`]: 'confirmed' } };
          }
          // The next answer about the same order in this settlement sees it as this one leaves it.
          locked.set(orderId, after);
          const ledger = decision.records.filter((rec) => rec.ledger).at(-1)?.ledger;
          if (ledger) ledgers.set(orderId, ledgerAsRow(ledger, ledgers.get(orderId)));
          return decision.value;
        });
        const changes: RenderedStatement[] = [
          ...transitionWrites(records),
          ...(cases.length ? [openCasesStatement(cases)] : []),
          ...(confirms.length ? [confirmCallsStatement(confirms)] : []),
        ];
        const writes = mode === 'snapshot' && changes.length ? [lockOrdersNowaitStatement(orderIds), ...changes] : changes;
        return { writes, value: values };
      },
      mode === 'snapshot' ? { isolation: 'repeatable read' } : {},
    );
  }
}
