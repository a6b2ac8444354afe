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

async function call(
  baseUrl: string,
  method: Dispatcher.HttpMethod,
  path: string,
  body?: unknown,
  options: CallOptions = {},
): Promise<CallResult> {
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
