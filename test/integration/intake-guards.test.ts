import { request } from 'undici';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeader } from '../../src/api/signature.js';
import { DEVELOPMENT_CLIENTS } from '../../src/config.js';
import { registerOrder, shipEvent, startExtraWeb, startTestHub, type TestHub } from '../helpers/test-hub.js';

let hub: TestHub;
let orderId: string;
const slick = DEVELOPMENT_CLIENTS.find((c) => c.id === 'slick')!;
const PATH = '/api/fulfillment/ship-events';

beforeAll(async () => {
  hub = await startTestHub();
  orderId = await registerOrder(hub);
});
afterAll(async () => {
  await hub?.close();
});

async function storedEvents(): Promise<number> {
  const rows = await hub.web.db.execute<{ n: number }>(sql`select count(*)::int as n from inbound_events`);
  return rows[0]!.n;
}

async function raw(path: string, body: string | Buffer, headers: Record<string, string>, method: 'POST' | 'GET' = 'POST') {
  const res = await request(new URL(path, hub.baseUrl), { method, headers, body: method === 'POST' ? body : undefined });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

function signedHeaders(body: string | Buffer, over: Record<string, string> = {}) {
  return { authorization: `Bearer ${slick.key}`, 'content-type': 'application/json', 'x-signature': signatureHeader(slick.secret!, body), ...over };
}

function expectError(res: { status: number; body: any }, status: number, code?: string) {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ error: expect.objectContaining({ code: expect.stringMatching(/^[a-z_]+$/), message: expect.any(String) }) });
  if (code) expect(res.body.error.code).toBe(code);
  expect(JSON.stringify(res.body)).not.toMatch(/at .*\.ts:\d+/); // no stack traces
}

describe('authentication and roles (SPEC §3)', () => {
  const body = () => JSON.stringify(shipEvent(orderId, 'picking'));

  it('401 without a key, with a malformed header, and with an unknown key', async () => {
    const b = body();
    expectError(await raw(PATH, b, { 'content-type': 'application/json' }), 401, 'missing_credentials');
    expectError(await raw(PATH, b, signedHeaders(b, { authorization: `Basic ${slick.key}` })), 401, 'missing_credentials');
    expectError(await raw(PATH, b, signedHeaders(b, { authorization: 'Bearer not-a-known-key-000000' })), 401, 'invalid_credentials');
  });

  it('403 for a known key outside its role, including another partner', async () => {
    const b = body();
    for (const id of ['grab', 'viewer', 'operator', 'mao']) {
      const c = DEVELOPMENT_CLIENTS.find((x) => x.id === id)!;
      const headers = {
        authorization: `Bearer ${c.key}`,
        'content-type': 'application/json',
        ...(c.secret ? { 'x-signature': signatureHeader(c.secret, b) } : {}),
      };
      expectError(await raw(PATH, b, headers), 403, 'forbidden');
    }
    expectError(await raw('/api/orders/x', '', { authorization: `Bearer ${slick.key}` }, 'GET'), 403, 'forbidden');
  });

  it('401 for a missing, malformed, wrong, or stale signature; 300 s is the window', async () => {
    const b = body();
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<Record<string, string>> = [
      { 'x-signature': '' },
      { 'x-signature': 'garbage' },
      { 'x-signature': signatureHeader('another-secret-0123456789', b) },
      { 'x-signature': signatureHeader(slick.secret!, `${b} `) },
      // Clear of the 300 s edge by more than the seconds this test may take, so the clock ticking
      // between reading `now` and the server's check cannot move a case across it.
      { 'x-signature': signatureHeader(slick.secret!, b, now - 310) },
      { 'x-signature': signatureHeader(slick.secret!, b, now + 310) },
    ];
    for (const over of cases) {
      const headers = signedHeaders(b, over);
      if (over['x-signature'] === '') delete (headers as Record<string, string>)['x-signature'];
      expectError(await raw(PATH, b, headers), 401, 'invalid_signature');
    }
    expect(await storedEvents()).toBe(0);
    const ok = await raw(PATH, b, signedHeaders(b, { 'x-signature': signatureHeader(slick.secret!, b, now - 280) }));
    expect(ok.status).toBe(202);
  });

  it('health, readiness and metrics need no key; Bull Board needs the admin key', async () => {
    expect((await raw('/api/health', '', {}, 'GET')).status).toBe(200);
    expect((await raw('/api/health/ready', '', {}, 'GET')).body.status).toBe('ready');
    const metrics = await request(new URL('/metrics', hub.baseUrl));
    expect(metrics.statusCode).toBe(200);
    expect(await metrics.body.text()).toContain('hub_http_request_duration_seconds');

    expect((await raw('/admin/queues', '', {}, 'GET')).status).toBe(401);
    const operator = DEVELOPMENT_CLIENTS.find((c) => c.id === 'operator')!;
    expect((await raw('/admin/queues', '', { authorization: `Bearer ${operator.key}` }, 'GET')).status).toBe(403);
    const admin = DEVELOPMENT_CLIENTS.find((c) => c.id === 'admin')!;
    const basic = Buffer.from(`anyone:${admin.key}`).toString('base64');
    const board = await request(new URL('/admin/queues', hub.baseUrl), { headers: { authorization: `Basic ${basic}` } });
    expect(board.statusCode).toBe(200);
    expect(await board.body.text()).toContain('<html');
    const api = await request(new URL('/admin/queues/api/queues', hub.baseUrl), { headers: { authorization: `Bearer ${admin.key}` } });
    expect(api.statusCode).toBe(200);
    expect(JSON.stringify(await api.body.json())).toContain('inbound-events');
  });
});

