/**
 * Counts what one ship event costs the hub in I/O, independent of how fast the machine is: Postgres
 * round trips (socket writes the client then waits on) and statements, Redis round trips and commands —
 * for the intake (web), the worker, and the outbox relay, per event.
 *
 * It runs the hub's own code in this process (createApp, startHubWorkers, relayOutboxOnce) against a
 * database and Redis prefix of its own, and watches every socket write to Postgres and Redis: Postgres
 * frames are decoded (Parse/Bind/Execute/Query) to name each statement; Redis RESP arrays give each
 * command. Run alone (`node --import tsx bench/round-trips.ts [--orders=100] [--json]`) or from run.ts.
 * Uses DATABASE_URL's server (database `bench_<ts>_rt`, dropped at the end) and REDIS_URL (prefix
 * `bench-<ts>-rt`, deleted at the end).
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { HubClient } from '../src/api/hub-client.js';
import { createApp } from '../src/api/app.js';
import { DEVELOPMENT_CLIENTS, loadConfig } from '../src/config.js';
import { connectDatabase } from '../src/db/client.js';
import { applyMigrations } from '../src/db/migrate.js';
import { seedStoreLocations } from '../src/db/store-locations.js';
import { EventOutcomeWaiters, eventOutcomeChannel } from '../src/inbox/event-outcomes.js';
import { registerOrder } from '../src/orders/order-registration.js';
import { connectRedis } from '../src/queues/redis-connection.js';
import { buildHubDeps } from '../src/runtime.js';
import { startHubWorkers } from '../src/workers/hub-workers.js';
import { relayOutboxOnce } from '../src/workers/outbox-relay.js';
import { startAllSimulators } from '../src/simulators/index.js';

// ───────────── socket tap (installed before any connection is made) ─────────────

interface Tally {
  pgWrites: number;
  /** Writes that only Parse + Describe + Flush: postgres.js asks for parameter types before it can bind. */
  pgDescribeWrites: number;
  pgStatements: Map<string, number>;
  redisWrites: number;
  redisCommands: Map<string, number>;
}
const newTally = (): Tally => ({ pgWrites: 0, pgDescribeWrites: 0, pgStatements: new Map(), redisWrites: 0, redisCommands: new Map() });
let tally = newTally();
let pgPort = 5432;
let redisPort = 6379;
/** Per connection: statement name ('' = the unnamed one) → SQL, and the SQL of the last Bind. */
const connections = new WeakMap<object, { names: Map<string, string>; bound: string }>();
const redisPartial = new WeakMap<object, Buffer>();

const bump = (m: Map<string, number>, k: string, n = 1) => m.set(k, (m.get(k) ?? 0) + n);
const cstring = (b: Buffer, at: number): [string, number] => {
  const end = b.indexOf(0, at);
  return [b.toString('utf8', at, end), end + 1];
};
const shortSql = (q: string) => q.replace(/\s+/g, ' ').trim().slice(0, 90);

function tapPostgres(socket: object, data: Buffer): void {
  tally.pgWrites++;
  let conn = connections.get(socket);
  if (!conn) {
    conn = { names: new Map(), bound: '(unknown)' };
    connections.set(socket, conn);
  }
  let executes = 0;
  let flush = false;
  let i = 0;
  while (i + 5 <= data.length) {
    const type = String.fromCharCode(data[i]!);
    const len = data.readInt32BE(i + 1);
    if (len < 4 || !/[A-Za-z]/.test(type)) return; // startup message or something unframed
    const body = i + 5;
    if (type === 'P') {
      const [name, next] = cstring(data, body);
      const [query] = cstring(data, next);
      conn.names.set(name, shortSql(query));
    } else if (type === 'B') {
      const [, next] = cstring(data, body); // portal
      const [name] = cstring(data, next);
      conn.bound = conn.names.get(name) ?? `(statement ${name})`;
    } else if (type === 'E') {
      executes++;
      bump(tally.pgStatements, conn.bound);
    } else if (type === 'Q') {
      executes++;
      bump(tally.pgStatements, shortSql(cstring(data, body)[0]));
    } else if (type === 'H') {
      flush = true;
    }
    i += 1 + len;
  }
  if (flush && executes === 0) tally.pgDescribeWrites++;
}

