/**
 * One order from release to delivery, against a running hub (`npm run quickstart` starts everything and
 * runs this): MAO registers it (3000), Slick sends picking → picked → packing → packed → shipped (signed,
 * with `Prefer: wait=5`), the hub confirms the shipment with Slick and the order reaches 7000; then Grab,
 * the courier, sends SHIPPED → IN_TRANSIT → OUT_FOR_DELIVERY → DELIVERED for the order's tracking id
 * (`PUT /api/delivery/status`, signed, `Prefer: wait=5`; DELIVERED with location and proof of delivery)
 * and the order reaches 7500. Prints each step, the order's history and its messages on the topic.
 *
 *   npx tsx scripts/demo-order.ts          (HUB_URL, default http://127.0.0.1:3000; REDIS_URL; TOPIC_STREAM)
 *
 * Uses the documented development clients (src/config.ts), so the hub must run without API_CLIENTS.
 */
import { Redis } from 'ioredis';
import { HubClient, type HubResponse } from '../src/api/hub-client.js';
import { DEVELOPMENT_CLIENTS } from '../src/config.js';
import { COURIER_HAPPY_PATH, DELIVERY_STATUS_PATH, sendCourierStatuses, type CourierSendResult } from '../src/simulators/grab.simulator.js';

const HUB_URL = process.env.HUB_URL || 'http://127.0.0.1:3000';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const TOPIC_STREAM = process.env.TOPIC_STREAM || 'order.fulfillment.v1';
const LOCATION = 'STORE-007';
const FULFILLED = 7000;
const DELIVERED = 7500;
/** What each courier status moves the order to (SPEC §5.1). */
const COURIER_TARGETS = [7100, 7200, 7300, DELIVERED];
const DELIVERY_LOCATION = { lat: 13.7563, lng: 100.5018 };
const PROOF_OF_DELIVERY = { receivedBy: 'Somchai', photoUrl: 'https://example.com/pod.jpg' };
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
const viewer = clientFor('viewer');

const orderId = `SO-DEMO-${Date.now()}`;
console.log(`demo: hub ${HUB_URL}, order ${orderId} at ${LOCATION}\n`);

// 1. MAO registers the order, released to fulfillment (3000).
const registered = await call('register order', () =>
  mao.post<{ status?: number; error?: unknown }>('/api/orders', {
    orderId,
    shipFromLocationId: LOCATION,
    customer: { id: 'CUST-DEMO-1', name: 'Demo Customer', email: 'demo.customer@example.com' },
    paymentMethod: 'PREPAID',
    status: 3000,
  }),
);
if (registered.status !== 201 && registered.status !== 200) {
  fail(`POST /api/orders answered ${registered.status}: ${JSON.stringify(registered.body)}`);
}
let status: number = registered.body.status ?? 3000;
console.log(`MAO       — → ${status}  ${pad('register', 8)} ${registered.status === 201 ? 'created' : 'already registered'} (HTTP ${registered.status})`);

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

// 4. Grab, the courier, picks the parcel up and delivers it; each status waits for its outcome.
const tracking = order.tracking;
if (!tracking) fail(`order ${orderId} is ${FULFILLED} but shows no tracking: the courier has nothing to report against`);
console.log('');
status = order.status;
await sendCourierStatuses({
  hubUrl: HUB_URL,
  key: grab.client.key,
  secret: grab.client.secret,
  order: { orderId, trackingId: tracking.trackingId, carrierCode: tracking.carrierCode },
  statuses: COURIER_HAPPY_PATH,
  wait: 5,
  extra: { DELIVERED: { location: DELIVERY_LOCATION, proofOfDelivery: PROOF_OF_DELIVERY } },
  stopOnError: true,
  onResult: (result: CourierSendResult) => {
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
    const note = result.status === 'DELIVERED' && result.httpStatus === 200 ? `   at ${DELIVERY_LOCATION.lat},${DELIVERY_LOCATION.lng}, received by ${PROOF_OF_DELIVERY.receivedBy}` : '';
    console.log(`Grab   ${from} → ${status}  ${pad(result.status, 16)} ${state} (HTTP ${result.httpStatus})${note}`);

    // Stops the demo (and so the run) at the first step that is not a 200 "applied".
    if (result.httpStatus === 0) fail(`courier status ${result.status}: ${result.error}; is \`npm run web\` running?`);
    if (result.httpStatus === 401) {
      fail(`courier status ${result.status}: 401 ${JSON.stringify(result.body)}: the hub does not accept the development keys (is API_CLIENTS set?)`);
    }
    if (result.httpStatus !== 200) {
      fail(`courier status ${result.status} (${result.eventId}): PUT ${DELIVERY_STATUS_PATH} answered ${result.httpStatus}: ${JSON.stringify(result.body)}`);
    }
    if (body?.state !== 'applied') fail(`courier status ${result.status} (${result.eventId}) was not applied: ${JSON.stringify(result.body)}`);
  },
});

// The last outcome already says 7500; the order itself must show it too.
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
    `the order did not reach ${DELIVERED} within ${DEADLINE_MS / 1000} s of Grab's DELIVERED (now: status ${order.status}). ` +
      `Check the worker (.local/logs/worker.log).`,
  );
}
console.log(`\nGrab delivered the parcel: order ${orderId} is ${order.status} ${order.statusName}`);

// 5. History.
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
if (deliveryHistory.join(',') !== COURIER_TARGETS.join(',')) {
  fail(`the history after ${FULFILLED} is [${deliveryHistory.join(' → ')}], expected [${COURIER_TARGETS.join(' → ')}]`);
}

// 6. The topic: this order's messages, once the outbox relay has published the move to 7500.
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
  const deliveryUpdated = (m: Message) => m.fields.type === 'delivery.updated';
  const complete = (all: Message[]) => all.some(reached(FULFILLED)) && all.some(reached(DELIVERED)) && all.some(deliveryUpdated);
  let messages = await readOrderMessages();
  const topicDeadline = Date.now() + 5000;
  while (!complete(messages) && Date.now() < topicDeadline) {
    await sleep(200);
    messages = await readOrderMessages();
  }
  const shown = 20;
  console.log(`\nTopic ${TOPIC_STREAM} (${REDIS_URL}): ${messages.length} messages for ${orderId}, the last ${Math.min(messages.length, shown)}:`);
  for (const m of messages.slice(-shown)) {
    const payload = JSON.parse(m.fields.payload ?? '{}') as Record<string, unknown>;
    const summary =
      m.fields.type === 'status.changed'
        ? `${payload.from ?? '—'} → ${payload.to}${payload.subStep ? ` (${payload.subStep})` : ''}${payload.implied ? ' implied' : ''} by ${payload.source}`
        : JSON.stringify(payload).slice(0, 110);
    console.log(`  ${pad(m.streamId, 16)} ${pad(m.fields.type, 17)} ${summary}`);
  }
  for (const to of [FULFILLED, DELIVERED]) {
    if (!messages.some(reached(to))) console.log(`  (no status.changed → ${to} message yet: is the scheduler (outbox relay) running?)`);
  }
  if (!messages.some(deliveryUpdated)) console.log('  (no delivery.updated message yet: is the scheduler (outbox relay) running?)');
} catch (err) {
  console.log(`\n(could not read the topic ${TOPIC_STREAM} at ${REDIS_URL}: ${(err as Error).message})`);
} finally {
  redis.disconnect();
}

console.log(`\ndemo: OK — ${orderId} went 3000 → ${FULFILLED} → ${DELIVERED}: Slick confirmed the shipment and Grab delivered it.`);
