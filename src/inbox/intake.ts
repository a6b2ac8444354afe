import type { HubDeps } from '../deps.js';
import { GroupCommit } from '../db/group-commit.js';
import { ConflictError, UnavailableError } from '../errors.js';
import { withDeadline, withinEnqueueDeadline } from '../deadlines.js';
import { rowsTaken } from '../db/pipelined-transaction.js';
import { storeInboundEvents, type NewInboundEvent, type StoreResult } from './event-store.js';
import { applyHeldInboundEvents, storeAndApplyInboundEvents, type InboundEventResult, type StoredAndApplied } from './inbox-engine.js';
import { INBOUND_EVENT_JOB, inboundEventJobId, type InboundEventJobData, type InboundEventJobName } from '../queues/inbound-events.queue.js';

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
 *
 * The door is first come, first served: events waiting are let in in the order they came, and a new
 * one never goes ahead of them. One timer looks again for all of them every BACKLOG_RECHECK_MS, so a
 * full door costs the same whether ten requests wait at it or a thousand.
 */
export class BacklogAdmission {
  private waiting = 0;
  private admittedSinceRead = 0;
  private readAt = -Infinity;
  private reading: Promise<void> | undefined;
  private readingSince = -Infinity;
  /** Events at the door, first come first; each is let in or refused by `lookAgain`. */
  private readonly atTheDoor: Array<{ deadline: number; admit: () => void; refuse: (err: UnavailableError) => void }> = [];
  private lookingAgain: NodeJS.Timeout | undefined;