function tapRedis(socket: object, chunk: Buffer): void {
  tally.redisWrites++;
  const prev = redisPartial.get(socket);
  const data = prev ? Buffer.concat([prev, chunk]) : chunk;
  let i = 0;
  const line = (at: number): [string, number] | undefined => {
    const end = data.indexOf('\r\n', at);
    return end < 0 ? undefined : [data.toString('latin1', at, end), end + 2];
  };
  for (;;) {
    if (i >= data.length) break;
    const head = line(i);
    if (head?.[0][0] !== '*') break;
    const n = Number(head[0].slice(1));
    let at = head[1];
    const args: string[] = [];
    let complete = true;
    for (let k = 0; k < n; k++) {
      const h = line(at);
      if (!h) {
        complete = false;
        break;
      }
      const len = Number(h[0].slice(1));
      if (h[1] + len + 2 > data.length) {
        complete = false;
        break;
      }
      if (k < 2) args.push(data.toString('latin1', h[1], h[1] + Math.min(len, 60)));
      at = h[1] + len + 2;
    }
    if (!complete) break;
    const cmd = (args[0] ?? '?').toUpperCase();
    bump(tally.redisCommands, cmd === 'EVALSHA' ? `EVALSHA ${args[1] ?? ''}` : cmd);
    i = at;
  }
  if (i < data.length) redisPartial.set(socket, data.subarray(i));
  else redisPartial.delete(socket);
}
/** BullMQ's Lua scripts by SHA1 (what EVALSHA names), from the scripts BullMQ ships. */
const scriptNames = new Map<string, string>();
try {
  const require = createRequire(import.meta.url);
  const scripts = require(path.join(path.dirname(require.resolve('bullmq')), 'scripts', 'index.js')) as Record<string, { name?: string; content?: string }>;
  for (const script of Object.values(scripts)) {
    if (script?.content) scriptNames.set(createHash('sha1').update(script.content).digest('hex'), script.name ?? '?');
  }
} catch {
  // names are a nicety: without them EVALSHA shows the SHA's first characters
}
const commandName = (c: string) => (c.startsWith('EVALSHA ') ? `EVALSHA ${scriptNames.get(c.slice(8)) ?? c.slice(8, 16)}` : c);

const proto = net.Socket.prototype as unknown as {
  _writeGeneric(writev: boolean, data: unknown, encoding: string, cb: unknown): unknown;
};
const original = proto._writeGeneric;
proto._writeGeneric = function (this: net.Socket, writev: boolean, data: unknown, encoding: string, cb: unknown) {
  const port = this.remotePort;
  if (port === pgPort || port === redisPort) {
    const chunks = writev
      ? (data as Array<{ chunk: Buffer | string; encoding: BufferEncoding }>).map((c) =>
          typeof c.chunk === 'string' ? Buffer.from(c.chunk, c.encoding) : c.chunk,
        )
      : [typeof data === 'string' ? Buffer.from(data, encoding as BufferEncoding) : (data as Buffer)];
    const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    try {
      if (port === pgPort) tapPostgres(this, buf);
      else tapRedis(this, buf);
    } catch {
      // counting must never break the hub
    }
  }
  return original.call(this, writev, data, encoding, cb);
};

// ───────────── the measurement ─────────────

export interface RoundTripReport {
  events: number;
  /** `shipped` and everything it causes, per shipped event (INTAKE_APPLY=queue). */
  shipped?: RoundTripReport['parts'][number];
  /** The same with INTAKE_APPLY=web (the default): the web stores and applies, the relay publishes. */
  web?: { parts: RoundTripReport['parts']; shipped: RoundTripReport['parts'][number] };
  parts: Array<{
    part: string;
    perEvent: { pgRoundTrips: number; pgDescribeRoundTrips: number; pgStatements: number; redisRoundTrips: number; redisCommands: number };
    statements: Array<[string, number]>;
    commands: Array<[string, number]>;
  }>;
}

function summarize(part: string, t: Tally, per: number): RoundTripReport['parts'][number] {
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [commandName(k), v / per] as [string, number]);
  return {
    part,
    perEvent: {
      pgRoundTrips: t.pgWrites / per,
      pgDescribeRoundTrips: t.pgDescribeWrites / per,
      pgStatements: sum(t.pgStatements) / per,
      redisRoundTrips: t.redisWrites / per,
      redisCommands: sum(t.redisCommands) / per,
    },
    statements: sorted(t.pgStatements),
    commands: sorted(t.redisCommands),
  };
}

