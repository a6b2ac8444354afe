import { UnrecoverableError } from 'bullmq';
import { eq } from 'drizzle-orm';
import { codLedger, orders } from '../db/schema/index.js';
import type { Database } from '../db/client.js';
import type { CodLedgerRow, Tx } from '../db/types.js';
import type { LedgerWrite } from '../orders/apply-transition.js';
import { partnerCallJobs } from '../queues/partner-calls.queue.js';
import { settleTier, tierRecord } from '../tiers/tier-rules.js';
import type { PerOrderCallKind } from './call-kind.js';
import type { OrderCallRequest } from './call-kind.js';

/** The cause of a case opened when Slick would not take a COD collection. */
export const SLICK_COD_COLLECTED_CAUSE = 'slick_cod_collected_failed';
export const SLICK_COD_COLLECTED_CALL = 'slick.cod-collected' as const;

/** The relay owed for the COD collection PMP reported in event `eventId`: one per order. */
export function slickCodCollectedCall(orderId: string, eventId: string): OrderCallRequest {
  return { kind: SLICK_COD_COLLECTED_CALL, orderId, key: '', data: { orderId, eventId } };
}

async function readLedger(db: Database | Tx, orderId: string): Promise<CodLedgerRow | undefined> {
  const [row] = await db.select().from(codLedger).where(eq(codLedger.orderId, orderId));
  return row;
}

/** A ledger row as a change writes it back, with its relay settled. */
function ledgerRelayed(row: CodLedgerRow, relay: 'confirmed' | 'failed', at: Date): LedgerWrite {
  return {
    orderId: row.orderId,
    expectedAmount: row.expectedAmount,
    collectedAmount: row.collectedAmount,
    collectedAt: row.collectedAt?.toISOString() ?? null,
    collectedBy: row.collectedBy,
    eventId: row.eventId,
    relay,
    confirmedAt: relay === 'confirmed' ? at.toISOString() : (row.confirmedAt?.toISOString() ?? null),
  };
}

/**
 * Tier 3 of the delivery flow (SPEC §4.2, §5.3): relays the cash PMP's partner collected to Slick as
 * `eventType: "collected"`, with the amount and time the COD ledger holds (the rules that applied
 * PMP's `cod.collected` decided it may be relayed). Slick's 200 settles tier 3 done (settleTier: or
 * ready, while tier 1 is not done) and the ledger's relay confirmed, and marks the record confirmed,
 * in one transaction with the order locked; the final failure settles tier 3 and the relay failed in
 * the transaction that marks the record failed and opens its case.
 */
export const slickCodCollected: PerOrderCallKind<'slick.cod-collected'> = {
  name: SLICK_COD_COLLECTED_CALL,
  integration: 'slick',
  data: partnerCallJobs['slick.cod-collected'],
  perOrder: true,
  record: (data) => ({ orderId: data.orderId, key: '' }),
  // Owed again after a failure only by a new collection event: that is a new call.
  instance: (data) => data.eventId,
  sweep: 'owed-call-records',
  intervention: { cause: SLICK_COD_COLLECTED_CAUSE, about: (data) => ({ tier: 3, eventId: data.eventId }) },

  async run({ deps, clients, data, attempt, idempotencyKey, settle }) {
    const [[order], ledger] = await Promise.all([deps.db.select().from(orders).where(eq(orders.orderId, data.orderId)), readLedger(deps.db, data.orderId)]);
    if (!order) throw new UnrecoverableError(`order ${data.orderId} does not exist; there is no collection to relay`);
    if (!ledger?.collectedAmount || !ledger.collectedAt) throw new UnrecoverableError(`order ${data.orderId} has no COD collection in its ledger to relay`);
    if (ledger.relay === 'withheld') throw new UnrecoverableError(`the COD collection of order ${data.orderId} is withheld (a discrepancy); it is not relayed`);

    const codAmount = Number(ledger.collectedAmount);
    const { answer } = await clients.slick.sendShipEvent(
      {
        orderId: order.orderId,
        shipFromLocationId: order.shipFromLocationId,
        eventType: 'collected',
        timestamp: ledger.collectedAt.toISOString(),
        ...(order.trackingId && order.carrierCode ? { tracking: { trackingId: order.trackingId, carrierCode: order.carrierCode } } : {}),
        codAmount,
      },
      { attempt, idempotencyKey },
    );

    // Settled meanwhile (another run of the same call got there first): nothing left to record.
    const settled = await settle(({ order: locked, ledger: current }) => {
      const at = new Date(deps.clock.now());
      const change = settleTier(
        tierRecord(locked, deps.clock),
        3,
        'done',
        { relay: 'confirmed', codAmount, confirmationId: answer.confirmationId, confirmedAt: at.toISOString() },
        deps.clock,
      );
      return {
        records: [current ? { ...change, ledger: ledgerRelayed(current, 'confirmed', at) } : change],
        confirmNote: `Slick took the collection on attempt ${attempt}`,
        value: true,
      };
    });
    if (settled)
      deps.logger.info({ orderId: data.orderId, eventId: data.eventId, confirmationId: answer.confirmationId, attempt }, 'Slick took the COD collection');
    return 'settled';
  },

  async onFinalFailure(tx, { deps, order, error, attempts }) {
    const ledger = await readLedger(tx, order.orderId);
    const change = settleTier(tierRecord(order, deps.clock), 3, 'failed', { relay: 'failed', error, attempts }, deps.clock);
    return [ledger ? { ...change, ledger: ledgerRelayed(ledger, 'failed', new Date(deps.clock.now())) } : change];
  },
};
