import { asc, isNull, sql } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { outbox } from '../db/schema/index.js';
import type { IntegrationName } from '../config.js';
import type { OrderCallRequest } from '../partner-calls/call-kind.js';
import { enqueuePartnerCalls, recordOwedCalls } from '../partner-calls/schedule.js';
import { callsOwedOnReaching } from '../partner-calls/status-reactions.js';
import { countCustomerNotifications } from '../observability/customer-notifications.js';
import type { PeriodicTask } from './periodic-task.js';

/** The channel the outbox's insert trigger notifies on commit (migration 0009). */
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

/**
 * Runs the relay when a commit wrote the outbox (LISTEN on the channel its trigger notifies), so it
 * publishes within a round trip of the commit and idles at no cost; the relay's own poll
 * (OUTBOX_POLL_MS) only catches rows written while this connection was down. postgres.js listens on
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
