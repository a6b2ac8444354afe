import type { HubDeps } from '../deps.js';
import { sweepOnce } from './event-sweeper.js';
import { OUTBOX_BATCH, relayOutboxOnce } from './outbox-relay.js';
import { startPeriodicTask, type PeriodicTask } from './periodic-task.js';

/** The periodic work of the hub: publishing the outbox, and re-creating lost jobs. */
export function startSchedulerTasks(deps: HubDeps): { relay: PeriodicTask; sweeper: PeriodicTask; stop(): Promise<void> } {
  const relay = startPeriodicTask('outbox-relay', deps.logger, deps.config.outboxPollMs, async () => (await relayOutboxOnce(deps)) >= OUTBOX_BATCH);
  const sweeper = startPeriodicTask('event-sweeper', deps.logger, deps.config.sweepIntervalMs, async () => {
    await sweepOnce(deps);
    return false;
  });
  return {
    relay,
    sweeper,
    stop: async () => {
      await Promise.all([relay.stop(), sweeper.stop()]);
    },
  };
}
