import { ALL_EVENT_KINDS } from '../event-kinds/index.js';
import type { Metrics } from '../metrics.js';
import { callKinds } from '../partner-calls/call-kinds.js';
import { STATUS_REACTIONS } from '../partner-calls/status-reactions.js';
import { DISCREPANCY, DISCREPANCY_CODES } from '../tiers/tier-rules.js';

/**
 * Series a role exports at 0 from start-up, so that a rate over them is 0 rather than no data (alerts
 * and panels then tell "none happened" from "not scraped"). Each only in the role that counts it.
 */
export function initialiseWorkerSeries(metrics: Metrics): void {
  for (const kind of ALL_EVENT_KINDS) metrics.eventSlaBreaches.labels({ kind: kind.name }).inc(0);
  // The inbox finds these while applying events; the tier SLA breach is the scheduler's.
  for (const code of DISCREPANCY_CODES) if (code !== DISCREPANCY.TIER_SLA_BREACH) metrics.tierDiscrepancies.labels({ code }).inc(0);
}

export function initialiseSchedulerSeries(metrics: Metrics): void {
  metrics.tierDiscrepancies.labels({ code: DISCREPANCY.TIER_SLA_BREACH }).inc(0);
  for (const kind of ['inbound-event', ...Object.keys(callKinds)]) metrics.eventsSwept.labels({ kind }).inc(0);
  for (const outcome of ['ok', 'failed']) metrics.reconciliationRuns.labels({ outcome }).inc(0);
  for (const finding of ['new', 'known', 'unknown', 'failed']) metrics.reconciliationFindings.labels({ finding }).inc(0);
  for (const result of ['owed', 'suppressed_duplicate'])
    for (const status of notifiedStatuses()) metrics.customerNotifications.labels({ status, result }).inc(0);
}

/** The statuses that owe the customer a notification. */
function notifiedStatuses(): string[] {
  return Object.entries(STATUS_REACTIONS)
    .filter(([, reactions]) => reactions.some((r) => r.kind === 'notify.customer'))
    .map(([status]) => status);
}