export async function measureRoundTrips(options: { serverUrl: string; redisUrl: string; name: string; orders?: number }): Promise<RoundTripReport> {
  const orders = options.orders ?? 100;
  const dbUrl = (db: string) => {
    const u = new URL(options.serverUrl);
    u.pathname = `/${db}`;
    return u.toString();
  };
  pgPort = Number(new URL(options.serverUrl).port || 5432);
  redisPort = Number(new URL(options.redisUrl).port || 6379);
  const admin = postgres(dbUrl('postgres'), { max: 1, onnotice: () => {} });
  const database = options.name.replace(/-/g, '_');
  await admin.unsafe(`create database "${database}"`);
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    await applyMigrations(dbUrl(database));
    const seed = connectDatabase(dbUrl(database), { max: 4 });
    await seedStoreLocations(seed.db);
    // The partners `shipped` calls (Slick's confirmation; at 7000 PMP, MAO and the customer notification).
    const SLICK_TOKEN = 'rt-slick-token';
    const sims = await startAllSimulators({ slickToken: SLICK_TOKEN });
    cleanups.push(() => sims.close());

    const config = loadConfig({
      // This web hands every event to the queue (the worker's part is counted on its own); the one
      // below stores and applies them itself, the default.
      INTAKE_APPLY: 'queue',
      SLICK_BASE_URL: sims.slick.url,
      SLICK_API_TOKEN: SLICK_TOKEN,
      PMP_BASE_URL: sims.pmp.url,
      MAO_BASE_URL: sims.mao.url,
      NOTIFY_WEBHOOK_URL: `${sims.notify.url}/notifications`,
      NODE_ENV: 'development',
      DATABASE_URL: dbUrl(database),
      REDIS_URL: options.redisUrl,
      REDIS_PREFIX: options.name,
      TOPIC_STREAM: `${options.name}:order.fulfillment.v1`,
      LOG_LEVEL: 'warn',
      PORT: '0',
    });
    const web = buildHubDeps(config, 'web');
    cleanups.push(() => web.close());
    const subscriber = connectRedis(config.redisUrl, 'worker', 'rt-web-outcomes');
    cleanups.push(async () => subscriber.disconnect());
    const waiters = new EventOutcomeWaiters(subscriber, eventOutcomeChannel(config.redisPrefix));
    await waiters.start();
    const slick = DEVELOPMENT_CLIENTS.find((c) => c.id === 'slick')!;
    /** A web app of these deps on a port of its own, and Slick's client of it. */
    const serve = async (deps: typeof web) => {
      if (deps.redis.status !== 'ready') await once(deps.redis, 'ready');
      const server = createApp(deps, { waiters }).listen(0, '127.0.0.1');
      await once(server, 'listening');
      cleanups.push(async () => {
        server.close();
        server.closeAllConnections();
      });
      return new HubClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, slick);
    };
    const queueClient = await serve(web);
    const applyingWeb = buildHubDeps({ ...config, intakeApply: 'web' }, 'web');
    cleanups.push(() => applyingWeb.close());
    const webClient = await serve(applyingWeb);
    let client = queueClient;

    const loc = (n: number) => `STORE-${String((n % 25) + 1).padStart(3, '0')}`;
    const TYPES = ['picking', 'picked', 'packing', 'packed'];
    const workerDeps = buildHubDeps(config, 'worker');
    cleanups.push(() => workerDeps.close());
    const connection = connectRedis(config.redisUrl, 'worker', 'rt-worker');
    cleanups.push(async () => connection.disconnect());
    let processed = 0;
    const processedSoFar = async () => (await workerDeps.metrics.eventsProcessed.get()).values.reduce((a, v) => a + v.value, 0);

    /**
     * One round: register `count` orders (not counted), send their four events through the intake one
     * request at a time with no worker running, then let one worker process' code work off the backlog
     * (as under load), then relay the outbox. The events go in waves (all pickings, then all pickeds, …)
     * as in run.ts, so concurrent jobs never hold two events of one order and every event applies in order.
     */
    /** `count` orders at 3000, registered straight through the hub's own function (not counted). */
    const registerOrders = async (tag: string, count: number) => {
      const ids = Array.from({ length: count }, (_, n) => `rt-${tag}-o${n}`);
      for (const [n, orderId] of ids.entries()) {
        await registerOrder(
          seed.db,
          { orderId, shipFromLocationId: loc(n), customer: { id: 'c' }, paymentMethod: 'PREPAID', status: 3000 },
          { clientId: 'mao', source: 'mao' },
        );
      }
      return ids;
    };

    const round = async (tag: string, count: number) => {
      const ids = await registerOrders(tag, count);
      while ((await relayOutboxOnce(web)) > 0); // the registrations' messages are not the events'
      const events = TYPES.flatMap((type) => ids.map((orderId, n) => ({ orderId, n, type })));

      tally = newTally();
      for (const [i, e] of events.entries()) {
        const res = await client.post('/api/fulfillment/ship-events', {
          eventId: `rt-${tag}-${i}`,
          orderId: e.orderId,
          shipFromLocationId: loc(e.n),
          eventType: e.type,
          occurredAt: new Date().toISOString(),
        });
        if (res.status !== 202) throw new Error(`intake answered ${res.status}: ${JSON.stringify(res.body)}`);
      }
      if (client === webClient) {
        const intake = summarize('web: stores and applies', tally, events.length);
        tally = newTally();
        let published = 0;
        for (let n = await relayOutboxOnce(web); n > 0; n = await relayOutboxOnce(web)) published += n;
        const relay = summarize(`outbox relay (${(published / events.length).toFixed(2)} messages/event)`, tally, events.length);
        return { total: events.length, parts: [intake, relay] };
      }
      const intake = summarize('intake (web)', tally, events.length);

      tally = newTally();
      const workers = startHubWorkers(workerDeps, connection);
      const deadline = Date.now() + 120_000;
      while ((await processedSoFar()) < processed + events.length) {
        if (Date.now() > deadline) throw new Error('the worker did not process the events within 120 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      processed += events.length;
      await workers.close();
      const worker = summarize('worker', tally, events.length);

      tally = newTally();
      let published = 0;
      for (let n = await relayOutboxOnce(web); n > 0; n = await relayOutboxOnce(web)) published += n;
      const relay = summarize(`outbox relay (${(published / events.length).toFixed(2)} messages/event)`, tally, events.length);
      return { total: events.length, parts: [intake, worker, relay] };
    };

    /**
     * `shipped` end to end: orders brought to 3700 first (not counted), then their shipped events sent
     * through the intake and everything they cause counted together until each order is 7000 with its
     * calls confirmed: the worker's transaction, Slick's confirmation (audit, 7000), the relay's runs
     * and the calls 7000 owes (PMP's assignment, MAO's status, the customer notification), each with
     * its audit. The partners' HTTP is not counted (only Postgres and Redis sockets are).
     */
    const shippedRound = async (tag: string, count: number) => {
      const ids = await registerOrders(tag, count);
      const workers = startHubWorkers(workerDeps, connection);
      let sent = 0;
      for (const type of TYPES) {
        for (const [n, orderId] of ids.entries()) {
          await client.post('/api/fulfillment/ship-events', {
            eventId: `rt-${tag}-${type}-${n}`,
            orderId,
            shipFromLocationId: loc(n),
            eventType: type,
            occurredAt: new Date().toISOString(),
          });
          sent++;
        }
      }
      const until = async (what: string, done: () => Promise<boolean>) => {
        const deadline = Date.now() + 120_000;
        for (;;) {
          while ((await relayOutboxOnce(web)) > 0);
          if (await done()) return;
          if (Date.now() > deadline) throw new Error(`${what} within 120 s`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await until('the orders did not reach 3700', async () => {
        const [r] = await seed.sql<{ n: number }[]>`select count(*)::int as n from orders where order_id like ${`rt-${tag}-%`} and status = 3700`;
        return r!.n === count;
      });
      tally = newTally();
      for (const [n, orderId] of ids.entries()) {
        const res = await client.post('/api/fulfillment/ship-events', {
          eventId: `rt-${tag}-shipped-${n}`,
          orderId,
          shipFromLocationId: loc(n),
          eventType: 'shipped',
          occurredAt: new Date().toISOString(),
          tracking: { trackingId: `GRB-${orderId}`, carrierCode: 'GRAB' },
        });
        if (res.status !== 202) throw new Error(`intake answered ${res.status}: ${JSON.stringify(res.body)}`);
      }
      await until('shipped orders did not reach 7000 with their calls confirmed', async () => {
        const [r] = await seed.sql<{ fulfilled: number; pending: number; confirmed: number }[]>`
          select (select count(*)::int from orders where order_id like ${`rt-${tag}-%`} and status = 7000) as fulfilled,
                 (select count(*)::int from order_calls where order_id like ${`rt-${tag}-%`} and state <> 'confirmed') as pending,
                 (select count(*)::int from order_calls where order_id like ${`rt-${tag}-%`} and state = 'confirmed') as confirmed`;
        // Per order: Slick's confirmation, PMP's assignment, MAO's status, the 7000 notification.
        return r!.fulfilled === count && r!.pending === 0 && r!.confirmed === 4 * count;
      });
      const part = summarize(
        client === webClient
          ? 'shipped, end to end (web: stores and applies; Slick confirmation, relay, PMP + MAO + notification calls)'
          : 'shipped, end to end (intake, worker, Slick confirmation, relay, PMP + MAO + notification calls)',
        tally,
        count,
      );
      await workers.close();
      // The worker counts what it applied; the applying web counts its own.
      processed = await processedSoFar();
      return part;
    };

    // Warm-up round (not reported): connections open and prepare their statements, as in a process
    // that has been running for a while.
    await round('warm', 50);
    const {
      total,
      parts: [intake, worker, relay],
    } = await round('count', orders);
    await shippedRound('swarm', 20);
    const shipped = await shippedRound('ship', Math.max(20, Math.round(orders / 2)));

    client = webClient;
    await round('wwarm', 50);
    const { parts: webParts } = await round('wcount', orders);
    await shippedRound('wswarm', 20);
    const webShipped = await shippedRound('wship', Math.max(20, Math.round(orders / 2)));
    await seed.close();
    return { events: total, parts: [intake!, worker!, relay!], shipped, web: { parts: webParts, shipped: webShipped } };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await admin.unsafe(`drop database if exists "${database}" with (force)`).catch(() => {});
    await admin.end({ timeout: 5 });
  }
}

export function roundTripMarkdown(r: RoundTripReport): string {
  const f = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));
  const row = (p: RoundTripReport['parts'][number], suffix = '') =>
    `| ${p.part}${suffix} | ${f(p.perEvent.pgRoundTrips)} | ${f(p.perEvent.pgDescribeRoundTrips)} | ${f(p.perEvent.pgStatements)} | ${f(p.perEvent.redisRoundTrips)} | ${f(p.perEvent.redisCommands)} |`;
  const lines: string[] = [];
  const paths: Array<[string, RoundTripReport['parts'], RoundTripReport['parts'][number] | undefined]> = [
    ...(r.web ? [['INTAKE_APPLY=web (the default)', r.web.parts, r.web.shipped] as [string, RoundTripReport['parts'], RoundTripReport['parts'][number]]] : []),
    ['INTAKE_APPLY=queue', r.parts, r.shipped],
  ];
  for (const [name, parts, shipped] of paths) {
    lines.push(
      `${name}:`,
      '',
      `| part | Postgres round trips | … of which describe-only | Postgres statements | Redis round trips | Redis commands |`,
      `|---|---:|---:|---:|---:|---:|`,
    );
    lines.push(...parts.map((p) => row(p)));
    const total = parts.reduce(
      (a, p) => ({
        pg: a.pg + p.perEvent.pgRoundTrips,
        pd: a.pd + p.perEvent.pgDescribeRoundTrips,
        st: a.st + p.perEvent.pgStatements,
        rr: a.rr + p.perEvent.redisRoundTrips,
        rc: a.rc + p.perEvent.redisCommands,
      }),
      { pg: 0, pd: 0, st: 0, rr: 0, rc: 0 },
    );
    lines.push(`| **total** | **${f(total.pg)}** | **${f(total.pd)}** | **${f(total.st)}** | **${f(total.rr)}** | **${f(total.rc)}** |`);
    if (shipped) lines.push(row(shipped, ', per shipped event'));
    lines.push('');
  }
  for (const p of [...(r.web ? [...r.web.parts, r.web.shipped] : []), ...r.parts, ...(r.shipped ? [r.shipped] : [])]) {
    lines.push('', `${p.part}, per event:`, '');
    for (const [s, n] of p.statements) lines.push(`- ${f(n)} × \`${s}\``);
    for (const [c, n] of p.commands) lines.push(`- ${f(n)} × Redis \`${c}\``);
  }
  return lines.join('\n');
}

// CLI
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const json = process.argv.includes('--json');
  const ordersArg = process.argv.find((a) => a.startsWith('--orders='));
  const id = process.env.BENCH_RT_NAME ?? `bench-${Date.now()}-rt`;
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const { Redis } = await import('ioredis');
  let report: RoundTripReport | undefined;
  try {
    report = await measureRoundTrips({
      serverUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      redisUrl,
      name: id,
      ...(ordersArg ? { orders: Number(ordersArg.split('=')[1]) } : {}),
    });
  } finally {
    const r = new Redis(redisUrl);
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${id}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.unlink(...keys);
    } while (cursor !== '0');
    r.disconnect();
  }
  console.log(json ? JSON.stringify(report) : roundTripMarkdown(report));
  process.exit(0);
}
