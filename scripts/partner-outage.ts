/**
 * The partner-outage walk-through: with the hub and simulators running (npm run quickstart), Slick
 * starts failing, orders are shipped, the breaker opens and raises an incident, Slick recovers, the
 * breaker closes, every waiting order reaches 7000 and the incident resolves.
 *
 *   npm run outage            (HUB_URL, SIM_SLICK_PORT as for the quick start; SCHEDULER_METRICS_URL, default http://127.0.0.1:9102/metrics)
 */
import { request } from 'undici';
import { HubClient } from '../src/api/hub-client.js';
import { DEVELOPMENT_CLIENTS } from '../src/config.js';

const HUB_URL = process.env.HUB_URL ?? 'http://127.0.0.1:3000';
const SLICK_SIM = `http://127.0.0.1:${process.env.SIM_SLICK_PORT ?? '4101'}`;
// Queue depths are exported by the scheduler, on its own metrics port.
const SCHEDULER_METRICS_URL = process.env.SCHEDULER_METRICS_URL ?? 'http://127.0.0.1:9102/metrics';
const as = (id: string) => new HubClient(HUB_URL, DEVELOPMENT_CLIENTS.find((c) => c.id === id)!);
const mao = as('mao');
const slick = as('slick');
const viewer = as('viewer');
const started = Date.now();
const say = (text: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);

async function setSlickFailure(mode: Record<string, unknown> | null) {
  const res = await request(`${SLICK_SIM}/__admin/failure-mode`, {
    method: mode ? 'PUT' : 'DELETE',
    headers: { 'content-type': 'application/json' },
    body: mode ? JSON.stringify(mode) : undefined,
  });
  await res.body.dump();
  if (res.statusCode >= 300) throw new Error(`simulator admin answered ${res.statusCode}`);
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function slickCircuit() {
  const list = (await viewer.get('/api/health/integrations')).body.integrations as Array<Record<string, any>>;
  return list.find((i) => i.integration === 'slick')!;
}

try {
  say('Slick starts answering 500 to every call');
  await setSlickFailure({ status: 500 });

  const orders: string[] = [];
  for (let i = 0; i < 5; i++) {
    const orderId = `SO-OUTAGE-${Date.now()}-${i}`;
    await mao.post('/api/orders', { orderId, shipFromLocationId: 'STORE-012', customer: { id: `C-${i}` }, paymentMethod: 'PREPAID', status: 3000 });
    const now = new Date().toISOString();
    await slick.post(
      '/api/fulfillment/ship-events',
      { eventId: `${orderId}-packed`, orderId, shipFromLocationId: 'STORE-012', eventType: 'packed', occurredAt: now },
      { prefer: 'wait=5' },
    );
    await slick.post('/api/fulfillment/ship-events', {
      eventId: `${orderId}-shipped`,
      orderId,
      shipFromLocationId: 'STORE-012',
      eventType: 'shipped',
      occurredAt: now,
      tracking: { trackingId: `GRB-OUT-${i}`, carrierCode: 'GRAB' },
    });
    orders.push(orderId);
  }
  say(`shipped ${orders.length} orders; their Slick confirmations are failing and being retried`);

  const open = await until('the breaker to open', async () => {
    const s = await slickCircuit();
    return s.circuit.state !== 'closed' ? s : undefined;
  });
  say(`circuit slick: ${open.circuit.state} after ${open.circuit.failures} consecutive failures (integration status: ${open.status})`);
  const incident = await until('the incident', async () => {
    const list = (await viewer.get('/api/incidents?state=open')).body.incidents as Array<Record<string, any>>;
    return list.find((i) => i.cause === 'circuit_open:slick');
  });
  say(`incident opened: ${incident.summary}`);
  const waiting = await fetch(SCHEDULER_METRICS_URL).then(
    (r) => r.text(),
    () => '',
  );
  const delayed = /hub_queue_jobs\{[^}]*queue="partner-calls",state="delayed"[^}]*\} (\d+)/.exec(waiting)?.[1];
  say(`confirmations waiting for the breaker (delayed jobs): ${delayed ?? '?'}; none failed, none dead-lettered`);

  const reopened = await until('a probe after the open period', async () => {
    const s = await slickCircuit();
    return s.circuit.openUntil && s.circuit.openUntil > (open.circuit.openUntil ?? 0) ? s : undefined;
  });
  say(`the open period ended, one probe went to Slick and failed: open again until ${new Date(reopened.circuit.openUntil).toISOString()}`);

  say('Slick recovers');
  await setSlickFailure(null);
  for (const orderId of orders) {
    await until(`${orderId} at 7000`, async () => ((await viewer.get(`/api/orders/${orderId}`)).body.status === 7000 ? true : undefined));
  }
  say(`circuit slick: ${(await slickCircuit()).circuit.state}; all ${orders.length} orders reached 7000 Fulfilled`);
  const resolved = await until('the incident to resolve', async () => {
    const list = (await viewer.get('/api/incidents?state=resolved')).body.incidents as Array<Record<string, any>>;
    return list.find((i) => i.id === incident.id);
  });
  say(`incident resolved at ${resolved.resolvedAt}`);
  const calls = (await viewer.get(`/api/orders/${orders[0]}/partner-calls`)).body.partnerCalls as Array<Record<string, any>>;
  const confirmations = calls.filter((c) => c.operation === 'ship-confirmation').reverse();
  say(`Slick calls for ${orders[0]} (audit log): ${confirmations.map((c) => `attempt ${c.attempt} → ${c.status ?? c.error}`).join(', ')}`);
} catch (err) {
  await setSlickFailure(null).catch(() => {});
  console.error(`outage walk-through failed: ${(err as Error).message}`);
  process.exit(1);
}