describe('bad bodies get the right 4xx and store nothing', () => {
  it('400 malformed JSON, 415 not JSON, 413 over 64 KiB', async () => {
    const before = await storedEvents();
    const malformed = '{"eventId": "x",';
    expectError(await raw(PATH, malformed, signedHeaders(malformed)), 400, 'malformed_json');
    const text = 'eventId=x';
    expectError(await raw(PATH, text, signedHeaders(text, { 'content-type': 'text/plain' })), 415, 'unsupported_media_type');
    expectError(await raw(PATH, text, signedHeaders(text, { 'content-type': '' })), 415, 'unsupported_media_type');
    const big = JSON.stringify({ ...shipEvent(orderId, 'picking'), padding: 'x'.repeat(65 * 1024) });
    expectError(await raw(PATH, big, signedHeaders(big)), 413, 'payload_too_large');
    expect(await storedEvents()).toBe(before);
  });

  it('400 for a body holding a \\u0000 character, which Postgres cannot store', async () => {
    const before = await storedEvents();
    const nul = JSON.stringify(shipEvent(orderId, 'picking', { shipFromLocationId: 'STORE-007\u0000' }));
    expect(nul).toContain('\\u0000');
    expectError(await raw(PATH, nul, signedHeaders(nul)), 400, 'malformed_json');
    expect(await storedEvents()).toBe(before);
  });

  it('400 with details for schema violations and wrong types', async () => {
    const before = await storedEvents();
    const bad: Array<Record<string, unknown> | unknown[] | string | number> = [
      [],
      'a string',
      42,
      { ...shipEvent(orderId, 'picking'), eventType: 'teleported' },
      { ...shipEvent(orderId, 'picking'), eventId: '' },
      { ...shipEvent(orderId, 'picking'), eventId: 'x'.repeat(129) },
      { ...shipEvent(orderId, 'picking'), orderId: 123 },
      { ...shipEvent(orderId, 'picking'), occurredAt: 'yesterday' },
      { ...shipEvent(orderId, 'picking'), occurredAt: new Date(Date.now() + 6 * 60_000).toISOString() },
      { ...shipEvent(orderId, 'picking'), unexpected: true },
      (({ tracking: _t, ...rest }) => rest)(shipEvent(orderId, 'shipped')),
      (({ shipFromLocationId: _l, ...rest }) => rest)(shipEvent(orderId, 'picking')),
    ];
    for (const value of bad) {
      const b = JSON.stringify(value);
      const res = await raw(PATH, b, signedHeaders(b));
      expectError(res, 400);
      expect(['validation_failed']).toContain(res.body.error.code);
      expect(Array.isArray(res.body.error.details)).toBe(true);
    }
    expect(await storedEvents()).toBe(before);
  });

  it('404 in the error format for unknown routes and orders', async () => {
    const viewer = DEVELOPMENT_CLIENTS.find((c) => c.id === 'viewer')!;
    expectError(await raw('/api/nothing-here', '', { authorization: `Bearer ${viewer.key}` }, 'GET'), 404, 'not_found');
    expectError(await raw('/api/orders/SO-NOPE', '', { authorization: `Bearer ${viewer.key}` }, 'GET'), 404, 'not_found');
  });

  it('503, never 2xx, when the event cannot be stored', async () => {
    // A second web process whose database does not answer: the partner must not get a 2xx.
    const web = await startExtraWeb(hub, { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' });
    try {
      const res = await web.clients.slick.post(PATH, shipEvent(orderId, 'picking'));
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('service_unavailable');
      // Any other write whose database connection is gone: 503 with Retry-After, never a 500.
      const registration = await web.clients.mao.post('/api/orders', {
        orderId: `SO-NODB-${Date.now()}`,
        shipFromLocationId: 'STORE-007',
        customer: { id: 'C-1' },
        paymentMethod: 'PREPAID',
        status: 3000,
      });
      expect(registration.status, JSON.stringify(registration.body)).toBe(503);
      expect(registration.headers['retry-after']).toBe('1');
      expect(registration.body.error.code).toBe('service_unavailable');
    } finally {
      await web.close();
    }
  });
});
