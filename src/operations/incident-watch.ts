import { and, eq, lt, sql } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { inboundEvents } from '../db/schema/index.js';
import { deadLetterCount } from './dead-letters.js';
import { raiseIncident, resolveIncident } from './incidents.js';

export const DLQ_INCIDENT_CAUSE = 'dlq_above_threshold';
export const EVENT_SLA_INCIDENT_CAUSE = 'event_sla_breach';

/**
 * Checks the conditions that raise incidents on their own (no single call notices them): the
 * dead-letter queue past DLQ_ALERT_THRESHOLD, and accepted events waiting longer than EVENT_SLA_MS.
 * Each is raised once while it lasts and resolved when it clears.
 */
export async function watchForIncidents(deps: HubDeps): Promise<void> {
  const counts = await deadLetterCount(deps);
  const dead = Object.values(counts).reduce((a, b) => a + b, 0);
  if (dead > deps.config.dlqAlertThreshold) {
    await raiseIncident(deps, {
      cause: DLQ_INCIDENT_CAUSE,
      severity: 'error',
      summary: `${dead} jobs in the dead-letter queue (threshold ${deps.config.dlqAlertThreshold})`,
      detail: { deadLetters: counts, threshold: deps.config.dlqAlertThreshold },
    });
  } else {
    await resolveIncident(deps, DLQ_INCIDENT_CAUSE, `dead-letter queue down to ${dead}`);
  }

  const cutoff = new Date(deps.clock.now() - deps.config.eventSlaMs);
  const [late] = await deps.db
    .select({ n: sql<number>`count(*)::int`, oldest: sql<string | null>`min(${inboundEvents.receivedAt})::text` })
    .from(inboundEvents)
    .where(and(eq(inboundEvents.state, 'queued'), lt(inboundEvents.receivedAt, cutoff)));
  if ((late?.n ?? 0) > 0) {
    await raiseIncident(deps, {
      cause: EVENT_SLA_INCIDENT_CAUSE,
      severity: 'critical',
      summary: `${late!.n} accepted events waiting longer than ${deps.config.eventSlaMs} ms`,
      detail: { waiting: late!.n, oldestReceivedAt: late!.oldest, slaMs: deps.config.eventSlaMs },
    });
  } else {
    await resolveIncident(deps, EVENT_SLA_INCIDENT_CAUSE, 'no accepted event is waiting past its SLA');
  }
}
