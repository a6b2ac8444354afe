import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseSize } from '../../src/api/rate-limits.js';
import { signatureHeader } from '../../src/api/signature.js';
import { DEVELOPMENT_CLIENTS } from '../../src/config.js';
import { eventually, REDIS_URL, registerOrder, shipEvent, startExtraWeb, startTestHub, type TestHub } from '../helpers/test-hub.js';

/**
 * Rate limits (SPEC §3's 429): per client and role, shared by every web process through the hub's Redis;
 * repeated failed authentication from one address refused, on every web, Bull Board and the console
 * included. Two web apps of one hub share its Redis here: the test hub's and a second one.
 */

const LIMITS = { viewer: 10, operator: 25, slick: 5, failures: 5, pmp: 301 };
const key = (id: string) => DEVELOPMENT_CLIENTS.find((c) => c.id === id)!;

let hub: TestHub;
let second: Awaited<ReturnType<typeof startExtraWeb>>;
beforeAll(async () => {
  hub = await startTestHub({
    inProcessWorkers: false,
    scheduler: false,
    env: {
      RATE_LIMITS: `viewer=${LIMITS.viewer}/60,operator=${LIMITS.operator}/60,partner:slick=${LIMITS.slick}/60,partner:pmp=${LIMITS.pmp}/60`,
      FAILED_AUTH_LIMIT: `${LIMITS.failures}/60`,
    },
  });
  second = await startExtraWeb(hub, {});
});
afterAll(async () => {
  await second?.close();
  await hub?.close();
});

/**
 * Requests from a chosen loopback address (each test its own, so their failures do not mix), over
 * node:http, which binds the address it is given.
 */
function from(localAddress: string) {
  return {
    send(base: string, path: string, headers: Record<string, string>, options: { method?: 'GET' | 'POST' | 'PUT'; body?: string } = {}) {
      const url = new URL(path, base);
      return new Promise<{ status: number; headers: IncomingHttpHeaders; text: string; body: Record<string, any> | undefined }>((resolve, reject) => {
        const req = httpRequest(
          { host: url.hostname, port: url.port, path: url.pathname + url.search, method: options.method ?? 'GET', headers, localAddress, agent: false },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (text += d));
            res.on('end', () =>
              resolve({
                status: res.statusCode!,
                headers: res.headers,
                text,
                body: text.startsWith('{') ? (JSON.parse(text) as Record<string, any>) : undefined,
              }),
            );
          },
        );
        req.on('error', reject);
        req.end(options.body);
      });
    },
    async close() {},
  };
}
const bearer = (id: string) => ({ authorization: `Bearer ${key(id).key}` });

function expect429(
  res: { status: number; headers: Record<string, unknown> | IncomingHttpHeaders; body?: Record<string, any> | undefined },
  code: string,
  windowSeconds: number,
) {
  expect(res.status).toBe(429);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  expect(res.body?.error?.code).toBe(code);
  expect(typeof res.body?.error?.message).toBe('string');
  const retryAfter = Number(res.headers['retry-after']);
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(windowSeconds);
}

