/**
 * One cash-on-delivery order from release to delivery, against a running hub (`npm run quickstart`
 * starts everything and runs this): MAO registers it (3000, COD 450), Slick sends picking → picked →
 * packing → packed → shipped (signed, with `Prefer: wait=5`), the hub confirms the shipment with Slick
 * and the order reaches 7000; the hub asks PMP for a delivery partner and tells MAO the order shipped
 * (tier 2). Grab, the courier, sends SHIPPED → IN_TRANSIT → OUT_FOR_DELIVERY for the order's tracking
 * id (`PUT /api/delivery/status`); then PMP sends `delivery.delivered` (tier 1, 7500) and
 * `cod.collected` with the 450 (`POST /api/pmp/events`, signed, `Prefer: wait=5`), which the hub
 * relays to Slick (tier 3). Prints each step, the three tiers, the order's history and its messages on
 * the topic.
 *
 *   npx tsx scripts/demo-order.ts          (HUB_URL, default http://127.0.0.1:3000; REDIS_URL; TOPIC_STREAM)
 *
 * Uses the documented development clients (src/config.ts), so the hub must run without API_CLIENTS.
 */
import { Redis } from 'ioredis';
import { HubClient, type HubResponse } from '../src/api/hub-client.js';
import { DEVELOPMENT_CLIENTS } from '../src/config.js';
import { DELIVERY_STATUS_PATH, sendCourierStatuses, type CourierSendResult, type CourierStatus } from '../src/simulators/grab.simulator.js';
import { PMP_EVENTS_PATH, sendPmpEvents, type PmpEventInput, type PmpSendResult } from '../src/simulators/pmp.simulator.js';

const HUB_URL = process.env.HUB_URL || 'http://127.0.0.1:3000';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const TOPIC_STREAM = process.env.TOPIC_STREAM || 'order.fulfillment.v1';
const LOCATION = 'STORE-007';
const FULFILLED = 7000;
const DELIVERED = 7500;
const COD_AMOUNT = 450;
/** The courier carries the parcel; PMP reports the delivery (tier 1). */
const COURIER_STATUSES: readonly CourierStatus[] = ['SHIPPED', 'IN_TRANSIT', 'OUT_FOR_DELIVERY'];
/** What the order goes through after 7000: the courier's three statuses (SPEC §5.1), then PMP's delivery. */
const DELIVERY_TARGETS = [7100, 7200, 7300, DELIVERED];
const DELIVERY_LOCATION = { lat: 13.7563, lng: 100.5018 };
const DEADLINE_MS = 30_000;

function fail(message: string): never {
  console.error(`\ndemo: FAILED: ${message}`);
  process.exit(1);
}

function clientFor(id: string): HubClient {
  const client = DEVELOPMENT_CLIENTS.find((c) => c.id === id);
  if (!client) fail(`no development client "${id}" in src/config.ts`);
  return new HubClient(HUB_URL, client);
}

