import type { HubDeps } from '../deps.js';
import { applyShipEvent, applyShipEvents, type ShipEventRequest, type ShipEventResult } from './ship-events.js';

/** Transactions a worker process runs at once for its ship-event jobs. */
export const SHIP_EVENT_TRANSACTIONS = 2;
/** Requests taken into one transaction at most (each may bring earlier events of its order). */
export const SHIP_EVENT_REQUESTS_PER_TRANSACTION = 64;

interface Waiting {
  request: ShipEventRequest;
  resolve: (result: ShipEventResult) => void;
  reject: (err: unknown) => void;
}

/**
 * Gathers the ship events that a worker process's concurrent jobs ask for and applies those that
 * arrive while its transactions are busy together, in one transaction (group commit): under load, a
 * commit and its two round trips are shared by many events, and a lone event still goes straight in.
 * Each job still gets its own event's outcome and finishes only once that outcome is committed.
 */
export class ShipEventBatches {
  private readonly waiting: Waiting[] = [];
  private running = 0;

  constructor(
    private readonly deps: HubDeps,
    private readonly transactions = SHIP_EVENT_TRANSACTIONS,
    private readonly perTransaction = SHIP_EVENT_REQUESTS_PER_TRANSACTION,
  ) {}

  apply(request: ShipEventRequest): Promise<ShipEventResult> {
    return new Promise<ShipEventResult>((resolve, reject) => {
      this.waiting.push({ request, resolve, reject });
      this.startTransactions();
    });
  }

  private startTransactions(): void {
    while (this.running < this.transactions && this.waiting.length > 0) {
      const taken = this.waiting.splice(0, this.perTransaction);
      this.running += 1;
      void this.applyTogether(taken).finally(() => {
        this.running -= 1;
        this.startTransactions();
      });
    }
  }

  private async applyTogether(taken: Waiting[]): Promise<void> {
    let results: Map<string, ShipEventResult>;
    try {
      results = await applyShipEvents(
        this.deps,
        taken.map((t) => t.request),
      );
    } catch (err) {
      if (taken.length === 1) return taken[0]!.reject(err);
      // Whatever failed the shared transaction must fail only its own job: each event is tried alone.
      this.deps.logger.warn({ eventIds: taken.map((t) => t.request.eventId), err: (err as Error).message }, 'ship event batch failed; applying its events one by one');
      await Promise.all(
        taken.map((t) => applyShipEvent(this.deps, t.request.eventId, { announce: t.request.announce ?? false }).then(t.resolve, t.reject)),
      );
      return;
    }
    for (const t of taken) t.resolve(results.get(t.request.eventId)!);
  }
}