  constructor(
    private readonly countWaiting: () => Promise<number>,
    private readonly limit: number,
    private readonly maxWaitMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Events waiting at the door now. */
  get eventsAtTheDoor(): number {
    return this.atTheDoor.length;
  }

  /** Resolves when a new event may be accepted; rejects with UnavailableError (503, Retry-After) when the backlog stays full. */
  async admit(): Promise<void> {
    const deadline = this.now() + this.maxWaitMs;
    if (this.atTheDoor.length === 0) {
      await this.read(BACKLOG_READ_EVERY_MS);
      // Others may have come to the door while this one read: it goes behind them.
      if (this.atTheDoor.length === 0 && this.backlog() < this.limit) {
        this.admittedSinceRead++;
        return;
      }
    }
    if (deadline <= this.now()) throw this.full();
    return new Promise<void>((admit, refuse) => {
      this.atTheDoor.push({ deadline, admit, refuse });
      this.scheduleLookAgain();
    });
  }

  private backlog(): number {
    return this.waiting + this.admittedSinceRead;
  }

  private full(): UnavailableError {
    const backlog = this.backlog();
    return new UnavailableError(`the hub has ${backlog} events waiting (INTAKE_MAX_BACKLOG ${this.limit}); send again after the Retry-After delay`, {
      code: 'backlog_full',
      retryAfterSeconds: BACKLOG_RETRY_AFTER_S,
      details: { waiting: backlog, limit: this.limit },
    });
  }

  private scheduleLookAgain(): void {
    if (this.lookingAgain) return;
    this.lookingAgain = setTimeout(() => {
      this.lookingAgain = undefined;
      void this.lookAgain();
    }, BACKLOG_RECHECK_MS);
  }

  /** With a fresh reading: lets in as many as there is room for, first come first, then refuses those whose wait is over. */
  private async lookAgain(): Promise<void> {
    await this.read(BACKLOG_RECHECK_MS);
    while (this.atTheDoor.length > 0 && this.backlog() < this.limit) {
      this.admittedSinceRead++;
      this.atTheDoor.shift()!.admit();
    }
    // Every event waits as long at most, so the first come are the first whose wait is over.
    const now = this.now();
    while (this.atTheDoor.length > 0 && this.atTheDoor[0]!.deadline <= now) this.atTheDoor.shift()!.refuse(this.full());
    if (this.atTheDoor.length > 0) this.scheduleLookAgain();
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
function withStoreDeadline<T>(storing: Promise<T>, deadlineMs: number): Promise<T> {
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

/** Events whose order was held, applied on their own at once by one web (each its own transaction). */
const HELD_EVENTS_AT_ONCE = 4;

/**
 * The events one web applies itself (INTAKE_APPLY=web), at most `limit` at once: a place is taken
 * before the event is stored, and given back once its outcome is committed (or its transaction
 * failed; for an event whose order was held, once its own transaction after has ended). A new event waits for a place in the order it came; a place given back goes straight to
 * the longest waiting.
 */
export class EventsInHand {
  private inHand = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly idle: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  get count(): number {
    return this.inHand;
  }

  /** Events waiting for a place. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Takes a place, waiting up to `ms` for one; false when none came free in time. */
  take(ms: number): Promise<boolean> {
    if (this.inHand < this.limit && this.waiting.length === 0) {
      this.inHand++;
      return Promise.resolve(true);
    }
    if (ms <= 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const given = () => {
        clearTimeout(timer);
        resolve(true); // the place is handed over by give(): the count stays
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(given), 1);
        resolve(false);
      }, ms);
      this.waiting.push(given);
    });
  }

  /** Gives a place back: to the longest waiting event, or free. */
  give(): void {
    const next = this.waiting.shift();
    if (next) {
      next();
      return;
    }
    this.inHand--;
    if (this.inHand === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /** Resolves once no event is in hand (for a clean stop). */
  drained(): Promise<void> {
    if (this.inHand === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}

/** What `accept` did with a new event: stored it, and, when this web applied it with the store, its outcome. */
export interface AcceptedEvent {
  stored: StoreResult;
  /** With INTAKE_APPLY=web, when the event was applied in its store's transaction (undefined when it went to the queue). */
  outcome?: InboundEventResult;
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
  /** With INTAKE_APPLY=web: the places for events this web applies, and its group commit of store-and-apply transactions. */
  private readonly here:
    | {
        inHand: EventsInHand;
        storingAndApplying: GroupCommit<NewInboundEvent, StoredAndApplied>;
        /** Events stored by storingAndApplying but left queued (their order was held): applied again on their own. */
        applyingHeld: GroupCommit<NewInboundEvent, InboundEventResult>;
      }
    | undefined;

  private readonly storeDeadlineMs: number;

  constructor(private readonly deps: HubDeps) {
    this.storeDeadlineMs = deps.config.intakeStoreDeadlineMs;
    const options = { concurrency: INTAKE_CONCURRENCY, maxBatch: INTAKE_BATCH };
    this.here =
      deps.config.intakeApply === 'web'
        ? {
            inHand: new EventsInHand(deps.config.intakeApplyMaxInHand),
            storingAndApplying: new GroupCommit<NewInboundEvent, StoredAndApplied>((events) => storeAndApplyInboundEvents(deps, events), {
              ...options,
              // One order's events never go into two of this web's transactions at once: the second
              // would only wait for the first's row lock, holding up the other orders' events in it.
              keyOf: (e) => e.orderId,
              onSharedFailure: (events, err) =>
                deps.logger.warn(
                  { eventIds: events.map((e) => e.eventId), err: (err as Error).message },
                  'store-and-apply batch failed; trying its events one by one',
                ),
            }),
            // One event per transaction, so each waits for its own order's lock only (lock_timeout
            // bounds each wait of a transaction, not their sum), a few at once.
            applyingHeld: new GroupCommit<NewInboundEvent, InboundEventResult>(
              (events) =>
                applyHeldInboundEvents(
                  deps,
                  events.map((e) => e.eventId),
                  deps.config.intakeLockTimeoutMs,
                ),
              { concurrency: HELD_EVENTS_AT_ONCE, maxBatch: 1 },
            ),
          }
        : undefined;
    this.admission = new BacklogAdmission(() => deps.queues.inboundEvents.getWaitingCount(), deps.config.intakeMaxBacklog, deps.config.intakeAdmissionWaitMs);
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
    return this.storeAdmitted(event);
  }

  /** `store` for an event admitted already. */
  private storeAdmitted(event: NewInboundEvent): Promise<StoreResult> {
    return withStoreDeadline(this.storing.submit(event), this.storeDeadlineMs);
  }

  /** Hands the stored event's job to Redis. */
  enqueue(job: InboundEventJob): Promise<void> {
    return this.enqueuing.submit(job);
  }

  /** Events this web is storing and applying now (0 with INTAKE_APPLY=queue). */
  get eventsInHand(): number {
    return this.here?.inHand.count ?? 0;
  }

  /** Events waiting at the door for a place among those. */
  get eventsAtTheDoor(): number {
    return this.here?.inHand.waitingCount ?? 0;
  }

  /**
   * A partner's event, from the door to whoever applies it: admitted (see BacklogAdmission), stored
   * (committed: only then may the partner be answered), and handed on, unless it is a duplicate
   * already processed. With INTAKE_APPLY=web this web stores and applies it in one transaction, once
   * it has a place for it (waiting at the door up to INTAKE_ADMISSION_WAIT_MS for one, before the event
   * is stored, so the wait counts in no event's latency). An event that found no place goes to the
   * workers' queue; so does one whose store-and-apply transaction failed (it is then stored alone),
   * except that one whose order another transaction held past INTAKE_BATCH_LOCK_WAIT_MS is stored alone
   * and applied on its own first. Postgres refusing the event is answered 503 either way, and nothing
   * stored is lost (a job Redis did not take leaves the event `queued`, where the sweeper finds it).
   * `announce`: a partner waits for the outcome (announced to every web when a worker applies it).
   */
  async accept(event: NewInboundEvent, announce: boolean): Promise<AcceptedEvent> {
    await this.admission.admit();
    const job: InboundEventJob = { name: INBOUND_EVENT_JOB, data: { eventId: event.eventId, ...(announce ? { announce: true } : {}) } };
    const here = this.here;
    if (here && (await here.inHand.take(this.deps.config.intakeAdmissionWaitMs))) {
      const submitted = here.storingAndApplying.submit(event);
      // Stored but not applied with it (created while the lock statement waited, or applying it went on
      // in a transaction that failed after the commit): applied once more here, on its own, right after.
      // Not stored at all because its order was held past INTAKE_BATCH_LOCK_WAIT_MS: stored alone, then
      // applied on its own, waiting for the lock (INTAKE_LOCK_TIMEOUT_MS).
      const leftQueued = (r: StoredAndApplied) => r.outcome === 'already_processed' && r.stored.event.state === 'queued';
      const onItsOwn: Promise<AcceptedEvent | undefined> = submitted.then(
        async (r) => (leftQueued(r) ? { stored: r.stored, outcome: await this.applyHeld(here, event) } : undefined),
        async (err: unknown) => {
          if (!rowsTaken(err)) return undefined;
          const stored = await this.storeAdmitted(event);
          const queued = !stored.duplicate || stored.event.state === 'queued';
          return { stored, outcome: queued ? await this.applyHeld(here, event) : undefined };
        },
      );
      // The place is the event's until its transactions end, even when the partner is answered 503 first.
      onItsOwn.then(
        () => here.inHand.give(),
        () => here.inHand.give(),
      );
      try {
        const result = await withStoreDeadline(submitted, this.storeDeadlineMs);
        if (!leftQueued(result)) return result;
      } catch (err) {
        // A conflict is the partner's to hear; past the deadline the transaction may still commit
        // (stored and applied together), and the partner sending again is answered as a duplicate.
        if (err instanceof ConflictError || (err instanceof UnavailableError && err.code === 'store_timeout')) throw err;
        if (!rowsTaken(err))
          this.deps.logger.warn(
            { eventId: event.eventId, orderId: event.orderId, err: (err as Error).message },
            'event not stored and applied at once; storing it for the queue',
          );
      }
      const own = await onItsOwn;
      if (own) {
        if (own.outcome !== undefined) return own;
        // Not applied on its own either: the workers' then.
        if (!own.stored.duplicate || own.stored.event.state === 'queued') await this.enqueueOrLeave(job, event);
        return { stored: own.stored };
      }
    }
    const stored = await this.storeAdmitted(event);
    // A duplicate still queued is enqueued again (its job id keeps one job): the first request may
    // have been answered 503 before its INSERT committed, and so never enqueued it.
    if (!stored.duplicate || stored.event.state === 'queued') await this.enqueueOrLeave(job, event);
    return { stored };
  }

  /** Resolves once the events this web holds are applied (or handed to the queue): for a clean stop. */
  drained(): Promise<void> {
    return this.here?.inHand.drained() ?? Promise.resolve();
  }

  /** The outcome of a stored event applied again on its own, or undefined when it is still queued (or that failed). */
  private async applyHeld(here: NonNullable<PartnerEventIntake['here']>, event: NewInboundEvent): Promise<InboundEventResult | undefined> {
    try {
      const outcome = await withStoreDeadline(here.applyingHeld.submit(event), this.storeDeadlineMs);
      return outcome === 'already_processed' ? undefined : outcome;
    } catch (err) {
      this.deps.logger.warn(
        { eventId: event.eventId, orderId: event.orderId, err: (err as Error).message },
        'stored event whose order was held not applied on its own; handing it to the queue',
      );
      return undefined;
    }
  }

  /** Enqueues the stored event's job, waiting for Redis at most ENQUEUE_DEADLINE_MS; past that (or on an error) the sweeper enqueues it. */
  private async enqueueOrLeave(job: InboundEventJob, event: NewInboundEvent): Promise<void> {
    try {
      // BullMQ waits for a Redis connection rather than failing; the partner must not wait with it.
      await withinEnqueueDeadline(this.enqueue(job));
    } catch (err) {
      this.deps.logger.warn(
        { eventId: event.eventId, orderId: event.orderId, err: (err as Error).message },
        'event stored but not enqueued; the sweeper will enqueue it',
      );
    }
  }
}
