import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LabelValues } from 'prom-client';

/** SPEC §8 / story 3.2.10: an event's receipt → commit within 50 ms. */
export const EVENT_SLA_SECONDS = 0.05;
/** Story 3.6.9: status queries within 10 ms. */
export const STATUS_READ_SLA_SECONDS = 0.01;
/** The routes that read an order's status (matched route patterns, as in hub_http_request_duration_seconds). */
export const STATUS_READ_ROUTES = [
  '/api/orders/:orderId',
  '/api/orders/:orderId/history',
  '/api/orders/:orderId/tiers',
  '/api/orders/:orderId/events',
  '/api/events/:eventId',
] as const;

type ProcessRole = 'web' | 'worker' | 'scheduler';

/** A histogram that also counts each observation over its SLA, so breaches are a plain counter to alert on. */
class SlaHistogram<T extends string> extends Histogram<T> {
  constructor(config: ConstructorParameters<typeof Histogram<T>>[0], breaches: (labels: LabelValues<T>, seconds: number) => void) {
    super(config);
    // prom-client sets `observe` on the instance in its constructor (with or without exemplars), and
    // startTimer ends through it, so the instance's function is the one to wrap. Its forms:
    // (value), (labels, value) and ({labels, value, exemplarLabels}).
    const observe = this.observe.bind(this) as (a: unknown, b?: number) => void;
    this.observe = ((labelsOrValue: unknown, value?: number) => {
      observe(labelsOrValue, value);
      if (typeof labelsOrValue === 'number') breaches({}, labelsOrValue);
      else if (value !== undefined) breaches((labelsOrValue ?? {}) as LabelValues<T>, value);
      else {
        const data = labelsOrValue as { labels?: LabelValues<T>; value?: number };
        if (typeof data?.value === 'number') breaches(data.labels ?? {}, data.value);
      }
    }) as Histogram<T>['observe'];
  }
}

/**
 * Every metric the hub's code updates, on one Registry per process (passed in, never global), each
 * series labelled with the process `role`. Names follow Prometheus conventions: units in the name,
 * `_total` for counters, label values from small fixed sets (never an order or event id).
 *
 * Labelled metrics are registered in every role but have series only where they are updated, so each
 * series comes from one role. A metric without labels always has a series once registered, so it is
 * registered only in the role that updates it. Gauges whose truth is in Postgres or Redis (queues, dead
 * letters, breakers, orders per status…) are not here: the scheduler alone exports them
 * (src/observability/store-gauges.ts), so Prometheus never adds up copies of one fact.
 */
