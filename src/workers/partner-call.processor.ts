import { DelayedError, type Job } from 'bullmq';
import { eq } from 'drizzle-orm';
import type { HubDeps } from '../deps.js';
import { incidents } from '../db/schema/index.js';
import { RetriableIntegrationError } from '../errors.js';
import type { CustomerNotificationClient } from '../integrations/customer-notifications.js';
import type { IncidentWebhookClient } from '../integrations/incident-webhook.js';
import { CallNotDueError } from '../integrations/partner-http.js';
import type { SlickClient } from '../integrations/slick.js';
import { incidentWebhookBody, triggerPageInFlight } from '../operations/incidents.js';
import { notifyCustomer } from '../orders/customer-notifications.js';
import { confirmShipmentWithSlick } from '../orders/slick-confirmation.js';
import {
  partnerCallIntegration,
  partnerCallJobs,
  retryDelayMs,
  type PartnerCallJobData,
  type PartnerCallJobDataOf,
  type PartnerCallJobName,
} from '../queues/partner-calls.queue.js';

export interface PartnerClients {
  slick: SlickClient;
  notify: CustomerNotificationClient;
  incident: IncidentWebhookClient;
}

interface CallContext<N extends PartnerCallJobName> {
  data: PartnerCallJobDataOf<N>;
  attempt: number;
  lastAttempt: boolean;
}

type Processor<N extends PartnerCallJobName> = (deps: HubDeps, clients: PartnerClients, call: CallContext<N>) => Promise<unknown>;

/** How soon a resolve page held back by its incident's trigger page looks again. */
const RESOLVE_PAGE_RECHECK_MS = 250;

/** One processor per partner-call job name; a job name without one is a compile error. */
const processors: { [N in PartnerCallJobName]: Processor<N> } = {
  'slick.ship-confirmation': (deps, clients, call) => confirmShipmentWithSlick(deps, clients.slick, { ...call.data, attempt: call.attempt, lastAttempt: call.lastAttempt }),
  'notify.customer': (deps, clients, call) => notifyCustomer(deps, clients.notify, { ...call.data, attempt: call.attempt }),
  'incident.notify': async (deps, clients, call) => {
    const [incident] = await deps.db.select().from(incidents).where(eq(incidents.id, call.data.incidentId));
    if (!incident || !clients.incident.enabled) return 'nothing_to_do';
    // A receiver must never see an incident resolved before it was raised.
    if (call.data.action === 'resolve' && (await triggerPageInFlight(deps, incident.id))) {
      throw new CallNotDueError(deps.clock.now() + RESOLVE_PAGE_RECHECK_MS, `incident ${incident.id}: the resolve page waits for the trigger page`);
    }
    return clients.incident.post(incidentWebhookBody(incident, call.data.action), call.attempt);
  },
};

/**
 * Runs a partner-call job. A call that is not due (the integration's breaker is open, or an incident's
 * resolve page waits for its trigger page) moves the job back to the delayed set until it is: it is
 * not failed and uses no attempt.
 */
export function processPartnerCall(deps: HubDeps, clients: PartnerClients) {
  return async (job: Job<PartnerCallJobData, void, PartnerCallJobName>, token?: string) => {
    const name = job.name;
    const data = partnerCallJobs[name].parse(job.data);
    const attempt = job.attemptsMade + 1;
    const processor = processors[name] as Processor<PartnerCallJobName>;
    try {
      await processor(deps, clients, { data, attempt, lastAttempt: attempt >= (job.opts.attempts ?? 1) });
    } catch (err) {
      if (err instanceof CallNotDueError) {
        // Spread the waiting jobs over a tenth of a second so they do not all return at one instant.
        const resumeAt = Math.max(err.retryAt, deps.clock.now()) + Math.floor(Math.random() * 100);
        await job.moveToDelayed(resumeAt, token);
        throw new DelayedError();
      }
      throw err;
    }
  };
}

/** BullMQ backoff for partner calls: the integration's configured delays with jitter, or Retry-After. */
export function partnerCallBackoff(deps: HubDeps) {
  return (attemptsMade: number, _type?: string, err?: Error, job?: { name: string }) => {
    const integration = partnerCallIntegration[job?.name as PartnerCallJobName] ?? 'slick';
    const retryAfter = err instanceof RetriableIntegrationError ? err.retryAfterMs : undefined;
    return retryDelayMs(deps.config.integrations[integration].retryDelaysMs, attemptsMade, retryAfter);
  };
}
