import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/test-hub.js';

/**
 * The one-minute chaos run (scripts/chaos.ts --duration=60): the hub's real processes under partner
 * traffic while workers are killed, a web is killed, Redis is flushed and restarted, Postgres
 * connections are terminated and Slick and PMP fail and hang. Nothing accepted may be lost, nothing
 * applied twice, no order left in a status its events do not imply. Hub processes that crash are
 * started again by the script, as a process manager would, and counted in `crashes=`, which is not
 * asserted: a transaction that awaits something else between two statements (the outbox relay
 * publishes to Redis inside its transaction) can still be handed a connection whose socket closed
 * meanwhile, and postgres.js 3.4.9 then ends the process (see the README's chaos run). The script owns
 * its database, redis-server and processes, and removes them itself.
 */

const RUN_DEADLINE_MS = 6 * 60_000;
let child: ReturnType<typeof spawn> | undefined;

afterAll(async () => {
  // Only if the test gave up on it: SIGTERM makes the script clean up after itself.
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
});

it(
  'a one-minute chaos run loses nothing, duplicates nothing and leaves no order in an unexpected status',
  async () => {
    child = spawn(process.execPath, ['--import', 'tsx', 'scripts/chaos.ts', '--duration=60'], {
      cwd: REPO_ROOT,
      env: { ...process.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];

    const counters = output.split('\n').find((l) => l.startsWith('counters: '));
    expect(counters, output.slice(-4000)).toBeDefined();
    console.log(counters);
    const value = (name: string) => Number(new RegExp(`\\b${name}=(\\d+)`).exec(counters!)?.[1]);
    expect({ lost: value('lost'), duplicated: value('duplicated'), unexpected: value('unexpected') }, output.slice(-4000)).toEqual({
      lost: 0,
      duplicated: 0,
      unexpected: 0,
    });
    expect(value('accepted')).toBeGreaterThan(0);
    expect(value('applied')).toBe(value('accepted'));
    expect(value('faults')).toBeGreaterThanOrEqual(10);
    expect(code, output.slice(-4000)).toBe(0);
  },
  RUN_DEADLINE_MS,
);
