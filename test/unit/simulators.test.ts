import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request, type Dispatcher } from 'undici';
import {
  MAX_BODY_BYTES,
  partnerForOrder,
  startAllSimulators,
  startPartnerSimulator,
  type AllSimulators,
  type PartnerSimulator,
} from '../../src/simulators/index.js';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifySignature } from '../../src/api/signature.js';
import { DEVELOPMENT_CLIENTS } from '../../src/config.js';
import {
  COURIER_HAPPY_PATH,
  DEFAULT_FAILURE_REASON,
  sendCourierStatuses,
  startGrabSimulator,
  type GrabSimulator,
} from '../../src/simulators/grab.simulator.js';
import { PMP_DEFAULT_FAILURE_REASON, PMP_EVENTS_PATH, sendPmpEvents, startPmpSimulator, type PmpSimulator } from '../../src/simulators/pmp.simulator.js';
import { startMaoSimulator, type MaoSimulator } from '../../src/simulators/mao.simulator.js';

interface CallOptions {
  headers?: Record<string, string>;
  /** Sent as is instead of JSON.stringify(body). */
  rawBody?: string;
  headersTimeout?: number;
}

interface CallResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

async function call(baseUrl: string, method: Dispatcher.HttpMethod, path: string, body?: unknown, options: CallOptions = {}): Promise<CallResult> {
  const response = await request(`${baseUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...options.headers },
    body: options.rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
    headersTimeout: options.headersTimeout,
  });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

async function statusesOf(sim: PartnerSimulator, count: number, path = '/api/things'): Promise<number[]> {
  const statuses: number[] = [];
  // One after the other: failTimes counts calls in order.
  for (let i = 0; i < count; i += 1) statuses.push((await call(sim.url, 'POST', path, { n: i })).status);
  return statuses;
}

describe('partner simulator: failure modes', () => {
  let sim: PartnerSimulator;

  beforeEach(async () => {
    sim = await startPartnerSimulator({
      name: 'test-partner',
      routes: [
        { method: 'POST', path: '/api/things', handle: (req) => ({ status: 200, body: { ok: true, echo: req.body } }) },
        { method: 'POST', path: '/api/other', handle: () => ({ status: 200, body: { ok: true } }) },
        { method: 'GET', path: '/api/things/:thingId', handle: (req) => ({ status: 200, body: { thingId: req.params.thingId } }) },
      ],
    });
  });

  afterEach(async () => {
    await sim.close();
  });

  it('answers its routes and records each call with lower-cased headers and the parsed body', async () => {
    const answer = await call(sim.url, 'POST', '/api/things', { orderId: 'SO-1' }, { headers: { 'X-Trace-Id': 'abc' } });
    expect(answer).toMatchObject({ status: 200, body: { ok: true, echo: { orderId: 'SO-1' } } });
    expect((await call(sim.url, 'GET', '/api/things/SO%2F2')).body).toEqual({ thingId: 'SO/2' });

    expect(sim.requests).toHaveLength(2);
    expect(sim.requests[0]).toMatchObject({ method: 'POST', path: '/api/things', body: { orderId: 'SO-1' }, status: 200 });
    expect(sim.requests[0]?.headers['x-trace-id']).toBe('abc');
    expect(typeof sim.requests[0]?.at).toBe('number');
    sim.clearRequests();
    expect(sim.requests).toHaveLength(0);
  });

  it('failTimes=2 answers 500, 500, then 200', async () => {
    sim.setFailureMode({ failTimes: 2 });
    expect(await statusesOf(sim, 3)).toEqual([500, 500, 200]);
    expect(sim.requests.map((r) => r.status)).toEqual([500, 500, 200]);
    expect(sim.failureMode?.failTimes).toBe(0);
  });

  it('a status mode answers that status to every matching call, and leaves /health alone', async () => {
    sim.setFailureMode({ status: 400 });
    expect(await statusesOf(sim, 3)).toEqual([400, 400, 400]);
    expect((await call(sim.url, 'GET', '/health')).status).toBe(200);
    sim.resetFailureMode();
    expect(await statusesOf(sim, 1)).toEqual([200]);
  });

  it('errorRate 1 fails every call with status ?? 500, errorRate 0 fails none', async () => {
    sim.setFailureMode({ errorRate: 1 });
    expect(await statusesOf(sim, 5)).toEqual([500, 500, 500, 500, 500]);
    sim.setFailureMode({ errorRate: 1, status: 503 });
    expect(await statusesOf(sim, 2)).toEqual([503, 503]);
    sim.setFailureMode({ errorRate: 0, status: 503 });
    expect(await statusesOf(sim, 5)).toEqual([200, 200, 200, 200, 200]);
  });

  it('adds Retry-After to simulated failures only', async () => {
    sim.setFailureMode({ failTimes: 1, status: 429, retryAfterSeconds: 7 });
    const failed = await call(sim.url, 'POST', '/api/things', {});
    expect(failed.status).toBe(429);
    expect(failed.headers['retry-after']).toBe('7');
    const succeeded = await call(sim.url, 'POST', '/api/things', {});
    expect(succeeded.status).toBe(200);
    expect(succeeded.headers['retry-after']).toBeUndefined();
  });

  it('hang is cut by the client timeout, and close() still returns promptly with a call hanging', async () => {
    sim.setFailureMode({ hang: true });
    await expect(call(sim.url, 'POST', '/api/things', {}, { headersTimeout: 200 })).rejects.toMatchObject({
      code: 'UND_ERR_HEADERS_TIMEOUT',
    });
    expect(sim.requests[0]?.status).toBeNull();

    // A second call without a client timeout: only close() can end it.
    const stillHanging = call(sim.url, 'POST', '/api/things', {});
    const settled = stillHanging.then(
      () => 'answered',
      (error: unknown) => (error as { code?: string }).code,
    );
    await sim.waitForRequests(2);
    const started = performance.now();
    await sim.close();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await settled).toBe('UND_ERR_SOCKET');
  });

  it('dropConnection gives the caller a socket error and records no status', async () => {
    sim.setFailureMode({ dropConnection: true });
    await expect(call(sim.url, 'POST', '/api/things', {})).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
    expect(sim.requests).toHaveLength(1);
    expect(sim.requests[0]?.status).toBeNull();
  });

  it('latencyMs delays the answer', async () => {
    sim.setFailureMode({ latencyMs: 150 });
    const started = performance.now();
    const answer = await call(sim.url, 'POST', '/api/things', {});
    expect(answer.status).toBe(200);
    // A little slack for timer granularity.
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('paths limits the mode to matching paths; /health is affected only when paths names it', async () => {
    sim.setFailureMode({ status: 503, paths: '/api/other' });
    expect(await statusesOf(sim, 1, '/api/things')).toEqual([200]);
    expect(await statusesOf(sim, 1, '/api/other')).toEqual([503]);
    expect((await call(sim.url, 'GET', '/health')).status).toBe(200);

    sim.setFailureMode({ status: 503, paths: '/health' });
    expect(await call(sim.url, 'GET', '/health')).toMatchObject({ status: 503 });
    expect(await statusesOf(sim, 1, '/api/things')).toEqual([200]);
  });

  it('the admin API sets, shows and clears the failure mode at run time, and is not recorded', async () => {
    const set = await call(sim.url, 'PUT', '/__admin/failure-mode', { status: 503, failTimes: 1 });
    expect(set).toMatchObject({ status: 200, body: { status: 503, failTimes: 1 } });
    expect(await call(sim.url, 'GET', '/__admin/failure-mode')).toMatchObject({ body: { status: 503, failTimes: 1 } });
    expect(await statusesOf(sim, 2)).toEqual([503, 200]);

    await call(sim.url, 'PUT', '/__admin/failure-mode', { status: 502 });
    expect(await statusesOf(sim, 1)).toEqual([502]);
    expect((await call(sim.url, 'DELETE', '/__admin/failure-mode')).status).toBe(200);
    expect((await call(sim.url, 'GET', '/__admin/failure-mode')).body).toEqual({});
    expect(await statusesOf(sim, 1)).toEqual([200]);

    expect(sim.requests.map((r) => r.path)).toEqual(['/api/things', '/api/things', '/api/things', '/api/things']);
    const listed = await call(sim.url, 'GET', '/__admin/requests');
    expect(listed.body).toHaveLength(4);
    expect((await call(sim.url, 'DELETE', '/__admin/requests')).body).toEqual({ cleared: 4 });
    expect(sim.requests).toHaveLength(0);
  });

  it('refuses a bad failure mode with 400, over HTTP and in-process', async () => {
    for (const bad of [{ errorRate: 2 }, { status: 200 }, { failTimes: -1 }, { paths: 'api' }, { hang: 'yes' }, { surprise: true }, [1]]) {
      const answer = await call(sim.url, 'PUT', '/__admin/failure-mode', bad);
      expect(answer.status, JSON.stringify(bad)).toBe(400);
      expect(answer.body).toMatchObject({ error: 'invalid_failure_mode' });
    }
    expect((await call(sim.url, 'PUT', '/__admin/failure-mode', undefined, { rawBody: '{"status":' })).status).toBe(400);
    expect((await call(sim.url, 'PUT', '/__admin/failure-mode', undefined, { rawBody: '' })).status).toBe(400);
    expect(sim.failureMode).toBeUndefined();
    expect(() => sim.setFailureMode({ errorRate: -0.5 })).toThrow(/invalid failure mode/);
  });

  it('waitForRequests resolves on arrival, filters by path, and rejects clearly on timeout', async () => {
    const waiting = sim.waitForRequests(2, { path: '/api/other' });
    await call(sim.url, 'POST', '/api/things', {});
    await call(sim.url, 'POST', '/api/other', { first: true });
    await call(sim.url, 'POST', '/api/other', { second: true });
    const seen = await waiting;
    expect(seen.map((r) => r.body)).toEqual([{ first: true }, { second: true }]);
    // Already there: resolves at once.
    expect(await sim.waitForRequests(3)).toHaveLength(3);

    await expect(sim.waitForRequests(1, { path: '/api/never', timeoutMs: 50 })).rejects.toThrow(
      /test-partner simulator: expected at least 1 request\(s\) to \/api\/never within 50 ms, got 0/,
    );
  });

  it('rejects waiters when it closes', async () => {
    const waiting = sim.waitForRequests(1);
    await sim.close();
    await expect(waiting).rejects.toThrow(/closed/);
  });

  it('answers 400 to invalid JSON, 413 above 1 MiB, 404 and 405 for unknown routes', async () => {
    expect((await call(sim.url, 'POST', '/api/things', undefined, { rawBody: '{"orderId":' })).status).toBe(400);
    const tooLarge = await call(sim.url, 'POST', '/api/things', undefined, { rawBody: 'x'.repeat(MAX_BODY_BYTES + 1) });
    expect(tooLarge.status).toBe(413);
    expect((await call(sim.url, 'POST', '/api/nothing-here', {})).status).toBe(404);
    const wrongMethod = await call(sim.url, 'DELETE', '/api/things');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');
  });
});

describe('partner simulators', () => {
  const slickToken = 'test-slick-token';
  let sims: AllSimulators;

  beforeAll(async () => {
    sims = await startAllSimulators({ slickToken });
  });

  afterAll(async () => {
    await sims.close();
  });

  afterEach(() => {
    sims.reset();
  });

  const shipped = {
    orderId: 'SO-1001',
    shipFromLocationId: 'STORE-007',
    eventType: 'shipped',
    timestamp: '2026-11-24T10:00:00Z',
    tracking: { trackingId: 'GRB123', carrierCode: 'GRAB', estimatedDelivery: '2026-11-24T12:00:00Z' },
  };
  const bearer = { authorization: `Bearer ${slickToken}` };
  const shipEventsPath = '/api/fulfillment/ship-events';

  it('Slick checks the bearer token', async () => {
    expect((await call(sims.slick.url, 'POST', shipEventsPath, shipped)).status).toBe(401);
    expect((await call(sims.slick.url, 'POST', shipEventsPath, shipped, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  });

  it('Slick validates the ship event and confirms it, with the same id on a retry', async () => {
    const { tracking: _omitted, ...withoutTracking } = shipped;
    const bad = await call(sims.slick.url, 'POST', shipEventsPath, withoutTracking, { headers: bearer });
    expect(bad).toMatchObject({ status: 400, body: { error: 'invalid_body' } });
    expect(JSON.stringify(bad.body)).toContain('tracking');
    expect((await call(sims.slick.url, 'POST', shipEventsPath, { ...shipped, eventType: 'lost' }, { headers: bearer })).status).toBe(400);
    expect((await call(sims.slick.url, 'POST', shipEventsPath, { ...shipped, timestamp: 'yesterday' }, { headers: bearer })).status).toBe(400);

    const accepted = await call(sims.slick.url, 'POST', shipEventsPath, shipped, { headers: bearer });
    expect(accepted).toMatchObject({ status: 200, body: { status: 'accepted', orderId: 'SO-1001' } });
    const { confirmationId } = accepted.body as { confirmationId: string };
    expect(confirmationId).toMatch(/^SLK-/);
    expect(sims.slick.confirmationFor('SO-1001', 'shipped')).toBe(confirmationId);
    expect((await call(sims.slick.url, 'POST', shipEventsPath, shipped, { headers: bearer })).body).toMatchObject({ confirmationId });

    const collected = { orderId: 'SO-1001', shipFromLocationId: 'STORE-007', eventType: 'collected', timestamp: '2026-11-24T15:00:00+07:00', codAmount: 350 };
    expect((await call(sims.slick.url, 'POST', shipEventsPath, collected, { headers: bearer })).status).toBe(200);
    expect(sims.slick.requests[sims.slick.requests.length - 1]?.headers.authorization).toBe(`Bearer ${slickToken}`);
  });

  it('PMP assigns a partner deterministically and answers reconciliation from its delivery map', async () => {
    const assignment = { orderId: 'SO-2002', locationId: 'STORE-003', codAmount: 350 };
    const first = await call(sims.pmp.url, 'POST', '/api/assignments', assignment);
    expect(first).toMatchObject({ status: 200, body: partnerForOrder('SO-2002') });
    expect((await call(sims.pmp.url, 'POST', '/api/assignments', assignment)).body).toEqual(first.body);
    expect((await call(sims.pmp.url, 'POST', '/api/assignments', { orderId: 'SO-2002' })).status).toBe(400);

    expect(await call(sims.pmp.url, 'GET', '/api/deliveries/SO-2002')).toMatchObject({ status: 404, body: { orderId: 'SO-2002' } });
    sims.pmp.setDelivery('SO-2002', { status: 'IN_TRANSIT', occurredAt: '2026-11-24T11:00:00Z' });
    expect((await call(sims.pmp.url, 'GET', '/api/deliveries/SO-2002')).body).toEqual({
      orderId: 'SO-2002',
      partnerId: partnerForOrder('SO-2002').partnerId,
      status: 'IN_TRANSIT',
      occurredAt: '2026-11-24T11:00:00Z',
    });

    const setOverHttp = await call(sims.pmp.url, 'PUT', '/__admin/deliveries/SO-2002', { status: 'DELIVERED', partnerId: 'PTN-X' });
    expect(setOverHttp.status).toBe(200);
    expect((await call(sims.pmp.url, 'GET', '/api/deliveries/SO-2002')).body).toMatchObject({ status: 'DELIVERED', partnerId: 'PTN-X' });
    expect((await call(sims.pmp.url, 'PUT', '/__admin/deliveries/SO-2002', { status: 'LOST' })).status).toBe(400);
  });

  it('MAO accepts a status update and refuses an incomplete one', async () => {
    const update = { status: 'SHIPPED', trackingId: 'GRB123', carrierCode: 'GRAB', occurredAt: '2026-11-24T10:00:00Z' };
    expect(await call(sims.mao.url, 'POST', '/api/orders/SO-1001/status', update)).toMatchObject({ status: 200, body: { ok: true } });
    expect(sims.mao.lastStatusFor('SO-1001')).toMatchObject({ status: 'SHIPPED' });
    expect((await call(sims.mao.url, 'POST', '/api/orders/SO-1001/status', { status: 'SHIPPED' })).status).toBe(400);
  });

  it('Grab answers only its health probe, which a /health failure mode turns red', async () => {
    expect(await call(sims.grab.url, 'GET', '/health')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect((await call(sims.grab.url, 'POST', '/api/anything', {})).status).toBe(404);
    sims.grab.setFailureMode({ status: 503, paths: '/health' });
    expect((await call(sims.grab.url, 'GET', '/health')).status).toBe(503);
  });

  it('notification and incident receivers take any POST path with 202', async () => {
    const notification = { orderId: 'SO-1001', customerId: 'C-1', status: 7000, template: 'order_shipped' };
    const received = sims.notify.waitForRequests(1);
    expect(await call(sims.notify.url, 'POST', '/', notification)).toMatchObject({ status: 202, body: { received: true } });
    expect((await received)[0]?.body).toEqual(notification);
    expect((await call(sims.incident.url, 'POST', '/hooks/incidents', { cause: 'circuit_open' })).status).toBe(202);
    expect(sims.incident.requests).toHaveLength(1);

    sims.incident.setFailureMode({ status: 500 });
    expect((await call(sims.incident.url, 'POST', '/hooks/incidents', {})).status).toBe(500);
  });

  it('reset() clears recorded calls, failure modes and deliveries', async () => {
    sims.slick.setFailureMode({ status: 503 });
    sims.pmp.setDelivery('SO-9', { status: 'ASSIGNED' });
    await call(sims.mao.url, 'GET', '/health');
    sims.reset();
    expect(sims.slick.failureMode).toBeUndefined();
    expect(sims.pmp.getDelivery('SO-9')).toBeUndefined();
    expect(sims.mao.requests).toHaveLength(0);
  });
});

/** A stand-in for the hub: records each call with its raw body, answers after a short delay. */
interface HubCall {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  raw: Buffer;
  arrivedAt: number;
  answeredAt?: number;
}

interface FakeHub {
  url: string;
  calls: HubCall[];
  /** Most calls the fake hub had in hand at once. */
  maxInFlight: number;
  /** Answer for a parsed body; default 200 with an "applied" outcome. */
  answer: (body: Record<string, unknown>) => { status: number; body: unknown };
  close(): Promise<void>;
}

const COURIER_ORDER_STATUS: Record<string, number> = {
  SHIPPED: 7100,
  IN_TRANSIT: 7200,
  OUT_FOR_DELIVERY: 7300,
  DELIVERED: 7500,
  FAILED: 7400,
  RESCHEDULED: 7200,
  RETURNED: 8500,
};

async function startFakeHub(answerDelayMs = 25): Promise<FakeHub> {
  let inFlight = 0;
  const hub: FakeHub = {
    url: '',
    calls: [],
    maxInFlight: 0,
    answer: (body) => ({
      status: 200,
      body: {
        eventId: body.eventId,
        orderId: body.orderId,
        source: 'grab',
        type: body.status,
        state: 'applied',
        reason: null,
        orderStatus: COURIER_ORDER_STATUS[String(body.status)] ?? null,
        receivedAt: new Date().toISOString(),
        processedAt: new Date().toISOString(),
      },
    }),
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const call: HubCall = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw: Buffer.alloc(0), arrivedAt: performance.now() };
    hub.calls.push(call);
    inFlight += 1;
    hub.maxInFlight = Math.max(hub.maxInFlight, inFlight);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      call.raw = Buffer.concat(chunks);
      setTimeout(() => {
        const answer = hub.answer(JSON.parse(call.raw.toString('utf8')) as Record<string, unknown>);
        const payload = JSON.stringify(answer.body);
        inFlight -= 1;
        call.answeredAt = performance.now();
        res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
        res.end(payload);
      }, answerDelayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hub.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return hub;
}

describe('Grab simulator: the courier sends its statuses to the hub', () => {
  const grabClient = DEVELOPMENT_CLIENTS.find((c) => c.id === 'grab')!;
  const order = { orderId: 'SO-7001', trackingId: 'GRB123', carrierCode: 'GRAB' };
  const location = { lat: 13.7563, lng: 100.5018 };
  const proofOfDelivery = { receivedBy: 'Somchai', photoUrl: 'https://example.com/pod.jpg' };
  let hub: FakeHub;

  beforeEach(async () => {
    hub = await startFakeHub();
  });

  afterEach(async () => {
    await hub.close();
  });

  /** Asserts the calls are signed PUTs to /api/delivery/status, one after the other, and returns their bodies. */
  function checkCalls(key: string, secret: string, expectedCount: number): Array<Record<string, unknown>> {
    expect(hub.calls).toHaveLength(expectedCount);
    expect(hub.maxInFlight).toBe(1);
    return hub.calls.map((call, i) => {
      expect(call.method).toBe('PUT');
      expect(call.url).toBe('/api/delivery/status');
      expect(call.headers.authorization).toBe(`Bearer ${key}`);
      expect(call.headers['content-type']).toMatch(/^application\/json/);
      expect(verifySignature(secret, call.raw, call.headers['x-signature'] as string | undefined)).toEqual({ ok: true });
      // Tampering with the body breaks the signature: it really covers these bytes.
      expect(verifySignature(secret, Buffer.concat([call.raw, Buffer.from(' ')]), call.headers['x-signature'] as string).ok).toBe(false);
      const previous = hub.calls[i - 1];
      if (previous) expect(call.arrivedAt).toBeGreaterThanOrEqual(previous.answeredAt!);
      return JSON.parse(call.raw.toString('utf8')) as Record<string, unknown>;
    });
  }

  it('sendCourierStatuses sends the sequence in order, each after the previous answer, signed, bodies per SPEC 5.1', async () => {
    const key = 'test-grab-key-0000000000';
    const secret = 'test-grab-secret-00000000';
    const before = Date.now();
    const seen: string[] = [];
    const results = await sendCourierStatuses({
      hubUrl: hub.url,
      key,
      secret,
      order,
      statuses: COURIER_HAPPY_PATH,
      wait: 5,
      extra: { DELIVERED: { location, proofOfDelivery } },
      onResult: (r) => seen.push(`${r.status}:${r.httpStatus}`),
    });
    const after = Date.now();

    expect(results.map((r) => [r.status, r.httpStatus])).toEqual([
      ['SHIPPED', 200],
      ['IN_TRANSIT', 200],
      ['OUT_FOR_DELIVERY', 200],
      ['DELIVERED', 200],
    ]);
    expect(seen).toEqual(['SHIPPED:200', 'IN_TRANSIT:200', 'OUT_FOR_DELIVERY:200', 'DELIVERED:200']);
    expect(results.map((r) => (r.body as { orderStatus: number }).orderStatus)).toEqual([7100, 7200, 7300, 7500]);
    expect(results[3]?.body).toMatchObject({ eventId: 'grab-SO-7001-4-DELIVERED', state: 'applied', source: 'grab', type: 'DELIVERED' });

    const bodies = checkCalls(key, secret, 4);
    expect(hub.calls.every((c) => c.headers.prefer === 'wait=5')).toBe(true);
    expect(bodies.map((b) => b.eventId)).toEqual([
      'grab-SO-7001-1-SHIPPED',
      'grab-SO-7001-2-IN_TRANSIT',
      'grab-SO-7001-3-OUT_FOR_DELIVERY',
      'grab-SO-7001-4-DELIVERED',
    ]);
    for (const [i, body] of bodies.entries()) {
      const occurredAt = Date.parse(String(body.occurredAt));
      expect(occurredAt).toBeGreaterThanOrEqual(before - 1000);
      expect(occurredAt).toBeLessThanOrEqual(after);
      expect(body).toEqual({
        eventId: body.eventId,
        ...order,
        status: COURIER_HAPPY_PATH[i],
        occurredAt: body.occurredAt,
        ...(COURIER_HAPPY_PATH[i] === 'DELIVERED' ? { location, proofOfDelivery } : {}),
      });
      expect(results[i]?.event).toEqual(body);
    }
  });

  it('defaults to the development client grab, fills FAILED and RESCHEDULED details, and stops on a rejection when asked', async () => {
    hub.answer = (body) =>
      body.status === 'RETURNED'
        ? { status: 422, body: { error: { code: 'invalid_transition', message: 'no', details: { state: 'rejected' } } } }
        : { status: 200, body: { state: 'applied' } };
    const results = await sendCourierStatuses({
      hubUrl: hub.url,
      order,
      statuses: ['OUT_FOR_DELIVERY', 'FAILED', 'RESCHEDULED', 'FAILED', 'RETURNED', 'DELIVERED'],
      location,
      extra: { FAILED: { failureReason: 'address_not_found' } },
      eventIdPrefix: 'run2',
      firstSequence: 10,
      stopOnError: true,
    });
    expect(results.map((r) => [r.eventId, r.httpStatus])).toEqual([
      ['run2-10-OUT_FOR_DELIVERY', 200],
      ['run2-11-FAILED', 200],
      ['run2-12-RESCHEDULED', 200],
      ['run2-13-FAILED', 200],
      ['run2-14-RETURNED', 422],
    ]);
    expect(results[4]?.body).toMatchObject({ error: { code: 'invalid_transition' } });

    const bodies = checkCalls(grabClient.key!, grabClient.secret!, 5);
    expect(hub.calls[0]?.headers.prefer).toBeUndefined();
    expect(bodies.every((b) => JSON.stringify(b.location) === JSON.stringify(location))).toBe(true);
    expect(bodies[1]).toMatchObject({ status: 'FAILED', failureReason: 'address_not_found' });
    const rescheduled = bodies[2]!;
    expect(Date.parse(String(rescheduled.rescheduledFor)) - Date.parse(String(rescheduled.occurredAt))).toBe(24 * 3600_000);
    expect(bodies[0]).not.toHaveProperty('failureReason');
    const withDefaultReason = await sendCourierStatuses({ hubUrl: hub.url, order, statuses: ['FAILED'], eventIdPrefix: 'run3' });
    expect(withDefaultReason[0]?.event.failureReason).toBe(DEFAULT_FAILURE_REASON);
  });

  it('ends a run at a network error with httpStatus 0 instead of throwing', async () => {
    const gone = await startFakeHub();
    const goneUrl = gone.url;
    await gone.close();
    const results = await sendCourierStatuses({ hubUrl: goneUrl, order, statuses: COURIER_HAPPY_PATH });
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ status: 'SHIPPED', httpStatus: 0 });
    expect(results[0]?.error).toMatch(/cannot reach the hub/);
  });

  describe('over the admin API', () => {
    const key = 'sim-grab-key-00000000000';
    const secret = 'sim-grab-secret-000000000';
    let grab: GrabSimulator;

    beforeEach(async () => {
      grab = await startGrabSimulator({ hubUrl: hub.url, key, secret });
    });

    afterEach(async () => {
      await grab.close();
    });

    it('POST /__admin/courier-run sends the run to the configured hub and answers each status, HTTP status and body', async () => {
      const run = { ...order, statuses: COURIER_HAPPY_PATH, wait: 2, location, proofOfDelivery };
      const logged: string[] = [];
      const unsubscribe = grab.onSent((s) => logged.push(`${s.status}:${s.httpStatus}`));
      const answer = await call(grab.url, 'POST', '/__admin/courier-run', run);
      expect(answer.status).toBe(200);
      const list = answer.body as Array<{ status: string; eventId: string; httpStatus: number; body: { orderStatus: number } }>;
      expect(list.map((r) => [r.status, r.httpStatus, r.body.orderStatus])).toEqual([
        ['SHIPPED', 200, 7100],
        ['IN_TRANSIT', 200, 7200],
        ['OUT_FOR_DELIVERY', 200, 7300],
        ['DELIVERED', 200, 7500],
      ]);

      const bodies = checkCalls(key, secret, 4);
      expect(hub.calls.every((c) => c.headers.prefer === 'wait=2')).toBe(true);
      expect(bodies.map((b) => b.status)).toEqual([...COURIER_HAPPY_PATH]);
      expect(bodies.every((b) => JSON.stringify(b.location) === JSON.stringify(location))).toBe(true);
      expect(bodies[3]).toMatchObject({ status: 'DELIVERED', proofOfDelivery });
      expect(bodies.slice(0, 3).some((b) => 'proofOfDelivery' in b)).toBe(false);

      // The record of what it sent; admin calls are not partner calls, so `requests` stays empty.
      expect(grab.sent.map((s) => s.eventId)).toEqual(list.map((r) => r.eventId));
      expect(logged).toEqual(['SHIPPED:200', 'IN_TRANSIT:200', 'OUT_FOR_DELIVERY:200', 'DELIVERED:200']);
      unsubscribe();
      expect(grab.requests).toHaveLength(0);
      expect((await call(grab.url, 'GET', '/__admin/courier-events')).body).toHaveLength(4);

      // A second run for the same order continues the numbering: no event id is reused.
      const again = await call(grab.url, 'POST', '/__admin/courier-run', { ...order, statuses: ['DELIVERED'] });
      expect((again.body as Array<{ eventId: string }>)[0]?.eventId).toBe('grab-SO-7001-5-DELIVERED');
      expect(new Set(hub.calls.map((c) => (JSON.parse(c.raw.toString('utf8')) as { eventId: string }).eventId)).size).toBe(5);
      expect((await call(grab.url, 'DELETE', '/__admin/courier-events')).body).toEqual({ cleared: 5 });
    });

    it('the in-process run uses the configured hub, hubUrl in the body overrides it, and a bad body is a 400', async () => {
      const results = await grab.sendCourierStatuses({ order, statuses: ['SHIPPED'] });
      expect(results[0]).toMatchObject({ eventId: 'grab-SO-7001-1-SHIPPED', httpStatus: 200 });
      checkCalls(key, secret, 1);

      const other = await startFakeHub();
      try {
        const answer = await call(grab.url, 'POST', '/__admin/courier-run', { ...order, hubUrl: other.url, statuses: ['IN_TRANSIT'] });
        expect(answer).toMatchObject({ status: 200, body: [{ status: 'IN_TRANSIT', httpStatus: 200 }] });
        expect(other.calls).toHaveLength(1);
        expect(hub.calls).toHaveLength(1);
      } finally {
        await other.close();
      }

      for (const bad of [
        { ...order, statuses: [] },
        { ...order, statuses: ['LOST'] },
        { orderId: 'SO-1', statuses: ['SHIPPED'] },
        { ...order, statuses: ['SHIPPED'], wait: 60 },
      ]) {
        const answer = await call(grab.url, 'POST', '/__admin/courier-run', bad);
        expect(answer.status, JSON.stringify(bad)).toBe(400);
        expect(answer.body).toMatchObject({ error: 'invalid_body' });
      }
      expect(hub.calls).toHaveLength(1);
    });

    it('failure modes still work: /health turns red, courier runs are not affected', async () => {
      expect(await call(grab.url, 'GET', '/health')).toMatchObject({ status: 200, body: { status: 'ok' } });
      expect((await call(grab.url, 'PUT', '/__admin/failure-mode', { status: 503, paths: '/health' })).status).toBe(200);
      expect((await call(grab.url, 'GET', '/health')).status).toBe(503);
      grab.setFailureMode({ hang: true, paths: '/health' });
      await expect(call(grab.url, 'GET', '/health', undefined, { headersTimeout: 150 })).rejects.toMatchObject({ code: 'UND_ERR_HEADERS_TIMEOUT' });

      const answer = await call(grab.url, 'POST', '/__admin/courier-run', { ...order, statuses: ['SHIPPED'] });
      expect(answer).toMatchObject({ status: 200, body: [{ status: 'SHIPPED', httpStatus: 200 }] });
      grab.resetFailureMode();
      expect((await call(grab.url, 'GET', '/health')).status).toBe(200);
    });
  });
});

describe('PMP and MAO simulators: PMP sends its events to the hub, MAO records tier-2 calls', () => {
  const pmpClient = DEVELOPMENT_CLIENTS.find((c) => c.id === 'pmp')!;
  const orderId = 'SO-8001';
  const partner = partnerForOrder(orderId);
  const location = { lat: 13.7563, lng: 100.5018 };
  const tracking = { trackingId: 'GRB123', carrierCode: 'GRAB' };
  const PMP_ORDER_STATUS: Record<string, number | null> = {
    'partner.assigned': 7000,
    'delivery.update': 7200,
    'delivery.delivered': 7500,
    'delivery.failed': 7400,
    'cod.collected': 7500,
  };
  let hub: FakeHub;

  beforeEach(async () => {
    hub = await startFakeHub();
    hub.answer = (body) => ({
      status: 200,
      body: {
        eventId: body.eventId,
        orderId: body.orderId,
        source: 'pmp',
        type: body.type,
        state: 'applied',
        reason: null,
        orderStatus: PMP_ORDER_STATUS[String(body.type)] ?? null,
      },
    });
  });

  afterEach(async () => {
    await hub.close();
  });

  /** Asserts the calls are signed POSTs to /api/pmp/events, one after the other, and returns their bodies. */
  function checkPmpCalls(key: string, secret: string, expectedCount: number): Array<Record<string, unknown>> {
    expect(hub.calls).toHaveLength(expectedCount);
    expect(hub.maxInFlight).toBe(1);
    return hub.calls.map((c, i) => {
      expect(c.method).toBe('POST');
      expect(c.url).toBe(PMP_EVENTS_PATH);
      expect(c.headers.authorization).toBe(`Bearer ${key}`);
      expect(c.headers['content-type']).toMatch(/^application\/json/);
      expect(verifySignature(secret, c.raw, c.headers['x-signature'] as string | undefined)).toEqual({ ok: true });
      expect(verifySignature(secret, Buffer.concat([c.raw, Buffer.from(' ')]), c.headers['x-signature'] as string).ok).toBe(false);
      const previous = hub.calls[i - 1];
      if (previous) expect(c.arrivedAt).toBeGreaterThanOrEqual(previous.answeredAt!);
      return JSON.parse(c.raw.toString('utf8')) as Record<string, unknown>;
    });
  }

  it('sendPmpEvents sends the events in order, each after the previous answer, signed, with deterministic ids and SPEC 5.2 bodies', async () => {
    const key = 'test-pmp-key-00000000000';
    const secret = 'test-pmp-secret-000000000';
    const before = Date.now();
    const seen: string[] = [];
    const results = await sendPmpEvents({
      hubUrl: hub.url,
      key,
      secret,
      wait: 5,
      events: [
        { type: 'partner.assigned', orderId },
        { type: 'delivery.update', orderId, location, tracking },
        { type: 'delivery.delivered', orderId, location },
        { type: 'cod.collected', orderId, amount: 450 },
      ],
      onResult: (r) => seen.push(`${r.type}:${r.httpStatus}`),
    });
    const after = Date.now();

    expect(results.map((r) => [r.type, r.httpStatus, (r.body as { orderStatus: number }).orderStatus])).toEqual([
      ['partner.assigned', 200, 7000],
      ['delivery.update', 200, 7200],
      ['delivery.delivered', 200, 7500],
      ['cod.collected', 200, 7500],
    ]);
    expect(seen).toEqual(['partner.assigned:200', 'delivery.update:200', 'delivery.delivered:200', 'cod.collected:200']);

    const bodies = checkPmpCalls(key, secret, 4);
    expect(hub.calls.every((c) => c.headers.prefer === 'wait=5')).toBe(true);
    expect(bodies.map((b) => b.eventId)).toEqual([
      'pmp-SO-8001-1-partner.assigned',
      'pmp-SO-8001-2-delivery.update',
      'pmp-SO-8001-3-delivery.delivered',
      'pmp-SO-8001-4-cod.collected',
    ]);
    const common = (b: Record<string, unknown>) => ({ eventId: b.eventId, orderId, partnerId: partner.partnerId, occurredAt: b.occurredAt, type: b.type });
    expect(bodies[0]).toEqual({ ...common(bodies[0]!), partnerName: partner.partnerName });
    expect(bodies[1]).toEqual({ ...common(bodies[1]!), location, tracking });
    expect(bodies[2]).toEqual({ ...common(bodies[2]!), location });
    expect(bodies[3]).toEqual({ ...common(bodies[3]!), amount: 450 });
    for (const [i, body] of bodies.entries()) {
      const occurredAt = Date.parse(String(body.occurredAt));
      expect(occurredAt).toBeGreaterThanOrEqual(before - 1000);
      expect(occurredAt).toBeLessThanOrEqual(after);
      expect(results[i]?.event).toEqual(body);
      expect(results[i]?.eventId).toBe(body.eventId);
    }
  });

  it('defaults to the development client pmp, fills a failure reason, counts per order, and stops on a rejection when asked', async () => {
    hub.answer = (body) =>
      body.type === 'cod.collected'
        ? { status: 422, body: { error: { code: 'invalid_transition', message: 'no', details: { state: 'rejected' } } } }
        : { status: 200, body: { state: 'applied' } };
    const results = await sendPmpEvents({
      hubUrl: hub.url,
      firstSequence: { [orderId]: 7 },
      stopOnError: true,
      events: [
        { type: 'delivery.failed', orderId },
        { type: 'delivery.update', orderId: 'SO-8002', partnerId: 'PTN-X', location },
        { type: 'delivery.failed', orderId, failureReason: 'address_not_found', occurredAt: '2026-11-24T10:00:00Z' },
        { type: 'cod.collected', orderId, amount: 1 },
        { type: 'delivery.delivered', orderId },
      ],
    });
    expect(results.map((r) => [r.eventId, r.httpStatus])).toEqual([
      ['pmp-SO-8001-7-delivery.failed', 200],
      ['pmp-SO-8002-1-delivery.update', 200],
      ['pmp-SO-8001-8-delivery.failed', 200],
      ['pmp-SO-8001-9-cod.collected', 422],
    ]);
    const bodies = checkPmpCalls(pmpClient.key!, pmpClient.secret!, 4);
    expect(hub.calls[0]?.headers.prefer).toBeUndefined();
    expect(bodies[0]).toMatchObject({ type: 'delivery.failed', failureReason: PMP_DEFAULT_FAILURE_REASON });
    expect(bodies[1]).toMatchObject({ orderId: 'SO-8002', partnerId: 'PTN-X' });
    expect(bodies[2]).toMatchObject({ failureReason: 'address_not_found', occurredAt: '2026-11-24T10:00:00Z' });
    expect(bodies.some((b) => 'partnerName' in b)).toBe(false);

    await expect(sendPmpEvents({ hubUrl: hub.url, events: [{ type: 'cod.collected', orderId }] })).rejects.toThrow(/needs an amount/);

    const gone = await startFakeHub();
    const goneUrl = gone.url;
    await gone.close();
    const unreachable = await sendPmpEvents({
      hubUrl: goneUrl,
      events: [
        { type: 'delivery.delivered', orderId },
        { type: 'cod.collected', orderId, amount: 1 },
      ],
    });
    expect(unreachable).toHaveLength(1);
    expect(unreachable[0]).toMatchObject({ type: 'delivery.delivered', httpStatus: 0 });
    expect(unreachable[0]?.error).toMatch(/cannot reach the hub/);
  });

  describe('the PMP simulator', () => {
    const key = 'sim-pmp-key-000000000000';
    const secret = 'sim-pmp-secret-0000000000';
    let pmp: PmpSimulator;

    beforeEach(async () => {
      pmp = await startPmpSimulator({ hubUrl: hub.url, key, secret });
    });

    afterEach(async () => {
      await pmp.close();
    });

    it('POST /__admin/events-run sends the run to the configured hub, signed, and answers each event; numbering continues per order', async () => {
      const logged: string[] = [];
      const unsubscribe = pmp.onSent((s) => logged.push(`${s.type}:${s.httpStatus}`));
      const answer = await call(pmp.url, 'POST', '/__admin/events-run', {
        orderId,
        wait: 5,
        events: [
          { type: 'delivery.delivered', location },
          { type: 'cod.collected', amount: 450 },
        ],
      });
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject([
        { type: 'delivery.delivered', orderId, eventId: 'pmp-SO-8001-1-delivery.delivered', httpStatus: 200, body: { state: 'applied', orderStatus: 7500 } },
        { type: 'cod.collected', orderId, eventId: 'pmp-SO-8001-2-cod.collected', httpStatus: 200, body: { state: 'applied' } },
      ]);
      const bodies = checkPmpCalls(key, secret, 2);
      expect(hub.calls.every((c) => c.headers.prefer === 'wait=5')).toBe(true);
      expect(bodies[0]).toEqual({
        eventId: 'pmp-SO-8001-1-delivery.delivered',
        orderId,
        partnerId: partner.partnerId,
        occurredAt: bodies[0]!.occurredAt,
        type: 'delivery.delivered',
        location,
      });
      expect(bodies[1]).toEqual({
        eventId: 'pmp-SO-8001-2-cod.collected',
        orderId,
        partnerId: partner.partnerId,
        occurredAt: bodies[1]!.occurredAt,
        type: 'cod.collected',
        amount: 450,
      });

      expect(pmp.sent.map((s) => s.eventId)).toEqual(['pmp-SO-8001-1-delivery.delivered', 'pmp-SO-8001-2-cod.collected']);
      expect(logged).toEqual(['delivery.delivered:200', 'cod.collected:200']);
      unsubscribe();
      // Admin calls are not partner calls.
      expect(pmp.requests).toHaveLength(0);
      expect((await call(pmp.url, 'GET', '/__admin/events')).body).toHaveLength(2);

      // In-process and over HTTP share the count: no event id is reused.
      const again = await pmp.sendPmpEvents({ events: [{ type: 'delivery.update', orderId, tracking }] });
      expect(again[0]).toMatchObject({ eventId: 'pmp-SO-8001-3-delivery.update', httpStatus: 200 });
      const third = await call(pmp.url, 'POST', '/__admin/events-run', {
        events: [{ type: 'partner.assigned', orderId, partnerId: 'PTN-X', partnerName: 'X' }],
      });
      expect((third.body as Array<{ eventId: string }>)[0]?.eventId).toBe('pmp-SO-8001-4-partner.assigned');
      expect(new Set(hub.calls.map((c) => (JSON.parse(c.raw.toString('utf8')) as { eventId: string }).eventId)).size).toBe(4);
      expect((await call(pmp.url, 'DELETE', '/__admin/events')).body).toEqual({ cleared: 4 });
      expect(pmp.sent).toHaveLength(0);
    });

    it('a bad run is a 400 and sends nothing; hubUrl in the body overrides; the hub defaults to the development client pmp', async () => {
      for (const bad of [
        { orderId, events: [] },
        { orderId, events: [{ type: 'delivery.lost' }] },
        { orderId, events: [{ type: 'cod.collected' }] },
        { events: [{ type: 'delivery.delivered' }] },
        { orderId, events: [{ type: 'delivery.delivered' }], wait: 60 },
        { orderId, events: [{ type: 'delivery.delivered', surprise: 1 }] },
      ]) {
        const answer = await call(pmp.url, 'POST', '/__admin/events-run', bad);
        expect(answer.status, JSON.stringify(bad)).toBe(400);
        expect(answer.body).toMatchObject({ error: 'invalid_body' });
      }
      expect(hub.calls).toHaveLength(0);

      const other = await startFakeHub();
      try {
        const answer = await call(pmp.url, 'POST', '/__admin/events-run', { hubUrl: other.url, orderId, events: [{ type: 'delivery.delivered' }] });
        expect(answer).toMatchObject({ status: 200, body: [{ type: 'delivery.delivered', httpStatus: 200 }] });
        expect(other.calls).toHaveLength(1);
        expect(hub.calls).toHaveLength(0);
      } finally {
        await other.close();
      }

      const plain = await startPmpSimulator();
      try {
        expect(plain.hub).toEqual({ hubUrl: 'http://127.0.0.1:3000', key: pmpClient.key, secret: pmpClient.secret });
        plain.configureHub({ hubUrl: hub.url });
        await plain.sendPmpEvents({ events: [{ type: 'delivery.delivered', orderId }] });
        checkPmpCalls(pmpClient.key!, pmpClient.secret!, 1);
      } finally {
        await plain.close();
      }
    });

    it('serves assignments (validated, deterministic, recorded) and deliveries, with failure modes on its partner routes only', async () => {
      const assignment = { orderId, locationId: 'STORE-007', codAmount: 450 };
      expect(await call(pmp.url, 'POST', '/api/assignments', assignment)).toMatchObject({
        status: 200,
        body: { partnerId: partner.partnerId, partnerName: partner.partnerName },
      });
      expect(pmp.requests.map((r) => [r.method, r.path, r.status])).toEqual([['POST', '/api/assignments', 200]]);
      expect(pmp.requests[0]?.body).toEqual(assignment);
      expect((await call(pmp.url, 'POST', '/api/assignments', { orderId, locationId: '' })).status).toBe(400);
      expect(await call(pmp.url, 'GET', `/api/deliveries/${orderId}`)).toMatchObject({ status: 404, body: { error: 'delivery_not_found', orderId } });
      expect((await call(pmp.url, 'PUT', `/__admin/deliveries/${orderId}`, { status: 'OUT_FOR_DELIVERY' })).status).toBe(200);
      expect(await call(pmp.url, 'GET', `/api/deliveries/${orderId}`)).toMatchObject({
        status: 200,
        body: { orderId, partnerId: partner.partnerId, status: 'OUT_FOR_DELIVERY' },
      });

      pmp.setFailureMode({ status: 503, failTimes: 2, paths: '/api/assignments' });
      expect(await statusesOf(pmp, 3, '/api/assignments')).toEqual([503, 503, 400]);
      expect((await call(pmp.url, 'POST', '/api/assignments', assignment)).status).toBe(200);
      pmp.setFailureMode({ hang: true });
      await expect(call(pmp.url, 'POST', '/api/assignments', assignment, { headersTimeout: 150 })).rejects.toMatchObject({ code: 'UND_ERR_HEADERS_TIMEOUT' });
      // An outage of PMP's API does not stop PMP from sending its own events.
      const run = await call(pmp.url, 'POST', '/__admin/events-run', { orderId, events: [{ type: 'delivery.delivered' }] });
      expect(run).toMatchObject({ status: 200, body: [{ httpStatus: 200 }] });
    });
  });

  describe('the MAO simulator', () => {
    let mao: MaoSimulator;

    beforeEach(async () => {
      mao = await startMaoSimulator();
    });

    afterEach(async () => {
      await mao.close();
    });

    it('records each tier-2 status call (method, path, body) and accepts it; failure modes still apply', async () => {
      const update = { status: 'SHIPPED', trackingId: 'GRB123', carrierCode: 'GRAB', occurredAt: '2026-11-24T10:00:00Z' };
      const answer = await call(mao.url, 'POST', `/api/orders/${orderId}/status`, update);
      expect(answer).toMatchObject({ status: 200, body: { orderId, status: 'SHIPPED', accepted: true } });
      expect(mao.statusCalls).toEqual([{ at: expect.any(Number), orderId, method: 'POST', path: `/api/orders/${orderId}/status`, body: update, status: 200 }]);
      expect(mao.statusCallsFor(orderId)).toHaveLength(1);
      expect(mao.statusCallsFor('SO-OTHER')).toHaveLength(0);
      expect(mao.lastStatusFor(orderId)).toEqual(update);

      expect((await call(mao.url, 'POST', `/api/orders/${orderId}/status`, { status: 'SHIPPED' })).status).toBe(400);
      expect(mao.statusCalls[1]).toMatchObject({ status: 400, body: { status: 'SHIPPED' } });

      mao.setFailureMode({ status: 503, failTimes: 1 });
      expect((await call(mao.url, 'POST', `/api/orders/${orderId}/status`, update)).status).toBe(503);
      expect((await call(mao.url, 'POST', `/api/orders/${orderId}/status`, update)).status).toBe(200);
      // The failed call is in `requests`, not among the calls MAO's route took.
      expect(mao.requests.map((r) => r.status)).toEqual([200, 400, 503, 200]);
      expect(mao.statusCalls.map((c) => c.status)).toEqual([200, 400, 200]);

      expect((await call(mao.url, 'GET', '/__admin/status-calls')).body).toHaveLength(3);
      expect((await call(mao.url, 'DELETE', '/__admin/status-calls')).body).toEqual({ cleared: 3 });
      expect(mao.statusCalls).toHaveLength(0);
      expect(mao.lastStatusFor(orderId)).toBeUndefined();
    });
  });
});
