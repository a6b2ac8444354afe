import type { RenderedStatement } from '../db/pipelined-transaction.js';
import type { z } from 'zod';
import type { Role } from '../config.js';
import type { EventState } from '../db/schema/events.js';
import type { InboundEventRow, Source } from '../db/types.js';
import type { Clock } from '../deps.js';
import { impliedStepTimeFix, type LockedOrder, type TransitionPlan, type TransitionRecord, type TransitionResult } from '../orders/apply-transition.js';
import type { StatusCode } from '../machines/order.machine.js';
import type { OrderCallRequest } from '../partner-calls/call-kind.js';

/**
 * What an inbound event kind is, as data: where partners send it, who may, what its body must be, and
 * its rules. The inbox engine (inbox-engine.ts) does everything else the same way for every kind:
 * intake, the lock, receipt order, the transaction, outcomes, metrics, the sweeper.
 */
export interface EventKind<Body extends PartnerEventBody = PartnerEventBody> {
  /** Stored with each event (inbound_events.kind); a metric label. */
  readonly name: string;
  /** The partner, as history and outcomes name it. */
  readonly source: Source;
  /**
   * Where its partner sends it, and the only role that may (SPEC §3: a partner acts only on its own
   * endpoint). A kind without a route is stored by the hub itself (`storedBy` says what).
   */
  readonly route?: { readonly role: Role; readonly method: 'post' | 'put'; readonly path: string };
  readonly storedBy?: string;
  readonly schema: z.ZodType<Body>;
  /** The partner's own event type (`picking`, `SHIPPED`), shown in outcomes (SPEC §3). */
  partnerType(body: Body): string;
  /**
   * The rules: what this event does to its locked, existing order (the engine answers `unknown_order`
   * itself). Pure: it plans writes, it does not run them.
   */
  plan(order: LockedOrder, body: Body, event: InboundEventRow, clock: Clock): EventPlan;
}

/** What every partner event body has (SPEC §3). */
export interface PartnerEventBody {
  eventId: string;
  orderId: string;
  occurredAt: string;
}

export interface EventOutcome {
  state: Exclude<EventState, 'queued'>;
  reason: string | null;
  orderStatus: number | null;
}

/** An event's rules, applied: its outcome and what it writes; nothing is written until the engine commits. */
export interface EventPlan {
  outcome: EventOutcome;
  /** What it writes to the order, its history and the topic (from planTransition or planOrderChange). */
  record?: TransitionRecord;
  /** Other writes, run after the records of the whole batch (a late event's implied-step time). */
  fixes: RenderedStatement[];
  /** The order as this event leaves it, for the next event of the same order in the batch. */
  order: LockedOrder;
  /** The status change, for metrics. */
  moved?: Extract<TransitionResult, { kind: 'moved' }>;
  /** Partner calls this event makes owed: recorded in the same transaction, scheduled after commit. */
  calls: OrderCallRequest[];
}

/** The plan of an event that leaves its order as it is. */
export function unchangedPlan(order: LockedOrder, state: EventOutcome['state'], reason: string | null): EventPlan {
  return { outcome: { state, reason, orderStatus: order.status }, fixes: [], order, calls: [] };
}

/**
 * The plan of an event whose rule is "move the order to `target`" (the common case of every kind):
 * applied when the machine moves it; `stale` when it is at or behind the order's step, giving a step
 * it implied earlier its real time; otherwise rejected as `invalid_transition`.
 */
export function planFromTransition(order: LockedOrder, transition: TransitionPlan, target: StatusCode, event: InboundEventRow, occurredAt: Date): EventPlan {
  const { result, record } = transition;
  if (result.kind === 'moved') {
    return {
      outcome: { state: 'applied', reason: null, orderStatus: result.order.status },
      ...(record ? { record } : {}),
      fixes: [],
      order: result.order,
      moved: result,
      calls: [],
    };
  }
  if (result.kind === 'stale') {
    return { ...unchangedPlan(order, 'ignored', 'stale'), fixes: [impliedStepTimeFix(order.orderId, target, occurredAt, event.eventId)] };
  }
  return unchangedPlan(order, 'rejected', 'invalid_transition');
}
