/**
 * The hub's Grafana dashboard, as data: `npm run dashboards` (scripts/build-dashboards.ts) writes it to
 * ops/grafana/dashboards/fulfillment-hub.json, which Grafana loads at start (docker-compose.yml).
 * test/integration/observability.test.ts checks that the committed JSON is this, that every metric its
 * queries name is exported by some role, and that every query returns data from a real Prometheus.
 *
 * Gauges the scheduler reads from Postgres or Redis are taken `max by` their own labels first, so two
 * schedulers never double them. `$__rate_interval` is Grafana's rate window for the panel's step.
 */

export interface PanelQuery {
  expr: string;
  legend: string;
}

export interface PanelSpec {
  title: string;
  description: string;
  type: 'timeseries' | 'stat' | 'bargauge' | 'table';
  unit?: string;
  /** Width in grid columns (of 24); height is 8. */
  width: number;
  queries: PanelQuery[];
  /** A line (timeseries) or colour step (stat) at this value: the SLA or threshold the panel is read against. */
  threshold?: number;
  stacked?: boolean;
}

export interface RowSpec {
  title: string;
  panels: PanelSpec[];
}

const q = (expr: string, legend = ''): PanelQuery => ({ expr, legend });
const RATE = '$__rate_interval';

export const DASHBOARD_ROWS: RowSpec[] = [
  {
    title: 'Real-time overview',
    panels: [
      {
        title: 'Orders per status',
        description: 'Current status of every order (scheduler, from Postgres).',
        type: 'bargauge',
        width: 8,
        queries: [q('sum by (status) (max by (status, location) (hub_orders))', '{{status}}')],
      },
      {
        title: 'Orders per location',
        description: 'Orders per store location, all statuses (scheduler, from Postgres).',
        type: 'bargauge',
        width: 8,
        queries: [q('topk(25, sum by (location) (max by (status, location) (hub_orders)))', '{{location}}')],
      },
      {
        title: 'Events waiting',
        description: 'Accepted partner events past EVENT_SLA_MS, and the age of the oldest one not yet applied.',
        type: 'stat',
        width: 8,
        threshold: 1,
        queries: [q('max(hub_events_waiting_past_sla)', 'past SLA'), q('max(hub_oldest_queued_event_age_seconds)', 'oldest queued (s)')],
      },
      {
        title: 'Events/s by kind and outcome',
        description: 'Partner events applied, ignored, rejected or failed per second (workers).',
        type: 'timeseries',
        unit: 'ops',
        width: 12,
        stacked: true,
        queries: [q(`sum by (kind, state) (rate(hub_events_processed_total[${RATE}]))`, '{{kind}} {{state}}')],
      },
      {
        title: 'Receipt → commit p50 / p99 (SLA 50 ms)',
        description: 'From an event stored at intake to its outcome committed. The line is the 50 ms SLA.',
        type: 'timeseries',
        unit: 's',
        width: 12,
        threshold: 0.05,
        queries: [
          q(`histogram_quantile(0.5, sum by (le) (rate(hub_event_receipt_to_commit_seconds_bucket[${RATE}])))`, 'p50'),
          q(`histogram_quantile(0.99, sum by (le) (rate(hub_event_receipt_to_commit_seconds_bucket[${RATE}])))`, 'p99'),
        ],
      },
      {
        title: 'Events received/s (new, duplicate)',
        description: 'Partner events accepted at intake per second, by kind and whether they were new (web).',
        type: 'timeseries',
        unit: 'ops',
        width: 12,
        queries: [q(`sum by (kind, result) (rate(hub_events_received_total[${RATE}]))`, '{{kind}} {{result}}')],
      },
      {
        title: 'Event SLA breaches/s',
        description: 'Events whose receipt → commit took longer than 50 ms (workers).',
        type: 'timeseries',
        unit: 'ops',
        width: 12,
        queries: [q(`sum by (kind) (rate(hub_event_sla_breaches_total[${RATE}]))`, '{{kind}}')],
      },
    ],
  },
  {
    title: 'API latency (status read SLA 10 ms)',
    panels: [
      {
        title: 'p99 per route',
        description: 'HTTP latency p99 per matched route (web). The line is the 10 ms status read SLA.',
        type: 'timeseries',
        unit: 's',
        width: 12,
        threshold: 0.01,
        queries: [q(`histogram_quantile(0.99, sum by (le, route) (rate(hub_http_request_duration_seconds_bucket[${RATE}])))`, '{{route}}')],
      },
      {
        title: 'Status reads p50 / p99',
        description: 'GET of an order, its history, events and tiers, and of an event.',
        type: 'timeseries',
        unit: 's',
        width: 6,
        threshold: 0.01,
        queries: [
          q(
            `histogram_quantile(0.5, sum by (le) (rate(hub_http_request_duration_seconds_bucket{method="GET",route=~"/api/orders/:orderId.*|/api/events/:eventId"}[${RATE}])))`,
            'p50',
          ),
          q(
            `histogram_quantile(0.99, sum by (le) (rate(hub_http_request_duration_seconds_bucket{method="GET",route=~"/api/orders/:orderId.*|/api/events/:eventId"}[${RATE}])))`,
            'p99',
          ),
        ],
      },
      {
        title: 'Status read SLA breaches/s',
        description: 'Status reads answered slower than 10 ms, per route (web).',
        type: 'timeseries',
        unit: 'ops',
        width: 6,
        queries: [q(`sum by (route) (rate(hub_status_read_sla_breaches_total[${RATE}]))`, '{{route}}')],
      },
      {
        title: 'Requests/s by route and status',
        description: 'Every answered request (web).',
        type: 'timeseries',
        unit: 'reqps',
        width: 24,
        queries: [q(`sum by (route, status) (rate(hub_http_request_duration_seconds_count[${RATE}]))`, '{{route}} {{status}}')],
      },
    ],
  },
  {
    title: 'Integrations',
    panels: [
      {
        title: 'Calls/s per integration and operation',
        description: 'Outbound call attempts per second (workers; the reconciler in the scheduler).',
        type: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [q(`sum by (integration, operation) (rate(hub_partner_call_duration_seconds_count[${RATE}]))`, '{{integration}} {{operation}}')],
      },
      {
        title: 'Errors/s by class',
        description: 'Failed call attempts: retriable (network, timeout, 5xx, 408, 429) and non-retriable (other 4xx, invalid answers).',
        type: 'timeseries',
        unit: 'ops',
        width: 8,
        queries: [
          q(
            `sum by (integration, outcome) (rate(hub_partner_call_duration_seconds_count{outcome!="success"}[${RATE}])) or on() vector(0)`,
            '{{integration}} {{outcome}}',
          ),
        ],
      },
      {
        title: 'Call latency p50 / p99',
        description: 'Per integration, all operations.',
        type: 'timeseries',
        unit: 's',
        width: 8,
        queries: [
          q(`histogram_quantile(0.5, sum by (le, integration) (rate(hub_partner_call_duration_seconds_bucket[${RATE}])))`, '{{integration}} p50'),
          q(`histogram_quantile(0.99, sum by (le, integration) (rate(hub_partner_call_duration_seconds_bucket[${RATE}])))`, '{{integration}} p99'),
        ],
      },
      {
        title: 'Circuit breakers (0 closed, 1 half-open, 2 open)',
        description: 'State of each breaker, shared by all workers (scheduler, from Redis).',
        type: 'stat',
        width: 12,
        threshold: 1,
        queries: [q('max by (integration) (hub_circuit_state)', '{{integration}}')],
      },
      {
        title: 'Health probe (1 up, 0 down)',
        description: 'The last /health probe of each partner (scheduler).',
        type: 'stat',
        width: 12,
        queries: [q('max by (integration) (hub_integration_up)', '{{integration}}')],
      },
    ],
  },
  {
    title: 'Queues and dead letters',
    panels: [
      {
        title: 'Jobs per queue and state',
        description: 'BullMQ job counts (scheduler, from Redis). Delayed partner calls include those waiting for an open breaker.',
        type: 'timeseries',
        width: 12,
        queries: [q('max by (queue, state) (hub_queue_jobs{state=~"waiting|active|delayed|prioritized"})', '{{queue}} {{state}}')],
      },
      {
        title: 'Dead letters (threshold = DLQ_ALERT_THRESHOLD)',
        description: 'Jobs in each queue’s failed set, and the threshold above which an incident is raised.',
        type: 'timeseries',
        width: 6,
        queries: [q('max by (queue) (hub_dead_letter_jobs)', '{{queue}}'), q('max(hub_dead_letter_alert_threshold)', 'threshold')],
      },
      {
        title: 'Outbox and sweeper',
        description: 'Topic messages published per second, and lost jobs the sweeper re-created (scheduler).',
        type: 'timeseries',
        unit: 'ops',
        width: 6,
        queries: [
          q(`sum(rate(hub_outbox_published_total[${RATE}]))`, 'published'),
          q(`sum by (kind) (rate(hub_events_swept_total[${RATE}])) or on() vector(0)`, 'swept {{kind}}'),
        ],
      },
    ],
  },
  {
    title: 'Order flow',
    panels: [
      {
        title: 'Time between statuses p50 / p90',
        description: 'From the previous history row of an order to the next, by step (scheduler, from the history). Bottlenecks stand out.',
        type: 'table',
        unit: 's',
        width: 12,
        queries: [
          q('histogram_quantile(0.5, sum by (le, from, to) (rate(hub_status_stage_duration_seconds_bucket[1h])))', '{{from}} → {{to}} p50'),
          q('histogram_quantile(0.9, sum by (le, from, to) (rate(hub_status_stage_duration_seconds_bucket[1h])))', '{{from}} → {{to}} p90'),
        ],
      },
      {
        title: 'Longest in each status',
        description: 'How long the order changed longest ago has sat in each non-terminal status.',
        type: 'bargauge',
        unit: 's',
        width: 6,
        queries: [q('max by (status) (hub_orders_oldest_in_status_seconds)', '{{status}}')],
      },
      {
        title: 'Status changes/s by source',
        description: 'History rows written per second, by who moved the order (partners, operators, system).',
        type: 'timeseries',
        unit: 'ops',
        width: 6,
        stacked: true,
        queries: [q(`sum by (source) (rate(hub_status_transitions_total[${RATE}]))`, '{{source}}')],
      },
    ],
  },
  {
    title: 'Delivery per partner and carrier',
    panels: [
      {
        title: 'Deliveries by partner and outcome',
        description: 'Orders in the delivery phase: delivered (7500), returned (8500), in delivery (7000–7400).',
        type: 'bargauge',
        width: 8,
        queries: [q('sum by (partner, outcome) (max by (partner, carrier, outcome) (hub_deliveries))', '{{partner}} {{outcome}}')],
      },
      {
        title: 'Success rate per partner and carrier',
        description: 'Delivered ÷ (delivered + returned).',
        type: 'bargauge',
        unit: 'percentunit',
        width: 8,
        queries: [
          q(
            'sum by (partner, carrier) (max by (partner, carrier, outcome) (hub_deliveries{outcome="delivered"})) / sum by (partner, carrier) (max by (partner, carrier, outcome) (hub_deliveries{outcome=~"delivered|returned"}))',
            '{{partner}} / {{carrier}}',
          ),
        ],
      },
      {
        title: 'Failed attempts per order',
        description: 'Failed delivery attempts per order in the delivery phase, per partner and carrier.',
        type: 'bargauge',
        width: 8,
        queries: [
          q(
            'sum by (partner, carrier) (max by (partner, carrier) (hub_delivery_failed_attempts)) / sum by (partner, carrier) (max by (partner, carrier, outcome) (hub_deliveries))',
            '{{partner}} / {{carrier}}',
          ),
        ],
      },
    ],
  },
  {
    title: 'Tiers and cash on delivery',
    panels: [
      {
        title: 'Tiers by state',
        description: '1 PMP → OMS delivered, 2 Slick → MAO shipped, 3 PMP → Slick collected (COD only).',
        type: 'bargauge',
        width: 8,
        queries: [q('max by (tier, state) (hub_order_tiers)', 'tier {{tier}} {{state}}')],
      },
      {
        title: 'Discrepancies open, and found/h',
        description: 'Each opens a manual-intervention case; open until the case is resolved.',
        type: 'timeseries',
        width: 8,
        queries: [
          q('max by (code) (hub_tier_discrepancies_open)', 'open {{code}}'),
          q('sum by (code) (increase(hub_tier_discrepancies_total[1h])) or on() vector(0)', 'found/h {{code}}'),
        ],
      },
      {
        title: 'COD ledger',
        description: 'Cash-on-delivery orders by relay to Slick, and the amounts expected and collected.',
        type: 'table',
        width: 8,
        queries: [
          q('max by (relay) (hub_cod_orders)', 'orders {{relay}}'),
          q('max by (relay) (hub_cod_expected_amount)', 'expected {{relay}}'),
          q('max by (relay) (hub_cod_collected_amount)', 'collected {{relay}}'),
        ],
      },
      {
        title: 'Reconciliation with PMP',
        description: 'Runs per hour by outcome, and what each order asked taught the hub (scheduler).',
        type: 'timeseries',
        width: 12,
        queries: [
          q('sum by (outcome) (increase(hub_reconciliation_runs_total[1h]))', 'runs {{outcome}}'),
          q('sum by (finding) (increase(hub_reconciliation_findings_total[1h]))', 'orders {{finding}}'),
        ],
      },
      {
        title: 'Customer notifications/h',
        description:
          'Owed once per order and status (then sent), suppressed when the status was already notified; sent = the notification webhook answered 200.',
        type: 'timeseries',
        width: 12,
        queries: [
          q('sum by (result) (increase(hub_customer_notifications_total[1h]))', '{{result}}'),
          q('sum(increase(hub_partner_call_duration_seconds_count{integration="notify",outcome="success"}[1h])) or on() vector(0)', 'sent'),
        ],
      },
    ],
  },
  {
    title: 'Incidents and interventions',
    panels: [
      {
        title: 'Open incidents by severity',
        description: 'Breaker opened, dead letters above threshold, events past their SLA (paged to the incident webhook).',
        type: 'stat',
        width: 8,
        threshold: 1,
        queries: [q('max by (severity) (hub_open_incidents)', '{{severity}}')],
      },
      {
        title: 'Open manual-intervention cases by cause',
        description: 'GET /api/interventions?state=open: each waits for an operator to retry, override or dismiss.',
        type: 'bargauge',
        width: 16,
        queries: [q('max by (cause) (hub_open_interventions)', '{{cause}}')],
      },
    ],
  },
];