async function call<T>(what: string, request: () => Promise<HubResponse<T>>): Promise<HubResponse<T>> {
  let res: HubResponse<T>;
  try {
    res = await request();
  } catch (err) {
    fail(`${what}: cannot reach the hub at ${HUB_URL} (${(err as Error).message}); is \`npm run web\` running?`);
  }
  if (res.status === 401) {
    fail(`${what}: 401 ${JSON.stringify(res.body)}: the hub does not accept the development keys (is API_CLIENTS set?)`);
  }
  return res;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pad = (value: unknown, width: number) => String(value ?? '').padEnd(width);

const mao = clientFor('mao');
const slick = clientFor('slick');
const grab = clientFor('grab');
const pmp = clientFor('pmp');
const viewer = clientFor('viewer');

const orderId = `SO-DEMO-${Date.now()}`;
console.log(`demo: hub ${HUB_URL}, order ${orderId} at ${LOCATION}, cash on delivery ${COD_AMOUNT}\n`);

// 1. MAO registers the order, released to fulfillment (3000), to be paid on delivery.
const registered = await call('register order', () =>
  mao.post<{ status?: number; error?: unknown }>('/api/orders', {
    orderId,
    shipFromLocationId: LOCATION,
    customer: { id: 'CUST-DEMO-1', name: 'Demo Customer', email: 'demo.customer@example.com' },
    paymentMethod: 'COD',
    codAmount: COD_AMOUNT,
    status: 3000,
  }),
);
if (registered.status !== 201 && registered.status !== 200) {
  fail(`POST /api/orders answered ${registered.status}: ${JSON.stringify(registered.body)}`);
}
let status: number = registered.body.status ?? 3000;
console.log(
  `MAO       — → ${status}  ${pad('register', 8)} ${registered.status === 201 ? 'created' : 'already registered'} (HTTP ${registered.status}), COD ${COD_AMOUNT}`,
);

// 2. Slick's ship events, each waiting for its outcome.
interface Outcome {
  state?: string;
  reason?: string | null;
  orderStatus?: number | null;
  error?: { code?: string; message?: string; details?: { orderStatus?: number | null } };
}
const steps = ['picking', 'picked', 'packing', 'packed', 'shipped'] as const;
for (const eventType of steps) {
  const now = new Date();
  const body = {
    eventId: `${orderId}-${eventType}`,
    orderId,
    shipFromLocationId: LOCATION,
    eventType,
    occurredAt: now.toISOString(),
    ...(eventType === 'shipped'
      ? {
          tracking: {
            trackingId: `GRB${String(Date.now()).slice(-9)}`,
            carrierCode: 'GRAB',
            estimatedDelivery: new Date(now.getTime() + 2 * 3600_000).toISOString(),
          },
        }
      : {}),
  };
  const res = await call(`ship event ${eventType}`, () => slick.post<Outcome>('/api/fulfillment/ship-events', body, { prefer: 'wait=5' }));
  const from = status;
  let state: string;
  if (res.status === 200) {
    state = res.body.state ?? '?';
    status = res.body.orderStatus ?? status;
    if (res.body.reason) state += ` (${res.body.reason})`;
  } else if (res.status === 202) {
    state = 'queued (no outcome within 5 s)';
  } else if (res.status === 422) {
    state = `rejected (${res.body.error?.code ?? 'unknown'})`;
  } else {
    fail(`ship event ${eventType} answered ${res.status}: ${JSON.stringify(res.body)}`);
  }
  const note = eventType === 'shipped' && res.status === 200 ? '   Slick confirmation scheduled' : '';
  console.log(`Slick  ${from} → ${status}  ${pad(eventType, 8)} ${state}${note}`);
  if (res.status === 422) fail(`ship event ${eventType} was rejected: ${JSON.stringify(res.body.error)}`);
}

// 3. The hub confirms the shipment with Slick; the order reaches 7000 when Slick answers 200.
interface OrderView {
  status: number;
  statusName: string;
  subStep: string | null;
  slickConfirmation: string | null;
  tracking: { trackingId: string; carrierCode: string } | null;
  partner?: { partnerId: string; partnerName: string } | null;
}
const started = Date.now();
let order: OrderView | undefined;
while (Date.now() - started < DEADLINE_MS) {
  const res = await call('read order', () => viewer.get<OrderView>(`/api/orders/${orderId}`));
  if (res.status !== 200) fail(`GET /api/orders/${orderId} answered ${res.status}: ${JSON.stringify(res.body)}`);
  order = res.body;
  if (order.status === FULFILLED && order.slickConfirmation === 'confirmed') break;
  if (order.slickConfirmation === 'failed') break;
  await sleep(200);
}
if (!order || order.status !== FULFILLED || order.slickConfirmation !== 'confirmed') {
  fail(
    `the order did not reach ${FULFILLED} with slickConfirmation "confirmed" within ${DEADLINE_MS / 1000} s ` +
      `(now: status ${order?.status}, slickConfirmation ${order?.slickConfirmation}). ` +
      `Check the worker and the Slick simulator (.local/logs/worker.log, .local/logs/simulators.log).`,
  );
}
console.log(
  `\nSlick confirmed the shipment after ${Date.now() - started} ms: order ${orderId} is ${order.status} ${order.statusName}, ` +
    `slickConfirmation ${order.slickConfirmation}, tracking ${order.tracking?.trackingId}/${order.tracking?.carrierCode}`,
);

// 4. The hub asks PMP for a delivery partner once the order is 7000 (and tells MAO it shipped, tier 2).
const assignStarted = Date.now();
while (Date.now() - assignStarted < DEADLINE_MS) {
  const res = await call('read order', () => viewer.get<OrderView>(`/api/orders/${orderId}`));
  if (res.status !== 200) fail(`GET /api/orders/${orderId} answered ${res.status}: ${JSON.stringify(res.body)}`);
  order = res.body;
  if (order.partner) break;
  await sleep(200);
}
const partner = order.partner;
if (!partner) {
  fail(
    `the order shows no PMP partner within ${DEADLINE_MS / 1000} s of reaching ${FULFILLED} ` +
      `(now: status ${order.status}, partner ${JSON.stringify(order.partner ?? null)}). ` +
      `Check the worker and the PMP simulator (.local/logs/worker.log, .local/logs/simulators.log).`,
  );
}
console.log(`PMP assigned the delivery partner after ${Date.now() - assignStarted} ms: ${partner.partnerName} (${partner.partnerId})`);

/** One line per partner event, in the style of the steps above; stops the demo at anything but a 200 "applied". */
function reportEvent(
  who: string,
  what: string,
  width: number,
  result: { eventId: string; httpStatus: number; body: unknown; error?: string },
  route: string,
  note = '',
): void {
  const body = result.body as Outcome | undefined;
  const from = status;
  let state: string;
  if (result.httpStatus === 200) {
    state = body?.state ?? '?';
    status = body?.orderStatus ?? status;
    if (body?.reason) state += ` (${body.reason})`;
  } else if (result.httpStatus === 202) {
    state = 'queued (no outcome within 5 s)';
  } else if (result.httpStatus === 422) {
    state = `rejected (${body?.error?.code ?? 'unknown'})`;
  } else {
    state = result.httpStatus === 0 ? 'no answer' : `HTTP ${result.httpStatus}`;
  }
  console.log(`${pad(who, 6)} ${from} → ${status}  ${pad(what, width)} ${state} (HTTP ${result.httpStatus})${result.httpStatus === 200 ? note : ''}`);

  if (result.httpStatus === 0) fail(`${who} ${what}: ${result.error}; is \`npm run web\` running?`);
  if (result.httpStatus === 401) {
    fail(`${who} ${what}: 401 ${JSON.stringify(result.body)}: the hub does not accept the development keys (is API_CLIENTS set?)`);
  }
  if (result.httpStatus !== 200) fail(`${who} ${what} (${result.eventId}): ${route} answered ${result.httpStatus}: ${JSON.stringify(result.body)}`);
  if (body?.state !== 'applied') fail(`${who} ${what} (${result.eventId}) was not applied: ${JSON.stringify(result.body)}`);
}

// 5. Grab, the courier, picks the parcel up and carries it to the door; each status waits for its outcome.
const tracking = order.tracking;
if (!tracking) fail(`order ${orderId} is ${FULFILLED} but shows no tracking: the courier has nothing to report against`);
console.log('');
status = order.status;
await sendCourierStatuses({
  hubUrl: HUB_URL,
  key: grab.client.key,
  secret: grab.client.secret,
  order: { orderId, trackingId: tracking.trackingId, carrierCode: tracking.carrierCode },
  statuses: COURIER_STATUSES,
  wait: 5,
  stopOnError: true,
  onResult: (result: CourierSendResult) => reportEvent('Grab', result.status, 18, result, `PUT ${DELIVERY_STATUS_PATH}`),
});

// 6. PMP reports the delivery (tier 1 → 7500), then the cash its partner collected (tier 3).
const pmpEvents: PmpEventInput[] = [
  { type: 'delivery.delivered', orderId, partnerId: partner.partnerId, location: DELIVERY_LOCATION },
  { type: 'cod.collected', orderId, partnerId: partner.partnerId, amount: COD_AMOUNT },
];
await sendPmpEvents({
  hubUrl: HUB_URL,
  key: pmp.client.key,
  secret: pmp.client.secret,
  events: pmpEvents,
  wait: 5,
  stopOnError: true,
  onResult: (result: PmpSendResult) =>
    reportEvent(
      'PMP',
      result.type,
      18,
      result,
      `POST ${PMP_EVENTS_PATH}`,
      result.type === 'delivery.delivered'
        ? `   at ${DELIVERY_LOCATION.lat},${DELIVERY_LOCATION.lng} by ${partner.partnerName}`
        : `   ${COD_AMOUNT} collected by ${partner.partnerName}`,
    ),
});

// The delivery's outcome already says 7500; the order itself must show it too.
const deliveryStarted = Date.now();
while (Date.now() - deliveryStarted < DEADLINE_MS) {
  const res = await call('read order', () => viewer.get<OrderView>(`/api/orders/${orderId}`));
  if (res.status !== 200) fail(`GET /api/orders/${orderId} answered ${res.status}: ${JSON.stringify(res.body)}`);
  order = res.body;
  if (order.status === DELIVERED) break;
  await sleep(200);
}
if (order.status !== DELIVERED) {
  fail(
    `the order did not reach ${DELIVERED} within ${DEADLINE_MS / 1000} s of PMP's delivery.delivered (now: status ${order.status}). ` +
      `Check the worker (.local/logs/worker.log).`,
  );
}
console.log(`\nPMP delivered the parcel: order ${orderId} is ${order.status} ${order.statusName}`);

// 7. The three tiers: MAO told "Shipped" (2), PMP's "Delivered" (1), the collection relayed to Slick (3).
interface TierView {
  tier: number;
  name: string;
  state: string;
  updatedAt: string | null;
  detail: unknown;
}
interface DiscrepancyView {
  code: string;
  tier: number | null;
  detail: unknown;
  openedAt: string;
  resolvedAt: string | null;
}
interface TiersView {
  orderId: string;
  tiers: TierView[];
  discrepancies: DiscrepancyView[];
}
const tiersStarted = Date.now();
let tiers: TiersView | undefined;
const allDone = (view: TiersView) => view.tiers.length === 3 && view.tiers.every((t) => t.state === 'done');
const showTiers = (view: TiersView | undefined) =>
  view ? `tiers [${view.tiers.map((t) => `${t.tier}: ${t.state}`).join(', ')}], discrepancies ${JSON.stringify(view.discrepancies)}` : 'no answer';
while (Date.now() - tiersStarted < DEADLINE_MS) {
  const res = await call('read tiers', () => viewer.get<TiersView>(`/api/orders/${orderId}/tiers`));
  if (res.status !== 200) fail(`GET /api/orders/${orderId}/tiers answered ${res.status}: ${JSON.stringify(res.body)}`);
  tiers = res.body;
  if (!Array.isArray(tiers.tiers) || !Array.isArray(tiers.discrepancies)) {
    fail(`GET /api/orders/${orderId}/tiers answered ${JSON.stringify(res.body)}: expected {orderId, tiers, discrepancies}`);
  }
  if (allDone(tiers) || tiers.discrepancies.length > 0 || tiers.tiers.some((t) => t.state === 'failed')) break;
  await sleep(200);
}
if (!tiers || !allDone(tiers) || tiers.discrepancies.length > 0) {
  fail(
    `the tiers were not all done without a discrepancy within ${DEADLINE_MS / 1000} s of the collection (now: ${showTiers(tiers)}). ` +
      `Check the worker and the Slick and MAO simulators (.local/logs/worker.log, .local/logs/simulators.log).`,
  );
}
console.log(`\nTiers of ${orderId} (all done after ${Date.now() - tiersStarted} ms):`);
console.log(`  ${pad('tier', 5)} ${pad('name', 24)} ${pad('state', 15)} updatedAt`);
for (const t of [...tiers.tiers].sort((a, b) => a.tier - b.tier)) {
  console.log(`  ${pad(t.tier, 5)} ${pad(t.name, 24)} ${pad(t.state, 15)} ${t.updatedAt ?? '—'}`);
}
console.log(`Discrepancies: ${tiers.discrepancies.length === 0 ? 'none' : ''}`);
for (const d of tiers.discrepancies) {
  console.log(
    `  ${pad(d.code, 26)} tier ${d.tier ?? '—'}  opened ${d.openedAt}  ${d.resolvedAt ? `resolved ${d.resolvedAt}` : 'open'}  ${JSON.stringify(d.detail)}`,
  );
}

// 8. History.
interface HistoryRow {
  seq: number;
  from: number | null;
  to: number;
  subStep: string | null;
  source: string;
  actor: string | null;
  reasonCode: string | null;
  eventId: string | null;
  implied: boolean;
}
const history = await call('read history', () => viewer.get<{ history: HistoryRow[] }>(`/api/orders/${orderId}/history`));
if (history.status !== 200) fail(`GET /api/orders/${orderId}/history answered ${history.status}: ${JSON.stringify(history.body)}`);
console.log(`\nHistory of ${orderId}:`);
console.log(`  ${pad('seq', 4)} ${pad('from → to', 13)} ${pad('sub-step', 9)} ${pad('source', 7)} ${pad('implied', 8)} reason / event`);
for (const h of history.body.history) {
  console.log(
    `  ${pad(h.seq, 4)} ${pad(`${h.from ?? '—'} → ${h.to}`, 13)} ${pad(h.subStep ?? '', 9)} ${pad(h.source, 7)} ${pad(h.implied ? 'yes' : 'no', 8)} ${h.reasonCode ?? h.eventId ?? ''}`,
  );
}
const deliveryHistory = history.body.history.filter((h) => h.to > FULFILLED).map((h) => h.to);
if (deliveryHistory.join(',') !== DELIVERY_TARGETS.join(',')) {
  fail(`the history after ${FULFILLED} is [${deliveryHistory.join(' → ')}], expected [${DELIVERY_TARGETS.join(' → ')}]`);
}
const deliveredBy = history.body.history.find((h) => h.to === DELIVERED)?.source;
if (deliveredBy !== 'pmp') fail(`the move to ${DELIVERED} is recorded from ${deliveredBy}, expected pmp (tier 1)`);

// 9. The topic: this order's messages, once the outbox relay has published the move to 7500, the tiers and the collection.
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 3000, lazyConnect: true });
redis.on('error', () => {}); // reported below
try {
  await redis.connect();
  type Message = { streamId: string; fields: Record<string, string> };
  const readOrderMessages = async (): Promise<Message[]> => {
    const entries = await redis.xrevrange(TOPIC_STREAM, '+', '-', 'COUNT', 1000);
    return entries
      .map(([streamId, flat]) => {
        const fields: Record<string, string> = {};
        for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
        return { streamId, fields };
      })
      .filter((m) => m.fields.orderId === orderId)
      .reverse();
  };
  const reached = (to: number) => (m: Message) => m.fields.type === 'status.changed' && (JSON.parse(m.fields.payload ?? '{}') as { to?: number }).to === to;
  const ofType = (type: string) => (m: Message) => m.fields.type === type;
  const expectedTypes = ['delivery.updated', 'tier.updated', 'cod.collected'];
  /** tier.updated with each tier done. */
  const tiersDone = (all: Message[]) =>
    [1, 2, 3].every((tier) =>
      all.some((m) => {
        if (m.fields.type !== 'tier.updated') return false;
        const payload = JSON.parse(m.fields.payload ?? '{}') as { tier?: number; state?: string };
        return payload.tier === tier && payload.state === 'done';
      }),
    );
  const complete = (all: Message[]) =>
    all.some(reached(FULFILLED)) && all.some(reached(DELIVERED)) && expectedTypes.every((type) => all.some(ofType(type))) && tiersDone(all);
  let messages = await readOrderMessages();
  const topicDeadline = Date.now() + 5000;
  while (!complete(messages) && Date.now() < topicDeadline) {
    await sleep(200);
    messages = await readOrderMessages();
  }
  const shown = 30;
  console.log(`\nTopic ${TOPIC_STREAM} (${REDIS_URL}): ${messages.length} messages for ${orderId}, the last ${Math.min(messages.length, shown)}:`);
  for (const m of messages.slice(-shown)) {
    const payload = JSON.parse(m.fields.payload ?? '{}') as Record<string, unknown>;
    const summary =
      m.fields.type === 'status.changed'
        ? `${payload.from ?? '—'} → ${payload.to}${payload.subStep ? ` (${payload.subStep})` : ''}${payload.implied ? ' implied' : ''} by ${payload.source}`
        : m.fields.type === 'tier.updated'
          ? `tier ${payload.tier} ${payload.name ?? ''}: ${payload.state}`
          : JSON.stringify(payload).slice(0, 110);
    console.log(`  ${pad(m.streamId, 16)} ${pad(m.fields.type, 17)} ${summary}`);
  }
  for (const to of [FULFILLED, DELIVERED]) {
    if (!messages.some(reached(to))) console.log(`  (no status.changed → ${to} message yet: is the scheduler (outbox relay) running?)`);
  }
  for (const type of expectedTypes) {
    if (!messages.some(ofType(type))) console.log(`  (no ${type} message yet: is the scheduler (outbox relay) running?)`);
  }
  if (messages.some(ofType('tier.updated')) && !tiersDone(messages)) console.log('  (not every tier has a tier.updated "done" message yet)');
} catch (err) {
  console.log(`\n(could not read the topic ${TOPIC_STREAM} at ${REDIS_URL}: ${(err as Error).message})`);
} finally {
  redis.disconnect();
}

console.log(
  `\ndemo: OK — ${orderId} went 3000 → ${FULFILLED} → ${DELIVERED}: Slick confirmed the shipment, MAO was told it shipped, ` +
    `Grab carried it, PMP delivered it and collected ${COD_AMOUNT}; all three tiers are done.`,
);
