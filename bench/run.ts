/**
 * `npm run bench`: drives signed ship events over HTTP at fixed rates (open loop) through the real
 * `web`, `worker` and `scheduler` processes, and — in the same run — through two references:
 *
 *   stripped  an unauthenticated handler that only stores (one INSERT) and enqueues, and a worker that
 *             only runs the hub's transaction (bench/stripped-server.ts, bench/stripped-worker.ts);
 *   naive     the transaction inside the HTTP request, no queue (bench/naive-server.ts).
 *
 * For each scenario and rate it prints achieved events/s, HTTP p50/p99 (client side, from the
 * scheduled send time), receipt→commit p50/p99 (Postgres: processed_at − received_at), non-2xx answers,
 * whether the backlog drained, and CPU time per event split into the processes under test, Postgres and
 * Redis. The table also goes to bench/results.md.
 *
 * `--traffic=partner` runs the partner scenario instead (bench/partner-traffic.ts: each order's whole life,
 * the next event sent on the answer to the last, through the hub and a naive reference).
 * `--traffic=shipped-cost` measures what a `shipped` costs beyond a plain ship event in CPU (bench/shipped-cost.ts).
 *
 * Flags: --duration=20 --warmup=3 --rates=500,1000 --scenarios=hub,stripped,naive --workers=1 (worker processes; on 2 cores one is enough, see README)
 *        --concurrency=16 (WORKER_CONCURRENCY) --connections=256 (HTTP client) --drain=10 (s)
 *        --settle=30 (wait up to this many seconds for other load on the machine to calm down
 *        before each rate) --no-write (do not write bench/results.md)
 *        --no-round-trips (skip bench/round-trips.ts, the per-event count of Postgres and Redis round trips)
 *        --backlog-wait=300 (after a rate that left a backlog, wait up to this long for it to be worked
 *        off before taking the numbers and going on; if it is not, the higher rates are skipped)
 *        --stop-at-saturation (skip higher rates once one is not sustained: a ramp to find the maximum)
 * Env:   DATABASE_URL (its server is used; the database name is ignored), REDIS_URL,
 *        BENCH_NODE_ARGS (extra node flags for the processes under test, e.g.
 *        "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile them).
 *
 * Each scenario gets a fresh copy of a migrated and seeded database (bench_<ts>, made by `release`)
 * and its own Redis prefix (bench-<ts>-<scenario>); everything is dropped and deleted at the end, and on
 * Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { Pool, request } from 'undici';
import { HubClient } from '../src/api/hub-client.js';
import { signatureHeader } from '../src/api/signature.js';
import { DEVELOPMENT_CLIENTS } from '../src/config.js';
import { connectDatabase, type DatabaseHandle } from '../src/db/client.js';
import { registerOrder } from '../src/orders/order-registration.js';
import {
  assertAlive,
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
  runToExit,
  sleep,
  startProcess as startLoggedProcess,
  stopProcesses,
  waitFor,
  type Proc,
} from './bench-processes.js';
import { cpuByRootMs, cpuDeltaMs, cpuSnapshot, machineTicks, CLK_TCK, type CpuSnapshot } from './cpu.js';

// ───────────────────────────── configuration ─────────────────────────────

const SCENARIOS = ['hub', 'stripped', 'naive'] as const;
type Scenario = (typeof SCENARIOS)[number];

// `--traffic=partner`: the partner scenario (closed loop, whole order lives), bench/partner-traffic.ts;
// `--traffic=shipped-cost`: what a shipped costs beyond a plain event in CPU, bench/shipped-cost.ts. With the other flags.
const TRAFFIC_SCRIPTS: Record<string, string> = { '--traffic=partner': './partner-traffic.ts', '--traffic=shipped-cost': './shipped-cost.ts' };
const traffic = process.argv.slice(2).find((a) => a in TRAFFIC_SCRIPTS);
if (traffic) {
  const { spawnSync } = await import('node:child_process');
  const args = process.argv.slice(2).filter((a) => a !== traffic);
  const r = spawnSync(process.execPath, ['--import', 'tsx', new URL(TRAFFIC_SCRIPTS[traffic]!, import.meta.url).pathname, ...args], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

for (const a of process.argv.slice(2)) {
  if (
    !/^--(duration|warmup|rates|scenarios|workers|concurrency|connections|drain|settle|backlog-wait|stop-at-saturation|no-write|no-round-trips)(=|$)/.test(a)
  ) {
    console.error(
      `unknown argument ${a}\nflags: --duration=20 --warmup=3 --rates=500,1000 --scenarios=hub,stripped,naive --workers=1 --concurrency=16 --connections=256 --drain=10 --settle=30 --backlog-wait=300 --stop-at-saturation --no-write --no-round-trips`,
    );
    process.exit(2);
  }
}

const opts = {
  duration: numberFlag('duration', 20, 1),
  warmup: numberFlag('warmup', 3, 0),
  rates: flag('rates', '500,1000')
    .split(',')
    .map((r) => Number(r.trim()))
    .filter((r) => r > 0),
  scenarios: flag('scenarios', SCENARIOS.join(','))
    .split(',')
    .map((s) => s.trim()) as Scenario[],
  workers: numberFlag('workers', 1, 1),
  concurrency: numberFlag('concurrency', Number(process.env.WORKER_CONCURRENCY ?? 16), 1),
  connections: numberFlag('connections', 256, 1),
  drain: numberFlag('drain', 10, 1),
  settle: numberFlag('settle', 30, 0),
  backlogWait: numberFlag('backlog-wait', 300, 0),
  stopAtSaturation: flag('stop-at-saturation', 'false') === 'true',
  write: flag('no-write', 'false') !== 'true',
  roundTrips: flag('no-round-trips', 'false') !== 'true',
};
for (const s of opts.scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s} (hub, stripped, naive)`);
if (opts.rates.length === 0) throw new Error('--rates: at least one rate');

const runId = Date.now();
const baseDb = `bench_${runId}`;
const redisPrefix = `bench-${runId}`;
const logDir = path.join(os.tmpdir(), `bench-${runId}`);
mkdirSync(logDir, { recursive: true });

const slick = DEVELOPMENT_CLIENTS.find((c) => c.id === 'slick')!;
const mao = DEVELOPMENT_CLIENTS.find((c) => c.id === 'mao')!;
const SHIP_PATH = '/api/fulfillment/ship-events';
const EVENT_TYPES = ['picking', 'picked', 'packing', 'packed'] as const;
/** Each order's four events are spread this far apart, so one order's events rarely meet in a worker. */
const ORDER_EVENT_SPACING_S = 0.25;

