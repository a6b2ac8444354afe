import { eq } from 'drizzle-orm';
import { incidents } from '../db/schema/index.js';
import type { HubDeps } from '../deps.js';
import { CallNotDueError } from '../integrations/partner-http.js';
import { partnerCallJobId, partnerCallJobs } from '../queues/partner-calls.queue.js';
import type { UnrecordedCallKind } from './call-kind.js';

/** How soon a resolve page held back by its incident's trigger page looks again. */
const RESOLVE_PAGE_RECHECK_MS = 250;

type IncidentRow = typeof incidents.$inferSelect;

/** Pages the incident receiver about an incident opening (trigger) or resolving (resolve). */
export const incidentPage: UnrecordedCallKind<'incident.notify'> = {
  name: 'incident.notify',
  integration: 'incident',
  data: partnerCallJobs['incident.notify'],
  perOrder: false,
  identity: (data) => ({ subject: data.incidentId, key: data.action }),
  sweep: {
    notSwept:
      'an incident is about the hub, not an order, so it has no order_calls record; the incident itself is in Postgres ' +
      '(GET /api/incidents), and re-sending a page without a record of its delivery could page a resolve before its trigger',
  },

  async run({ deps, clients, data, attempt, idempotencyKey }) {
    const [incident] = await deps.db.select().from(incidents).where(eq(incidents.id, data.incidentId));
    if (!incident || !clients.incident.enabled) return 'nothing_to_do';
    // A receiver must never see an incident resolved before it was raised.
    if (data.action === 'resolve' && (await triggerPageInFlight(deps, incident.id))) {
      throw new CallNotDueError(deps.clock.now() + RESOLVE_PAGE_RECHECK_MS, `incident ${incident.id}: the resolve page waits for the trigger page`);
    }
    return clients.incident.post(incidentWebhookBody(incident, data.action), { attempt, idempotencyKey });
  },
};

/**
 * Whether the trigger page of an incident is still to be delivered (its job waits, runs or waits to
 * retry). A page that was delivered, failed for good, or never scheduled holds nothing back.
 */
async function triggerPageInFlight(deps: Pick<HubDeps, 'queues'>, incidentId: string): Promise<boolean> {
  // The id callJobId gives this page (its identity's key, the action, is never ''); callJobId itself
  // is not imported, since it looks the kind up in the registry that imports this file.
  const { subject, key } = incidentPage.identity({ incidentId, action: 'trigger' });
  const job = await deps.queues.partnerCalls.getJob(partnerCallJobId('incident.notify', subject, key));
  if (!job) return false;
  return PAGE_IN_FLIGHT_STATES.has(await job.getState());
}
const PAGE_IN_FLIGHT_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/** The PagerDuty Events v2-like body posted to INCIDENT_WEBHOOK_URL. */
function incidentWebhookBody(incident: IncidentRow, action: 'trigger' | 'resolve') {
  return {
    event_action: action,
    dedup_key: `fulfillment-hub:${incident.cause}:${incident.id}`,
    payload: {
      summary: incident.summary,
      source: 'fulfillment-hub',
      severity: incident.severity,
      timestamp: (action === 'resolve' ? (incident.resolvedAt ?? new Date()) : incident.openedAt).toISOString(),
      component: incident.cause.split(':')[0],
      custom_details: { incidentId: incident.id, cause: incident.cause, ...incident.detail },
    },
  };
}
