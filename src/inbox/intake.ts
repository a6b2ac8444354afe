import type { HubDeps } from '../deps.js';
import { GroupCommit } from '../db/group-commit.js';
import { UnavailableError } from '../errors.js';
import { storeInboundEvents, type NewInboundEvent, type StoreResult } from './event-store.js';
import { inboundEventJobId, type InboundEventJobData, type InboundEventJobName } from '../queues/inbound-events.queue.js';

/** Statements (and Redis round trips) a web process has under way at once for the intake. */
export const INTAKE_CONCURRENCY = 2;
/** Events stored (or enqueued) by one statement at most. */
export const INTAKE_BATCH = 100;
/** How often one web process reads the inbound queue's length for admission (one Redis round trip). */
export const BACKLOG_READ_EVERY_MS = 100;
/**
 * How long a request waits for that reading at most: a Redis that does not answer must not hold up
 * intake (the event is stored in Postgres, and the sweeper enqueues it later), so the last reading stands.
 */
export const BACKLOG_READ_DEADLINE_MS = 50;
/** What a refused partner is told to wait before sending again. */
export const BACKLOG_RETRY_AFTER_S = 1;

/**
 * Admission of new events by the work already waiting: once the inbound queue holds
 * INTAKE_MAX_BACKLOG events, intake refuses new ones (503 `backlog_full`, Retry-After) instead of
 * accepting events it cannot apply in time: a partner that outruns the workers is slowed at the door,
 * and what was accepted keeps its latency. The queue's length is read from Redis at most every
 * BACKLOG_READ_EVERY_MS (concurrent requests share the read); the events this process enqueued since
 * count on top, so one web alone never overshoots the limit by more than other webs' traffic of one
 * interval.
 */
export class BacklogAdmission {
  private waiting = 0;
  private enqueuedSinceRead = 0;
  private readAt = -Infinity;
  private reading: Promise<void> | undefined;
  private readingSince = -Infinity;

  constructor(
    private readonly countWaiting: () => Promise<number>,
    private readonly limit: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Resolves when a new event may be accepted; rejects with UnavailableError (503, Retry-After) when the backlog is full. */
  async admit(): Promise<void> {
    if (this.now() - this.readAt >= BACKLOG_READ_EVERY_MS) {
      if (!this.reading) {
        this.readingSince = this.now();
        this.reading = this.countWaiting()
          .then((waiting) => {
            this.waiting = waiting;
            this.enqueuedSinceRead = 0;
            this.readAt = this.now();
          })
          .catch(() => {})
          .finally(() => (this.reading = undefined));
      }
      // A Redis that does not answer leaves the last reading in force: requests wait for a reading
      // at most BACKLOG_READ_DEADLINE_MS after it started, then go on without it.
      const left = BACKLOG_READ_DEADLINE_MS - (this.now() - this.readingSince);
      if (left > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.reading, new Promise<void>((resolve) => (timer = setTimeout(resolve, left)))]);
        clearTimeout(timer);
      }
    }
    const backlog = this.waiting + this.enqueuedSinceRead;
    if (backlog >= this.limit) {
      throw new UnavailableError(`the hub has ${backlog} events waiting (INTAKE_MAX_BACKLOG ${this.limit}); send again after the Retry-After delay`, {
        code: 'backlog_full',
        retryAfterSeconds: BACKLOG_RETRY_AFTER_S,
        details: { waiting: backlog, limit: this.limit },
      });
    }
  }

  /** Counts an event this process accepted since the last reading. */
  accepted(): void {
    this.enqueuedSinceRead++;
  }
}

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
  private readonly admission: BacklogAdmission;

  constructor(deps: HubDeps) {
    this.admission = new BacklogAdmission(() => deps.queues.inboundEvents.getWaitingCount(), deps.config.intakeMaxBacklog);
    const options = { concurrency: INTAKE_CONCURRENCY, maxBatch: INTAKE_BATCH };
    this.storing = new GroupCommit<NewInboundEvent, StoreResult>((events) => storeInboundEvents(deps.pg, events), options);
    this.enqueuing = new GroupCommit<InboundEventJob, void>(async (jobs) => {
      await deps.queues.inboundEvents.addBulk(jobs.map((j) => ({ name: j.name, data: j.data, opts: { jobId: inboundEventJobId(j.data.eventId) } })));
      return jobs.map(() => undefined);
    }, options);
  }

  /**
   * Commits the event (see `storeInboundEvents`); rejects with ConflictError, or UnavailableError when
   * Postgres cannot take it or the backlog is full (then nothing is stored).
   */
  async store(event: NewInboundEvent): Promise<StoreResult> {
    await this.admission.admit();
    const stored = await this.storing.submit(event);
    if (!stored.duplicate) this.admission.accepted();
    return stored;
  }

  /** Hands the stored event's job to Redis. */
  enqueue(job: InboundEventJob): Promise<void> {
    return this.enqueuing.submit(job);
  }
}