describe('per client', () => {
  it("a client's budget is shared by both web processes; past it 429 with Retry-After; each role its own budget", async () => {
    const client = from('127.0.0.1');
    const webs = [hub.baseUrl, second.baseUrl];
    // The reads of one order have routes of their own, ahead of the others (src/api/app.ts): each
    // takes one point too, as does the export that shares their path.
    const paths = ['/api/locations', '/api/orders/SO-RATE-NONE', '/api/orders/SO-RATE-NONE/history', '/api/orders/export?format=csv&status=9000'];
    for (let i = 0; i < LIMITS.viewer; i++) {
      const path = paths[i % paths.length]!;
      const res = await client.send(webs[i % 2]!, path, bearer('viewer'));
      expect(res.status, `request ${i + 1}: ${path}`).toBe(path.startsWith('/api/orders/SO-') ? 404 : 200);
    }
    // The 11th and 12th, on either web, are refused: the count is the one in Redis.
    for (const [i, web] of webs.entries()) {
      const refused = await client.send(web, i === 0 ? '/api/orders/SO-RATE-NONE/tiers' : '/api/locations', bearer('viewer'));
      expect429(refused, 'rate_limited', 60);
      expect(refused.body!.error.details).toEqual({ limit: LIMITS.viewer, windowSeconds: 60 });
    }
    // An operator is another client with its role's larger budget, untouched by the viewer's.
    for (let i = 0; i < LIMITS.operator; i++) {
      expect((await client.send(webs[i % 2]!, '/api/locations', bearer('operator'))).status, `operator request ${i + 1}`).toBe(200);
    }
    expect429(await client.send(webs[1]!, '/api/locations', bearer('operator')), 'rate_limited', 60);
    // The counters are the hub's, under its key prefix.
    expect(await hub.redis.exists(`${hub.prefix}:ratelimit:client:viewer:viewer`)).toBe(1);
    await client.close();
  });

  it('a large budget is taken from Redis a lease at a time, and across both webs exactly the budget is served', async () => {
    // 301 points: leases of 3 (1 %), the last one partial. Ten requests to one web take four leases from the shared count.
    expect(leaseSize({ points: LIMITS.pmp, durationSeconds: 60 })).toBe(3);
    const client = from('127.0.0.1');
    const counter = `${hub.prefix}:ratelimit:client:partner:pmp:pmp`;
    for (let i = 0; i < 10; i++) expect((await client.send(hub.baseUrl, '/api/locations', bearer('pmp'))).status).toBe(200);
    expect(Number(await hub.redis.get(counter))).toBe(12);
    // A burst of 60 at once to the other web: the requests that find its lease spent wait for one lease
    // taken for all of them, instead of each taking its own (which would count up to 180).
    const burst = await Promise.all(Array.from({ length: 60 }, () => client.send(second.baseUrl, '/api/locations', bearer('pmp'))));
    expect(burst.map((r) => r.status)).toEqual(burst.map(() => 200));
    expect(Number(await hub.redis.get(counter)) - 12).toBeGreaterThanOrEqual(60);
    expect(Number(await hub.redis.get(counter)) - 12).toBeLessThanOrEqual(60 + 2);
    // Alternating between the webs until both refuse: every point of the budget served, none more.
    let served = 70;
    const refusedBy = new Set<string>();
    for (let i = 0; refusedBy.size < 2 && i < 2 * LIMITS.pmp; i++) {
      const web = [hub.baseUrl, second.baseUrl][i % 2]!;
      const res = await client.send(web, '/api/locations', bearer('pmp'));
      if (res.status === 429) {
        expect429(res, 'rate_limited', 60);
        refusedBy.add(web);
      } else {
        expect(refusedBy.has(web), 'a web served after it refused').toBe(false);
        served++;
      }
    }
    expect(refusedBy.size).toBe(2);
    expect(served).toBe(LIMITS.pmp);
    await client.close();
  });

  it('a partner past its budget is refused before anything is stored', async () => {
    const orderId = await registerOrder(hub);
    const slick = key('slick');
    const post = (web: string, event: Record<string, unknown>) => {
      const raw = JSON.stringify(event);
      return request(`${web}/api/fulfillment/ship-events`, {
        method: 'POST',
        headers: { ...bearer('slick'), 'content-type': 'application/json', 'x-signature': signatureHeader(slick.secret!, raw) },
        body: raw,
      }).then(async (r) => ({ status: r.statusCode, headers: r.headers, body: (await r.body.json()) as Record<string, any> }));
    };
    for (let i = 0; i < LIMITS.slick; i++) {
      const res = await post(i % 2 ? second.baseUrl : hub.baseUrl, shipEvent(orderId, 'picking'));
      expect(res.status, `event ${i + 1}`).toBe(202);
    }
    const over = shipEvent(orderId, 'picked');
    expect429(await post(hub.baseUrl, over), 'rate_limited', 60);
    const [row] = await hub.web.pg<Array<{ n: number }>>`select count(*)::int as n from inbound_events where event_id = ${over.eventId as string}`;
    expect(row!.n).toBe(0);
  });
});

