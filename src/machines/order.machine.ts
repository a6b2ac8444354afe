import { assign, setup, transition } from 'xstate';

/**
 * The order status model (SPEC §2). This machine is the only place that decides whether an order may
 * move, where to, and which skipped statuses become implied steps. Every path that changes a status
 * (partner events, operator moves, bulk moves, the admin override, Slick's confirmation) asks it.
 */

export const STATUS = {
  CREATED: 1000,
  VALIDATED: 1500,
  ALLOCATED: 2000,
  RELEASED: 3000,
  PICKING: 3500,
  PICKED: 3600,
  PACKED: 3700,
  FULFILLED: 7000,
  SHIPPED: 7100,
  IN_TRANSIT: 7200,
  OUT_FOR_DELIVERY: 7300,
  DELIVERY_FAILED: 7400,
  DELIVERED: 7500,
  RETURNED: 8500,
  CANCELLED: 9000,
} as const;
export type StatusCode = (typeof STATUS)[keyof typeof STATUS];

export const STATUS_NAMES: Record<StatusCode, string> = {
  1000: 'Created',
  1500: 'Validated',
  2000: 'Allocated',
  3000: 'Released',
  3500: 'Picking',
  3600: 'Picked',
  3700: 'Packed',
  7000: 'Fulfilled',
  7100: 'Shipped',
  7200: 'In Transit',
  7300: 'Out for Delivery',
  7400: 'Delivery Failed',
  7500: 'Delivered',
  8500: 'Returned',
  9000: 'Cancelled',
};

export const STATUS_CODES = Object.values(STATUS) as StatusCode[];

export function isStatusCode(n: unknown): n is StatusCode {
  return typeof n === 'number' && (STATUS_CODES as number[]).includes(n);
}

/** The main line, in order. Partner events may skip forward along it (skipped steps become implied). */
const MAIN_LINE: readonly StatusCode[] = [1000, 1500, 2000, 3000, 3500, 3600, 3700, 7000, 7100, 7200, 7300, 7500];

/** One-step moves off the main line. */
const BRANCHES: ReadonlyArray<readonly [StatusCode, StatusCode]> = [
  [7300, 7400], // a delivery attempt failed
  [7400, 7300], // re-attempt
  [7400, 7200], // rescheduled
  [7400, 7500], // delivered on a later attempt
  [7400, 8500], // returned to the store
  ...([1000, 1500, 2000, 3000, 3500, 3600, 3700] as StatusCode[]).map((s) => [s, 9000] as const), // cancelled before fulfilment
];

/** Statuses in which the fulfillment side (Slick ship events) may still act on an order. */
const FULFILLMENT_PHASE: readonly StatusCode[] = [1000, 1500, 2000, 3000, 3500, 3600, 3700, 7000];
/**
 * Statuses in which courier / PMP delivery events apply: from 7000 (fulfilled) on, until the parcel is
 * returned. At 7500 a late delivery event is stale; at 8500 (terminal, the parcel is back at the store)
 * any delivery event is refused.
 */
const DELIVERY_PHASE: readonly StatusCode[] = [7000, 7100, 7200, 7300, 7400, 7500];

/** Ordering of progress used to call a partner event stale: 7400 sits between 7300 and 7500. */
const PROGRESS_RANK: Record<StatusCode, number> = {
  1000: 0,
  1500: 1,
  2000: 2,
  3000: 3,
  3500: 4,
  3600: 5,
  3700: 6,
  7000: 7,
  7100: 8,
  7200: 9,
  7300: 10,
  7400: 11,
  7500: 12,
  8500: 13,
  9000: 14,
};

export type SubStep = 'packing';

export interface Step {
  to: StatusCode;
  /** A status the order passed through without its own event (written to history as implied). */
  implied: boolean;
}

export type Decision = { kind: 'moved'; steps: Step[]; subStep: SubStep | null } | { kind: 'stale' } | { kind: 'invalid'; reason: string };

export type OrderEvent =
  /** A fulfillment-side event (picking, picked, packing, packed) or Slick's shipment confirmation (7000). */
  | { type: 'SHIP_EVENT'; to: StatusCode; subStep?: SubStep }
  /** A courier or PMP delivery event. */
  | { type: 'DELIVERY_EVENT'; to: StatusCode }
  /** An operator or upstream move: one step at a time, or to Cancelled. */
  | { type: 'OPERATOR_MOVE'; to: StatusCode }
  /** The admin override: anywhere, backwards included. */
  | { type: 'OVERRIDE'; to: StatusCode };

interface OrderContext {
  subStep: SubStep | null;
  decision: Decision | null;
}

function directMoves(from: StatusCode): StatusCode[] {
  const next: StatusCode[] = [];
  const i = MAIN_LINE.indexOf(from);
  if (i >= 0 && i + 1 < MAIN_LINE.length) next.push(MAIN_LINE[i + 1]!);
  for (const [a, b] of BRANCHES) if (a === from) next.push(b);
  return next;
}

/**
 * The path a partner event takes from `from` to `to`: forward along the main line, optionally ending
 * with one delivery branch (a FAILED report for an order last seen in transit implies 7300).
 * Returns the statuses entered, the last one being `to`; undefined if no such path exists.
 */
