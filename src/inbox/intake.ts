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
/** How often a request waiting at the door looks again. */
export const BACKLOG_RECHECK_MS = 10;
/**
 * How long a request waits for that reading at most: a Redis that does not answer must not hold up
 * intake (the event is stored in Postgres, and the sweeper enqueues it later), so the last reading stands.
 */
export const BACKLOG_READ_DEADLINE_MS = 50;
/** What a refused partner is told to wait before sending again. */
export const BACKLOG_RETRY_AFTER_S = 1;

/**
 * Admission of new events by the work already waiting: once the inbound queue holds
 * INTAKE_MAX_BACKLOG events, a new one waits at the door (its request is answered later) for up to
 * INTAKE_ADMISSION_WAIT_MS until there is room, and is then stored; still no room, it is refused (503
 * `backlog_full`, Retry-After) and nothing is stored. A partner that outruns the workers is slowed
 * before latency grows without limit, and the events accepted keep their latency. The queue's length
 * is read from Redis at most every BACKLOG_READ_EVERY_MS (every BACKLOG_RECHECK_MS while requests
 * wait), shared by concurrent requests; each event admitted since counts on top, so one web alone never
 * overshoots the limit by more than other webs' traffic of one interval.
 */
export class BacklogAdmission {
  private waiting = 0;
  private admittedSinceRead = 0;
  private readAt = -Infinity;
  private reading: Promise<void> | undefined;
  private readingSince = -Infinity;

  constructor(
    private readonly countWaiting: () => Promise<number>,
    private readonly limit: number,
    private readonly maxWaitMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Resolves when a new event may be accepted; rejects with UnavailableError (503, Retry-After) when the backlog stays full. */
  async admit(): Promise<void> {
    const deadline = this.now() + this.maxWaitMs;
    for (let first = true; ; first = false) {
      await this.read(first ? BACKLOG_READ_EVERY_MS : BACKLOG_RECHECK_MS);
      const backlog = this.waiting + this.admittedSinceRead;
      if (backlog < this.limit) {
        this.admittedSinceRead++;
        return;
      }
      const left = deadline - this.now();
      if (left <= 0) {
        throw new UnavailableError(`the hub has ${backlog} events waiting (INTAKE_MAX_BACKLOG ${this.limit}); send again after the Retry-After delay`, {
          code: 'backlog_full',
          retryAfterSeconds: BACKLOG_RETRY_AFTER_S,
          details: { waiting: backlog, limit: this.limit },
        });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(BACKLOG_RECHECK_MS, left)));
    }
  }

  /** Makes sure the reading is at most `maxAgeMs` old, waiting for Redis at most BACKLOG_READ_DEADLINE_MS. */
  private async read(maxAgeMs: number): Promise<void> {
    if (this.now() - this.readAt < maxAgeMs) return;
    if (!this.reading) {
      this.readingSince = this.now();
      this.reading = this.countWaiting()
        .then((waiting) => {
          this.waiting = waiting;
          this.admittedSinceRead = 0;
          this.readAt = this.now();
        })
        .catch(() => {})
        .finally(() => (this.reading = undefined));
    }
    // A Redis that does not answer leaves the last reading in force: requests wait for a reading at
    // most BACKLOG_READ_DEADLINE_MS after it started, then go on without it.
    const left = BACKLOG_READ_DEADLINE_MS - (this.now() - this.readingSince);
    if (left > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.reading, new Promise<void>((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
    }
  }
}

/**
 * A Postgres that is slow, or a pool with no free connection, must not hold partners' requests without
 * limit: past the deadline the request is answered 503 with Retry-After. The INSERT may still commit
 * later; the partner then sends the same event again and is answered like the first time (a
 * duplicate), so nothing is lost and nothing is applied twice, and a 2xx never precedes the commit.
 */
function withStoreDeadline(storing: Promise<StoreResult>, deadlineMs: number): Promise<StoreResult> {
  return withDeadline(
    storing,
    deadlineMs,
    () =>
      new UnavailableError(`the event could not be stored within ${deadlineMs} ms (INTAKE_STORE_DEADLINE_MS); send it again after the Retry-After delay`, {
        code: 'store_timeout',
        retryAfterSeconds: 1,
      }),
  );
}

/** `work`, or the error `late` gives once `ms` have passed first; a rejection of `work` after that is ignored. */
export function withDeadline<T>(work: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  work.catch(() => {}); // answered already by the deadline
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
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
 * only its own request (see GroupCommit). New events are admitted by BacklogAdmission first.
 */
export class PartnerEventIntake {
  private readonly storing: GroupCommit<NewInboundEvent, StoreResult>;
  private readonly enqueuing: GroupCommit<InboundEventJob, void>;
  private readonly admission: BacklogAdmission;

  private readonly storeDeadlineMs: number;

  constructor(deps: HubDeps) {
    this.storeDeadlineMs = deps.config.intakeStoreDeadlineMs;
    this.admission = new BacklogAdmission(() => deps.queues.inboundEvents.getWaitingCount(), deps.config.intakeMaxBacklog, deps.config.intakeAdmissionWaitMs);
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
    return withStoreDeadline(this.storing.submit(event), this.storeDeadlineMs);
  }

  /** Hands the stored event's job to Redis. */
  enqueue(job: InboundEventJob): Promise<void> {
    return this.enqueuing.submit(job);
  }
}
