import { connect } from 'node:net';
import express from 'express';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusStream } from '../../src/api/status-stream.js';
import { DEVELOPMENT_CLIENTS } from '../../src/config.js';
import { eventually, registerOrder, shipEvent, startExtraWeb, startTestHub, type TestHub } from '../helpers/test-hub.js';

/** `GET /api/stream` (SPEC §6) over real HTTP, from two web processes of one hub. */
let hub: TestHub;
let other: Awaited<ReturnType<typeof startExtraWeb>>;
beforeAll(async () => {
  hub = await startTestHub();
  other = await startExtraWeb(hub, {});
});
afterAll(async () => {
  await other?.close();
  await hub?.close();
});

const viewerKey = DEVELOPMENT_CLIENTS.find((c) => c.id === 'viewer')!.key;

interface StreamEvent {
  id: string;
  event: string;
  data: { orderId: string; from: number | null; to: number; at: string; locationId: string };
}

/** A live SSE client: its events as they come, and a way to stop it. */
async function listen(baseUrl: string, query: string, lastEventId?: string) {
  const controller = new AbortController();
  const res = await request(`${baseUrl}/api/stream${query}`, {
    headers: { authorization: `Bearer ${viewerKey}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    signal: controller.signal,
  });
  const events: StreamEvent[] = [];
  const comments: string[] = [];
  let buffer = '';
  const reading = (async () => {
    try {
      for await (const chunk of res.body) {
        buffer += chunk.toString();
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line);
            else if (line.includes(': ')) fields[line.slice(0, line.indexOf(': '))] = line.slice(line.indexOf(': ') + 2);
          }
          if (fields.event) events.push({ id: fields.id!, event: fields.event, data: JSON.parse(fields.data!) });
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    status: res.statusCode,
    headers: res.headers,
    events,
    comments,
    async stop() {
      controller.abort();
      await reading;
    },
  };
}

/** A metric of a web process without labels, from its /metrics. */
async function metricOf(baseUrl: string, name: string): Promise<number | undefined> {
  const res = await request(`${baseUrl}/metrics`);
  const text = await res.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const changesOf = (events: StreamEvent[], orderId: string) => events.filter((e) => e.data.orderId === orderId).map((e) => e.data.to);

describe('the live stream of status changes', () => {
  it('serves every change from either web process, filtered by location and by order, with ids', async () => {
    const byLocation = await listen(hub.baseUrl, '?locationId=STORE-007');
    const elsewhere = await listen(other.baseUrl, '?locationId=STORE-001');
    const orderId = await registerOrder(hub);
    const byOrder = await listen(other.baseUrl, `?orderId=${orderId}`);
    expect(byLocation.status).toBe(200);
    // Each web process counts its own clients: one on this one, two on the other.
    expect(await metricOf(hub.baseUrl, 'hub_stream_clients')).toBe(1);
    expect(await metricOf(other.baseUrl, 'hub_stream_clients')).toBe(2);
    expect(byLocation.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(byLocation.headers['x-accel-buffering']).toBe('no');
    const otherOrder = await registerOrder(hub, { shipFromLocationId: 'STORE-001' });

    for (const t of ['picking', 'packed']) await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, t), { prefer: 'wait=10' });
    await eventually(async () => (changesOf(byOrder.events, orderId).includes(3700) ? true : undefined), 'the order stream to see 3700');
    await eventually(async () => (changesOf(byLocation.events, orderId).includes(3700) ? true : undefined), 'the location stream to see 3700');
    await eventually(async () => (changesOf(elsewhere.events, otherOrder).includes(3000) ? true : undefined), 'the other location');

    // The registration's 3000 reaches the topic (and so this stream) after it connected, or before.
    expect(changesOf(byOrder.events, orderId).filter((to) => to !== 3000)).toEqual([3500, 3600, 3700]);
    expect(byOrder.events.every((e) => e.data.orderId === orderId && e.event === 'status' && /^\d+-\d+$/.test(e.id))).toBe(true);
    expect(byLocation.events.every((e) => e.data.locationId === 'STORE-007')).toBe(true);
    expect(changesOf(byLocation.events, orderId)).toEqual([3000, 3500, 3600, 3700]);
    expect(elsewhere.events.some((e) => e.data.orderId === orderId)).toBe(false);
    expect(byOrder.events.at(-1)!.data).toMatchObject({ orderId, from: 3600, to: 3700, locationId: 'STORE-007' });
    // Ids are the topic's entry ids, in order.
    const ids = byLocation.events.map((e) => e.id);
    expect(
      [...ids].sort((a, b) => a.split('-').map(Number)[0]! - b.split('-').map(Number)[0]! || a.split('-').map(Number)[1]! - b.split('-').map(Number)[1]!),
    ).toEqual(ids);
    expect(byLocation.comments.length).toBeGreaterThan(0);
    for (const s of [byLocation, elsewhere, byOrder]) await s.stop();
    for (const web of [hub.baseUrl, other.baseUrl])
      await eventually(async () => ((await metricOf(web, 'hub_stream_clients')) === 0 ? true : undefined), 'the gauges to count the clients gone');
  });

  it('reads the topic only while clients are connected, and the next client is served live again', async () => {
    const orderId = await registerOrder(hub);
    const first = await listen(hub.baseUrl, `?orderId=${orderId}`);
    expect(hub.statusStream.readingTopic).toBe(true);
    await first.stop();
    // The blocked read ends on the next entry or its 5 s block; with no client left the loop ends there.
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picking'), { prefer: 'wait=10' });
    // The relay puts the change on the topic after its commit: the next client must not be the one to see it.
    const on3500 = (m: Record<string, string>) =>
      m.type === 'status.changed' && m.payload?.includes(`"orderId":"${orderId}"`) && m.payload.includes('"to":3500');
    await eventually(async () => ((await hub.topicMessages()).some(on3500) ? true : undefined), 'the 3500 change on the topic');
    await eventually(async () => (hub.statusStream.readingTopic ? undefined : true), 'the web to stop reading the topic', 10_000);

    const next = await listen(hub.baseUrl, `?orderId=${orderId}`);
    expect(hub.statusStream.readingTopic).toBe(true);
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picked'), { prefer: 'wait=10' });
    await eventually(async () => (changesOf(next.events, orderId).includes(3600) ? true : undefined), 'the new client to get the change live');
    expect(changesOf(next.events, orderId)).toEqual([3600]);
    await next.stop();
  });

  it('a reconnect with Last-Event-ID gets exactly the changes it missed, then continues live', async () => {
    const orderId = await registerOrder(hub);
    const first = await listen(hub.baseUrl, `?orderId=${orderId}`);
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picking'), { prefer: 'wait=10' });
    await eventually(async () => (changesOf(first.events, orderId).includes(3500) ? true : undefined), 'first stream sees 3500');
    const last = first.events.at(-1)!.id;
    await first.stop();

    // Missed while disconnected.
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picked'), { prefer: 'wait=10' });
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'packing'), { prefer: 'wait=10' });
    await eventually(async () => {
      const all = (await hub.topicMessages()).filter((m) => m.orderId === orderId && m.type === 'status.changed');
      return all.length >= 4 ? true : undefined;
    }, 'the missed changes on the topic');

    // Resumed on the other web process.
    const resumed = await listen(other.baseUrl, `?orderId=${orderId}`, last);
    await eventually(async () => (resumed.events.length >= 2 ? true : undefined), 'the replay');
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'packed'), { prefer: 'wait=10' });
    await eventually(async () => (changesOf(resumed.events, orderId).includes(3700) ? true : undefined), 'live after the replay');
    expect(resumed.events.map((e) => [e.data.from, e.data.to])).toEqual([
      [3500, 3600],
      [3600, 3600],
      [3600, 3700],
    ]);
    expect(new Set(resumed.events.map((e) => e.id)).size).toBe(3);
    await resumed.stop();
  });

  it('needs a reader key and refuses unknown filters', async () => {
    const res = await request(`${hub.baseUrl}/api/stream`);
    expect(res.statusCode).toBe(401);
    await res.body.text();
    const bad = await hub.clients.viewer.get('/api/stream?color=blue');
    expect(bad.status).toBe(400);
    const partner = await hub.clients.slick.get('/api/stream');
    expect(partner.status).toBe(403);
  });

  it('an id that is not an entry id is no place to resume from: served live only, nothing replayed', async () => {
    const orderId = await registerOrder(hub);
    await eventually(async () => ((await hub.topicMessages()).some((m) => m.orderId === orderId) ? true : undefined), 'the registration on the topic');
    const client = await listen(hub.baseUrl, `?orderId=${orderId}`, 'not-an-entry-id');
    expect(client.status).toBe(200);
    await hub.clients.slick.post('/api/fulfillment/ship-events', shipEvent(orderId, 'picking'), { prefer: 'wait=10' });
    await eventually(async () => (changesOf(client.events, orderId).includes(3500) ? true : undefined), 'the live change');
    expect(changesOf(client.events, orderId)).toEqual([3500]);
    await client.stop();
  });
});

describe('a client too slow to follow', () => {
  it('a resume that restarts the read misses nothing written while the read finds its start', async () => {
    // A stream of its own whose reader answers XREVRANGE (where the live read starts) only when let go.
    const real = new Redis(hub.config.redisUrl);
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const reader = new Proxy(real, {
      get(target, prop) {
        if (prop === 'xrevrange') return (...args: unknown[]) => held.then(() => (target.xrevrange as (...a: unknown[]) => Promise<unknown>)(...args));
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const stream = new StatusStream(reader, hub.redis, hub.config.topicStream, { warn() {} } as never);
    const app = express();
    app.get('/stream', (req, res) => void stream.serve(req, res, {}));
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const port = (server.address() as { port: number }).port;

    const orderId = `SO-RESUME-${Date.now()}`;
    const change = (to: number) =>
      hub.redis.xadd(
        hub.config.topicStream,
        '*',
        'type',
        'status.changed',
        'orderId',
        orderId,
        'payload',
        JSON.stringify({ orderId, from: to - 100, to, at: new Date().toISOString(), locationId: 'STORE-007' }),
      );
    const seen = (await change(3500))!;
    const missed = (await change(3600))!;
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString()));
    socket.write(`GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: ${seen}\r\n\r\n`);
    const ids = () => [...received.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]!);
    // While the read is finding its start: a replay that did not wait for it has sent `missed` by now.
    await eventually(async () => ids().includes(missed), 'a replay that did not wait', 300).catch(() => undefined);
    const during = (await change(3700))!;
    release();
    await eventually(async () => (ids().includes(during) ? true : undefined), 'the change written while the read found its start');
    const after = (await change(3800))!;
    await eventually(async () => (ids().includes(after) ? true : undefined), 'the next change, live');
    expect(ids()).toEqual([missed, during, after]);
    socket.destroy();
    await stream.stop();
    server.closeAllConnections();
    server.close();
    real.disconnect();
  });

  it('writes what one read of the topic brings a client in one chunk, not one write per change', async () => {
    const net = await import('node:net');
    const url = new URL(hub.baseUrl);
    const socket = net.connect(Number(url.port), url.hostname);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString()));
    const orderId = `SO-BATCH-${Date.now()}`;
    socket.write(`GET /api/stream?orderId=${orderId} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${viewerKey}\r\n\r\n`);
    await eventually(async () => received.includes(': connected'), 'the stream to open');

    // 100 changes land on the topic at once (MULTI), so the web reads them in one XREAD.
    const multi = hub.redis.multi();
    for (let i = 0; i < 100; i++) {
      const payload = JSON.stringify({ orderId, from: 3500, to: 3600, at: new Date().toISOString(), locationId: 'STORE-007' });
      multi.xadd(hub.config.topicStream, '*', 'id', `batch-${i}`, 'type', 'status.changed', 'orderId', orderId, 'payload', payload);
    }
    await multi.exec();
    await eventually(async () => ((received.match(/^event: status$/gm) ?? []).length >= 100 ? true : undefined), 'the 100 changes');
    socket.destroy();

    // The answer is chunked: each write of the server is one chunk. The 100 events come in one.
    const body = received.slice(received.indexOf('\r\n\r\n') + 4);
    const chunks: string[] = [];
    for (let at = 0; at < body.length; ) {
      const eol = body.indexOf('\r\n', at);
      const size = Number.parseInt(body.slice(at, eol), 16);
      chunks.push(body.slice(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    const withEvents = chunks.filter((c) => c.includes('event: status'));
    expect(withEvents).toHaveLength(1);
    expect(withEvents[0]!.match(/^event: status$/gm)).toHaveLength(100);
  });

  it('is dropped rather than buffered without bound, and resumes by Last-Event-ID with nothing missed', async () => {
    // A client that connects and then reads nothing: what the server writes piles up in its buffers.
    const net = await import('node:net');
    const url = new URL(hub.baseUrl);
    const socket = net.connect(Number(url.port), url.hostname);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    let received = '';
    socket.on('data', (d: Buffer) => {
      if (received === '') socket.pause(); // after the answer's first bytes, nothing is read until resumed
      received += d.toString();
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    // A long order id makes each change ~3 KiB on the wire (the stream sends the change, not the
    // payload); the client follows every change, unfiltered.
    const orderId = `SO-SLOW-${Date.now()}-${'x'.repeat(3000)}`;
    socket.write(`GET /api/stream HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${viewerKey}\r\n\r\n`);
    await eventually(async () => received.includes('200 OK'), 'the stream to open');
    const droppedBefore = (await metricOf(hub.baseUrl, 'hub_stream_clients_dropped_total')) ?? 0;

    // Status changes of that order straight onto the topic, far more than the socket buffers and the
    // server's 1 MiB allowance hold.
    const ids: string[] = [];
    for (let batch = 0; batch < 80; batch++) {
      const pipeline = hub.redis.pipeline();
      for (let i = 0; i < 250; i++) {
        const payload = JSON.stringify({ orderId, from: 3500, to: 3600, at: new Date().toISOString(), locationId: 'STORE-007' });
        pipeline.xadd(
          hub.config.topicStream,
          '*',
          'id',
          `slow-${batch}-${i}`,
          'type',
          'status.changed',
          'orderId',
          orderId,
          'occurredAt',
          new Date().toISOString(),
          'payload',
          payload,
        );
      }
      for (const [err, id] of (await pipeline.exec()) ?? []) {
        if (err) throw err;
        ids.push(id as string);
      }
      if (hub.logLines.some((l) => l.includes('status stream client too slow'))) break;
    }
    await eventually(async () => hub.logLines.some((l) => l.includes('status stream client too slow')), 'the slow client to be dropped');
    // Operators see it counted.
    expect(await metricOf(hub.baseUrl, 'hub_stream_clients_dropped_total')).toBe(droppedBefore + 1);
    socket.resume(); // read what was sent before the drop, to the end of the stream
    await closed;

    // What it got before the drop ends at some entry; it resumes from there and gets exactly the rest.
    const got = [...received.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]!);
    expect(got.length).toBeLessThan(ids.length);
    const last = got.at(-1) ?? ids[0]!;
    const resumed = await listen(hub.baseUrl, '', last);
    const expected = ids.slice(ids.indexOf(last) + 1);
    await eventually(
      async () => resumed.events.length >= expected.length,
      `the missed changes replayed (got ${got.length} of ${ids.length} before the drop; ${expected.length} to replay)`,
      30_000,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}; replayed ${resumed.events.length}, first ${resumed.events[0]?.id}, expected first ${expected[0]}`);
    });
    await resumed.stop();
    expect(resumed.events.map((e) => e.id)).toEqual(expected);
  });
});
