import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { HubDeps } from '../deps.js';
import type { IntegrationName } from '../config.js';
import { createCircuitBreakers } from '../integrations/circuit-breaker.js';
import { CustomerNotificationClient } from '../integrations/customer-notifications.js';
import { IncidentWebhookClient } from '../integrations/incident-webhook.js';
import { MaoClient } from '../integrations/mao.js';
import { PartnerHttp } from '../integrations/partner-http.js';
import { PmpClient } from '../integrations/pmp.js';
import { SlickClient } from '../integrations/slick.js';
import { onBreakerChange } from '../operations/breaker-changes.js';
import { auditPartnerCalls } from '../operations/partner-audit.js';
import { callHealthSample } from '../operations/integration-health.js';
import { InboxBatches } from '../inbox/inbox-batches.js';
import { INBOUND_EVENTS_QUEUE, inboundEventJobs, type InboundEventJobData, type InboundEventJobName } from '../queues/inbound-events.queue.js';
import { PARTNER_CALLS_QUEUE, type PartnerCallJobData, type PartnerCallJobName } from '../queues/partner-calls.queue.js';
import { partnerCallBackoff, processPartnerCall, type PartnerClients } from './partner-call.processor.js';

/** What the processors of one worker process share. */
interface InboundEventContext {
  inbox: InboxBatches;
}

/** Every inbound job names a stored event; the engine applies it by its stored kind's rules. */
function applyStoredEvent(context: InboundEventContext, job: InboundEventJobData) {
  return context.inbox.apply({ eventId: job.eventId, announce: job.announce ?? false });
}

/** Processors of partner events, typed per job name: a job name without a processor does not compile. */
const inboundEventProcessors: { [N in InboundEventJobName]: (context: InboundEventContext, data: InboundEventJobData) => Promise<unknown> } = {
  'inbound-event': (context, data) => applyStoredEvent(context, inboundEventJobs['inbound-event'].parse(data)),
  'ship-event': (context, data) => applyStoredEvent(context, inboundEventJobs['ship-event'].parse(data)),
};

/** A crashed worker's jobs are found stalled and re-run after about JOB_LOCK_MS. */
function claimOptions(deps: HubDeps) {
  return {
    prefix: deps.config.redisPrefix,
    lockDuration: deps.config.jobLockMs,
    stalledInterval: deps.config.jobLockMs,
    // A job may stall this many times (each a crash mid-job) before it is failed; the sweeper still retries it.
    maxStalledCount: 3,
  };
}

export interface HubWorkers {
  close(): Promise<void>;
}

/**
 * The partner clients of one process, each over PartnerHttp with its integration's timeout, its shared
 * circuit breaker (Redis), the audit log and breaker incidents: what the partner-call jobs use, and
 * what any other caller of a partner (the PMP reconciliation's `pmp.delivery`) should use too.
 */
export function createPartnerClients(deps: HubDeps): PartnerClients {
  const breakers = createCircuitBreakers(deps.redis, deps.config, deps.clock);
  const audit = auditPartnerCalls(deps);
  const breakerChanged = onBreakerChange(deps);
  const http = (name: IntegrationName) =>
    new PartnerHttp(deps.config.integrations[name], {
      breaker: breakers[name],
      healthSample: (record) =>
        callHealthSample(deps.config.redisPrefix, name, {
          at: deps.clock.now(),
          ok: record.errorClass === null,
          latencyMs: Math.round(record.latencyMs),
          status: record.status,
        }),
      observers: [audit],
      onBreakerChange: breakerChanged,
      onBookkeepingError: (err) => deps.logger.error({ err: (err as Error).message, integration: name }, 'partner call bookkeeping failed'),
      now: () => deps.clock.now(),
    });
  return {
    slick: new SlickClient(http('slick')),
    pmp: new PmpClient(http('pmp')),
    mao: new MaoClient(http('mao')),
    notify: new CustomerNotificationClient(http('notify')),
    incident: new IncidentWebhookClient(http('incident')),
  };
}

/**
 * Starts the queue workers of one worker process. `connection` must allow blocking commands
 * (maxRetriesPerRequest: null); BullMQ duplicates it for each worker's blocking connection.
 */
export function startHubWorkers(deps: HubDeps, connection: Redis): HubWorkers {
  const clients = createPartnerClients(deps);

  const inboundContext: InboundEventContext = { inbox: new InboxBatches(deps) };
  const inbound = new Worker<InboundEventJobData, void, InboundEventJobName>(
    INBOUND_EVENTS_QUEUE,
    async (job) => {
      await inboundEventProcessors[job.name](inboundContext, job.data);
    },
    { ...claimOptions(deps), concurrency: deps.config.workerConcurrency, connection },
  );
  // Partner calls have their own, smaller budget (PARTNER_CALL_CONCURRENCY): a slow or busy partner
  // then cannot take the event loop, or the Postgres pool, from inbound events.
  const partnerCalls = new Worker<PartnerCallJobData, void, PartnerCallJobName>(PARTNER_CALLS_QUEUE, processPartnerCall(deps, clients), {
    ...claimOptions(deps),
    connection,
    concurrency: deps.config.partnerCallConcurrency,
    settings: { backoffStrategy: partnerCallBackoff(deps) },
  });
  for (const w of [inbound, partnerCalls]) {
    w.on('error', (err) => deps.logger.warn({ err: err.message, queue: w.name }, 'worker error'));
    w.on('failed', (job, err) =>
      deps.logger.warn({ queue: w.name, jobId: job?.id, job: job?.name, attemptsMade: job?.attemptsMade, err: err.message }, 'job attempt failed'),
    );
  }
  let closing: Promise<void> | undefined;
  return {
    // Finishes the jobs in hand (BullMQ hands back nothing it has not finished: unfinished jobs stall and are re-run).
    close: () => (closing ??= Promise.allSettled([inbound.close(), partnerCalls.close()]).then(() => undefined)),
  };
}