function partnerPath(from: StatusCode, to: StatusCode): StatusCode[] | undefined {
  if (directMoves(from).includes(to) && to !== STATUS.CANCELLED) return [to];
  const i = MAIN_LINE.indexOf(from);
  if (i < 0) return undefined;
  const j = MAIN_LINE.indexOf(to);
  if (j > i) return MAIN_LINE.slice(i + 1, j + 1);
  if (to === STATUS.DELIVERY_FAILED) {
    const k = MAIN_LINE.indexOf(STATUS.OUT_FOR_DELIVERY);
    if (k >= i) return [...MAIN_LINE.slice(i + 1, k + 1), to];
  }
  return undefined;
}

function asSteps(path: StatusCode[]): Step[] {
  return path.map((to, idx) => ({ to, implied: idx < path.length - 1 }));
}

function decide(from: StatusCode, subStep: SubStep | null, event: OrderEvent): Decision {
  switch (event.type) {
    case 'OVERRIDE':
      return event.to === from
        ? { kind: 'invalid', reason: `order is already at ${from}` }
        : { kind: 'moved', steps: [{ to: event.to, implied: false }], subStep: null };
    case 'OPERATOR_MOVE':
      return directMoves(from).includes(event.to)
        ? { kind: 'moved', steps: [{ to: event.to, implied: false }], subStep: null }
        : { kind: 'invalid', reason: `${from} cannot move to ${event.to}; allowed: ${directMoves(from).join(', ') || 'none'}` };
    case 'SHIP_EVENT':
    case 'DELIVERY_EVENT': {
      const phase = event.type === 'SHIP_EVENT' ? FULFILLMENT_PHASE : DELIVERY_PHASE;
      if (!phase.includes(from)) {
        return { kind: 'invalid', reason: `order at ${from} does not take ${event.type === 'SHIP_EVENT' ? 'ship' : 'delivery'} events` };
      }
      const wantSubStep = event.type === 'SHIP_EVENT' ? (event.subStep ?? null) : null;
      if (event.to === from) {
        // Only the packing sub-step moves an order without changing its status.
        return wantSubStep !== null && subStep === null ? { kind: 'moved', steps: [], subStep: wantSubStep } : { kind: 'stale' };
      }
      const path = partnerPath(from, event.to);
      if (path) return { kind: 'moved', steps: asSteps(path), subStep: wantSubStep };
      if (PROGRESS_RANK[event.to] < PROGRESS_RANK[from]) return { kind: 'stale' };
      return { kind: 'invalid', reason: `${from} cannot move to ${event.to}` };
    }
  }
}

const orderMachine = setup({
  types: {
    context: {} as OrderContext,
    events: {} as OrderEvent,
    input: {} as { subStep: SubStep | null },
  },
  actions: {
    recordDecision: assign(({ context, event }, params: { from: StatusCode }) => {
      const decision = decide(params.from, context.subStep, event);
      return { decision, subStep: decision.kind === 'moved' ? decision.subStep : context.subStep };
    }),
  },
}).createMachine({
  id: 'order',
  context: ({ input }) => ({ subStep: input.subStep, decision: null }),
  initial: String(STATUS.CREATED),
  // One state per status; a move's target is picked by the guard that matches the decided final status.
  states: Object.fromEntries(
    STATUS_CODES.map((code) => [
      String(code),
      {
        on: Object.fromEntries(
          (['SHIP_EVENT', 'DELIVERY_EVENT', 'OPERATOR_MOVE', 'OVERRIDE'] as const).map((type) => [
            type,
            [
              ...STATUS_CODES.map((target) => ({
                guard: ({ context, event }: { context: OrderContext; event: OrderEvent }) => {
                  const d = decide(code, context.subStep, event);
                  return d.kind === 'moved' && d.steps.length > 0 && d.steps[d.steps.length - 1]!.to === target;
                },
                target: String(target),
                actions: { type: 'recordDecision' as const, params: { from: code } },
              })),
              // No status change: a sub-step, a stale event or a refused move — the decision says which.
              { actions: { type: 'recordDecision' as const, params: { from: code } } },
            ],
          ]),
        ),
      },
    ]),
  ),
});

/**
 * Asks the machine what `event` does to an order at `status` (with `subStep`), without side effects.
 * XState's pure `transition` returns the next snapshot; its context carries the decision.
 *
 * The machine is deterministic and its inputs are a handful of small values, so each distinct question
 * is put to it once per process and its (frozen) answer kept: the worker asks on every event, and an
 * actor snapshot per question was a tenth of its CPU.
 */
export function decideTransition(status: StatusCode, subStep: SubStep | null, event: OrderEvent): Decision {
  const key = `${status}|${subStep ?? ''}|${event.type}|${event.to}|${'subStep' in event ? (event.subStep ?? '') : ''}`;
  let decision = decisions.get(key);
  if (!decision) {
    decision = deepFreeze(askMachine(status, subStep, event));
    decisions.set(key, decision);
  }
  return decision;
}

/** Bounded by the machine's (status, sub-step, event) combinations: a few hundred. */
const decisions = new Map<string, Decision>();

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function askMachine(status: StatusCode, subStep: SubStep | null, event: OrderEvent): Decision {
  const current = orderMachine.resolveState({ value: String(status), context: { subStep, decision: null } });
  const [next] = transition(orderMachine, current, event);
  const decision = next.context.decision;
  if (!decision) throw new Error('order machine returned no decision');
  if (decision.kind === 'moved' && decision.steps.length > 0 && Number(next.value) !== decision.steps.at(-1)!.to) {
    throw new Error(`order machine inconsistency: state ${String(next.value)} vs decided ${decision.steps.at(-1)!.to}`);
  }
  return decision;
}
