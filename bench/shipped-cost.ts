/**
 * What a `shipped` costs beyond a plain ship event, in CPU, across the hub's processes, Postgres and
 * Redis (`npm run bench -- --traffic=shipped-cost`, or alone: `node --import tsx bench/shipped-cost.ts`).
 *
 * The real `web`, `worker` and `scheduler` run with every partner configured; the simulators answer
 * at once in this process (their CPU is the partners', reported apart). Two phases over the same
 * processes, each sending --events ship events open loop at --rate per second, each to its own order:
 *
 *   plain    `picking` on orders at 3000 (to 3500): one transition, no partner call owed;
 *   shipped  `shipped` on orders at 3700, packed (brought there first, not measured): the Slick confirmation
 *            (7000), then the three calls owed at 7000 (customer notification, PMP assignment, MAO
 *            status) and the topic messages, until every one of them is confirmed.
 *
 * CPU is read from /proc at the start of a phase and when it is quiet (nothing queued, nothing owed,
 * nothing unpublished); the processes' idle CPU, measured over --idle seconds before each phase, is
 * taken off for the phase's length, so what is left is what the events caused. The difference of the
 * two phases' CPU per event is what `shipped` costs beyond a plain event. Results go to
 * bench/shipped-cost-results.md.
 *
 * Flags: --events=1000 --rate=100 --idle=5 --quiet=60 (s) --no-write
 * Env:   DATABASE_URL (its server; the database name is ignored), REDIS_URL, BENCH_NODE_ARGS.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { request } from 'undici';
import { HubClient } from '../src/api/hub-client.js';
import { DEVELOPMENT_CLIENTS } from '../src/config.js';
import { hubPartnerEnv, startAllSimulators, type AllSimulators } from '../src/simulators/index.js';
import {
  cleanupOnce,
  dbUrl,
  deleteRedisKeys,
  flag,
  freePort,
  mapLimit,
  numberFlag,
  redisUrl,
  releaseDatabase,
  ROOT,
  running,
  sleep,
  startProcess as startLoggedProcess,
  stopProcesses,
  waitFor,
  type Proc,
} from './bench-processes.js';
import { cpuByRootMs, cpuDeltaMs, cpuSnapshot, machineTicks, stolenShare, type CpuSnapshot } from './cpu.js';
import { location, SHIP_EVENT_TYPES } from './partner-order-life.js';

const opts = {
  events: numberFlag('events', 1000, 1),
  rate: numberFlag('rate', 100, 1),
  idle: numberFlag('idle', 5, 1),
  quiet: numberFlag('quiet', 60, 1),
  write: flag('no-write', 'false') !== 'true',
};

const SLICK_TOKEN = 'bench-slick-token';
const runId = Date.now();
const database = `bench_${runId}_shipped`;
const prefix = `bench-${runId}-shipped`;
const logDir = path.join(os.tmpdir(), `bench-${runId}`);
mkdirSync(logDir, { recursive: true });

const admin = postgres(dbUrl('postgres'), { max: 1, onnotice: () => {} });
const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
let sims: AllSimulators | undefined;
let databaseMade = false;

const cleanup = cleanupOnce(
  () => [
    ['stop processes', () => stopProcesses([...running])],
    ['stop simulators', async () => sims?.close()],
    ['drop the database', async () => databaseMade && admin.unsafe(`drop database if exists "${database}" with (force)`)],
    ['delete Redis keys', () => deleteRedisKeys(redis, `${prefix}*`)],
    [
      'close connections',
      async () => {
        await admin.end({ timeout: 5 });
        redis.disconnect();
      },
    ],
  ],
  (signal) => `\n${signal}: stopping processes, dropping ${database}, deleting ${prefix}* keys…`,
);

const nodeArgs = () => (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const client = (id: string) => DEVELOPMENT_CLIENTS.find((c) => c.id === id)!;
const fmt = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '—');

interface Phase {
  name: 'plain' | 'shipped';
  events: number;
  wallS: number;
  /** CPU ms per event by part, idle taken off. */
  perEvent: Record<string, number>;
  /** Share of the machine's CPU time the host stole during the phase. */
  stolen: number;
}