const admin = postgres(dbUrl('postgres'), { max: 1, onnotice: () => {} });
const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });

// ───────────────────────────── cleanup ─────────────────────────────

const databases = new Set<string>();

async function dropDatabase(name: string): Promise<void> {
  await admin.unsafe(`drop database if exists "${name}" with (force)`);
  databases.delete(name);
}

const cleanup = cleanupOnce(
  () => [
    ['stop processes', () => stopProcesses([...running])],
    [
      'drop databases',
      async () => {
        for (const d of [...databases]) await dropDatabase(d);
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

/** Every process started here gets BENCH_NODE_ARGS. */
const nodeArgs = () => (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const startProcess = (name: string, file: string, env: Record<string, string>): Proc => startLoggedProcess(logDir, name, file, env, nodeArgs());

// ───────────────────────────── helpers ─────────────────────────────

/**
 * CPU milliseconds this process needs to SHA-256 64 MiB (native code, so no JIT tiers in the way): a
 * yardstick of how fast this machine's cores are, to compare results across machines and moments.
 */
function calibrate(): number {
  const block = Buffer.alloc(1 << 20, 7);
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const c0 = process.cpuUsage();
    const h = createHash('sha256');
    for (let i = 0; i < 64; i++) h.update(block);
    h.digest();
    const u = process.cpuUsage(c0);
    best = Math.min(best, (u.user + u.system) / 1000);
  }
  return best;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

const location = (n: number) => `STORE-${String((n % 25) + 1).padStart(3, '0')}`;

// ───────────────────────────── scenarios ─────────────────────────────

interface ScenarioRun {
  scenario: Scenario;
  baseUrl: string;
  procs: Proc[];
  sql: postgres.Sql;
  handle: DatabaseHandle;
  database: string;
  hasRelay: boolean;
  registerOrders(orderIds: string[]): Promise<void>;
}

async function startScenario(scenario: Scenario): Promise<ScenarioRun> {
  const database = `${baseDb}_${scenario}`;
  await admin.unsafe(`create database "${database}" template "${baseDb}"`);
  databases.add(database);
  const port = await freePort();
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    API_CLIENTS: '', // empty = unset: the documented development clients, whose keys the bench signs with
    DATABASE_URL: dbUrl(database),
    REDIS_URL: redisUrl,
    REDIS_PREFIX: `${redisPrefix}-${scenario}`,
    TOPIC_STREAM: `${redisPrefix}-${scenario}:order.fulfillment.v1`,
    PORT: String(port),
    LOG_LEVEL: 'warn',
    WORKER_CONCURRENCY: String(opts.concurrency),
    SLICK_BASE_URL: '',
    PMP_BASE_URL: '',
    MAO_BASE_URL: '',
    GRAB_BASE_URL: '',
    NOTIFY_WEBHOOK_URL: '',
    INCIDENT_WEBHOOK_URL: '',
    WORKER_METRICS_PORT: '',
  };
  const procs: Proc[] = [];
  const many = (n: number, name: string, file: string) => {
    for (let i = 1; i <= n; i++) procs.push(startProcess(`${scenario}-${name}${n > 1 ? `-${i}` : ''}`, file, env));
  };
  let healthPath = '/';
  if (scenario === 'hub') {
    many(1, 'web', 'src/api/main.ts');
    many(opts.workers, 'worker', 'src/workers/main.ts');
    many(1, 'scheduler', 'src/workers/scheduler.main.ts');
    healthPath = '/api/health/ready';
  } else if (scenario === 'stripped') {
    many(1, 'server', 'bench/stripped-server.ts');
    many(opts.workers, 'worker', 'bench/stripped-worker.ts');
  } else {
    many(1, 'server', 'bench/naive-server.ts');
  }
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitFor(
    `${scenario} to answer on ${baseUrl}${healthPath}`,
    60_000,
    async () => {
      const res = await request(`${baseUrl}${healthPath}`);
      await res.body.dump();
      return res.statusCode === 200;
    },
    procs,
  );

  const handle = connectDatabase(dbUrl(database), { max: 16 });
  const sql = handle.sql;
  const hub = new HubClient(baseUrl, mao);
  const registerOrders =
    scenario === 'hub'
      ? // The hub registers orders through its API, as MAO does.
        (ids: string[]) =>
          mapLimit(ids, 32, async (orderId) => {
            const n = Number(orderId.slice(orderId.lastIndexOf('o') + 1));
            const res = await hub.post('/api/orders', {
              orderId,
              shipFromLocationId: location(n),
              customer: { id: `c-${orderId}` },
              paymentMethod: 'PREPAID',
              status: 3000,
            });
            if (res.status !== 201 && res.status !== 200) throw new Error(`order registration ${orderId}: ${res.status} ${JSON.stringify(res.body)}`);
          })
      : // The references have no order API: the hub's own registration function, straight into Postgres.
        (ids: string[]) =>
          mapLimit(ids, 16, async (orderId) => {
            const n = Number(orderId.slice(orderId.lastIndexOf('o') + 1));
            await registerOrder(
              handle.db,
              { orderId, shipFromLocationId: location(n), customer: { id: `c-${orderId}` }, paymentMethod: 'PREPAID', status: 3000 },
              { clientId: 'mao', source: 'mao' },
            );
          });

  const run: ScenarioRun = { scenario, baseUrl, procs, sql, handle, database, hasRelay: scenario === 'hub', registerOrders };

  // Probe the whole pipeline (and give every worker process time to connect) before any load.
  const probeIds = Array.from({ length: 8 }, (_, i) => `${scenario}-probe-o${i}`);
  await registerOrders(probeIds);
  const pool = new Pool(baseUrl, { connections: 8 });
  await Promise.all(
    probeIds.map(async (orderId, i) => {
      const body = JSON.stringify({
        eventId: `${orderId}-e`,
        orderId,
        shipFromLocationId: location(i),
        eventType: 'picking',
        occurredAt: new Date().toISOString(),
      });
      const res = await pool.request({
        path: SHIP_PATH,
        method: 'POST',
        headers: { authorization: `Bearer ${slick.key}`, 'content-type': 'application/json', 'x-signature': signatureHeader(slick.secret!, body) },
        body,
      });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new Error(`${scenario}: probe event answered ${res.statusCode}: ${text}`);
    }),
  );
  await pool.close();
  await waitFor(
    `${scenario}: probe events to be applied`,
    60_000,
    async () => {
      const [r] = await sql<{ n: number }[]>`select count(*)::int as n from inbound_events where event_id like ${`${scenario}-probe-%`} and state = 'applied'`;
      return r!.n === probeIds.length;
    },
    procs,
  );
  await sleep(1000);
  return run;
}

async function stopScenario(run: ScenarioRun): Promise<void> {
  await run.handle.close();
  await stopProcesses(run.procs);
  await dropDatabase(run.database);
  await deleteRedisKeys(redis, `${redisPrefix}-${run.scenario}*`);
}

// ───────────────────────────── one rate ─────────────────────────────

/**
 * CPU (in cores) used by everything that is not this benchmark over one second: other people's tests and
 * builds on a shared machine. Waits up to --settle seconds for it to fall below 0.25 cores; returns the last
 * reading either way (it is reported next to the results).
 */
async function settle(run: ScenarioRun): Promise<{ other: number; idleApp: number }> {
  const roots = run.procs.map((p) => p.child.pid!).filter(Boolean);
  const deadline = Date.now() + opts.settle * 1000;
  let waited = false;
  for (;;) {
    const c0 = cpuSnapshot(roots, run.database);
    const m0 = machineTicks();
    const u0 = process.cpuUsage();
    await sleep(1000);
    const c1 = cpuSnapshot(roots, run.database);
    const m1 = machineTicks();
    const u = process.cpuUsage(u0);
    const ours = cpuDeltaMs(c0, c1);
    const oursTicks = ((ours.app + ours.pg + ours.redis + (u.user + u.system) / 1000) * CLK_TCK) / 1000;
    const other = (Math.max(0, m1.busy - m0.busy - oursTicks) / (m1.total - m0.total)) * os.cpus().length;
    if (other < 0.25 || Date.now() >= deadline) {
      if (waited) process.stdout.write(`(other load ${other.toFixed(2)} cores) `);
      return { other, idleApp: ours.app / 1000 };
    }
    if (!waited) process.stdout.write(`waiting for other load on the machine (${other.toFixed(2)} cores) to calm down… `);
    waited = true;
  }
}

interface PhaseResult {
  scenario: Scenario;
  rate: number;
  sent: number;
  ok: number;
  non2xx: number;
  errors: number;
  httpP50: number;
  httpP99: number;
  httpMax: number;
  achieved: number;
  committed: number;
  total: number;
  rcP50: number;
  rcP99: number;
  rcMax: number;
  states: Record<string, number>;
  drained: boolean;
  drainMs: number | null;
  /** Events still queued after --backlog-wait (0 when the backlog was worked off). */
  backlogLeft: number;
  cpuMsPerEvent: { app: number; pg: number; redis: number; client: number };
  cpuBusy: number; // CPU-seconds per second over the window, all groups (out of os.cpus().length)
  /** CPU-seconds per second used on the machine by anything else during the window. */
  otherBusy: number;
  /** The same, in the second before the load started (after waiting up to --settle). */
  otherBusyBefore: number;
  /** CPU cores the processes under test used while idle, in the second before the load. */
  idleApp: number;
  generatorLagMaxMs: number;
  topicLagP99: number | null;
  statusCodes: Record<string, number>;
  /** CPU ms per event of each process under test, by process name. */
  cpuByProcess: Record<string, number>;
}

async function runPhase(run: ScenarioRun, rate: number): Promise<PhaseResult> {
  const { scenario, sql } = run;
  const warmN = Math.round(rate * opts.warmup);
  const measN = Math.round(rate * opts.duration);
  const total = warmN + measN;

  // The plan: blocks of orders; within a block all pickings, then all pickeds, … so an order's events
  // are ORDER_EVENT_SPACING_S apart, like a store working through a wave of orders.
  const block = Math.max(1, Math.round(rate * ORDER_EVENT_SPACING_S));
  const orderCount = Math.ceil(total / EVENT_TYPES.length);
  const orderIds = Array.from({ length: orderCount }, (_, n) => `${scenario}-${rate}-o${n}`);
  const plan: Array<{ order: number; type: (typeof EVENT_TYPES)[number] }> = [];
  for (let b = 0; b * block < orderCount && plan.length < total; b++) {
    const size = Math.min(block, orderCount - b * block);
    for (const type of EVENT_TYPES) for (let k = 0; k < size; k++) plan.push({ order: b * block + k, type });
  }
  plan.length = total;

  process.stdout.write(`  ${scenario} @ ${rate}/s: registering ${orderCount} orders… `);
  await run.registerOrders(orderIds);
  if (run.hasRelay) {
    await waitFor(
      'the outbox relay to publish the registrations',
      120_000,
      async () => {
        const [r] = await sql<{ n: number }[]>`select count(*)::int as n from outbox where published_at is null`;
        return r!.n === 0;
      },
      run.procs,
    );
  }
  await sql`analyze`;
  await sql`checkpoint`.catch(() => {}); // needs superuser; only evens out the starting point
  const { other: otherBusyBefore, idleApp } = await settle(run);
  process.stdout.write(`load ${opts.warmup}s warm-up + ${opts.duration}s… `);

  const pool = new Pool(run.baseUrl, { connections: opts.connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 60_000, bodyTimeout: 60_000 });
  const latencies = new Float64Array(measN);
  let latencyCount = 0;
  const statusCodes: Record<string, number> = {};
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let generatorLagMaxMs = 0;
  const inflight = new Set<Promise<void>>();
  const headersBase = { authorization: `Bearer ${slick.key}`, 'content-type': 'application/json' };

  const interval = 1000 / rate;
  const t0 = performance.now() + 50;
  const epochAt = (perf: number) => Date.now() + (perf - performance.now());
  const windowStartPerf = t0 + warmN * interval;
  const windowEndPerf = t0 + total * interval;
  const windowStartEpoch = epochAt(windowStartPerf);
  const windowEndEpoch = windowStartEpoch + opts.duration * 1000;

  let cpuBefore: CpuSnapshot | undefined;
  let cpuAfter: CpuSnapshot | undefined;
  let clientBefore: NodeJS.CpuUsage | undefined;
  let clientAfter: NodeJS.CpuUsage | undefined;
  let machineBefore: { busy: number; total: number } | undefined;
  let machineAfter: { busy: number; total: number } | undefined;
  const roots = run.procs.map((p) => p.child.pid!).filter(Boolean);
  // CPU per event is taken over the whole phase: from the first request to the commit of its last event
  // (after the backlog, if any, was worked off), divided by the phase's events. A window alone would
  // mismatch work and events when intake and commits run at different rates (a growing backlog).
  const spanCpuBefore = cpuSnapshot(roots, run.database);
  const spanClientBefore = process.cpuUsage();
  const snapAt = (perf: number, take: () => void) =>
    new Promise<void>((resolve) =>
      setTimeout(
        () => {
          take();
          resolve();
        },
        Math.max(0, perf - performance.now()),
      ),
    );
  const snapshots = Promise.all([
    snapAt(windowStartPerf, () => {
      cpuBefore = cpuSnapshot(roots, run.database);
      clientBefore = process.cpuUsage();
      machineBefore = machineTicks();
    }),
    snapAt(windowEndPerf, () => {
      cpuAfter = cpuSnapshot(roots, run.database);
      clientAfter = process.cpuUsage();
      machineAfter = machineTicks();
    }),
  ]);

  const fire = (i: number, intended: number) => {
    const step = plan[i]!;
    const orderId = orderIds[step.order]!;
    const measured = i >= warmN;
    const body = JSON.stringify({
      eventId: `${scenario}-${rate}-${measured ? 'm' : 'w'}-${i}`,
      orderId,
      shipFromLocationId: location(step.order),
      eventType: step.type,
      occurredAt: new Date().toISOString(),
    });
    const p = pool
      .request({ path: SHIP_PATH, method: 'POST', headers: { ...headersBase, 'x-signature': signatureHeader(slick.secret!, body) }, body })
      .then(
        async (res) => {
          await res.body.text();
          if (!measured) return;
          latencies[latencyCount++] = performance.now() - intended;
          statusCodes[res.statusCode] = (statusCodes[res.statusCode] ?? 0) + 1;
          if (res.statusCode >= 200 && res.statusCode < 300) ok++;
          else non2xx++;
        },
        () => {
          if (!measured) return;
          latencies[latencyCount++] = performance.now() - intended;
          statusCodes.error = (statusCodes.error ?? 0) + 1;
          errors++;
        },
      )
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };

  // Open loop: each send is scheduled by time, never by the previous answer.
  let i = 0;
  while (i < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
    for (; i < due; i++) {
      const intended = t0 + i * interval;
      generatorLagMaxMs = Math.max(generatorLagMaxMs, now - intended);
      fire(i, intended);
    }
    if (i < total) await sleep(Math.max(0, t0 + i * interval - performance.now()));
  }
  await snapshots;
  const loadEnd = Date.now();
  // An overloaded server can hold thousands of requests; wait for them, but not for ever.
  const answered = await Promise.race([Promise.all([...inflight]).then(() => true), sleep(120_000).then(() => false)]);
  if (answered) await pool.close();
  else {
    process.stdout.write(`${inflight.size} requests unanswered 120 s after the load stopped; dropping them… `);
    await pool.destroy();
    await Promise.all([...inflight]);
  }

  // Did the backlog drain within --drain seconds after the load stopped?
  let drainMs: number | null = null;
  const drainDeadline = loadEnd + opts.drain * 1000;
  for (;;) {
    const [r] = await sql<{ n: number }[]>`select count(*)::int as n from inbound_events where state = 'queued'`;
    if (r!.n === 0) {
      drainMs = Math.max(0, Date.now() - loadEnd);
      break;
    }
    if (Date.now() > drainDeadline) break;
    await sleep(100);
  }
  const drained = drainMs !== null;
  let backlogLeft = 0;
  if (!drained) {
    // Work the backlog off before taking the numbers (so late commits count in the percentiles) and
    // before the next rate (so it starts clean).
    const [r0] = await sql<{ n: number }[]>`select count(*)::int as n from inbound_events where state = 'queued'`;
    process.stdout.write(`backlog of ${r0!.n} not drained in ${opts.drain} s; waiting up to ${opts.backlogWait} s more… `);
    const until = Date.now() + opts.backlogWait * 1000;
    for (;;) {
      assertAlive(run.procs);
      const [r] = await sql<{ n: number }[]>`select count(*)::int as n from inbound_events where state = 'queued'`;
      backlogLeft = r!.n;
      if (backlogLeft === 0 || Date.now() > until) break;
      await sleep(500);
    }
  }

  const spanCpuAfter = cpuSnapshot(roots, run.database);
  const spanClient = process.cpuUsage(spanClientBefore);
  const [phaseEvents] = await sql<{ n: number }[]>`
    select count(*)::int as n from inbound_events where event_id like ${`${scenario}-${rate}-%`} and processed_at is not null`;

  const pattern = `${scenario}-${rate}-m-%`;
  const [rc] = await sql<
    {
      total: number;
      committed: number;
      p50: number | null;
      p99: number | null;
      max: number | null;
      applied: number;
      ignored: number;
      rejected: number;
      failed: number;
      queued: number;
    }[]
  >`
    select count(*)::int as total,
           count(processed_at)::int as committed,
           percentile_cont(0.5) within group (order by extract(epoch from processed_at - received_at) * 1000) as p50,
           percentile_cont(0.99) within group (order by extract(epoch from processed_at - received_at) * 1000) as p99,
           max(extract(epoch from processed_at - received_at) * 1000)::float8 as max,
           count(*) filter (where state = 'applied')::int as applied,
           count(*) filter (where state = 'ignored')::int as ignored,
           count(*) filter (where state = 'rejected')::int as rejected,
           count(*) filter (where state = 'failed')::int as failed,
           count(*) filter (where state = 'queued')::int as queued
      from inbound_events where event_id like ${pattern}`;
  const startTs = new Date(windowStartEpoch).toISOString();
  const endTs = new Date(windowEndEpoch).toISOString();
  const [thr] = await sql<{ n: number }[]>`
    select count(*)::int as n from inbound_events where processed_at >= ${startTs}::timestamptz and processed_at < ${endTs}::timestamptz`;
  let topicLagP99: number | null = null;
  if (run.hasRelay) {
    const [t] = await sql<{ p99: number | null }[]>`
      select percentile_cont(0.99) within group (order by extract(epoch from published_at - created_at) * 1000) as p99
        from outbox where created_at >= ${startTs}::timestamptz and created_at < ${endTs}::timestamptz and published_at is not null`;
    topicLagP99 = t?.p99 ?? null;
  }

  const committedInWindow = thr!.n;
  const cpu = cpuDeltaMs(cpuBefore!, cpuAfter!);
  const clientMs = (clientAfter!.user - clientBefore!.user + clientAfter!.system - clientBefore!.system) / 1000;
  const spanCpu = cpuDeltaMs(spanCpuBefore, spanCpuAfter);
  const spanClientMs = (spanClient.user + spanClient.system) / 1000;
  const perEvent = (ms: number) => (phaseEvents!.n > 0 ? ms / phaseEvents!.n : NaN);
  const sorted = latencies.subarray(0, latencyCount).sort();
  const ourBusy = (cpu.app + cpu.pg + cpu.redis + clientMs) / (opts.duration * 1000);
  const machineBusy = ((machineAfter!.busy - machineBefore!.busy) / (machineAfter!.total - machineBefore!.total)) * os.cpus().length;
  const byRoot = cpuByRootMs(spanCpuBefore, spanCpuAfter);
  const cpuByProcess: Record<string, number> = {};
  for (const p of run.procs) cpuByProcess[p.name.slice(scenario.length + 1)] = perEvent(byRoot.get(p.child.pid!) ?? 0);
  const result: PhaseResult = {
    scenario,
    rate,
    sent: measN,
    ok,
    non2xx,
    errors,
    httpP50: percentile(sorted, 0.5),
    httpP99: percentile(sorted, 0.99),
    httpMax: sorted.length ? sorted[sorted.length - 1]! : NaN,
    achieved: committedInWindow / opts.duration,
    committed: rc!.committed,
    total: rc!.total,
    rcP50: rc!.p50 ?? NaN,
    rcP99: rc!.p99 ?? NaN,
    rcMax: rc!.max ?? NaN,
    states: { applied: rc!.applied, ignored: rc!.ignored, rejected: rc!.rejected, failed: rc!.failed, queued: rc!.queued },
    drained,
    drainMs,
    backlogLeft,
    cpuMsPerEvent: { app: perEvent(spanCpu.app), pg: perEvent(spanCpu.pg), redis: perEvent(spanCpu.redis), client: perEvent(spanClientMs) },
    cpuBusy: ourBusy,
    otherBusy: Math.max(0, machineBusy - ourBusy),
    otherBusyBefore,
    idleApp,
    generatorLagMaxMs,
    topicLagP99,
    statusCodes,
    cpuByProcess,
  };
  console.log(
    `${result.achieved.toFixed(0)}/s, HTTP p99 ${fmt(result.httpP99)} ms, receipt→commit p99 ${fmt(result.rcP99)} ms, ${drained ? `drained in ${drainMs} ms` : 'NOT drained'}`,
  );
  return result;
}

// ───────────────────────────── report ─────────────────────────────

function fmt(n: number | null | undefined, digits = 1): string {
  return n === null || n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits);
}

function table(results: PhaseResult[]): string {
  const head =
    '| scenario | target rate | achieved events/s | HTTP p50 | HTTP p99 | receipt→commit p50 | receipt→commit p99 | non-2xx | drained | CPU ms/event (app / pg / redis) |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|:---:|---|';
  const rows = results.map(
    (r) =>
      `| ${r.scenario} | ${r.rate} | ${fmt(r.achieved, 0)} | ${fmt(r.httpP50)} ms | ${fmt(r.httpP99)} ms | ${fmt(r.rcP50)} ms | ${fmt(r.rcP99)} ms | ${r.non2xx + r.errors} | ${r.drained ? 'yes' : 'NO'} | ${fmt(r.cpuMsPerEvent.app, 2)} / ${fmt(r.cpuMsPerEvent.pg, 2)} / ${fmt(r.cpuMsPerEvent.redis, 2)} |`,
  );
  return [head, ...rows].join('\n');
}

function details(results: PhaseResult[]): string {
  const head =
    '| scenario | rate | sent | committed | applied / ignored / rejected / failed / queued | HTTP max | receipt→commit max | drain after load | topic lag p99 | app CPU ms/event by process | bench client CPU ms/event | CPU busy (of ' +
    os.cpus().length +
    ') | app CPU when idle (cores) | other load before / during | max send lag | status codes |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|';
  const rows = results.map((r) => {
    const s = r.states;
    return `| ${r.scenario} | ${r.rate} | ${r.sent} | ${r.committed} | ${s.applied} / ${s.ignored} / ${s.rejected} / ${s.failed} / ${s.queued} | ${fmt(r.httpMax)} ms | ${fmt(r.rcMax)} ms | ${r.drainMs === null ? `> ${opts.drain} s` : `${r.drainMs} ms`} | ${r.topicLagP99 === null ? '–' : `${fmt(r.topicLagP99)} ms`} | ${Object.entries(
      r.cpuByProcess,
    )
      .map(([k, v]) => `${k} ${fmt(v, 2)}`)
      .join(
        ', ',
      )} | ${fmt(r.cpuMsPerEvent.client, 2)} | ${fmt(r.cpuBusy, 2)} | ${fmt(r.idleApp, 3)} | ${fmt(r.otherBusyBefore, 2)} / ${fmt(r.otherBusy, 2)} | ${fmt(r.generatorLagMaxMs)} ms | ${Object.entries(
      r.statusCodes,
    )
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')} |`;
  });
  return [head, ...rows].join('\n');
}

function verdict(results: PhaseResult[]): string[] {
  const lines: string[] = [];
  const noisy = results.filter((r) => r.otherBusy > 0.3);
  if (noisy.length) {
    lines.push(
      `- ⚠ other processes on the machine used more than 0.3 cores during: ${noisy.map((r) => `${r.scenario} @ ${r.rate} (${fmt(r.otherBusy, 2)})`).join(', ')} — treat those rows with care`,
    );
  }
  const hub = results.filter((r) => r.scenario === 'hub');
  if (hub.length === 0) return lines;
  const at1000 = hub.filter((r) => r.rate >= 1000 && r.drained && r.achieved >= 0.98 * r.rate && r.rcP99 <= 50 && r.non2xx + r.errors === 0);
  const best = at1000.sort((a, b) => b.rate - a.rate)[0];
  const tried1000 = hub.some((r) => r.rate >= 1000);
  lines.push(
    tried1000
      ? best
        ? `- hub ≥ 1,000 events/s with receipt→commit p99 ≤ 50 ms: **met** (up to ${best.rate}/s: ${fmt(best.achieved, 0)}/s, p99 ${fmt(best.rcP99)} ms)`
        : '- hub ≥ 1,000 events/s with receipt→commit p99 ≤ 50 ms: **not met**'
      : '- hub ≥ 1,000 events/s: not measured (no rate ≥ 1000)',
  );
  const at500 = hub.find((r) => r.rate === 500);
  lines.push(
    at500
      ? `- hub receipt→commit p99 ≤ 20 ms at 500 events/s: **${at500.rcP99 <= 20 && at500.drained ? 'met' : 'not met'}** (${fmt(at500.rcP99)} ms)`
      : '- hub p99 at 500 events/s: not measured',
  );
  return lines;
}

// ───────────────────────────── main ─────────────────────────────

/** Which code was measured: the commit, and whether src/ had uncommitted changes. */
function gitDescription(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim();
    return `git ${sha}${dirty ? ` with uncommitted changes in src/ (${dirty.split('\n').length} files)` : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

const started = new Date();
const codeAtStart = gitDescription();
const results: PhaseResult[] = [];
let roundTrips: string | undefined;
let exitCode = 0;
try {
  const [{ version: pgVersion }] = (await admin`select version()`) as unknown as [{ version: string }];
  const redisInfo = await redis.info('server');
  const redisVersion = /redis_version:(\S+)/.exec(redisInfo)?.[1] ?? '?';
  const cpuModel = os.cpus()[0]?.model ?? '?';
  console.log(
    `bench ${runId}: ${opts.scenarios.join(', ')} at ${opts.rates.join(', ')} events/s, ${opts.warmup} s warm-up + ${opts.duration} s each; ` +
      `${opts.workers} worker process(es) × concurrency ${opts.concurrency}; ${os.cpus().length} × ${cpuModel}; node ${process.version}; logs in ${logDir}`,
  );

  await admin.unsafe(`create database "${baseDb}"`);
  databases.add(baseDb);
  await releaseDatabase(logDir, baseDb, nodeArgs());

  const calibrationStart = calibrate();
  console.log(`CPU yardstick: ${calibrationStart.toFixed(0)} ms of CPU to SHA-256 64 MiB`);

  if (opts.roundTrips) {
    process.stdout.write('round trips per event (bench/round-trips.ts)… ');
    databases.add(`bench_${runId}_rt`);
    const rt = startProcess('round-trips', 'bench/round-trips.ts', {
      DATABASE_URL: dbUrl('postgres'),
      REDIS_URL: redisUrl,
      BENCH_RT_NAME: `${redisPrefix}-rt`,
      LOG_LEVEL: 'warn',
      NODE_ENV: 'development',
      API_CLIENTS: '',
    });
    const rtCode = await runToExit(rt);
    databases.delete(`bench_${runId}_rt`);
    const out = readFileSync(rt.log, 'utf8');
    if (rtCode === 0) {
      roundTrips = out.slice(out.indexOf('INTAKE_APPLY='));
      console.log('done');
    } else {
      console.log(`failed (${rtCode}); see ${rt.log}`);
    }
  }

  for (const scenario of opts.scenarios) {
    console.log(`${scenario}: starting…`);
    let run: ScenarioRun | undefined;
    try {
      run = await startScenario(scenario);
      for (const rate of opts.rates) {
        const r = await runPhase(run, rate);
        results.push(r);
        assertAlive(run.procs);
        if (r.backlogLeft > 0) {
          console.log(`  ${scenario}: ${r.backlogLeft} events still queued ${opts.backlogWait} s after the load at ${rate}/s; skipping higher rates`);
          break;
        }
        if (opts.stopAtSaturation && (!r.drained || r.achieved < 0.8 * rate)) {
          console.log(`  ${scenario}: ${rate}/s is not sustained; skipping higher rates (--stop-at-saturation)`);
          break;
        }
      }
    } catch (err) {
      exitCode = 1;
      console.error(`${scenario}: ${(err as Error).message}`);
    } finally {
      if (run) await stopScenario(run);
    }
  }

  const tbl = table(results);
  const det = details(results);
  const verdicts = verdict(results);
  const calibrationEnd = calibrate();
  console.log(`\n${tbl}\n\n${det}\n\n${verdicts.join('\n')}`);
  if (roundTrips) console.log(`\nRound trips per ship event (hub code, counted at the sockets):\n\n${roundTrips}`);

  if (opts.write && results.length) {
    const load = os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
    const md = `# Benchmark results

- date: ${started.toISOString()}
- machine: ${os.cpus().length} × ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}
- node ${process.version}; ${pgVersion.split(' on ')[0]}; Redis ${redisVersion}
- code: ${codeAtStart}
- command: \`npm run bench -- ${process.argv.slice(2).join(' ')}\`
- per rate: ${opts.warmup} s warm-up, then a ${opts.duration} s measured window; hub and stripped run ${opts.workers} worker process(es) × concurrency ${opts.concurrency}; the HTTP client (undici, ${opts.connections} connections) runs in the bench process on the same machine
- CPU yardstick (CPU ms to SHA-256 64 MiB in the bench process, best of 3; lower is faster): ${calibrationStart.toFixed(0)} ms at the start, ${calibrationEnd.toFixed(0)} ms at the end
- load average at the end: ${load}; *other load* in the details = CPU cores used by processes outside the benchmark (other people's builds and tests on a shared machine), measured from /proc/stat

${tbl}

${verdicts.join('\n')}

## Details

${det}

${
  roundTrips
    ? `## Round trips per ship event

Counted by \`bench/round-trips.ts\`: the hub's own intake, worker and outbox relay code in one process,
${'`'}picking → picked → packing → packed${'`'} for 100 orders, every socket write to Postgres and Redis decoded.
A *round trip* is one write the client then waits on; *describe-only* round trips are postgres.js asking
Postgres for parameter types (Parse/Describe/Flush) before it can send the statement itself, which it does
for every parameterised statement that is not prepared.

${roundTrips}

`
    : ''
}## How to read it

- **hub**: the real \`web\` (1 process), \`worker\` (${opts.workers}) and \`scheduler\` (1, outbox relay + sweeper), signed ship events
  (Bearer key + HMAC over each request's raw body). **stripped**: no auth or validation, one INSERT + one BullMQ
  enqueue per request, and ${opts.workers} worker process(es) that run the hub's own \`applyInboundEvent\` (no relay, no sweeper).
  **naive**: one process, no queue; the request does the INSERT and then \`applyInboundEvent\`, and answers when it is committed.
- Load is open-loop: request *i* is sent at *t0 + i/rate* whatever the answers; HTTP latency is measured from that
  scheduled time to the end of the answer (client side), so client-side queueing counts.
- Each order gets picking, picked, packing, packed, ${ORDER_EVENT_SPACING_S * 1000} ms apart (orders in waves of rate × ${ORDER_EVENT_SPACING_S}).
- **achieved events/s**: events whose outcome was committed (\`processed_at\`) inside the measured window, ÷ its length.
- **receipt→commit**: \`processed_at − received_at\` in Postgres (percentile_cont) over the events sent in the window;
  for naive it lies within the request.
- **drained**: no event left \`queued\` within ${opts.drain} s after the load stopped.
- **CPU ms/event**: utime+stime from /proc from the phase's first request (warm-up included) until its last
  event was committed (the backlog included) ÷ the phase's events — so intake and commits are matched even when
  a backlog grows. **CPU busy** and **other load** are over the measured window. *app* = the scenario's
  processes (hub: web + workers + scheduler); *pg* = the postmaster, its auxiliary processes and the backends of the
  scenario's database; *redis* = redis-server. The bench client's own CPU is in the details. Postgres and Redis are
  shared with anything else running on the machine.
`;
    writeFileSync(path.join(ROOT, 'bench', 'results.md'), md);
    console.log('\nwritten to bench/results.md');
  }
} catch (err) {
  exitCode = 1;
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
} finally {
  await cleanup();
}
process.exit(exitCode);
