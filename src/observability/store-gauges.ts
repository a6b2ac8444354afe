import { sql } from 'drizzle-orm';
import { Gauge, Registry } from 'prom-client';
import type { HubDeps } from '../deps.js';
import { createCircuitBreakers } from '../integrations/circuit-breaker.js';
import { STATUS_CODES } from '../machines/order.machine.js';
import { callKinds } from '../partner-calls/call-kinds.js';
import { DISCREPANCY_CODES } from '../tiers/tier-rules.js';

/**
 * Gauges whose truth is in Postgres or Redis, read at scrape time. Only the scheduler registers them
 * (src/workers/scheduler.main.ts): every process would read the same numbers, and Prometheus would add
 * the copies up. A store that does not answer keeps its gauges at their last values (readiness and the
 * integration alerts report the outage), so one failing query never fails the whole scrape.
 *
 * Two speeds: the operational gauges (queues, dead letters, breakers, incidents, cases, events waiting
 * past their SLA) are read on every scrape, each a small keyed read; the business gauges (orders per
 * status and location, deliveries per partner and carrier, tiers, COD) count over whole tables, so they
 * are read at most every METRICS_BUSINESS_REFRESH_MS and served from the last read in between.
 */

const BREAKER_STATE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;
const INCIDENT_SEVERITIES = ['critical', 'error', 'warning'] as const;
/** Every cause a case can have: each call kind's, each discrepancy code, and PMP's failed delivery. */
export const INTERVENTION_CAUSES: readonly string[] = [
  ...new Set([
    ...Object.values(callKinds).flatMap((k) => ('intervention' in k && k.intervention ? [k.intervention.cause] : [])),
    ...DISCREPANCY_CODES,
    'pmp_delivery_failed',
  ]),
];
const DELIVERY_OUTCOMES = ['delivered', 'returned', 'in_delivery'] as const;
const TIER_STATES = ['pending', 'done', 'failed', 'not_applicable'] as const;
const COD_RELAY_STATES = ['awaiting_collection', 'pending', 'confirmed', 'failed', 'withheld'] as const;

