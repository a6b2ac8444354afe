import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric the hub exports, on one Registry per process (passed in, never global). */
export function createMetrics(role: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpRequestDuration: new Histogram({
      name: 'hub_http_request_duration_seconds',
      help: 'HTTP request latency by route, method and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    eventReceiptToCommit: new Histogram({
      name: 'hub_event_receipt_to_commit_seconds',
      help: 'Time from a partner event being stored at intake to its outcome being committed, by event kind and outcome',
      labelNames: ['kind', 'state'] as const,
      buckets: [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 5, 30],
      registers: [registry],
    }),
    eventsReceived: new Counter({
      name: 'hub_events_received_total',
      help: 'Partner events received, by event kind and whether they were new or duplicates',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
    eventsProcessed: new Counter({
      name: 'hub_events_processed_total',
      help: 'Partner events processed, by event kind, outcome state and reason',
      labelNames: ['kind', 'state', 'reason'] as const,
      registers: [registry],
    }),
    transitions: new Counter({
      name: 'hub_status_transitions_total',
      help: 'Order status changes written to history, by from, to and source',
      labelNames: ['from', 'to', 'source'] as const,
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'hub_queue_jobs',
      help: 'Jobs per queue and state (read from Redis at scrape time)',
      labelNames: ['queue', 'state'] as const,
      registers: [registry],
    }),
    partnerCalls: new Histogram({
      name: 'hub_partner_call_duration_seconds',
      help: 'Outbound partner call latency by integration and outcome',
      labelNames: ['integration', 'outcome'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    outboxPublished: new Counter({
      name: 'hub_outbox_published_total',
      help: 'Messages published to the topic from the outbox',
      registers: [registry],
    }),
    circuitState: new Gauge({
      name: 'hub_circuit_state',
      help: 'Circuit breaker state per integration: 0 closed, 1 half-open, 2 open',
      labelNames: ['integration'] as const,
      registers: [registry],
    }),
    integrationUp: new Gauge({
      name: 'hub_integration_up',
      help: 'Whether the last /health probe of the integration succeeded (1) or not (0)',
      labelNames: ['integration'] as const,
      registers: [registry],
    }),
    deadLetters: new Gauge({
      name: 'hub_dead_letter_jobs',
      help: 'Jobs in the dead-letter queue (failed set) per queue',
      labelNames: ['queue'] as const,
      registers: [registry],
    }),
    openIncidents: new Gauge({
      name: 'hub_open_incidents',
      help: 'Incidents currently open',
      registers: [registry],
    }),
    openInterventions: new Gauge({
      name: 'hub_open_interventions',
      help: 'Manual-intervention cases currently open',
      registers: [registry],
    }),
    slaBreaches: new Gauge({
      name: 'hub_events_waiting_past_sla',
      help: 'Accepted events still waiting longer than EVENT_SLA_MS',
      registers: [registry],
    }),
    tierDiscrepancies: new Counter({
      name: 'hub_tier_discrepancies_total',
      help: 'Delivery discrepancies found (each opens a manual-intervention case), by code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    reconciliationRuns: new Counter({
      name: 'hub_reconciliation_runs_total',
      help: 'Runs of the PMP reconciliation, by outcome (ok, failed)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    reconciliationFindings: new Counter({
      name: 'hub_reconciliation_findings_total',
      help: 'What the reconciliation learnt per order asked: a state the hub had not heard (new), one it had (known), none (unknown), or nothing because PMP or the store failed (failed)',
      labelNames: ['finding'] as const,
      registers: [registry],
    }),
    eventsSwept: new Counter({
      name: 'hub_events_swept_total',
      help: 'Stored events or partner calls whose lost job the sweeper re-created',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
