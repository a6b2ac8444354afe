/**
 * The partner scenario of `npm run bench` (`npm run bench -- --traffic=partner`, or run alone:
 * `node --import tsx bench/partner-traffic.ts`): traffic as the partners really send it. Each order
 * lives its whole life in sequence (bench/partner-order-life.ts), every step sent on the answer to the
 * one before:
 *
 *   MAO registers it (cash on delivery for every other order) → Slick sends picking, picked, packing,
 *   packed, shipped → the hub confirms the shipment to Slick (7000) and asks PMP for a delivery partner
 *   → on that request Grab starts: SHIPPED, IN_TRANSIT, OUT_FOR_DELIVERY → PMP: delivery.delivered
 *   (7500) and, for cash on delivery, cod.collected (relayed to Slick).
 *
 * --inflight orders live at once (a new one starts when one ends) until --orders have lived. The hub
 * also calls MAO (status 7000) and the notification receiver; the simulators answer at once. A 503 with
 * Retry-After (intake's bounded backlog) is honoured and the same event sent again.
 *
 * The same traffic goes through the real `web`, `worker` and `scheduler` processes (scenario hub) and
 * through a naive reference (bench/naive-partner-server.ts: every event applied inside its request,
 * the same partner calls from the same process), one after the other in one run. Reported per
 * scenario: accepted/s, processed/s, receipt→commit p50/p99/max (Postgres: processed_at − received_at),
 * the backlog's peak (events waiting in the inbound queue), how long after the last answer the last
 * event was applied, lost events (accepted, never applied), orders that did not end at 7500 with their
 * tiers done, 503s, and CPU ms per event of each process (web, worker, scheduler, Postgres, Redis, this
 * load generator with the simulators).
 *
 * Flags: --orders=400 --inflight=50 --scenarios=hub,naive --workers=1 --concurrency=16
 *        --max-backlog=N (the hub's INTAKE_MAX_BACKLOG; its default otherwise)
 *        --quiet=60 (s to wait for the last partner calls and events) --no-write (no bench/partner-results.md)
 * Env:   DATABASE_URL (its server; the database name is ignored), REDIS_URL, BENCH_NODE_ARGS.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { Agent, request } from 'undici';
import { signatureHeader } from '../src/api/signature.js';
import { DEVELOPMENT_CLIENTS } from '../src/config.js';
import { INBOUND_EVENTS_QUEUE } from '../src/queues/inbound-events.queue.js';
import { hubPartnerEnv, startAllSimulators, type AllSimulators } from '../src/simulators/index.js';
import {
  cleanupOnce,
  dbUrl,
  deleteRedisKeys,
  flag,
  freePort,
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
import { cpuByRootMs, cpuDeltaMs, cpuSnapshot, machineTicks, stolenShare } from './cpu.js';
import { listenForAssignments, orderLife } from './partner-order-life.js';

const SCENARIOS = ['hub', 'naive'] as const;
type Scenario = (typeof SCENARIOS)[number];

const opts = {
  orders: numberFlag('orders', 400, 1),
  inflight: numberFlag('inflight', 50, 1),
  scenarios: flag('scenarios', SCENARIOS.join(','))
    .split(',')
    .map((s) => s.trim()) as Scenario[],
  workers: numberFlag('workers', 1, 1),
  concurrency: numberFlag('concurrency', Number(process.env.WORKER_CONCURRENCY ?? 16), 1),
  quiet: numberFlag('quiet', 60, 1),
  /** INTAKE_MAX_BACKLOG for the hub (its default when not given). */
  maxBacklog: flag('max-backlog', ''),
  write: flag('no-write', 'false') !== 'true',
};
for (const s of opts.scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s} (hub, naive)`);

const SLICK_TOKEN = 'bench-slick-token';
const runId = Date.now();
const baseDb = `bench_${runId}`;
const redisPrefix = `bench-${runId}`;
const logDir = path.join(os.tmpdir(), `bench-${runId}`);
mkdirSync(logDir, { recursive: true });

const admin = postgres(dbUrl('postgres'), { max: 1, onnotice: () => {} });
const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
const databases = new Set<string>();
let sims: AllSimulators | undefined;

const cleanup = cleanupOnce(
  () => [
    ['stop processes', () => stopProcesses([...running])],
    ['stop simulators', async () => sims?.close()],
    [
      'drop databases',
      async () => {
        for (const d of [...databases]) await admin.unsafe(`drop database if exists "${d}" with (force)`);
      },
    ],
    ['delete Redis keys', () => deleteRedisKeys(redis, `${redisPrefix}*`)],
    [
      'close connections',
      async () => {
        await admin.end({ timeout: 5 });
        redis.disconnect();
      },
    ],
  ],
  (signal) => `\n${signal}: stopping processes, dropping ${[...databases].join(', ') || 'no databases'}, deleting ${redisPrefix}* keys…`,
);

const nodeArgs = () => (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const startProcess = (name: string, file: string, env: Record<string, string>): Proc => startLoggedProcess(logDir, name, file, env, nodeArgs());
const client = (id: string) => DEVELOPMENT_CLIENTS.find((c) => c.id === id)!;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

// ───────────────────────────── one scenario ─────────────────────────────

interface Result {
  scenario: Scenario;
  orders: number;
  events: number;
  accepted: number;
  refused503: number;
  acceptedPerS: number;
  processedPerS: number;
  rcP50: number;
  rcP99: number;
  rcMax: number;
  answerP50: number;
  answerP99: number;
  backlogPeak: number | null;
  drainMs: number;
  lost: number;
  notDelivered: number;
  tiersNotDone: number;
  states: Record<string, number>;
  /** receipt→commit by the partner's event type. */
  byType: Array<{ type: string; n: number; p50: number; p99: number }>;
  cpuMsPerEvent: Record<string, number>;
  wallS: number;
  /** Share of the machine's CPU time the host stole during the scenario (a slower run, not slower code). */
  stolen: number;
}

async function runScenario(scenario: Scenario): Promise<Result> {
  const database = `${baseDb}_${scenario}`;
  await admin.unsafe(`create database "${database}" template "${baseDb}"`);
  databases.add(database);
  sims = await startAllSimulators({ slickToken: SLICK_TOKEN });
  const port = await freePort();
  const prefix = `${redisPrefix}-${scenario}`;
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    API_CLIENTS: '',
    DATABASE_URL: dbUrl(database),
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    TOPIC_STREAM: `${prefix}:order.fulfillment.v1`,
    PORT: String(port),
    LOG_LEVEL: 'warn',
    WORKER_CONCURRENCY: String(opts.concurrency),
    ...hubPartnerEnv(sims, SLICK_TOKEN),
    ...(opts.maxBacklog ? { INTAKE_MAX_BACKLOG: opts.maxBacklog } : {}),
    WORKER_METRICS_PORT: '0',
    SCHEDULER_METRICS_PORT: '0',
  };
  const procs: Proc[] = [];
  if (scenario === 'hub') {
    procs.push(startProcess(`${scenario}-web`, 'src/api/main.ts', env));
    for (let i = 1; i <= opts.workers; i++) procs.push(startProcess(`${scenario}-worker-${i}`, 'src/workers/main.ts', env));
    procs.push(startProcess(`${scenario}-scheduler`, 'src/workers/scheduler.main.ts', env));
  } else {
    procs.push(startProcess(`${scenario}-server`, 'bench/naive-partner-server.ts', env));
  }
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitFor(
    `${scenario} to answer`,
    60_000,
    async () => {
      const res = await request(`${baseUrl}${scenario === 'hub' ? '/api/health/ready' : '/'}`).catch(() => undefined);
      await res?.body.dump();
      return res?.statusCode === 200;
    },
    procs,
  );
  const sql = postgres(dbUrl(database), { max: 4, onnotice: () => {} });

  const { pmpAssigned, stop: stopListening } = listenForAssignments(sims.pmp);

  const agent = new Agent({ connections: opts.inflight * 2, keepAliveTimeout: 60_000 });
  let accepted = 0;
  let refused503 = 0;
  let events = 0;
  let lastAnswerAt = 0;
  /** Each event's answer time as the partner saw it, from its first send to its 2xx (holds and 503 waits included). */
  const answerMs: number[] = [];
  const failures: string[] = [];

  async function send(clientId: string, method: 'POST' | 'PUT', route: string, body: Record<string, unknown>, isEvent: boolean): Promise<void> {
    const c = client(clientId);
    const raw = JSON.stringify(body);
    const headers: Record<string, string> = { authorization: `Bearer ${c.key}`, 'content-type': 'application/json' };
    if (c.secret) headers['x-signature'] = signatureHeader(c.secret, raw);
    if (isEvent) events++;
    const sentAt = performance.now();
    for (let attempt = 0; ; attempt++) {
      const res = await request(`${baseUrl}${route}`, { method, headers, body: raw, dispatcher: agent });
      const text = await res.body.text();
      lastAnswerAt = Date.now();
      if (res.statusCode === 503 && attempt < 100) {
        refused503++;
        const after = Number(res.headers['retry-after'] ?? 1);
        await sleep(after * 1000);
        continue;
      }
      if (res.statusCode >= 300) throw new Error(`${method} ${route} ${body.eventId ?? body.orderId}: ${res.statusCode} ${text}`);
      if (isEvent) {
        accepted++;
        answerMs.push(performance.now() - sentAt);
      }
      return;
    }
  }

  // Backlog: events waiting in the inbound queue (the naive reference has none: it holds requests instead).
  let backlogPeak: number | null = scenario === 'hub' ? 0 : null;
  let sampling = true;
  const sampler = (async () => {
    while (sampling && scenario === 'hub') {
      const n = await redis.llen(`${prefix}:${INBOUND_EVENTS_QUEUE}:wait`).catch(() => 0);
      backlogPeak = Math.max(backlogPeak ?? 0, n);
      await sleep(100);
    }
  })();

  process.stdout.write(`  ${scenario}: ${opts.orders} orders, ${opts.inflight} in flight… `);
  const roots = procs.map((p) => p.child.pid!).filter(Boolean);
  const cpu0 = cpuSnapshot(roots, database);
  const machine0 = machineTicks();
  const self0 = process.cpuUsage();
  const t0 = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(opts.inflight, opts.orders) }, async () => {
      while (next < opts.orders) {
        const n = next++;
        await orderLife(n, `${scenario}-o${n}`, send, pmpAssigned).catch((err: unknown) => void failures.push((err as Error).message));
      }
    }),
  );
  const sendEnd = lastAnswerAt;
  // Quiet: no event queued, the last partner calls made (every order 7500 with its tiers done, or the deadline).
  await waitFor(`${scenario}: the last events and partner calls`, opts.quiet * 1000, async () => {
    const [r] = await sql<{ queued: number; open: number }[]>`
      select (select count(*)::int from inbound_events where state = 'queued') as queued,
             (select count(*)::int from order_tiers where state not in ('done', 'not_applicable')) as open`;
    return r!.queued === 0 && r!.open === 0;
  }).catch(() => process.stdout.write('(not quiet by the deadline) '));
  sampling = false;
  await sampler;
  const cpu1 = cpuSnapshot(roots, database);
  const stolen = stolenShare(machine0, machineTicks());
  const self = process.cpuUsage(self0);
  const wallS = (Date.now() - t0) / 1000;
  stopListening();
  await agent.close();

  const [rc] = await sql<{ total: number; committed: number; p50: number; p99: number; max: number; first: Date; last: Date }[]>`
    select count(*)::int as total, count(processed_at)::int as committed,
           percentile_cont(0.5) within group (order by extract(epoch from processed_at - received_at) * 1000) as p50,
           percentile_cont(0.99) within group (order by extract(epoch from processed_at - received_at) * 1000) as p99,
           max(extract(epoch from processed_at - received_at) * 1000)::float8 as max,
           min(received_at) as first, max(processed_at) as last
      from inbound_events where order_id like ${`${scenario}-o%`}`;
  const stateRows = await sql<
    { state: string; n: number }[]
  >`select state, count(*)::int as n from inbound_events where order_id like ${`${scenario}-o%`} group by state`;
  const byType = await sql<{ type: string; n: number; p50: number; p99: number }[]>`
    select type, count(*)::int as n,
           percentile_cont(0.5) within group (order by extract(epoch from processed_at - received_at) * 1000) as p50,
           percentile_cont(0.99) within group (order by extract(epoch from processed_at - received_at) * 1000) as p99
      from inbound_events where order_id like ${`${scenario}-o%`} and processed_at is not null group by type order by min(received_at)`;
  const states = Object.fromEntries(stateRows.map((r) => [r.state, r.n]));
  const [orders] = await sql<{ not_delivered: number; tiers_open: number }[]>`
    select (select count(*)::int from orders where order_id like ${`${scenario}-o%`} and status <> 7500) as not_delivered,
           (select count(distinct order_id)::int from order_tiers where order_id like ${`${scenario}-o%`} and state not in ('done', 'not_applicable')) as tiers_open`;
  const activeS = (rc!.last.getTime() - rc!.first.getTime()) / 1000;
  const delta = cpuDeltaMs(cpu0, cpu1);
  const byRoot = cpuByRootMs(cpu0, cpu1);
  const perEvent = (ms: number) => ms / Math.max(1, rc!.committed);
  const cpuMsPerEvent: Record<string, number> = {};
  for (const p of procs) cpuMsPerEvent[p.name.replace(`${scenario}-`, '')] = perEvent(byRoot.get(p.child.pid!) ?? 0);
  cpuMsPerEvent.postgres = perEvent(delta.pg);
  cpuMsPerEvent.redis = perEvent(delta.redis);
  cpuMsPerEvent['generator+simulators'] = perEvent((self.user + self.system) / 1000);
  cpuMsPerEvent.total = Object.values(cpuMsPerEvent).reduce((a, b) => a + b, 0);

  await sql.end({ timeout: 5 });
  await stopProcesses(procs);
  await sims.close();
  sims = undefined;
  await admin.unsafe(`drop database if exists "${database}" with (force)`);
  databases.delete(database);
  await deleteRedisKeys(redis, `${prefix}*`);
  if (failures.length > 0) process.stdout.write(`${failures.length} orders failed, first: ${failures[0]} `);
  console.log('done');

  return {
    scenario,
    orders: opts.orders,
    events,
    accepted,
    refused503,
    acceptedPerS: accepted / Math.max(0.001, (sendEnd - t0) / 1000),
    processedPerS: rc!.committed / Math.max(0.001, activeS),
    rcP50: rc!.p50,
    rcP99: rc!.p99,
    rcMax: rc!.max,
    answerP50: percentile(answerMs, 0.5),
    answerP99: percentile(answerMs, 0.99),
    backlogPeak,
    drainMs: Math.max(0, rc!.last.getTime() - sendEnd),
    lost: accepted - rc!.committed,
    notDelivered: orders!.not_delivered,
    tiersNotDone: orders!.tiers_open,
    states,
    byType,
    cpuMsPerEvent,
    wallS,
    stolen,
  };
}

// ───────────────────────────── main ─────────────────────────────

const fmt = (v: number | null, d = 1) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(d));

try {
  console.log(
    `partner traffic: ${opts.orders} orders, ${opts.inflight} in flight, ${opts.workers} worker process(es), WORKER_CONCURRENCY ${opts.concurrency}, INTAKE_MAX_BACKLOG ${opts.maxBacklog || 'default'}; node ${process.version}, ${os.cpus().length} cores`,
  );
  await admin.unsafe(`create database "${baseDb}"`);
  databases.add(baseDb);
  await releaseDatabase(logDir, baseDb, nodeArgs());
  const results: Result[] = [];
  for (const s of opts.scenarios) results.push(await runScenario(s));

  const hub = results.find((r) => r.scenario === 'hub');
  const naive = results.find((r) => r.scenario === 'naive');
  const rows = results.map(
    (r) =>
      `| ${r.scenario} | ${r.events} | ${fmt(r.acceptedPerS, 0)} | ${fmt(r.processedPerS, 0)} | ${fmt(r.rcP50)} / ${fmt(r.rcP99)} / ${fmt(r.rcMax)} | ${fmt(r.answerP50)} / ${fmt(r.answerP99)} | ${r.backlogPeak ?? '—'} | ${fmt(r.drainMs, 0)} | ${r.refused503} | ${r.lost} | ${r.notDelivered} / ${r.tiersNotDone} | ${fmt(r.stolen * 100, 0)} % |`,
  );
  const processNames = [...new Set(results.flatMap((r) => Object.keys(r.cpuMsPerEvent)))];
  const cpuRows = results.map((r) => `| ${r.scenario} | ${processNames.map((p) => fmt(r.cpuMsPerEvent[p] ?? null, 2)).join(' | ')} |`);
  const table = `| scenario | events | accepted/s | processed/s | receipt→commit p50 / p99 / max (ms) | partner's answer p50 / p99 (ms) | backlog peak | last applied after last answer (ms) | 503s | lost | not 7500 / tiers open | CPU stolen by the host |
