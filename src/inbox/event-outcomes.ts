import type { Redis } from 'ioredis';

/**
 * Tells web processes that an event's outcome was committed, so a partner waiting with
 * `Prefer: wait=N` gets its answer without polling. Postgres stays the source of truth: a lost
 * notice only means the waiter reads the row at its deadline.
 */
export function eventOutcomeChannel(prefix: string): string {
  return `${prefix}:event-outcomes`;
}

export async function announceOutcomes(redis: Redis, prefix: string, eventIds: string[]): Promise<void> {
  if (eventIds.length === 0) return;
  await redis.publish(eventOutcomeChannel(prefix), JSON.stringify(eventIds));
}

/** How often a waiter also reads the event row, in case no announcement comes. */
export const WAITER_POLL_MS = 250;

export class EventOutcomeWaiters {
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(
    private readonly subscriber: Redis,
    private readonly channel: string,
  ) {}

  async start(): Promise<void> {
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      let ids: unknown;
      try {
        ids = JSON.parse(message);
      } catch {
        return;
      }
      if (!Array.isArray(ids)) return;
      for (const id of ids) {
        const set = this.waiters.get(String(id));
        if (set) for (const wake of set) wake();
      }
    });
    await this.subscriber.subscribe(this.channel);
  }

  /** Resolves when the event's outcome is announced, or when `ms` pass, whichever is first. */
  wait(eventId: string, ms: number, isDone: () => Promise<boolean>): Promise<void> {
    return new Promise<void>((resolve) => {
      const registry = this.waiters;
      const waiters = registry.get(eventId) ?? new Set();
      registry.set(eventId, waiters);
      // The outcome may have been committed before we subscribed to it, or without an announcement
      // (a duplicate that waits on the first's job): look at the row now and then as well.
      const look = () =>
        isDone().then(
          (done) => (done ? finish() : undefined),
          () => {},
        );
      const poll = setInterval(look, WAITER_POLL_MS);
      const deadline = setTimeout(() => finish(), ms);
      function finish() {
        clearTimeout(deadline);
        clearInterval(poll);
        waiters.delete(finish);
        if (waiters.size === 0) registry.delete(eventId);
        resolve();
      }
      waiters.add(finish);
      void look();
    });
  }
}
