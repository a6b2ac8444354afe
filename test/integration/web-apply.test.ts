import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inboundEventJobId } from '../../src/queues/inbound-events.queue.js';
import { eventually, registerOrder, shipEvent, startExtraWeb, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * INTAKE_APPLY=web: the web applies the events it stores itself, without the inbound queue; at most
 * INTAKE_APPLY_MAX_IN_HAND at once, a new event waiting at the door for a place, and going to the
 * workers' queue when none comes in time. No worker runs here until a test starts one, so whatever
 * is applied was applied by the web.
 */
const SHIP_EVENTS = '/api/fulfillment/ship-events';
/** How long a new event waits at the door for a place before it goes to the queue. */
const DOOR_WAIT_MS = 300;
/** How long a store-and-apply transaction waits for a held order in the test of an order held past it. */
const BATCH_WAIT_MS = 1000;

let hub: TestHub;
let locker: postgres.Sql;
beforeAll(async () => {
  hub = await startTestHub({
    inProcessWorkers: false,
    // The tests below hold an order's lock as long as they need (the lock timeout has its own test).
    env: {
      INTAKE_APPLY: 'web',
      INTAKE_APPLY_MAX_IN_HAND: '1',
      INTAKE_ADMISSION_WAIT_MS: String(DOOR_WAIT_MS),
      INTAKE_BATCH_LOCK_WAIT_MS: '20000',
      INTAKE_LOCK_TIMEOUT_MS: '60000',
      INTAKE_STORE_DEADLINE_MS: '60000',
    },
  });
  locker = postgres(hub.databaseUrl, { max: 6, onnotice: () => {} });
});
afterEach(async () => hub.stopInProcessWorkers());
afterAll(async () => {
  await locker?.end({ timeout: 5 });
  await hub?.close();
});

const eventRow = async (eventId: string) =>
  (
    await locker<{ state: string; received_at: Date; processed_at: Date | null }[]>`
    select state, received_at, processed_at from inbound_events where event_id = ${eventId}`
  )[0];
const orderStatus = async (orderId: string) => (await locker<{ status: number }[]>`select status from orders where order_id = ${orderId}`)[0]?.status;

/** Holds the order's row lock (as a long transaction of another process would) until `release()`. */
async function holdOrderLock(orderId: string) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  let pid = 0;
  const done = locker.begin(async (tx) => {
    [{ pid }] = (await tx`select pg_backend_pid() as pid from orders where order_id = ${orderId} for update`) as unknown as [{ pid: number }];
    locked();
    await released;
  });
  await isLocked;
  return {
    /** Whether a transaction is waiting for this lock. */
    waitedFor: async () =>
      (await locker<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where ${pid}::int = any(pg_blocking_pids(pid))`)[0]!.n > 0,
    release: async () => {
      release();
      await done;
    },
  };
}

/**
 * Holds the insert of `eventId` (an uncommitted row with that id, as another web storing the same
 * event would) until `release()`, which rolls it back: an INSERT of the same id waits for it.
 */
async function holdEventInsert(eventId: string, orderId: string) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let inserted!: () => void;
  const isInserted = new Promise<void>((resolve) => (inserted = resolve));
  const done = locker
    .begin(async (tx) => {
      await tx`insert into inbound_events (event_id, kind, source, type, order_id, actor, body_hash, payload)
               values (${eventId}, 'ship-event', 'slick', 'picking', ${orderId}, 'held', 'held', '{}')`;
      inserted();
      await released;
      throw new Error('rolled back');
    })
    .catch(() => {});
  await isInserted;
  return {
    release: async () => {
      release();
      await done;
    },
  };
}

/**
 * A web of its own with 16 events in hand, whose store-and-apply transactions wait `batchLockWaitMs`
 * for a held order, and the event's own transaction a minute (with a store deadline to match).
 */
const webWaitingForHeldOrders = (batchLockWaitMs: number) =>
  startExtraWeb(hub, {
    INTAKE_APPLY: 'web',
    INTAKE_BATCH_LOCK_WAIT_MS: String(batchLockWaitMs),
    INTAKE_LOCK_TIMEOUT_MS: '60000',
    INTAKE_STORE_DEADLINE_MS: '60000',
    INTAKE_APPLY_MAX_IN_HAND: '16',
  });

/** Two new orders, the first one's row held by another transaction, and a picking for each. */
async function heldOrderAndAnother() {
  const held = await registerOrder(hub);
  const free = await registerOrder(hub);
  const lock = await holdOrderLock(held);
  return { held, free, lock, event: shipEvent(held, 'picking'), alongside: shipEvent(free, 'picking') };
}

/**
 * Takes both of `web`'s store-and-apply transactions: each stores a picking whose insert another
 * transaction holds (pushed to `holds`, released by the caller), so that what is sent next waits for
 * a transaction, and what waits together goes into one. Resolves with the two pickings' answers.
 */
async function bothTransactionsBusy(web: Awaited<ReturnType<typeof startExtraWeb>>, holds: Array<{ release(): Promise<void> }>) {
  const busy = await Promise.all([registerOrder(hub), registerOrder(hub)]);
  const busyEvents = busy.map((o) => shipEvent(o, 'picking'));
  for (const [k, e] of busyEvents.entries()) holds.push(await holdEventInsert(e.eventId, busy[k]!));
  const busyAnswers = busyEvents.map((e) => web.clients.slick.post(SHIP_EVENTS, e));
  await eventually(async () => web.intake.eventsInHand === 2, 'both transactions under way');
  return busyAnswers;
}

/**
 * Two orders; the first one's picking sent while another transaction holds the insert of its event
 * id: it takes the web's only place, and its transaction (store and apply) waits until `lock.release()`.
 */
async function firstEventHeld() {
  const held = await registerOrder(hub);
  const other = await registerOrder(hub);
  const first = shipEvent(held, 'picking');
  const lock = await holdEventInsert(first.eventId, held);
  const firstAnswer = hub.clients.slick.post(SHIP_EVENTS, first);
  await eventually(async () => hub.intake.eventsInHand === 1, 'the first event in hand');
  return { other, lock, first, firstAnswer };
}

describe('the web stores and applies the events itself (INTAKE_APPLY=web)', () => {
  it('answers with the committed outcome, with Prefer: wait and without, with no worker and no job in the queue', async () => {
    const orderId = await registerOrder(hub);
    const picking = shipEvent(orderId, 'picking');
    const waited = await hub.clients.slick.post(SHIP_EVENTS, picking, { prefer: 'wait=5' });
    expect(waited.status).toBe(200);
    expect(waited.body).toMatchObject({ eventId: picking.eventId, state: 'applied', orderStatus: 3500 });

    // Without Prefer: 202, and the state it was committed in (stored and applied in one transaction).
    const picked = shipEvent(orderId, 'picked');
    const accepted = await hub.clients.slick.post(SHIP_EVENTS, picked);
    expect(accepted.status).toBe(202);
    expect(accepted.body).toEqual({ eventId: picked.eventId, state: 'applied' });
    expect((await eventRow(picked.eventId))?.state).toBe('applied');
    expect(await orderStatus(orderId)).toBe(3600);
    // A rule's refusal is committed too (from a store the order does not ship from).
    const late = shipEvent(orderId, 'packing', { shipFromLocationId: 'STORE-001' });
    expect((await hub.clients.slick.post(SHIP_EVENTS, late)).body).toEqual({ eventId: late.eventId, state: 'rejected' });
    // The same event again: a duplicate, answered from its stored row.
    const again = await hub.clients.slick.post(SHIP_EVENTS, picked);
    expect(again.body).toEqual({ eventId: picked.eventId, state: 'applied', duplicate: true });
    for (const e of [picking, picked, late]) expect(await hub.web.queues.inboundEvents.getJob(inboundEventJobId(e.eventId))).toBeUndefined();
    expect(hub.intake.eventsInHand).toBe(0);
  });

  it('an event that finds no place within the door wait is stored alone and goes to the queue, and a worker applies it', async () => {
    const { other, lock, first, firstAnswer } = await firstEventHeld();
    let drained = false;
    void hub.intake.drained().then(() => (drained = true));

    // The second waits at the door, finds no place, and is stored and handed to the queue.
    const second = shipEvent(other, 'picking');
    const answer = await hub.clients.slick.post(SHIP_EVENTS, second);
    expect(answer.status).toBe(202);
    expect(answer.body).toEqual({ eventId: second.eventId, state: 'queued' });
    expect(await hub.web.queues.inboundEvents.getJob(inboundEventJobId(second.eventId))).toBeDefined();
    expect((await eventRow(second.eventId))?.state).toBe('queued');
    // The first is not committed yet: it is stored with its outcome or not at all.
    expect(await eventRow(first.eventId)).toBeUndefined();
    expect(drained).toBe(false); // a clean stop still waits for the event in hand

    await lock.release();
    expect((await firstAnswer).body).toEqual({ eventId: first.eventId, state: 'applied' });
    expect((await eventRow(first.eventId))?.state).toBe('applied');
    await eventually(async () => drained, 'the intake drained');
    expect(await hub.web.queues.inboundEvents.getJob(inboundEventJobId(first.eventId))).toBeUndefined();

    expect((await eventRow(second.eventId))?.state).toBe('queued'); // nothing applies it but a worker
    hub.startInProcessWorkers();
    await eventually(async () => (await eventRow(second.eventId))?.state === 'applied', 'the queued event applied by a worker');
    expect(await orderStatus(other)).toBe(3500);
  });

  it('an event that gets a place while it waits at the door is stored only then, and applied by the web', async () => {
    const { other, lock, first, firstAnswer } = await firstEventHeld();

    // Sent while the place is taken (a door wait of 5 s); the place comes free once the lock goes.
    const second = shipEvent(other, 'picking');
    const secondAnswer = hub.clients.slick.post(SHIP_EVENTS, second, { prefer: 'wait=5' });
    await eventually(async () => hub.intake.eventsAtTheDoor === 1, 'the second event at the door');
    await lock.release();
    expect((await firstAnswer).status).toBe(202);
    const answer = await secondAnswer;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ state: 'applied', orderStatus: 3500 });
    const [a, b] = [await eventRow(first.eventId), await eventRow(second.eventId)];
    // Stored only once the first event's outcome was committed: the wait at the door is in no event's latency.
    expect(b!.received_at.getTime()).toBeGreaterThanOrEqual(a!.processed_at!.getTime());
    expect(await hub.web.queues.inboundEvents.getJob(inboundEventJobId(second.eventId))).toBeUndefined();
  }, 20_000);

  it('an order held briefly (as a partner answer being committed holds it) is waited for: its event is applied in the transaction it came in, with the events sent with it', async () => {
    // Long lock waits: no event here is let go by a timeout.
    const web = await webWaitingForHeldOrders(20_000);
    const holds: Array<{ release(): Promise<void> }> = [];
    try {
      // Both of the web's store-and-apply transactions under way (each waits for its event's insert),
      // so the next two events go into one transaction together.
      const busyAnswers = await bothTransactionsBusy(web, holds);
      const { held, free, lock, event, alongside } = await heldOrderAndAnother();
      const heldAnswer = web.clients.slick.post(SHIP_EVENTS, event);
      let alongsideAnswered = false;
      const alongsideAnswer = web.clients.slick.post(SHIP_EVENTS, alongside).then((r) => {
        alongsideAnswered = true;
        return r;
      });
      await eventually(async () => web.intake.eventsInHand === 4, 'the two events waiting for a transaction');
      for (const h of holds) await h.release();

      // The transaction of the two waits for the held order, the other event with it.
      await eventually(lock.waitedFor, 'the transaction waiting for the order lock');
      expect(alongsideAnswered).toBe(false);

      await lock.release();
      expect((await heldAnswer).body).toEqual({ eventId: event.eventId, state: 'applied' });
      expect((await alongsideAnswer).body).toEqual({ eventId: alongside.eventId, state: 'applied' });
      expect([await orderStatus(held), await orderStatus(free)]).toEqual([3500, 3500]);
      const tx = await locker<{ tx: string }[]>`select xmin::text as tx from inbound_events where event_id in (${event.eventId}, ${alongside.eventId})`;
      expect(new Set(tx.map((r) => r.tx)).size).toBe(1);
      for (const a of busyAnswers) expect((await a).body).toMatchObject({ state: 'applied' });
    } finally {
      for (const h of holds) await h.release();
      await web.close();
    }
  });

  it('an order held past INTAKE_BATCH_LOCK_WAIT_MS holds up the events sent with it that long at most: the transaction gives up, the event of the other order is applied alone, and the held one, stored alone, on its own once the lock goes', async () => {
    const web = await webWaitingForHeldOrders(BATCH_WAIT_MS);
    const holds: Array<{ release(): Promise<void> }> = [];
    try {
      // Both transactions under way (released by the test long before they could give up), so the next
      // two events go into one transaction together.
      const busyAnswers = await bothTransactionsBusy(web, holds);
      const { held, free, lock, event, alongside } = await heldOrderAndAnother();
      let heldAnswered = false;
      const heldAnswer = web.clients.slick.post(SHIP_EVENTS, event).then((r) => {
        heldAnswered = true;
        return r;
      });
      const alongsideAnswer = web.clients.slick.post(SHIP_EVENTS, alongside);
      await eventually(async () => web.intake.eventsInHand === 4, 'the two events waiting for a transaction');
      for (const h of holds) await h.release();

      expect((await alongsideAnswer).body).toEqual({ eventId: alongside.eventId, state: 'applied' });
      expect(await orderStatus(free)).toBe(3500);
      // The held one is stored alone, and waits on its own.
      await eventually(async () => (await eventRow(event.eventId))?.state === 'queued', 'the held event stored alone');
      expect(heldAnswered).toBe(false);
      expect(await orderStatus(held)).toBe(3000);

      // Its own transaction waited for the lock, and applies it once the lock goes: no worker, no job.
      await lock.release();
      expect((await heldAnswer).body).toEqual({ eventId: event.eventId, state: 'applied' });
      expect(await orderStatus(held)).toBe(3500);
      expect(await hub.web.queues.inboundEvents.getJob(inboundEventJobId(event.eventId))).toBeUndefined();
      for (const a of busyAnswers) expect((await a).body).toMatchObject({ state: 'applied' });
    } finally {
      for (const h of holds) await h.release();
      await web.close();
    }
  });
});
