import { eq } from 'drizzle-orm';
import { incidents } from '../db/schema/index.js';
import { CallNotDueError } from '../integrations/partner-http.js';
import { incidentWebhookBody, triggerPageInFlight } from '../operations/incidents.js';
import { partnerCallJobs } from '../queues/partner-calls.queue.js';
import type { UnrecordedCallKind } from './call-kind.js';

/** How soon a resolve page held back by its incident's trigger page looks again. */
const RESOLVE_PAGE_RECHECK_MS = 250;

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
