import type { CodLedgerRow, OrderRow } from '../db/types.js';
import type { z } from 'zod';
import type { IntegrationName } from '../config.js';
import type { Tx } from '../db/types.js';
import type { HubDeps } from '../deps.js';
import type { CustomerNotificationClient } from '../integrations/customer-notifications.js';
import type { IncidentWebhookClient } from '../integrations/incident-webhook.js';
import type { MaoClient } from '../integrations/mao.js';
import type { PmpClient } from '../integrations/pmp.js';
import type { SlickClient } from '../integrations/slick.js';
import type { CaseWrite, LockedOrder, TransitionRecord } from '../orders/apply-transition.js';
import type { PartnerCallJobDataOf, PartnerCallJobName } from '../queues/partner-calls.queue.js';

/**
 * What an outbound call kind is, as data: which integration it calls (timeout, retries, breaker),
 * what its job carries, which record it is, what a person gets when it fails for good, how a lost
 * job is made again, and what it does. The engine (src/workers/partner-call.processor.ts) does the
 * rest the same way for every kind: parse, check the record, attempts and last error, the breaker,
 * the final failure and its intervention, the dead letter.
 */

export interface PartnerClients {
  slick: SlickClient;
  pmp: PmpClient;
  mao: MaoClient;
  notify: CustomerNotificationClient;
  incident: IncidentWebhookClient;
}

/** The order_calls row a call is: primary key (order_id, kind, key). */
export interface OrderCallRef {
  kind: PartnerCallJobName;
  orderId: string;
  key: string;
}

/** What a per-order call's kind decides from its partner's answer, with the order locked (src/partner-calls/answer-settlement.ts). */
export interface AnswerDecision<T> {
  /** The order's changes, in the order they happen; the last one's order is the order as left. */
  records: TransitionRecord[];
  /** Cases for a person that the answer opens (one open per order and cause; an open one is left as it is). */
  cases?: CaseWrite[];
  /** Mark the call's record confirmed (closing its kind's cases), with this note; leave it pending when absent. */
  confirmNote?: string;
  /** Handed back to the kind once committed. */
  value: T;
}

/**
 * The order and what else a decision may read of it, as one snapshot: a decision commits only if the
 * order is then locked and unchanged since (or it is made again on the order as it is).
 */
export interface SettlementView {
  order: LockedOrder;
  /** The order's COD ledger, read with the order; undefined for an order that has none. */
  ledger: CodLedgerRow | undefined;
}

/**
 * Decides, without writing anything: a settlement that fails, or whose order changed before it could
 * write, is settled again, so the same decision may be asked for more than once.
 */
export type DecideOnAnswer<T> = (view: SettlementView) => AnswerDecision<T>;

/** One attempt of a call, as its kind's `run` sees it. */
export interface CallAttempt<Data> {
  deps: HubDeps;
  clients: PartnerClients;
  data: Data;
  /** 1-based. */
  attempt: number;
  /** No retry follows if this attempt fails. */
  lastAttempt: boolean;
  /** The same on every attempt, retry and re-run of this call; sent as `Idempotency-Key`. */
  idempotencyKey: string;
}

export interface OrderCallAttempt<Data> extends CallAttempt<Data> {
  /** The record this call is; still pending when `run` starts. */
  record: OrderCallRef;
  /**
   * The order as it was when the record was read (in the same statement), unlocked: what the call
   * needs to say to the partner. Whatever acts on the answer locks the order and reads it again.
   */
  order: OrderRow;
  /**
   * Acts on the partner's answer (src/partner-calls/answer-settlement.ts): with the order locked and
   * the record still pending, `decide` says what the answer changes and whether the record is now
   * confirmed, and that commits, possibly with other calls' answers in one transaction. Resolves with
   * the decision's value, or undefined when there was nothing left to settle (settled meanwhile).
   */
  settle<T>(decide: DecideOnAnswer<T>): Promise<T | undefined>;
}

