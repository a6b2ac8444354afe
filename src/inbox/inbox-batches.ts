import type { HubDeps } from '../deps.js';
import { GroupCommit } from '../db/group-commit.js';
import { applyInboundEvents, type InboundEventRequest, type InboundEventResult } from './inbox-engine.js';

/** Transactions a worker process runs at once for its inbound-event jobs. */
export const INBOX_TRANSACTIONS = 2;
/** Requests taken into one transaction at most (each may bring earlier events of its order). */
export const INBOX_REQUESTS_PER_TRANSACTION = 64;

/**
 * The inbound events that a worker process's concurrent jobs ask for, applied by group commit: those
 * that arrive while its transactions are busy go together in the next one, whatever their kinds. Each
 * job still gets its own event's outcome, and finishes only once that outcome is committed.
 */
export class InboxBatches {
  private readonly group: GroupCommit<InboundEventRequest, InboundEventResult>;

  constructor(deps: HubDeps, transactions = INBOX_TRANSACTIONS) {
    this.group = new GroupCommit(
      async (requests) => {
        const results = await applyInboundEvents(deps, requests);
        return requests.map((r) => results.get(r.eventId)!);
      },
      {
        concurrency: transactions,
        maxBatch: INBOX_REQUESTS_PER_TRANSACTION,
        // Whatever failed the shared transaction must fail only its own job: each event is tried alone.
        onSharedFailure: (requests, err) =>
          deps.logger.warn({ eventIds: requests.map((r) => r.eventId), err: (err as Error).message }, 'inbox batch failed; applying its events one by one'),
      },
    );
  }

  apply(request: InboundEventRequest): Promise<InboundEventResult> {
    return this.group.submit(request);
  }
}