const PANEL_HEIGHT = 8;

/** The Grafana dashboard JSON (schema of Grafana 10/11), laid out row by row on the 24-column grid. */
export function buildDashboard(): Record<string, unknown> {
  const panels: Array<Record<string, unknown>> = [];
  let y = 0;
  let id = 1;
  for (const row of DASHBOARD_ROWS) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    for (const p of row.panels) {
      if (x + p.width > 24) {
        x = 0;
        y += PANEL_HEIGHT;
      }
      panels.push(panelJson(p, id++, { h: PANEL_HEIGHT, w: p.width, x, y }));
      x += p.width;
    }
    y += PANEL_HEIGHT;
  }
  return {
    uid: 'fulfillment-hub',
    title: 'Fulfillment hub',
    description: 'Orders, events, SLAs, integrations, queues, order flow, deliveries, tiers and incidents of the fulfillment hub.',
    tags: ['fulfillment-hub'],
    timezone: 'browser',
    editable: false,
    graphTooltip: 1,
    refresh: '10s',
    time: { from: 'now-1h', to: 'now' },
    schemaVersion: 39,
    version: 1,
    templating: { list: [] },
    annotations: { list: [] },
    links: [],
    panels,
  };
}

function panelJson(p: PanelSpec, id: number, gridPos: { h: number; w: number; x: number; y: number }): Record<string, unknown> {
  const thresholds = {
    mode: 'absolute',
    steps: [{ color: 'green', value: null }, ...(p.threshold !== undefined ? [{ color: 'red', value: p.threshold }] : [])],
  };
  const custom =
    p.type === 'timeseries'
      ? {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: p.stacked ? 30 : 0,
          stacking: { mode: p.stacked ? 'normal' : 'none', group: 'A' },
          thresholdsStyle: { mode: p.threshold !== undefined ? 'line+area' : 'off' },
        }
      : {};
  return {
    id,
    type: p.type,
    title: p.title,
    description: p.description,
    gridPos,
    datasource: { type: 'prometheus', uid: 'prometheus' },
    fieldConfig: { defaults: { unit: p.unit ?? 'short', thresholds, custom }, overrides: [] },
    options:
      p.type === 'timeseries'
        ? { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi' } }
        : p.type === 'table'
          ? { showHeader: true }
          : { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, orientation: 'horizontal' },
    targets: p.queries.map((query, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: { type: 'prometheus', uid: 'prometheus' },
      expr: query.expr,
      legendFormat: query.legend,
      ...(p.type === 'timeseries' ? {} : { instant: true, range: false, format: p.type === 'table' ? 'table' : 'time_series' }),
    })),
  };
}

/** Every query of a dashboard JSON (as committed), for checks. */
export function dashboardQueries(dashboard: {
  panels?: Array<{ title?: string; targets?: Array<{ expr?: string }> }>;
}): Array<{ panel: string; expr: string }> {
  return (dashboard.panels ?? []).flatMap((p) => (p.targets ?? []).filter((t) => t.expr).map((t) => ({ panel: p.title ?? '', expr: t.expr! })));
}
