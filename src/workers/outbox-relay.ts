import { asc, isNull, sql } from 'drizzle-orm';
import postgres from 'postgres';
import { SESSION_SETTINGS } from '../db/client.js';
import type { HubDeps } from '../deps.js';
import { outbox } from '../db/schema/index.js';
import type { IntegrationName } from '../config.js';
import type { OrderCallRequest } from '../partner-calls/call-kind.js';
import { enqueuePartnerCalls, recordOwedCalls } from '../partner-calls/schedule.js';
import { callsOwedOnReaching } from '../partner-calls/status-reactions.js';
import { countCustomerNotifications } from '../observability/customer-notifications.js';
import type { PeriodicTask } from './periodic-task.js';

/** The channel the outbox's insert trigger notifies on commit, when the relay sleeps (migrations 0009, 0010). */
export const OUTBOX_CHANNEL = 'hub_outbox';

export const OUTBOX_BATCH = 500;
/** The stream is capped (approximately) so Redis memory stays bounded; consumers keep their own offsets. */
export const TOPIC_MAX_LENGTH = 1_000_000;

/**
 * Publishes committed outbox rows to the Redis Stream, oldest first. Rows are marked published only
 * after Redis took them, so a crash in between publishes them again (at least once); each message's
 * `id` field is the outbox row id, for consumer de-duplication. SKIP LOCKED lets two relays run.
 */
export async function relayOutboxOnce(deps: HubDeps): Promise<number> {
  let owed: OrderCallRequest[] = [];
  const published = await deps.db.transaction(async (tx) => {
    const rows = await tx
      .select()
      .from(outbox)
      .where(isNull(outbox.publishedAt))
      .orderBy(asc(outbox.position))
      .limit(OUTBOX_BATCH)
      .for('update', { skipLocked: true });
    if (rows.length === 0) return 0;
    const pipeline = deps.redis.pipeline();
    for (const r of rows) {
      pipeline.xadd(
        deps.config.topicStream,
        'MAXLEN',
        '~',
        TOPIC_MAX_LENGTH,
        '*',
        'id',
        r.id,
        'type',
        r.type,
        'orderId',
        r.orderId,
        'occurredAt',
        r.occurredAt.toISOString(),
        'payload',
        JSON.stringify(r.payload),
      );
    }
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err);
    if (failed) throw failed[0];
    // A status reached owes the calls STATUS_REACTIONS names (customer notification, PMP assignment,
    // MAO "Shipped"), recorded with the same committed facts: at most one per order and key, so a
    // status reached again (or a row published twice) owes nothing new, unless its call failed for
    // good, which is then owed again.
    const configured = (integration: IntegrationName) => deps.config.integrations[integration].baseUrl !== undefined;
    const calls = rows.flatMap((r) => {
      const p = r.payload as { to?: number; implied?: boolean };
      return r.type === 'status.changed' && !p.implied && typeof p.to === 'number' ? callsOwedOnReaching(r.orderId, p.to, configured) : [];
    });
    owed = await recordOwedCalls(tx, calls);
    countCustomerNotifications(deps.metrics, calls, owed);
    await tx
      .update(outbox)
      .set({ publishedAt: new Date() })
      // `= any(array)`: one statement shape (one prepared statement) whatever the batch's size, where
      // `in ($1, …)` made a new one for every count of rows.
      .where(sql`${outbox.id} = any(${sql.param(rows.map((r) => r.id))}::uuid[])`);
    deps.metrics.outboxPublished.inc(rows.length);
    return rows.length;
  });
  if (owed.length > 0) {
    await enqueuePartnerCalls(deps, owed).catch((err: unknown) =>
      deps.logger.warn({ orderIds: owed.map((c) => c.orderId), err: (err as Error).message }, 'owed partner calls not scheduled; the sweeper will'),
    );
  }
  return published;
}

/** The advisory lock a sleeping relay holds (its two keys; the trigger of migration 0010 names the same). */
const RELAY_ASLEEP = { classId: 7500, objId: 1 } as const;

/**
 * The relay's sleep. While it sleeps, the relay holds advisory lock (7500, 1) exclusively on a
 * connection of its own, and a transaction that writes the outbox notifies it only then (the insert
 * trigger of migration 0010 tries the lock shared and notifies when it cannot have it): a NOTIFY
 * serialises every notifying commit, WAL flush included, so commits made while the relay is awake must
 * not send one. Awake, the relay looks again RELAY_KICK_GAP_MS after each look that found rows.
 *
 * No wake-up is lost: a writer that took the lock shared holds it until its commit, so the relay's
 * `fallAsleep` waits for that commit, and the look it takes once asleep sees the row. A writer that
 * comes later finds the lock held and notifies. The lock lives and dies with its connection, a client
 * of one connection apart from the pool: when that connection closes, `lost` is told (the relay looks
 * again, and falls asleep on a new connection). A second relay that finds the lock held by another
 * sleeps without it, on the notifications that one receives as well (both LISTEN on the channel).
 */