describe('failed authentication', () => {
  it('from one address: refused after the limit on every web, valid keys and Bull Board included; other addresses unaffected', async () => {
    const attacker = from('127.0.0.2');
    const bystander = from('127.0.0.3');
    const basic = (password: string) => ({ authorization: `Basic ${Buffer.from(`ops:${password}`).toString('base64')}` });
    const raw = JSON.stringify({ eventId: 'evt-guess' });
    // Five failures of different kinds, on both webs: unknown keys, Bull Board's and the console's wrong password, a bad signature.
    const failures = [
      () => attacker.send(hub.baseUrl, '/api/orders/SO-1001', { authorization: 'Bearer guess-000000000000' }),
      () => attacker.send(second.baseUrl, '/admin/queues', basic('guess-111111111111')),
      () => attacker.send(hub.baseUrl, '/ops/', basic('guess-222222222222')),
      () => attacker.send(second.baseUrl, '/api/orders', {}),
      () =>
        attacker.send(
          hub.baseUrl,
          '/api/delivery/status',
          { ...bearer('grab'), 'content-type': 'application/json', 'x-signature': signatureHeader('not-the-secret-000000', raw) },
          { method: 'PUT', body: raw },
        ),
    ];
    expect(failures).toHaveLength(LIMITS.failures);
    for (const [i, fail] of failures.entries()) expect((await fail()).status, `failure ${i + 1}`).toBe(401);

    // The web that counted the last allowed failure refuses the address, whatever it sends.
    const refused = await eventually(async () => {
      const res = await attacker.send(hub.baseUrl, '/api/locations', bearer('admin'));
      return res.status === 429 ? res : undefined;
    }, 'the address refused');
    expect429(refused, 'too_many_failed_authentications', 60);
    expect429(await attacker.send(hub.baseUrl, '/admin/queues', basic(key('admin').key!)), 'too_many_failed_authentications', 60);

    // The other web learns it from the shared count at the address's next failure there.
    expect((await attacker.send(second.baseUrl, '/api/locations', { authorization: 'Bearer guess-333333333333' })).status).toBe(401);
    const refusedThere = await eventually(async () => {
      const res = await attacker.send(second.baseUrl, '/api/locations', bearer('admin'));
      return res.status === 429 ? res : undefined;
    }, 'the address refused by the second web');
    expect429(refusedThere, 'too_many_failed_authentications', 60);

    // Another address is served, and its own failures are its own.
    expect((await bystander.send(hub.baseUrl, '/api/locations', bearer('admin'))).status).toBe(200);
    expect((await bystander.send(second.baseUrl, '/api/locations', { authorization: 'Bearer guess-444444444444' })).status).toBe(401);
    expect((await bystander.send(second.baseUrl, '/api/locations', bearer('admin'))).status).toBe(200);
    expect((await hub.redis.keys(`${hub.prefix}:ratelimit:failed-auth:*`)).length).toBeGreaterThanOrEqual(2);
    await attacker.close();
    await bystander.close();
  });
});

describe('without Redis', () => {
  it('a Redis that stops answering holds no request up: the process counts in its own memory', async () => {
    // A proxy to the hub's Redis that can go silent: the connection stays open, nothing comes back.
    const upstreamUrl = new URL(REDIS_URL);
    let silent = false;
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = connect(Number(upstreamUrl.port || 6379), upstreamUrl.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => sockets.delete(s));
      }
      client.on('data', (d: Buffer) => void (silent || upstream.write(d)));
      upstream.on('data', (d: Buffer) => void (silent || client.write(d)));
    }).listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    const web = await startExtraWeb(hub, { REDIS_URL: `redis://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
    try {
      const client = from('127.0.0.5');
      expect((await client.send(web.baseUrl, '/api/locations', bearer('admin'))).status).toBe(200);
      silent = true;
      const answered = async (res: Promise<{ status: number }>) => {
        let timer: NodeJS.Timeout | undefined;
        const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('a request waited for the silent Redis')), 10_000)));
        try {
          return await Promise.race([res, stuck]);
        } finally {
          clearTimeout(timer);
        }
      };
      // The viewer's budget in Redis is spent (first test); this process's own count starts afresh.
      for (let i = 0; i < LIMITS.viewer; i++)
        expect((await answered(client.send(web.baseUrl, '/api/locations', bearer('viewer')))).status, `request ${i + 1}`).toBe(200);
      expect((await answered(client.send(web.baseUrl, '/api/locations', bearer('viewer')))).status).toBe(429);
    } finally {
      silent = false;
      for (const s of sockets) s.destroy();
      await web.close();
      proxy.close();
    }
  });

  it('a web whose Redis does not answer still serves, limiting from its own memory', async () => {
    const offline = await startExtraWeb(hub, { REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      const client = from('127.0.0.4');
      for (let i = 0; i < LIMITS.operator; i++)
        expect((await client.send(offline.baseUrl, '/api/locations', bearer('operator'))).status, `request ${i + 1}`).toBe(200);
      expect429(await client.send(offline.baseUrl, '/api/locations', bearer('operator')), 'rate_limited', 60);
      await client.close();
    } finally {
      await offline.close();
    }
  });
});
