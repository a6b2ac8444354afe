import type { HubDeps } from '../deps.js';
import { GroupCommit } from '../db/group-commit.js';
import { applyShipEvents, type ShipEventRequest, type ShipEventResult } from './ship-events.js';

/** Transactions a worker process runs at once for its ship-event jobs. */
export const SHIP_EVENT_TRANSACTIONS = 2;
/** Requests taken into one transaction at most (each may bring earlier events of its order). */
export const SHIP_EVENT_REQUESTS_PER_TRANSACTION = 64;

/**
 * The ship events that a worker process's concurrent jobs ask for, applied by group commit: those that
 * arrive while its transactions are busy go together in the next one. Each job still gets its own
 * event's outcome, and finishes only once that outcome is committed.
 */
export class ShipEventBatches {
  private readonly group: GroupCommit<ShipEventRequest, ShipEventResult>;

  constructor(deps: HubDeps, transactions = SHIP_EVENT_TRANSACTIONS) {
    this.group = new GroupCommit(
      async (requests) => {
        const results = await applyShipEvents(deps, requests);
        return requests.map((r) => results.get(r.eventId)!);
      },
      {
        concurrency: transactions,
        maxBatch: SHIP_EVENT_REQUESTS_PER_TRANSACTION,
        // Whatever failed the shared transaction must fail only its own job: each event is tried alone.
        onSharedFailure: (requests, err) =>
          deps.logger.warn({ eventIds: requests.map((r) => r.eventId), err: (err as Error).message }, 'ship event batch failed; applying its events one by one'),
      },
    );
  }

  apply(request: ShipEventRequest): Promise<ShipEventResult> {
    return this.group.submit(request);
  }
}