|---|---|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

CPU ms per applied event, by process:

| scenario | ${processNames.join(' | ')} |
|---|${processNames.map(() => '---').join('|')}|
${cpuRows.join('\n')}
${hub && naive ? `\nhub ÷ naive processed/s: ${(hub.processedPerS / naive.processedPerS).toFixed(2)}×` : ''}`;
  console.log(`\n${table}\n`);
  for (const r of results) {
    console.log(
      `${r.scenario}: states ${JSON.stringify(r.states)}, ${r.wallS.toFixed(1)} s; receipt→commit p50/p99 by type: ${r.byType.map((t) => `${t.type} ${fmt(t.p50)}/${fmt(t.p99)}`).join(', ')}`,
    );
  }
  if (opts.write) {
    const file = path.join(ROOT, 'bench', 'partner-results.md');
    writeFileSync(
      file,
      `# Partner traffic (bench/partner-traffic.ts)\n\n${new Date().toISOString()}, node ${process.version}, ${os.cpus().length} cores, ${opts.orders} orders, ${opts.inflight} in flight, ${opts.workers} worker(s), INTAKE_MAX_BACKLOG ${opts.maxBacklog || 'default'}\n\n${table}\n`,
    );
    console.log(`written to ${path.relative(ROOT, file)}`);
  }
  const bad = results.some((r) => r.lost !== 0 || r.notDelivered !== 0);
  await cleanup();
  process.exit(bad ? 1 : 0);
} catch (err) {
  console.error(err);
  await cleanup();
  process.exit(1);
}