/**
 * What a run of a per-order call reports: `delivered` (the partner took it; the engine marks the
 * record confirmed), or `settled` (the kind already recorded the outcome in the transaction that
 * acted on the answer, or found it recorded by someone else).
 */
export type OrderCallResult = 'delivered' | 'settled';

/** A per-order call's final failure, as its kind's `onFinalFailure` sees it. */
export interface OrderCallFailure<Data> {
  deps: HubDeps;
  data: Data;
  record: OrderCallRef;
  /** The order, locked in the transaction that marks the record failed and opens the case. */
  order: LockedOrder;
  /** The last error, secrets redacted. */
  error: string;
  attempts: number;
}

interface CallKindBase<N extends PartnerCallJobName> {
  readonly name: N;
  /** Whose timeout, retry delays and circuit breaker the call uses. */
  readonly integration: IntegrationName;
  /** The job's payload; the engine parses it before anything else. */
  readonly data: z.ZodType<PartnerCallJobDataOf<N>>;
  /**
   * What tells this call apart from a later call owed again on the same record (Slick's confirmation
   * of a new `shipped` event after a failed one), so the two never share an `Idempotency-Key`.
   */
  instance?(data: PartnerCallJobDataOf<N>): string;
}

/**
 * A call owed about one order, recorded in order_calls (pending → confirmed | failed) in the
 * transaction that decided it. The record, not the job, says what is owed: the sweeper makes a lost
 * job again from it, and a retry (intervention or dead letter) reopens it.
 */
export interface PerOrderCallKind<N extends PartnerCallJobName> extends CallKindBase<N> {
  readonly perOrder: true;
  /** The rule naming the call's record: its order, and the key telling apart its calls of this kind ('' when one). */
  record(data: PartnerCallJobDataOf<N>): { orderId: string; key: string };
  /** A lost job is made again from its pending record (sweep-owed-calls.ts). */
  readonly sweep: 'owed-call-records';
  /**
   * The case a person gets when the call fails for good; retrying the case reopens the kind's failed
   * records of the order. `about` is what the call was about, for the case's detail and for logs.
   */
  readonly intervention: { readonly cause: string; about(data: PartnerCallJobDataOf<N>): Record<string, unknown> };
  run(call: OrderCallAttempt<PartnerCallJobDataOf<N>>): Promise<OrderCallResult>;
  /**
   * What else the order records when this call fails for good (a delivery tier failed, say): changes
   * written in the transaction that marks the record failed and opens the case, with the order locked
   * first (orders before order_calls, the lock order of every path that settles a call). Not called
   * when the record was no longer pending.
   */
  onFinalFailure?(tx: Tx, failure: OrderCallFailure<PartnerCallJobDataOf<N>>): Promise<TransitionRecord[]>;
}

/** A call about something other than an order (an incident page): no order_calls record. */
export interface UnrecordedCallKind<N extends PartnerCallJobName> extends CallKindBase<N> {
  readonly perOrder: false;
  /** Which call of its kind this is (for its job id and idempotency key). */
  identity(data: PartnerCallJobDataOf<N>): { subject: string; key: string };
  /** Why no sweeper re-creates a lost job of this kind, said where the kind is declared. */
  readonly sweep: { readonly notSwept: string };
  run(call: CallAttempt<PartnerCallJobDataOf<N>>): Promise<unknown>;
}

export type CallKind<N extends PartnerCallJobName> = PerOrderCallKind<N> | UnrecordedCallKind<N>;

/**
 * A call the hub owes a partner about an order: its kind (a partner-call job name), the key that tells
 * apart several calls of one kind for one order ('' when there is one), and the job's payload.
 */
export interface OrderCallRequest {
  kind: PartnerCallJobName;
  orderId: string;
  key: string;
  data: Record<string, unknown>;
  /**
   * The call's record was created just now, by the transaction that owed it: it never had a job, so
   * its job is added without first looking for one (see enqueuePartnerCalls).
   */
  firstOwed?: boolean;
}