export function registerStoreGauges(deps: HubDeps, registry: Registry): void {
  const registers = [registry];
  const breakers = Object.values(createCircuitBreakers(deps.redis, deps.config, deps.clock));
  const queues = [deps.queues.inboundEvents, deps.queues.partnerCalls];
  const settle = async (what: string, read: () => Promise<void>) => {
    try {
      await read();
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message, gauge: what }, 'gauge not refreshed; keeping its last value');
    }
  };

  const queueJobs = new Gauge({ name: 'hub_queue_jobs', help: 'Jobs per queue and state (from Redis)', labelNames: ['queue', 'state'] as const, registers });
  const deadLetters = new Gauge({
    name: 'hub_dead_letter_jobs',
    help: 'Jobs in the dead-letter queue (failed set) per queue (from Redis)',
    labelNames: ['queue'] as const,
    registers,
  });
  new Gauge({
    name: 'hub_dead_letter_alert_threshold',
    help: 'DLQ_ALERT_THRESHOLD: dead letters above this raise an incident and the DeadLettersAboveThreshold alert',
    registers,
  }).set(deps.config.dlqAlertThreshold);
  new Gauge({
    name: 'hub_event_sla_seconds',
    help: 'EVENT_SLA_MS in seconds: an accepted event still queued longer is waiting past its SLA',
    registers,
  }).set(deps.config.eventSlaMs / 1000);
  const circuitState = new Gauge({
    name: 'hub_circuit_state',
    help: 'Circuit breaker state per integration: 0 closed, 1 half-open, 2 open (from Redis)',
    labelNames: ['integration'] as const,
    registers,
  });
  const openIncidents = new Gauge({ name: 'hub_open_incidents', help: 'Incidents currently open, by severity', labelNames: ['severity'] as const, registers });
  const openInterventions = new Gauge({
    name: 'hub_open_interventions',
    help: 'Manual-intervention cases currently open, by cause',
    labelNames: ['cause'] as const,
    registers,
  });
  const waitingPastSla = new Gauge({ name: 'hub_events_waiting_past_sla', help: 'Accepted events still queued longer than EVENT_SLA_MS', registers });
  const oldestQueued = new Gauge({
    name: 'hub_oldest_queued_event_age_seconds',
    help: 'Age of the oldest accepted event not yet applied (0 when none waits)',
    registers,
  });
  const openDiscrepancies = new Gauge({
    name: 'hub_tier_discrepancies_open',
    help: 'Delivery discrepancies not yet resolved, by code',
    labelNames: ['code'] as const,
    registers,
  });

  const operational = async () => {
    await Promise.all([
      ...queues.map((q) =>
        settle(`queue ${q.name}`, async () => {
          const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized');
          for (const [state, n] of Object.entries(counts)) queueJobs.set({ queue: q.name, state }, n);
          deadLetters.set({ queue: q.name }, counts.failed ?? 0);
        }),
      ),
      ...breakers.map((b) =>
        settle(`breaker ${b.integration}`, async () => {
          circuitState.set({ integration: b.integration }, BREAKER_STATE_VALUE[(await b.snapshot()).state]);
        }),
      ),
      settle('postgres operational', async () => {
        const cutoff = new Date(deps.clock.now() - deps.config.eventSlaMs).toISOString();
        const [row] = await deps.db.execute<{
          incidents: Record<string, number> | null;
          cases: Record<string, number> | null;
          discrepancies: Record<string, number> | null;
          late: number;
          oldest: string | null;
        }>(sql`
          select (select jsonb_object_agg(severity, n) from (select severity, count(*)::int n from incidents where state = 'open' group by severity) s) as incidents,
                 (select jsonb_object_agg(cause, n) from (select cause, count(*)::int n from interventions where state = 'open' group by cause) c) as cases,
                 (select jsonb_object_agg(code, n) from (select code, count(*)::int n from order_discrepancies where resolved_at is null group by code) d) as discrepancies,
                 (select count(*)::int from inbound_events where state = 'queued' and received_at < ${cutoff}::timestamptz) as late,
                 (select min(received_at)::text from inbound_events where state = 'queued') as oldest`);
        for (const severity of INCIDENT_SEVERITIES) openIncidents.set({ severity }, row?.incidents?.[severity] ?? 0);
        openInterventions.reset();
        for (const cause of INTERVENTION_CAUSES) openInterventions.set({ cause }, 0);
        for (const [cause, n] of Object.entries(row?.cases ?? {})) openInterventions.set({ cause }, n);
        for (const code of DISCREPANCY_CODES) openDiscrepancies.set({ code }, row?.discrepancies?.[code] ?? 0);
        waitingPastSla.set(row?.late ?? 0);
        oldestQueued.set(row?.oldest ? Math.max(0, (deps.clock.now() - new Date(row.oldest).getTime()) / 1000) : 0);
      }),
    ]);
  };

  const ordersByStatus = new Gauge({
    name: 'hub_orders',
    help: 'Orders per current status and store location',
    labelNames: ['status', 'location'] as const,
    registers,
  });
  const oldestInStatus = new Gauge({
    name: 'hub_orders_oldest_in_status_seconds',
    help: 'How long the order changed longest ago has been in each non-terminal status (where orders pile up)',
    labelNames: ['status'] as const,
    registers,
  });
  const deliveries = new Gauge({
    name: 'hub_deliveries',
    help: 'Orders in the delivery phase per delivery partner, carrier and outcome (delivered 7500, returned 8500, in_delivery 7000-7400)',
    labelNames: ['partner', 'carrier', 'outcome'] as const,
    registers,
  });
  const failedAttempts = new Gauge({
    name: 'hub_delivery_failed_attempts',
    help: 'Failed delivery attempts of the orders in the delivery phase, per delivery partner and carrier',
    labelNames: ['partner', 'carrier'] as const,
    registers,
  });
  const tiers = new Gauge({
    name: 'hub_order_tiers',
    help: 'Delivery tiers per tier (1 PMP→OMS delivered, 2 Slick→MAO shipped, 3 PMP→Slick collected) and state',
    labelNames: ['tier', 'state'] as const,
    registers,
  });
  const codOrders = new Gauge({
    name: 'hub_cod_orders',
    help: 'Cash-on-delivery ledger entries per relay state to Slick (awaiting_collection: nothing collected yet)',
    labelNames: ['relay'] as const,
    registers,
  });
  const codCollected = new Gauge({
    name: 'hub_cod_collected_amount',
    help: 'Cash collected on delivery, as PMP reported it, per relay state (in the order currency)',
    labelNames: ['relay'] as const,
    registers,
  });
  const codExpected = new Gauge({
    name: 'hub_cod_expected_amount',
    help: 'Cash expected on delivery, per relay state (in the order currency)',
    labelNames: ['relay'] as const,
    registers,
  });

  const terminal = new Set([7500, 8500, 9000]);
  const business = async () => {
    await settle('postgres business', async () => {
      const [orders, inStatus, delivery, tierRows, cod] = await Promise.all([
        deps.db.execute<{ status: number; location: string; n: number }>(sql`
          select status, ship_from_location_id as location, count(*)::int as n from orders group by 1, 2`),
        deps.db.execute<{ status: number; oldest: string | null }>(sql`
          select s as status, (select min(o.updated_at) from orders o where o.status = s)::text as oldest
          from unnest(${`{${STATUS_CODES.filter((c) => !terminal.has(c)).join(',')}}`}::int[]) s`),
        deps.db.execute<{ partner: string; carrier: string; outcome: string; n: number; attempts: number }>(sql`
          select coalesce(partner_id, 'unassigned') as partner, coalesce(carrier_code, 'unassigned') as carrier,
                 case when status = 7500 then 'delivered' when status = 8500 then 'returned' else 'in_delivery' end as outcome,
                 count(*)::int as n, sum(delivery_attempts)::int as attempts
          from orders where status between 7000 and 7500 or status = 8500 group by 1, 2, 3`),
        deps.db.execute<{ tier: number; state: string; n: number }>(sql`select tier, state, count(*)::int as n from order_tiers group by 1, 2`),
        deps.db.execute<{ relay: string; n: number; collected: string | null; expected: string | null }>(sql`
          select coalesce(relay, 'awaiting_collection') as relay, count(*)::int as n, sum(collected_amount)::text as collected, sum(expected_amount)::text as expected
          from cod_ledger group by 1`),
      ]);
      ordersByStatus.reset();
      for (const r of orders) ordersByStatus.set({ status: String(r.status), location: r.location }, r.n);
      for (const r of inStatus)
        oldestInStatus.set({ status: String(r.status) }, r.oldest ? Math.max(0, (deps.clock.now() - new Date(r.oldest).getTime()) / 1000) : 0);
      deliveries.reset();
      failedAttempts.reset();
      const attempts = new Map<string, { partner: string; carrier: string; n: number }>();
      for (const r of delivery) {
        deliveries.set({ partner: r.partner, carrier: r.carrier, outcome: r.outcome }, r.n);
        const key = `${r.partner}\u0000${r.carrier}`;
        const a = attempts.get(key) ?? { partner: r.partner, carrier: r.carrier, n: 0 };
        a.n += r.attempts;
        attempts.set(key, a);
      }
      // Every pair seen has all three outcomes, so a success rate never divides by a missing series.
      for (const a of attempts.values()) {
        for (const outcome of DELIVERY_OUTCOMES)
          if (!delivery.some((r) => r.partner === a.partner && r.carrier === a.carrier && r.outcome === outcome))
            deliveries.set({ partner: a.partner, carrier: a.carrier, outcome }, 0);
        failedAttempts.set({ partner: a.partner, carrier: a.carrier }, a.n);
      }
      for (const tier of [1, 2, 3])
        for (const state of TIER_STATES) tiers.set({ tier: String(tier), state }, tierRows.find((r) => r.tier === tier && r.state === state)?.n ?? 0);
      for (const relay of COD_RELAY_STATES) {
        const r = cod.find((c) => c.relay === relay);
        codOrders.set({ relay }, r?.n ?? 0);
        codCollected.set({ relay }, Number(r?.collected ?? 0));
        codExpected.set({ relay }, Number(r?.expected ?? 0));
      }
    });
  };

  // One read at a time, shared by scrapes that arrive together; the business read only when stale.
  let inFlight: Promise<void> | undefined;
  let businessReadAt = -Infinity;
  const refresh = () =>
    (inFlight ??= (async () => {
      try {
        const stale = deps.clock.now() - businessReadAt >= deps.config.metricsBusinessRefreshMs;
        await Promise.all([
          operational(),
          stale
            ? business().then(() => {
                businessReadAt = deps.clock.now();
              })
            : undefined,
        ]);
      } finally {
        inFlight = undefined;
      }
    })());
  // prom-client calls collect() of each gauge before reading it; one of them starting the shared read is enough.
  (queueJobs as unknown as { collect: () => Promise<void> }).collect = refresh;
  for (const g of [
    deadLetters,
    circuitState,
    openIncidents,
    openInterventions,
    waitingPastSla,
    oldestQueued,
    openDiscrepancies,
    ordersByStatus,
    oldestInStatus,
    deliveries,
    failedAttempts,
    tiers,
    codOrders,
    codCollected,
    codExpected,
  ]) {
    (g as unknown as { collect: () => Promise<void> }).collect = refresh;
  }
}

/** The store-backed gauges read once, in Prometheus text format (for tests and scripts without a scheduler). */
export async function readStoreGauges(deps: HubDeps): Promise<string> {
  const registry = new Registry();
  registerStoreGauges(deps, registry);
  return registry.metrics();
}
