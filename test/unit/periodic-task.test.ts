import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startPeriodicTask } from '../../src/workers/periodic-task.js';

const logger = pino({ level: 'silent' });
const HOUR = 3600_000;

describe('periodic task', () => {
  it('a kick while a run is under way runs it again when that run ends, not after the interval', async () => {
    let runs = 0;
    let releaseFirst!: () => void;
    const firstStarted = new Promise<void>((started) => {
      const task = startPeriodicTask(
        't',
        logger,
        HOUR,
        async () => {
          runs++;
          if (runs === 1) {
            started();
            await new Promise<void>((r) => (releaseFirst = r));
          }
          return false;
        },
        { kickGapMs: 5 },
      );
      tasks.push(task);
    });
    await firstStarted;
    tasks[0]!.kick();
    releaseFirst();
    const deadline = Date.now() + 5000;
    while (runs < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(runs).toBe(2);
    await tasks[0]!.stop();
  });

  it('without a kick it waits for the interval', async () => {
    let runs = 0;
    const task = startPeriodicTask('t', logger, HOUR, async () => {
      runs++;
      return false;
    });
    const deadline = Date.now() + 5000;
    while (runs < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    // Another macrotask turn or two: nothing runs again on its own.
    await new Promise((r) => setTimeout(r, 20));
    expect(runs).toBe(1);
    task.kick();
    const deadline2 = Date.now() + 5000;
    while (runs < 2 && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 5));
    expect(runs).toBe(2);
    await task.stop();
  });
});
const tasks: Array<ReturnType<typeof startPeriodicTask>> = [];
