import type { HubDeps } from '../deps.js';
import { probeIntegrations } from '../operations/health-probe.js';
import { watchForIncidents } from '../operations/incident-watch.js';
import { sweepOnce } from './event-sweeper.js';
import { openTierSlaBreaches } from '../tiers/discrepancies.js';
import { reconcileOnce } from '../tiers/reconciliation.js';
import { createPartnerClients } from './hub-workers.js';
import { RelaySleep, relayTurn, wakeOnOutboxWrites } from './outbox-relay.js';
import { startPeriodicTask, type PeriodicTask } from './periodic-task.js';

/**
 * Under load the relay is awake and looks again this long after each look that found rows, so the
 * commits of that gap are published together instead of one relay transaction per commit (topic
 * latency, not the events' receipt → commit, pays it). A change after a quiet spell wakes it at once. 25 ms: the
 * live stream's change → client (SPEC: p99 ≤ 100 ms) pays about this gap, and at 50 ms its p99 was
 * 100–111 ms against 71–89 ms at 25 (reads bench, phase D); the scheduler spends a little more per
 * event for it (partner benchmark: 0.61–0.67 against 0.49–0.50 ms), and at 10 ms it spent about
 * twice as much (1.34 against 0.56 ms).
 */
export const RELAY_KICK_GAP_MS = 25;

/**
 * The periodic work of the hub: publishing the outbox, re-creating lost jobs, probing partners'
 * health, watching for incidents that no single call notices, watching the delivery tiers' SLA, and
 * reconciling quiet deliveries with PMP.
 */
export function startSchedulerTasks(deps: HubDeps): {
  relay: PeriodicTask;
  sweeper: PeriodicTask;
  healthProbe: PeriodicTask;
  incidentWatch: PeriodicTask;
  tierSlaWatch: PeriodicTask;
  reconciler: PeriodicTask;
  stop(): Promise<void>;
} {
  const sleep = new RelaySleep(deps, () => relay.kick());
  const relay: PeriodicTask = startPeriodicTask('outbox-relay', deps.logger, deps.config.outboxPollMs, () => relayTurn(deps, sleep, () => relay.kick()), {
    kickGapMs: RELAY_KICK_GAP_MS,
  });
  const relayWakeUp = wakeOnOutboxWrites(deps, relay);
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
  // Runs at least every RECONCILE_AFTER_MS (SPEC §5.2), and at most once a second.
  const { pmp } = createPartnerClients(deps);
  const reconciler = startPeriodicTask('pmp-reconciler', deps.logger, Math.max(1000, Math.min(deps.config.reconcileAfterMs, 60_000)), async () => {
    if (!deps.config.integrations.pmp.baseUrl) return false;
    await reconcileOnce(deps, (orderId) => pmp.delivery(orderId));
    return false;
  });
  const all = [relay, sweeper, healthProbe, incidentWatch, tierSlaWatch, reconciler];
  return {
    relay,
    sweeper,
    healthProbe,
    incidentWatch,
    tierSlaWatch,
    reconciler,
    stop: async () => {
      await relayWakeUp.stop();
      await Promise.all(all.map((t) => t.stop()));
      await sleep.close();
    },
  };
}