export class RelaySleep {
  private readonly sql: postgres.Sql;
  private holding = false;
  /** Asleep on another relay's lock. */
  private beside = false;

  constructor(
    deps: Pick<HubDeps, 'config' | 'logger'>,
    private readonly lost: () => void = () => {},
  ) {
    this.sql = postgres(deps.config.databaseUrl, {
      max: 1,
      onnotice: () => {},
      // Its only statements are the lock's: no type lookup, and the connection kept as long as it lasts.
      fetch_types: false,
      max_lifetime: null,
      idle_timeout: 0,
      connection: { ...SESSION_SETTINGS, lock_timeout: 1000 },
      onclose: () => {
        if (!this.holding) return;
        this.holding = false;
        deps.logger.warn({}, 'the outbox relay lost the connection it sleeps on; it looks again');
        this.lost();
      },
    });
  }

  get asleep(): boolean {
    return this.holding || this.beside;
  }

  /**
   * Takes the lock, once the writers holding it shared have committed. When another relay holds it,
   * sleeps beside that one without asking for it (a request waiting for it would make every writer
   * notify). False when it did not come within a second (a long transaction writes the outbox): the
   * relay stays awake and looks again.
   */
  async fallAsleep(): Promise<boolean> {
    if (this.asleep) return true;
    try {
      const [held] = await this.sql<{ elsewhere: boolean }[]>`
        select exists (select 1 from pg_locks
                       where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())
                         and classid = ${RELAY_ASLEEP.classId} and objid = ${RELAY_ASLEEP.objId} and objsubid = 2 and mode = 'ExclusiveLock' and granted
                         and pid <> pg_backend_pid()) as elsewhere`;
      if (held!.elsewhere) {
        this.beside = true;
        return true;
      }
      await this.sql`select pg_advisory_lock(${RELAY_ASLEEP.classId}::int, ${RELAY_ASLEEP.objId}::int)`;
      this.holding = true;
      return true;
    } catch (err) {
      if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
      return false;
    }
  }

  /** Gives the lock back: from now on commits that write the outbox notify nobody. */
  async wakeUp(): Promise<void> {
    this.beside = false;
    if (!this.holding) return;
    this.holding = false;
    // On a connection that closed meanwhile the lock is gone with it, and this fails: nothing to give back.
    await this.sql`select pg_advisory_unlock(${RELAY_ASLEEP.classId}::int, ${RELAY_ASLEEP.objId}::int)`.catch(() => {});
  }

  async close(): Promise<void> {
    await this.wakeUp();
    await this.sql.end({ timeout: 5 });
  }
}

/** SQLSTATE of a lock not taken within lock_timeout. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * One turn of the relay: publish what is committed. Rows found wake it up (commits stop notifying
 * while it is awake) and it looks again after its gap, or at once after a full batch; nothing found
 * puts it to sleep, and it looks once more for rows whose commit came while the lock was being taken.
 * A sleeping relay's poll looks without waking. Returns whether to go on at once; `again()` asks for
 * another look after the gap.
 */
export async function relayTurn(deps: HubDeps, sleep: RelaySleep, again: () => void): Promise<boolean> {
  const published = await relayOutboxOnce(deps);
  if (published > 0) {
    await sleep.wakeUp();
    if (published >= OUTBOX_BATCH) return true;
    again();
    return false;
  }
  if (sleep.asleep) return false;
  if (!(await sleep.fallAsleep())) {
    again();
    return false;
  }
  if ((await relayOutboxOnce(deps)) > 0) {
    await sleep.wakeUp();
    again();
  }
  return false;
}

/**
 * Runs a sleeping relay when a commit wrote the outbox (LISTEN on the channel its trigger notifies,
 * see RelaySleep), so it publishes within a round trip of the commit and idles at no cost; the relay's
 * own poll (OUTBOX_POLL_MS) catches what a lost connection missed, and the rows of a second relay that
 * sleeps beside one that stopped. postgres.js listens on
 * a connection of its own, re-listening after a reconnect; every (re)connect runs the relay once for
 * what was missed meanwhile.
 */
export function wakeOnOutboxWrites(deps: HubDeps, relay: PeriodicTask): { stop(): Promise<void> } {
  let stopped = false;
  let unlisten: (() => Promise<void>) | undefined;
  const listening = deps.pg
    .listen(
      OUTBOX_CHANNEL,
      () => relay.kick(),
      () => relay.kick(),
    )
    .then((l) => {
      unlisten = l.unlisten;
      if (stopped) return l.unlisten();
    })
    .catch((err: unknown) => deps.logger.warn({ err: (err as Error).message }, 'outbox notifications not received; the relay polls every OUTBOX_POLL_MS'));
  return {
    stop: async () => {
      stopped = true;
      await listening;
      await unlisten?.().catch(() => {});
    },
  };
}