export function createMetrics(role: ProcessRole) {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  const everywhere = [registry];
  const only = (owner: ProcessRole) => (owner === role ? [registry] : []);

  const eventSlaBreaches = new Counter({
    name: 'hub_event_sla_breaches_total',
    help: `Partner events whose receipt → commit took longer than the ${EVENT_SLA_SECONDS * 1000} ms SLA, by event kind`,
    labelNames: ['kind'] as const,
    registers: everywhere,
  });
  const statusReadSlaBreaches = new Counter({
    name: 'hub_status_read_sla_breaches_total',
    help: `Order status reads answered slower than the ${STATUS_READ_SLA_SECONDS * 1000} ms SLA, by route`,
    labelNames: ['route'] as const,
    registers: everywhere,
  });
  const readRoutes = new Set<string>(STATUS_READ_ROUTES);
  /** What this process's live stream has now, for the gauges below; set by the stream, read at each scrape. */
  const liveStream: { sample?: () => { clients: number; bufferedBytes: number } } = {};
  if (role === 'web') for (const route of STATUS_READ_ROUTES) statusReadSlaBreaches.labels({ route }).inc(0);

  return {
    registry,
    httpRequestDuration: new SlaHistogram(
      {
        name: 'hub_http_request_duration_seconds',
        help: 'HTTP request latency by route, method and status',
        labelNames: ['method', 'route', 'status'] as const,
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: everywhere,
      },
      (labels, seconds) => {
        // Only a read answered (found or not) counts: a refusal (401, 403, 429) is not a status read.
        const answered = () => labels.status === '404' || String(labels.status).startsWith('2');
        if (labels.method === 'GET' && seconds > STATUS_READ_SLA_SECONDS && readRoutes.has(String(labels.route)) && answered()) {
          statusReadSlaBreaches.inc({ route: String(labels.route) });
        }
      },
    ),
    eventReceiptToCommit: new SlaHistogram(
      {
        name: 'hub_event_receipt_to_commit_seconds',
        help: 'Time from a partner event being stored at intake to its outcome being committed, by event kind and outcome',
        labelNames: ['kind', 'state'] as const,
        buckets: [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 5, 30],
        registers: everywhere,
      },
      (labels, seconds) => {
        if (seconds > EVENT_SLA_SECONDS) eventSlaBreaches.inc({ kind: String(labels.kind ?? 'unknown') });
      },
    ),
    eventSlaBreaches,
    statusReadSlaBreaches,
    eventsReceived: new Counter({
      name: 'hub_events_received_total',
      help: 'Partner events received, by event kind and whether they were new or duplicates',
      labelNames: ['kind', 'result'] as const,
      registers: everywhere,
    }),
    eventsProcessed: new Counter({
      name: 'hub_events_processed_total',
      help: 'Partner events processed, by event kind, outcome state and reason',
      labelNames: ['kind', 'state', 'reason'] as const,
      registers: everywhere,
    }),
    transitions: new Counter({
      name: 'hub_status_transitions_total',
      help: 'Order status changes written to history, by from, to and source',
      labelNames: ['from', 'to', 'source'] as const,
      registers: everywhere,
    }),
    partnerCalls: new Histogram({
      name: 'hub_partner_call_duration_seconds',
      help: 'Outbound partner call attempts: latency by integration, operation and outcome (success, retriable, non_retriable)',
      labelNames: ['integration', 'operation', 'outcome'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: everywhere,
    }),
    outboxPublished: new Counter({
      name: 'hub_outbox_published_total',
      help: 'Messages published to the topic from the outbox',
      registers: only('scheduler'),
    }),
    customerNotifications: new Counter({
      name: 'hub_customer_notifications_total',
      help: 'Customer notifications per status reached: owed (one per order and status, then sent) or suppressed as a duplicate',
      labelNames: ['status', 'result'] as const,
      registers: everywhere,
    }),
    // The live stream (GET /api/stream) of this web process: its clients and what they have not taken
    // yet, read from the stream when /metrics is scraped (src/api/status-stream.ts sets `liveStream`),
    // and the slow clients dropped.
    liveStream,
    streamClients: new Gauge({
      name: 'hub_stream_clients',
      help: 'Live stream (GET /api/stream) clients connected to this web process',
      registers: only('web'),
      collect() {
        this.set(liveStream.sample?.().clients ?? 0);
      },
    }),
    streamBufferedBytes: new Gauge({
      name: 'hub_stream_buffered_bytes',
      help: 'Bytes written to this web process’s stream clients that their connections have not taken yet',
      registers: only('web'),
      collect() {
        this.set(liveStream.sample?.().bufferedBytes ?? 0);
      },
    }),
    streamClientsDropped: new Counter({
      name: 'hub_stream_clients_dropped_total',
      help: 'Stream clients dropped for falling too far behind (they resume by Last-Event-ID)',
      registers: only('web'),
    }),
    integrationUp: new Gauge({
      name: 'hub_integration_up',
      help: 'Whether the last /health probe of the integration succeeded (1) or not (0)',
      labelNames: ['integration'] as const,
      registers: everywhere,
    }),
    tierDiscrepancies: new Counter({
      name: 'hub_tier_discrepancies_total',
      help: 'Delivery discrepancies found (each opens a manual-intervention case), by code',
      labelNames: ['code'] as const,
      registers: everywhere,
    }),
    reconciliationRuns: new Counter({
      name: 'hub_reconciliation_runs_total',
      help: 'Runs of the PMP reconciliation, by outcome (ok, failed)',
      labelNames: ['outcome'] as const,
      registers: everywhere,
    }),
    reconciliationFindings: new Counter({
      name: 'hub_reconciliation_findings_total',
      help: 'What the reconciliation learnt per order asked: a state the hub had not heard (new), one it had (known), none (unknown), or nothing because PMP or the store failed (failed)',
      labelNames: ['finding'] as const,
      registers: everywhere,
    }),
    eventsSwept: new Counter({
      name: 'hub_events_swept_total',
      help: 'Stored events or partner calls whose lost job the sweeper re-created',
      labelNames: ['kind'] as const,
      registers: everywhere,
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
