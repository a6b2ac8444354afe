import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUTBOX_CHANNEL, RelaySleep, relayTurn } from '../../src/workers/outbox-relay.js';
import { eventually } from '../helpers/eventually.js';
import { startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * The relay's wake-ups (migration 0010): a commit that writes the outbox notifies only while the relay
 * sleeps, since every NOTIFY serialises the commits that send one; and no commit is missed by a relay
 * falling asleep while it is under way.
 */
describe('outbox wake-ups', () => {
  let hub: TestHub;
  let listener: postgres.Sql;
  let writer: postgres.Sql;
  /** Payloads received on the relay's channel, in commit order: the trigger's are '', the test's markers named. */
  const notified: string[] = [];
  let unlisten: () => Promise<void>;

  beforeAll(async () => {
    // No relay of the hub's own: the test is the only one taking the relay's lock.
    hub = await startTestHub({ scheduler: false, inProcessWorkers: false });
    listener = postgres(hub.databaseUrl, { max: 1, onnotice: () => {} });
    writer = postgres(hub.databaseUrl, { max: 2, onnotice: () => {} });
    ({ unlisten } = await listener.listen(OUTBOX_CHANNEL, (payload) => void notified.push(payload)));
  });
  afterAll(async () => {
    await unlisten?.();
    await listener?.end();
    await writer?.end();
    await hub?.close();
  });

  let n = 0;
  const writeOutbox = (sql: postgres.Sql | postgres.TransactionSql) =>
    sql`insert into outbox (type, order_id, occurred_at, payload) values ('test.message', ${`wake-${++n}`}, now(), '{}') returning id`;

  /** Everything notified before a marker has arrived once the marker has: notifications come in commit order. */
  const upToMarker = async (marker: string) => {
    await writer`select pg_notify(${OUTBOX_CHANNEL}, ${marker})`;
    await eventually(async () => notified.includes(marker), `marker ${marker}`);
    return notified.splice(0, notified.indexOf(marker) + 1);
  };

  it('notifies a sleeping relay, and sends nothing while it is awake', async () => {
    const sleep = new RelaySleep(hub.worker);
    try {
      await upToMarker('start');
      await writeOutbox(writer); // awake (no relay holds the lock)
      await writeOutbox(writer);
      expect(await upToMarker('awake')).toEqual(['awake']);

      expect(await sleep.fallAsleep()).toBe(true);
      expect(sleep.asleep).toBe(true);
      await writeOutbox(writer);
      expect(await upToMarker('asleep')).toEqual(['', 'asleep']);

      await sleep.wakeUp();
      expect(sleep.asleep).toBe(false);
      await writeOutbox(writer);
      await writeOutbox(writer);
      expect(await upToMarker('awake again')).toEqual(['awake again']);
    } finally {
      await sleep.close();
    }
  });

  it('falls asleep only after a write under way has committed, so the look it takes then sees that write', async () => {
    const sleep = new RelaySleep(hub.worker);
    await upToMarker('before the write');
    let writeId = '';
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const writing = writer.begin(async (tx) => {
      const [row] = await writeOutbox(tx);
      writeId = row!.id as string;
      await held;
    });
    try {
      await eventually(async () => writeId !== '', 'the write under way');
      const fallingAsleep = sleep.fallAsleep();
      // The relay waits for the lock that the open write holds shared.
      await eventually(
        async () =>
          (
            await writer`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`
          )[0]!.n === 1,
        'the relay waiting for the lock',
      );
      expect(sleep.asleep).toBe(false);
      release();
      await writing;
      expect(await fallingAsleep).toBe(true);
      // Committed before the relay held the lock, so visible to its next look; it did not notify.
      const [seen] = await writer`select count(*)::int as n from outbox where id = ${writeId} and published_at is null`;
      expect(seen!.n).toBe(1);
      expect(await upToMarker('after the write')).toEqual(['after the write']);
      await writeOutbox(writer); // asleep now: this one notifies
      expect(await upToMarker('asleep')).toEqual(['', 'asleep']);
    } finally {
      release();
      await sleep.close();
    }
  });

  it('a second relay sleeps beside the one holding the lock, without asking for it', async () => {
    const first = new RelaySleep(hub.worker);
    const second = new RelaySleep(hub.worker);
    try {
      await upToMarker('before');
      expect(await first.fallAsleep()).toBe(true);
      expect(await second.fallAsleep()).toBe(true);
      expect(second.asleep).toBe(true);
      // No request waits for the lock: a waiting one would make every writer notify.
      const [waiting] =
        await writer`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`;
      expect(waiting!.n).toBe(0);
      await writeOutbox(writer);
      expect(await upToMarker('both asleep')).toEqual(['', 'both asleep']);
    } finally {
      await second.close();
      await first.close();
    }
  });

  it('stays awake when the lock does not come within a second (a long transaction writes the outbox)', async () => {
    const sleep = new RelaySleep(hub.worker);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let written = false;
    const writing = writer.begin(async (tx) => {
      await writeOutbox(tx);
      written = true;
      await held;
    });
    try {
      await eventually(async () => written, 'the long write under way');
      expect(await sleep.fallAsleep()).toBe(false);
      expect(sleep.asleep).toBe(false);
    } finally {
      release();
      await writing;
      await sleep.close();
    }
  });

  it('tells the relay when the connection it sleeps on is lost, and falls asleep again on a new one', async () => {
    let lost = 0;
    const sleep = new RelaySleep(hub.worker, () => lost++);
    try {
      expect(await sleep.fallAsleep()).toBe(true);
      // Only this database's: the relays of other test files hold the same lock in theirs.
      const [terminated] = await writer`
        select count(pg_terminate_backend(pid))::int as n from pg_locks
        where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and classid = 7500 and objid = 1 and mode = 'ExclusiveLock' and granted`;
      expect(terminated!.n).toBe(1);
      await eventually(async () => lost === 1, 'the relay told of the lost connection');
      expect(sleep.asleep).toBe(false);
      await upToMarker('after the loss');
      await writeOutbox(writer); // nobody holds the lock: no notification
      expect(await upToMarker('nobody asleep')).toEqual(['nobody asleep']);
      expect(await sleep.fallAsleep()).toBe(true);
      await writeOutbox(writer);
      expect(await upToMarker('asleep again')).toEqual(['', 'asleep again']);
    } finally {
      await sleep.close();
    }
  });

  it('a turn publishes what is committed, wakes up for it and asks for another look; with nothing left it falls asleep', async () => {
    const sleep = new RelaySleep(hub.worker);
    let again = 0;
    try {
      expect(await sleep.fallAsleep()).toBe(true);
      await writeOutbox(writer);
      expect(await relayTurn(hub.worker, sleep, () => again++)).toBe(false);
      expect({ asleep: sleep.asleep, again }).toEqual({ asleep: false, again: 1 });
      const [left] = await writer`select count(*)::int as n from outbox where published_at is null`;
      expect(left!.n).toBe(0);
      expect(await hub.redis.xlen(hub.config.topicStream)).toBeGreaterThan(0);

      expect(await relayTurn(hub.worker, sleep, () => again++)).toBe(false);
      expect({ asleep: sleep.asleep, again }).toEqual({ asleep: true, again: 1 });
    } finally {
      await sleep.close();
    }
  });
});