try {
  console.log(`shipped cost: ${opts.events} events per phase at ${opts.rate}/s; node ${process.version}, ${os.cpus().length} cores`);
  await admin.unsafe(`create database "${database}"`);
  databaseMade = true;
  await releaseDatabase(logDir, database, nodeArgs());
  sims = await startAllSimulators({ slickToken: SLICK_TOKEN });
  const port = await freePort();
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    API_CLIENTS: '',
    DATABASE_URL: dbUrl(database),
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    TOPIC_STREAM: `${prefix}:order.fulfillment.v1`,
    PORT: String(port),
    LOG_LEVEL: 'warn',
    ...hubPartnerEnv(sims, SLICK_TOKEN),
    WORKER_METRICS_PORT: '0',
    SCHEDULER_METRICS_PORT: '0',
  };
  const procs: Proc[] = [
    startLoggedProcess(logDir, 'web', 'src/api/main.ts', env, nodeArgs()),
    startLoggedProcess(logDir, 'worker', 'src/workers/main.ts', env, nodeArgs()),
    startLoggedProcess(logDir, 'scheduler', 'src/workers/scheduler.main.ts', env, nodeArgs()),
  ];
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitFor(
    'the hub to answer',
    60_000,
    async () => {
      const res = await request(`${baseUrl}/api/health/ready`).catch(() => undefined);
      await res?.body.dump();
      return res?.statusCode === 200;
    },
    procs,
  );
  const sql = postgres(dbUrl(database), { max: 4, onnotice: () => {} });
  // Signed as each partner signs (the project's own client); any answer but 2xx stops the run.
  const partners = { mao: new HubClient(baseUrl, client('mao')), slick: new HubClient(baseUrl, client('slick')) };
  const send = async (clientId: keyof typeof partners, route: string, body: Record<string, unknown>): Promise<void> => {
    const res = await partners[clientId].post(route, body);
    if (res.status >= 300) throw new Error(`POST ${route} ${body.eventId ?? body.orderId}: ${res.status} ${JSON.stringify(res.body)}`);
  };
  const shipEvent = (orderId: string, n: number, eventType: (typeof SHIP_EVENT_TYPES)[number]) =>
    send('slick', '/api/fulfillment/ship-events', {
      eventId: `${orderId}-${eventType}`,
      orderId,
      shipFromLocationId: location(n),
      eventType,
      occurredAt: new Date().toISOString(),
      ...(eventType === 'shipped'
        ? { tracking: { trackingId: `GRB-${orderId}`, carrierCode: 'GRAB', estimatedDelivery: new Date(Date.now() + 3600_000).toISOString() } }
        : {}),
    });
  const quiet = async (what: string) =>
    waitFor(
      what,
      opts.quiet * 1000,
      async () => {
        const [r] = await sql<{ busy: number }[]>`
          select (select count(*)::int from inbound_events where state = 'queued')
               + (select count(*)::int from outbox where published_at is null)
               + (select count(*)::int from order_calls where state = 'pending') as busy`;
        return r!.busy === 0;
      },
      procs,
    );

  // Orders: plain-<n> at 3000, shipped-<n> brought to packed. Neither is measured.
  process.stdout.write('  preparing orders… ');
  const plainId = (n: number) => `plain-o${n}`;
  const shippedId = (n: number) => `shipped-o${n}`;
  const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);
  await mapLimit(upTo(opts.events * 2), 32, async (i) => {
    const n = i % opts.events;
    const orderId = i < opts.events ? plainId(n) : shippedId(n);
    await send('mao', '/api/orders', { orderId, shipFromLocationId: location(n), customer: { id: `c-${orderId}` }, paymentMethod: 'PREPAID', status: 3000 });
  });
  await mapLimit(upTo(opts.events), 32, async (n) => {
    for (const t of SHIP_EVENT_TYPES.slice(0, 4)) await shipEvent(shippedId(n), n, t);
  });
  await quiet('the preparation to settle');
  console.log('done');

  const roots = procs.map((p) => p.child.pid!);
  const parts = (a: CpuSnapshot, b: CpuSnapshot): Record<string, number> => {
    const byRoot = cpuByRootMs(a, b);
    const d = cpuDeltaMs(a, b);
    const out: Record<string, number> = {};
    for (const p of procs) out[p.name] = byRoot.get(p.child.pid!) ?? 0;
    out.postgres = d.pg;
    out.redis = d.redis;
    return out;
  };

  const runPhase = async (name: Phase['name']): Promise<Phase> => {
    // The processes' CPU when nothing happens, per second.
    await sleep(1000);
    const i0 = cpuSnapshot(roots, database);
    const it0 = performance.now();
    await sleep(opts.idle * 1000);
    const idleS = (performance.now() - it0) / 1000;
    const idle = parts(i0, cpuSnapshot(roots, database));

    process.stdout.write(`  ${name}: ${opts.events} events at ${opts.rate}/s… `);
    const c0 = cpuSnapshot(roots, database);
    const machine0 = machineTicks();
    const self0 = process.cpuUsage();
    const t0 = performance.now();
    const sends: Promise<void>[] = [];
    for (let n = 0; n < opts.events; n++) {
      const due = t0 + (n * 1000) / opts.rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      sends.push(name === 'plain' ? shipEvent(plainId(n), n, 'picking') : shipEvent(shippedId(n), n, 'shipped'));
    }
    await Promise.all(sends);
    await quiet(`the ${name} phase to settle`);
    if (name === 'shipped') {
      const [r] = await sql<{ at7000: number; confirmed: number }[]>`
        select (select count(*)::int from orders where order_id like 'shipped-o%' and status = 7000) as at7000,
               (select count(*)::int from order_calls where order_id like 'shipped-o%' and state = 'confirmed') as confirmed`;
      if (r!.at7000 !== opts.events || r!.confirmed !== opts.events * 4)
        throw new Error(`shipped phase: ${r!.at7000} of ${opts.events} orders at 7000, ${r!.confirmed} of ${opts.events * 4} calls confirmed`);
    } else {
      const [r] = await sql<{ n: number }[]>`select count(*)::int as n from orders where order_id like 'plain-o%' and status = 3500`;
      if (r!.n !== opts.events) throw new Error(`plain phase: ${r!.n} of ${opts.events} orders at 3500`);
    }
    const wallS = (performance.now() - t0) / 1000;
    const used = parts(c0, cpuSnapshot(roots, database));
    const stolen = stolenShare(machine0, machineTicks());
    const self = process.cpuUsage(self0);
    const perEvent: Record<string, number> = {};
    for (const [k, ms] of Object.entries(used)) perEvent[k] = (ms - ((idle[k] ?? 0) / idleS) * wallS) / opts.events;
    perEvent.hub = Object.values(perEvent).reduce((a, b) => a + b, 0);
    perEvent['generator+simulators'] = (self.user + self.system) / 1000 / opts.events;
    console.log(`done in ${wallS.toFixed(1)} s`);
    return { name, events: opts.events, wallS, perEvent, stolen };
  };

  const plain = await runPhase('plain');
  const shipped = await runPhase('shipped');
  await sql.end({ timeout: 5 });

  const cols = ['web', 'worker', 'scheduler', 'postgres', 'redis', 'hub', 'generator+simulators'];
  const row = (label: string, v: Record<string, number>) => `| ${label} | ${cols.map((c) => fmt(v[c] ?? NaN)).join(' | ')} |`;
  const beyond: Record<string, number> = {};
  for (const c of cols) beyond[c] = shipped.perEvent[c]! - plain.perEvent[c]!;
  const table = `CPU ms per event, the processes' idle CPU taken off (hub = web + worker + scheduler + Postgres + Redis):

| event | ${cols.join(' | ')} |
|---|${cols.map(() => '---:').join('|')}|
${row('plain (picking)', plain.perEvent)}
${row('shipped, with its four partner calls', shipped.perEvent)}
${row('shipped beyond plain', beyond)}

CPU stolen by the host: ${fmt(plain.stolen * 100, 0)} % of the machine's time in the plain phase, ${fmt(shipped.stolen * 100, 0)} % in the shipped phase.`;
  console.log(`\n${table}\n`);
  if (opts.write) {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const file = path.join(ROOT, 'bench', 'shipped-cost-results.md');
    writeFileSync(
      file,
      `# What a shipped costs beyond a plain ship event (bench/shipped-cost.ts)\n\n${new Date().toISOString()}, git ${sha}, node ${process.version}, ${os.cpus().length} cores, ${opts.events} events per phase at ${opts.rate}/s\n\n${table}\n`,
    );
    console.log(`written to ${path.relative(ROOT, file)}`);
  }
  await cleanup();
  process.exit(0);
} catch (err) {
  console.error(err);
  await cleanup();
  process.exit(1);
}
