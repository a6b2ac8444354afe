import type { Clock } from '../deps.js';
import type { TierNumber, TierState } from '../db/schema/index.js';
import type { DiscrepancyWrite, LockedOrder, TierRecord, TierWrite, TransitionRecord } from '../orders/apply-transition.js';
import { planOrderChange } from '../orders/apply-transition.js';
import type { TopicMessage } from '../orders/topic-messages.js';

/**
 * The rules of the three-tier delivery flow (SPEC §5.3), as pure functions of a locked order: what
 * settling a tier does to it and to the tiers after it. The tiers must be done in the order 2 → 1 → 3
 * (MAO told "Shipped", then PMP's "Delivered", then the COD collection relayed to Slick): a tier whose
 * turn has not come waits, `ready`, and is done the moment the tier before it is.
 */

export const TIER_NAMES: Record<TierNumber, string> = {
  1: 'PMP → OMS Delivered',
  2: 'Slick → MAO Shipped',
  3: 'PMP → Slick Collected',
};

/** The order the tiers must be done in. */
export const TIER_ORDER: readonly TierNumber[] = [2, 1, 3];

/** Discrepancy codes (SPEC §5.3); each opens a manual-intervention case of that cause. */
export const DISCREPANCY = {
  COURIER_PMP_CONFLICT: 'courier_pmp_conflict',
  COLLECTED_BEFORE_DELIVERED: 'collected_before_delivered',
  COD_AMOUNT_MISMATCH: 'cod_amount_mismatch',
  TIER_SLA_BREACH: 'tier_sla_breach',
} as const;
export type DiscrepancyCode = (typeof DISCREPANCY)[keyof typeof DISCREPANCY];
export const DISCREPANCY_CODES: readonly string[] = Object.values(DISCREPANCY);

/** A tier as it stands; one without a row has not started (tier 3 of a prepaid order never applies). */
export function tierOf(order: LockedOrder, tier: TierNumber): TierRecord {
  return order.tiers[tier] ?? { state: tier === 3 && order.paymentMethod !== 'COD' ? 'not_applicable' : 'pending', detail: {} };
}

const finished = (state: TierState) => state === 'done' || state === 'not_applicable';

function before(tier: TierNumber): TierNumber | undefined {
  const i = TIER_ORDER.indexOf(tier);
  return i > 0 ? TIER_ORDER[i - 1] : undefined;
}
function after(tier: TierNumber): TierNumber | undefined {
  return TIER_ORDER[TIER_ORDER.indexOf(tier) + 1];
}

/**
 * Settles `tier` of the order in `record` (the order as the event or call leaves it): `done` — or, if
 * the tier before it is not done yet, pending and `ready` — or `failed`, with `detail` merged in. A
 * done tier lets a ready tier after it be done too. A tier already done or not applicable is left as
 * it is. Returns the record with the tiers written and a `tier.updated` message for each.
 */
export function settleTier(
  record: TransitionRecord,
  tier: TierNumber,
  outcome: 'done' | 'failed',
  detail: Record<string, unknown>,
  clock: Clock,
): TransitionRecord {
  let order = record.order;
  const at = new Date(clock.now()).toISOString();
  const writes: TierWrite[] = [...(record.tiers ?? [])];
  const messages: TopicMessage[] = [...record.messages];
  const write = (t: TierNumber, state: TierState, d: Record<string, unknown>) => {
    order = { ...order, tiers: { ...order.tiers, [t]: { state, detail: d } } };
    writes.push({ orderId: order.orderId, tier: t, state, detail: d });
    messages.push({
      type: 'tier.updated',
      orderId: order.orderId,
      occurredAt: new Date(at),
      payload: { orderId: order.orderId, tier: t, name: TIER_NAMES[t], state, detail: d, at },
    });
  };

  const current = tierOf(order, tier);
  if (finished(current.state)) return record;
  if (outcome === 'failed') {
    write(tier, 'failed', { ...current.detail, ...detail, failedAt: at });
  } else {
    const previous = before(tier);
    if (previous !== undefined && !finished(tierOf(order, previous).state)) {
      write(tier, 'pending', { ...current.detail, ...detail, ready: true, waitingFor: previous });
    } else {
      write(tier, 'done', { ...current.detail, ...detail, ready: undefined, waitingFor: undefined, doneAt: at });
      // The tiers after it that were only waiting for their turn are done now as well.
      for (let next = after(tier); next !== undefined; next = after(next)) {
        const waiting = tierOf(order, next);
        if (waiting.state !== 'pending' || waiting.detail.ready !== true) break;
        write(next, 'done', { ...waiting.detail, ready: undefined, waitingFor: undefined, doneAt: at });
      }
    }
  }
  return { ...record, order, tiers: writes, messages };
}

/** A record that changes nothing of the order yet, for a tier or discrepancy settled by itself (a partner's answer). */
export function tierRecord(order: LockedOrder, clock: Clock): TransitionRecord {
  return planOrderChange(order, {}, [], clock);
}

/** Adds a discrepancy (and so its case) to a record. */
export function withDiscrepancy(record: TransitionRecord, code: DiscrepancyCode, tier: TierNumber | null, detail: Record<string, unknown>): TransitionRecord {
  const d: DiscrepancyWrite = { orderId: record.order.orderId, code, tier, detail };
  return { ...record, discrepancies: [...(record.discrepancies ?? []), d] };
}
