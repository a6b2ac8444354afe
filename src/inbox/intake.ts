import type { HubDeps } from '../deps.js';
import { GroupCommit } from '../db/group-commit.js';
import { storeInboundEvents, type NewInboundEvent, type StoreResult } from './event-store.js';
import { inboundEventJobId, type InboundEventJobData, type InboundEventJobName } from '../queues/inbound-events.queue.js';

/** Statements (and Redis round trips) a web process has under way at once for the intake. */
export const INTAKE_CONCURRENCY = 2;
/** Events stored (or enqueued) by one statement at most. */
export const INTAKE_BATCH = 100;

export interface InboundEventJob {
  name: InboundEventJobName;
  data: InboundEventJobData;
}

/**
 * The intake of partner events in one web process, by group commit: the events of requests that
 * arrive while earlier ones are being stored go into Postgres together in one INSERT (one commit),
 * and their jobs into Redis together in one round trip. Each request still waits for its own event's
 * commit before it is answered, and a lone request goes straight in. An event Postgres refuses fails
 * only its own request (see GroupCommit).
 */
export class PartnerEventIntake {
  private readonly storing: GroupCommit<NewInboundEvent, StoreResult>;
  private readonly enqueuing: GroupCommit<InboundEventJob, void>;

  constructor(deps: HubDeps) {
    const options = { concurrency: INTAKE_CONCURRENCY, maxBatch: INTAKE_BATCH };
    this.storing = new GroupCommit<NewInboundEvent, StoreResult>((events) => storeInboundEvents(deps.pg, events), options);
    this.enqueuing = new GroupCommit<InboundEventJob, void>(async (jobs) => {
      await deps.queues.inboundEvents.addBulk(jobs.map((j) => ({ name: j.name, data: j.data, opts: { jobId: inboundEventJobId(j.data.eventId) } })));
      return jobs.map(() => undefined);
    }, options);
  }

  /** Commits the event (see `storeInboundEvents`); rejects with ConflictError or UnavailableError. */
  store(event: NewInboundEvent): Promise<StoreResult> {
    return this.storing.submit(event);
  }

  /** Hands the stored event's job to Redis. */
  enqueue(job: InboundEventJob): Promise<void> {
    return this.enqueuing.submit(job);
  }
}
