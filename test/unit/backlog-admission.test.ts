import { describe, expect, it } from 'vitest';
import { UnavailableError } from '../../src/errors.js';
import { BACKLOG_RECHECK_MS, BacklogAdmission } from '../../src/inbox/intake.js';
import { eventually } from '../helpers/eventually.js';

/**
 * The intake's door (src/inbox/intake.ts), with the queue's length given by the test: what the hub
 * reads from Redis in production. The end-to-end refusal (503, Retry-After, nothing stored) is in
 * test/integration/load-guards.test.ts.
 */

/** A queue length the test sets, and how often the door read it. */
function queueOf(length: number) {
  const queue = {
    length,
    reads: 0,
    count: async () => {
      queue.reads++;
      return queue.length;
    },
  };
  return queue;
}

describe('backlog admission (the intake door)', () => {
  it('admits at once while the queue has room', async () => {
    const queue = queueOf(0);
    const door = new BacklogAdmission(queue.count, 3, 1000);
    await door.admit();
    await door.admit();
    expect(door.eventsAtTheDoor).toBe(0);
    expect(queue.reads).toBe(1); // one reading serves both
  });

  it('lets waiting events in first come, first served, and a newcomer queues behind them', async () => {
    const queue = queueOf(10);
    const door = new BacklogAdmission(queue.count, 2, 10_000);
    const admitted: string[] = [];
    const wait = (name: string) => door.admit().then(() => admitted.push(name));
    const first = wait('first');
    await eventually(async () => door.eventsAtTheDoor === 1, 'the first event at the door', 5000, 2);
    const second = wait('second');
    await eventually(async () => door.eventsAtTheDoor === 2, 'the second event at the door', 5000, 2);

    // Room for one: the first goes in, the second stays.
    queue.length = 1;
    await first;
    expect(admitted).toEqual(['first']);
    // A newcomer while the second still waits goes behind it, though it read the same room.
    const third = wait('third');
    expect(door.eventsAtTheDoor).toBe(2);

    queue.length = 0;
    await Promise.all([second, third]);
    expect(admitted).toEqual(['first', 'second', 'third']);
    expect(door.eventsAtTheDoor).toBe(0);
  });

  it('refuses an event whose wait is over with 503 backlog_full, while one that came later still waits', async () => {
    const queue = queueOf(5);
    // The door's clock is the test's: waits end when the test says.
    let clock = 0;
    const door = new BacklogAdmission(queue.count, 5, 200, () => clock);
    const outcome = (p: Promise<void>) =>
      p.then(
        () => 'admitted' as const,
        (err: unknown) => err,
      );
    const first = outcome(door.admit());
    await eventually(async () => door.eventsAtTheDoor === 1, 'the first event at the door', 5000, 2);
    // The second comes 100 ms after the first, so its wait ends 100 ms after the first's.
    clock = 100;
    const second = outcome(door.admit());
    await eventually(async () => door.eventsAtTheDoor === 2, 'the second event at the door', 5000, 2);

    clock = 250;
    const err = await first;
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err).toMatchObject({ code: 'backlog_full', retryAfterSeconds: 1, details: { waiting: 5, limit: 5 } });
    // The second still waits; room now lets it in.
    expect(door.eventsAtTheDoor).toBe(1);
    queue.length = 0;
    clock = 260; // a reading older than the recheck interval: the door reads the queue again
    expect(await second).toBe('admitted');
    expect(door.eventsAtTheDoor).toBe(0);

    // With no wait allowed, a full door refuses at once.
    const noWait = new BacklogAdmission(queueOf(5).count, 5, 0);
    await expect(noWait.admit()).rejects.toMatchObject({ code: 'backlog_full' });
  });

  it('costs the same per look whether few or many wait: one timer looks again for all of them', async () => {
    /** Calls of the door's clock while `waiters` wait through about `looks` looks again. */
    async function clockCalls(waiters: number, looks: number): Promise<number> {
      const queue = queueOf(5000);
      let calls = 0;
      const door = new BacklogAdmission(queue.count, 2000, 60_000, () => {
        calls++;
        return performance.now();
      });
      const waiting = Array.from({ length: waiters }, () => door.admit());
      await eventually(async () => door.eventsAtTheDoor === waiters, `${waiters} events at the door`, 5000, 2);
      const readsBefore = queue.reads;
      calls = 0;
      await eventually(async () => queue.reads >= readsBefore + looks, `${looks} looks again`, looks * BACKLOG_RECHECK_MS * 50, 2);
      const seen = calls;
      queue.length = 0;
      await Promise.all(waiting);
      return seen / (queue.reads - readsBefore);
    }
    const few = await clockCalls(10, 5);
    const many = await clockCalls(1000, 5);
    // Each look reads the clock a handful of times, not once or more per waiting event.
    expect(many).toBeLessThan(few * 2 + 5);
    expect(many).toBeLessThan(100);
  });
});
