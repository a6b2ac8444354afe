import type { Job } from 'bullmq';
import type { HubDeps } from '../deps.js';
import { RetriableIntegrationError } from '../errors.js';
import type { SlickClient } from '../integrations/slick.js';
import { confirmShipmentWithSlick } from '../orders/slick-confirmation.js';
import { partnerCallIntegration, partnerCallJobs, retryDelayMs, type PartnerCallJobData, type PartnerCallJobName } from '../queues/partner-calls.queue.js';

export interface PartnerClients {
  slick: SlickClient;
}

type Processor<N extends PartnerCallJobName> = (deps: HubDeps, clients: PartnerClients, job: Job<PartnerCallJobData, void, N>) => Promise<unknown>;

/** One processor per partner-call job name; a job name without one is a compile error. */
const processors: { [N in PartnerCallJobName]: Processor<N> } = {
  'slick.ship-confirmation': (deps, clients, job) => {
    const data = partnerCallJobs['slick.ship-confirmation'].parse(job.data);
    const attempt = job.attemptsMade + 1;
    return confirmShipmentWithSlick(deps, clients.slick, {
      ...data,
      attempt,
      lastAttempt: attempt >= (job.opts.attempts ?? 1),
    });
  },
};

export function processPartnerCall(deps: HubDeps, clients: PartnerClients) {
  return async (job: Job<PartnerCallJobData, void, PartnerCallJobName>) => {
    const processor = processors[job.name] as Processor<PartnerCallJobName>;
    await processor(deps, clients, job);
  };
}

/** BullMQ backoff for partner calls: the integration's configured delays with jitter, or Retry-After. */
export function partnerCallBackoff(deps: HubDeps) {
  return (attemptsMade: number, _type?: string, err?: Error, job?: { name: string }) => {
    const integration = partnerCallIntegration[(job?.name ?? 'slick.ship-confirmation') as PartnerCallJobName] ?? 'slick';
    const retryAfter = err instanceof RetriableIntegrationError ? err.retryAfterMs : undefined;
    return retryDelayMs(deps.config.integrations[integration].retryDelaysMs, attemptsMade, retryAfter);
  };
}
