import type { HubDeps } from '../deps.js';
import { probeIntegrations } from '../operations/health-probe.js';
import { watchForIncidents } from '../operations/incident-watch.js';
import { sweepOnce } from './event-sweeper.js';
import { openTierSlaBreaches } from '../tiers/discrepancies.js';
import { OUTBOX_BATCH, relayOutboxOnce } from './outbox-relay.js';
import { startPeriodicTask, type PeriodicTask } from './periodic-task.js';

/**
 * The periodic work of the hub: publishing the outbox, re-creating lost jobs, probing partners'
 * health, and watching for incidents that no single call notices.
 */
export function startSchedulerTasks(deps: HubDeps): {
  relay: PeriodicTask;
  sweeper: PeriodicTask;
  healthProbe: PeriodicTask;
  incidentWatch: PeriodicTask;
  tierSlaWatch: PeriodicTask;
  stop(): Promise<void>;
} {
  const relay = startPeriodicTask('outbox-relay', deps.logger, deps.config.outboxPollMs, async () => (await relayOutboxOnce(deps)) >= OUTBOX_BATCH);
  const sweeper = startPeriodicTask('event-sweeper', deps.logger, deps.config.sweepIntervalMs, async () => {
    await sweepOnce(deps);
    return false;
  });
  const healthProbe = startPeriodicTask('health-probe', deps.logger, deps.config.healthProbeIntervalMs, async () => {
    await probeIntegrations(deps);
    return false;
  });
  const incidentWatch = startPeriodicTask('incident-watch', deps.logger, deps.config.sweepIntervalMs, async () => {
    await watchForIncidents(deps);
    return false;
  });
  const tierSlaWatch = startPeriodicTask('tier-sla-watch', deps.logger, deps.config.sweepIntervalMs, async () => (await openTierSlaBreaches(deps)) > 0);
  const all = [relay, sweeper, healthProbe, incidentWatch, tierSlaWatch];
  return {
    relay,
    sweeper,
    healthProbe,
    incidentWatch,
    tierSlaWatch,
    stop: async () => {
      await Promise.all(all.map((t) => t.stop()));
    },
  };
}
