/**
 * `npm run chaos` (not a test; `npm run chaos -- --duration=60` is the one-minute run of
 * test/integration/chaos.test.ts): the hub under a partner's real traffic while its processes, its
 * Redis, its Postgres connections and its partners fail on a schedule, and then an account, in the
 * manner of Jepsen, of what was accepted and what became of it.
 *
 * It starts everything it uses and removes it at the end (and on Ctrl-C): a database of its own on
 * DATABASE_URL's server (created, then migrated and seeded by the real `release`), a `redis-server` of
 * its own on a free port (`--save "" --appendonly no`: a restart loses everything), the partner
 * simulators in this process, and the hub's roles as real processes: 2 `web`, 2 `worker`, 1
 * `scheduler`. A hub process that exits without being told to is counted and started again, as a
 * process manager would.
 *
 * Traffic: --inflight orders send at once (bench/partner-order-life.ts: MAO registration, Slick's five
 * ship events, Grab's courier statuses once PMP assigned a delivery partner, PMP's delivered and, for
 * cash on delivery, cod.collected), each event sent on the answer to the one before, orders spread
 * over the two webs. Like a partner, the sender honours 503 + Retry-After and sends the same event
 * again after a connection error or a 5xx (to the other web: the load balancer's job). New orders
 * start for --duration seconds; the orders then in flight finish their lives.
 *
 * Faults (times scale with --duration; these are for 600 s):
 *   every 10–20 s   SIGKILL of a random worker, started again at once
 *   25 %            SIGKILL of a web, started again at once
 *   35 %            Redis emptied (FLUSHALL)
 *   45 %            every hub connection to Postgres terminated (pg_terminate_backend)
 *   55 %            Redis killed (SIGKILL) and started again 2 s later, empty
 *   10 % / 60 %     Slick answers 500 / hangs for 60 s
 *   30 % / 75 %     PMP answers 500 / hangs for 60 s
 *
 * At the end it waits for quiet (no event queued, no partner call owed, the topic published; at most
 * --quiet seconds) and counts:
 *   accepted     partner events answered 2xx
 *   applied      of those, the ones the hub applied
 *   lost         accepted and never applied (still queued, failed, or not stored at all)
 *   duplicated   a status transition written twice (the same order and status twice in its history,
 *                which the machine never allows on this traffic) or a tier settled twice (two
 *                `tier.updated` messages settling it)
 *   unexpected   an order not in the status its accepted events imply (7500 with its tiers done for a
 *                finished life), unless a manual-intervention case of that order explains it
 *   partner calls repeated (the same Idempotency-Key answered 2xx more than once: at-least-once allows
 *                it), interventions opened, and per fault the longest recovery.
 * Non-zero lost, duplicated or unexpected exits 1, and so does a hub not quiet by the deadline (its
 * events still queued are then counted apart, not as lost: they may yet be applied).
 *
 * Flags: --duration=600 --inflight=20 (orders sending at once) --open=<10 × inflight> (orders alive at
 *        once, those waiting for PMP's assignment included) --quiet=180 (s) --seed=<n> (fault timing)
 * Env:   DATABASE_URL (its server; the database name is ignored), CHAOS_NODE_ARGS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { Agent, request } from 'undici';
import { signatureHeader } from '../src/api/signature.js';
import { DEVELOPMENT_CLIENTS } from '../src/config.js';
import { hubPartnerEnv, startAllSimulators, type AllSimulators, type PartnerSimulator, type RecordedRequest } from '../src/simulators/index.js';
import {
  cleanupOnce,
  dbUrl,
  freePort,
  numberFlag,
  releaseDatabase,
  running,
  sleep,
  startProcess as startLoggedProcess,
  stopProcesses,
  tail,
  waitFor,
  type Proc,
} from '../bench/bench-processes.js';
import { COURIER_STATUSES, isCod, listenForAssignments, orderLife, SHIP_EVENT_TYPES, type SendAsPartner } from '../bench/partner-order-life.js';

const opts = {
  duration: numberFlag('duration', 600, 10),
  inflight: numberFlag('inflight', 20, 1),
  open: numberFlag('open', 0, 0),
  quiet: numberFlag('quiet', 180, 10),
  seed: numberFlag('seed', Date.now() % 1_000_000, 0),
};
if (opts.open === 0) opts.open = opts.inflight * 10;
const scale = opts.duration / 600;

/** At most `n` holders at once; the others wait in turn. */
function semaphore(n: number) {
  let free = n;
  const waiting: Array<() => void> = [];
  return {
    acquire: () => {
      if (free > 0) {
        free--;
        return Promise.resolve();
      }
      return new Promise<void>((r) => waiting.push(r));
    },
    release: () => {
      const next = waiting.shift();
      if (next) next();
      else free++;
    },
  };
}

// A small seeded generator, so a run's fault timing can be played again with --seed.
let seedState = opts.seed >>> 0 || 1;
const random = () => {
  seedState ^= seedState << 13;
  seedState >>>= 0;
  seedState ^= seedState >>> 17;
  seedState ^= seedState << 5;
  seedState >>>= 0;
  return seedState / 2 ** 32;
};

const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;
const database = `chaos_${runId}`;
const logDir = path.join(os.tmpdir(), `chaos-${runId}`);
mkdirSync(logDir, { recursive: true });
const SLICK_TOKEN = 'chaos-slick-token';
const OBSERVER = 'chaos-observer';

const admin = postgres(dbUrl('postgres'), { max: 1, onnotice: () => {} });
let databaseCreated = false;
let sims: AllSimulators | undefined;
let observer: postgres.Sql | undefined;
let agent: Agent | undefined;
let shuttingDown = false;

/** The start of the traffic (until then, of the run): the origin of every time the run prints. */
let t0 = Date.now();
const elapsed = (at = Date.now()) => `${((at - t0) / 1000).toFixed(1).padStart(6)} s`;
const say = (line: string) => console.log(`[${elapsed()}] ${line}`);

// ───────────────────────────── Redis: a server of its own ─────────────────────────────

let redisPort = 0;
let redisChild: ChildProcess | undefined;
let control: Redis | undefined;

async function startRedis(): Promise<void> {
  const fd = openSync(path.join(logDir, 'redis.log'), 'a');
  const child = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', logDir], {
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  redisChild = child;
  await waitFor('redis-server to answer', 10_000, async () => {
    if (child.exitCode !== null) throw new Error('exited');
    const probe = new Redis({ port: redisPort, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } finally {
      probe.disconnect();
    }
  });
}

async function killRedis(): Promise<void> {
  const child = redisChild;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

// ───────────────────────────── the hub's processes ─────────────────────────────

const nodeArgs = () => (process.env.CHAOS_NODE_ARGS ?? '').split(' ').filter(Boolean);
const ENTRIES = { web: 'src/api/main.ts', worker: 'src/workers/main.ts', scheduler: 'src/workers/scheduler.main.ts' } as const;
type RoleName = keyof typeof ENTRIES;

interface Role {
  name: string;
  role: RoleName;
  env: Record<string, string>;
  proc: Proc;
  /** Set before the run stops or kills it, so its exit is not taken for a crash. */
  planned: boolean;
}
const roles: Role[] = [];
const unplannedExits: Array<{ name: string; at: number; code: number | null; signal: string | null; log: string }> = [];

function launch(role: Role): void {
  const proc = startLoggedProcess(logDir, role.name, ENTRIES[role.role], role.env, nodeArgs());
  role.proc = proc;
  role.planned = false;
  proc.child.on('exit', (code, signal) => {
    running.delete(proc);
    if (role.planned || shuttingDown || role.proc !== proc) return;
    // A process manager starts a crashed process again; the run counts it.
    unplannedExits.push({ name: role.name, at: Date.now(), code, signal, log: tail(proc.log, 5) });
    say(`${role.name} exited by itself (code ${code}, signal ${signal}); starting it again`);
    setTimeout(() => {
      if (!shuttingDown && role.proc === proc) launch(role);
    }, 1000);
  });
}

function addRole(name: string, role: RoleName, env: Record<string, string>): Role {
  const r = { name, role, env, proc: undefined as unknown as Proc, planned: false };
  roles.push(r);
  launch(r);
  return r;
}

async function kill(role: Role): Promise<void> {
  role.planned = true;
  const { child } = role.proc;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
}

async function webReady(url: string): Promise<boolean> {
  const res = await request(`${url}/api/health/ready`, { headersTimeout: 2000, bodyTimeout: 2000 }).catch(() => undefined);
  await res?.body.dump();
  return res?.statusCode === 200;
}

// ───────────────────────────── cleanup ─────────────────────────────

// Ctrl-C / SIGTERM: no more faults or orders while cleanupOnce (below) takes everything down.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    shuttingDown = true;
  });
}
const cleanup = cleanupOnce(
  () => [
    [
      'stop the hub processes',
      async () => {
        shuttingDown = true;
        for (const r of roles) r.planned = true;
        await stopProcesses([...running]);
      },
    ],
    ['stop the simulators', async () => sims?.close()],
    ['close the partner connections', async () => agent?.close()],
    ['close the observer', async () => observer?.end({ timeout: 5 })],
    [
      'stop redis-server',
      async () => {
        control?.disconnect();
        await killRedis();
      },
    ],
    [
      'drop the database',
      async () => {
        if (databaseCreated) await admin.unsafe(`drop database if exists "${database}" with (force)`);
      },
    ],
    ['close the admin connection', () => admin.end({ timeout: 5 })],
  ],
  (signal) => `\n${signal}: stopping the hub, the simulators and redis-server, dropping ${database}… (logs stay in ${logDir})`,
);

// ───────────────────────────── the partners' traffic ─────────────────────────────

const client = (id: string) => DEVELOPMENT_CLIENTS.find((c) => c.id === id)!;

interface OrderRecord {
  n: number;
  registered: boolean;
  /** The partner event type last answered 2xx (`picking` … `cod`). */
  last: string | undefined;
  finished: boolean;
  failure: string | undefined;
}

const counters = {
  accepted: 0,
  acceptedIds: new Set<string>(),
  registrations: 0,
  refused503: 0,
  connectionErrors: 0,
  hub5xx: new Map<number, number>(),
  /** The first few 5xx answers other than 503: when, to what, and what the hub said. */
  hub5xxSamples: [] as string[],
  refused4xx: new Map<number, number>(),
  lastAcceptedAt: 0,
};
const ordersById = new Map<string, OrderRecord>();

function makeSender(webs: string[], giveUpAt: () => number): SendAsPartner {
  return async (clientId, method, route, body, isEvent) => {
    const c = client(clientId);
    const raw = JSON.stringify(body);
    const orderId = String(body.orderId);
    const order = ordersById.get(orderId)!;
    let web = order.n % webs.length;
    for (;;) {
      if (Date.now() > giveUpAt()) throw new Error(`gave up on ${String(body.eventId ?? `registration of ${orderId}`)}`);
      // Signed again on every attempt: a partner's signature is dated, the event is the same.
      const headers: Record<string, string> = { authorization: `Bearer ${c.key}`, 'content-type': 'application/json' };
      if (c.secret) headers['x-signature'] = signatureHeader(c.secret, raw);
      let status: number;
      let retryAfter: string | string[] | undefined;
      let text: string;
      try {
        const res = await request(`${webs[web]}${route}`, { method, headers, body: raw, dispatcher: agent, headersTimeout: 30_000, bodyTimeout: 30_000 });
        text = await res.body.text();
        status = res.statusCode;
        retryAfter = res.headers['retry-after'];
      } catch {
        counters.connectionErrors++;
        web = (web + 1) % webs.length;
        await sleep(200 + random() * 300);
        continue;
      }
      if (status === 503 || status === 429) {
        if (status === 503) counters.refused503++;
        await sleep(Math.max(0.2, Number(retryAfter ?? 1) || 1) * 1000);
        continue;
      }
      if (status >= 500) {
        counters.hub5xx.set(status, (counters.hub5xx.get(status) ?? 0) + 1);
        if (counters.hub5xxSamples.length < 10)
          counters.hub5xxSamples.push(`${elapsed().trim()} ${method} ${webs[web]}${route} ${String(body.eventId ?? orderId)}: ${status} ${text.slice(0, 300)}`);
        web = (web + 1) % webs.length;
        await sleep(500);
        continue;
      }
      if (status >= 300) {
        counters.refused4xx.set(status, (counters.refused4xx.get(status) ?? 0) + 1);
        throw new Error(`${method} ${route} ${String(body.eventId ?? orderId)}: ${status} ${text.slice(0, 300)}`);
      }
      counters.lastAcceptedAt = Date.now();
      if (!isEvent) {
        counters.registrations++;
        order.registered = true;
        return;
      }
      const eventId = String(body.eventId);
      if (!counters.acceptedIds.has(eventId)) {
        counters.acceptedIds.add(eventId);
        counters.accepted++;
      }
      order.last = eventId.slice(orderId.length + 1);
      return;
    }
  };
}

// ───────────────────────────── faults ─────────────────────────────

type FaultKind =
  | 'worker killed'
  | 'web killed'
  | 'redis flushed'
  | 'postgres connections terminated'
  | 'redis restarted'
  | 'slick 500s'
  | 'slick hangs'
  | 'pmp 500s'
  | 'pmp hangs';
interface Fault {
  kind: FaultKind;
  at: number;
  /** Partner faults: when the partner answered again. */
  endAt?: number;
  detail: string;
}
const faults: Fault[] = [];

// ───────────────────────────── main ─────────────────────────────

async function main(): Promise<number> {
  const partnerWindowMs = Math.max(3000, 60_000 * scale);
  console.log(
    `chaos: ${opts.duration} s of traffic, ${opts.inflight} orders sending at once (at most ${opts.open} alive), partner faults of ${(partnerWindowMs / 1000).toFixed(0)} s, ` +
      `breaker open ${(Math.max(3000, Math.round(30_000 * Math.min(1, scale))) / 1000).toFixed(0)} s, seed ${opts.seed}; ` +
      `node ${process.version}, ${os.cpus().length} cores; logs in ${logDir}`,
  );

  await admin.unsafe(`create database "${database}"`);
  databaseCreated = true;
  await releaseDatabase(logDir, database, nodeArgs());
  redisPort = await freePort();
  await startRedis();
  control = new Redis({ port: redisPort, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  control.on('error', () => {}); // down on purpose while it restarts
  sims = await startAllSimulators({ slickToken: SLICK_TOKEN });

  const webPorts = [await freePort(), await freePort()];
  const webs = webPorts.map((p) => `http://127.0.0.1:${p}`);
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    API_CLIENTS: '',
    DATABASE_URL: dbUrl(database),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    LOG_LEVEL: 'warn',
    ...hubPartnerEnv(sims, SLICK_TOKEN),
    // A hanging partner costs each attempt its whole timeout; 5 s instead of Slick's 30 s keeps a
    // short run's hang about the hang, not about one timeout. Everything else is the hub's default.
    SLICK_TIMEOUT_MS: '5000',
    PMP_TIMEOUT_MS: '5000',
    WORKER_METRICS_PORT: '0',
    SCHEDULER_METRICS_PORT: '0',
  };
  // The breaker's open period (30 s) scales with the run like the outages, so a short run's outage
  // is not mostly the breaker waiting.
  if (scale < 1) env.CIRCUIT_OPEN_MS = String(Math.max(3000, Math.round(30_000 * scale)));
  const webRoles = webPorts.map((p, i) => addRole(`web-${i + 1}`, 'web', { ...env, PORT: String(p) }));
  const workerRoles = [1, 2].map((i) => addRole(`worker-${i}`, 'worker', env));
  addRole('scheduler', 'scheduler', env);
  for (const url of webs) await waitFor(`${url} to be ready`, 90_000, () => webReady(url));
  say(`hub up: ${webs.join(', ')}, redis :${redisPort}, database ${database}; traffic starts`);
  t0 = Date.now();

  observer = postgres(dbUrl(database), { max: 2, onnotice: () => {}, connection: { application_name: OBSERVER } });
  agent = new Agent({ connections: opts.inflight * 2, keepAliveTimeout: 10_000 });

  // ── traffic ──
  const trafficEndsAt = t0 + opts.duration * 1000;
  let deadlineAt = Number.POSITIVE_INFINITY; // set once traffic ends: lives must finish by then
  const send = makeSender(webs, () => deadlineAt);
  // Grab starts once PMP really assigned a partner (a 200), not on an attempt PMP failed.
  const assignments = listenForAssignments(sims.pmp, (r) => r.status === 200);
  // --inflight orders send at once; an order waiting for PMP's assignment gives its place to a new
  // order meanwhile (the shop keeps taking orders while deliveries wait), and takes one back to go on.
  // At most --open orders are alive at all, so a partner outage (or a hub slower than the traffic)
  // holds back new orders instead of piling up orders without bound.
  const sending = semaphore(opts.inflight);
  const open = semaphore(opts.open);
  let waitingForAssignment = 0;
  const waitAssigned = async (orderId: string) => {
    sending.release();
    waitingForAssignment++;
    try {
      await assignedOrDeadline(orderId);
    } finally {
      waitingForAssignment--;
      await sending.acquire();
    }
  };
  const assignedOrDeadline = (orderId: string) =>
    new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        if (Date.now() > deadlineAt) {
          clearInterval(check);
          reject(new Error(`no PMP assignment for ${orderId} by the deadline`));
        }
      }, 500);
      void assignments.pmpAssigned(orderId).then(() => {
        clearInterval(check);
        resolve();
      });
    });
  const started: Array<Promise<void>> = [];
  const lives = (async () => {
    for (let n = 0; ; n++) {
      await open.acquire();
      await sending.acquire();
      if (Date.now() >= trafficEndsAt || shuttingDown) {
        sending.release();
        open.release();
        break;
      }
      const orderId = `chaos-o${n}`;
      const record: OrderRecord = { n, registered: false, last: undefined, finished: false, failure: undefined };
      ordersById.set(orderId, record);
      started.push(
        orderLife(n, orderId, send, waitAssigned)
          .then(
            () => {
              record.finished = true;
            },
            (err: unknown) => {
              record.failure = (err as Error).message;
            },
          )
          .finally(() => {
            sending.release();
            open.release();
          }),
      );
    }
    await Promise.all(started);
  })();

  // ── faults ──
  const stopFaults = { stopped: false };
  const at = (fraction: number) => t0 + fraction * opts.duration * 1000;
  const waitUntil = async (when: number) => {
    while (Date.now() < when && !stopFaults.stopped && !shuttingDown) await sleep(Math.min(250, when - Date.now()));
    if (shuttingDown) stopFaults.stopped = true;
  };
  const partnerFault = (kind: FaultKind, sim: PartnerSimulator, mode: { status: number } | { hang: true }, startFraction: number) => async () => {
    await waitUntil(at(startFraction));
    if (stopFaults.stopped) return;
    const fault: Fault = { kind, at: Date.now(), detail: `${(partnerWindowMs / 1000).toFixed(0)} s` };
    faults.push(fault);
    sim.setFailureMode(mode);
    say(`${kind} for ${fault.detail}`);
    await waitUntil(fault.at + partnerWindowMs);
    sim.resetFailureMode();
    fault.endAt = Date.now();
    say(`${sim.name} answers again`);
  };
  const oneOff = (fraction: number, run: () => Promise<void>) => async () => {
    await waitUntil(at(fraction));
    if (!stopFaults.stopped) await run();
  };
  const scheduled = [
    partnerFault('slick 500s', sims.slick, { status: 500 }, 0.1),
    partnerFault('pmp 500s', sims.pmp, { status: 500 }, 0.3),
    partnerFault('slick hangs', sims.slick, { hang: true }, 0.6),
    partnerFault('pmp hangs', sims.pmp, { hang: true }, 0.75),
    oneOff(0.25, async () => {
      const web = webRoles[Math.floor(random() * webRoles.length)]!;
      const fault: Fault = { kind: 'web killed', at: Date.now(), detail: web.name };
      faults.push(fault);
      await kill(web);
      launch(web);
      const url = webs[webRoles.indexOf(web)]!;
      await waitFor(`${web.name} to be ready again`, 90_000, () => webReady(url)).catch(() => {});
      fault.detail = `${web.name}, ready again after ${((Date.now() - fault.at) / 1000).toFixed(1)} s`;
      say(`web killed: ${fault.detail}`);
    }),
    oneOff(0.35, async () => {
      const [queued] = await observer!<{ n: number }[]>`select count(*)::int as n from inbound_events where state = 'queued'`.catch(() => [{ n: -1 }]);
      faults.push({ kind: 'redis flushed', at: Date.now(), detail: `FLUSHALL with ${queued!.n} events queued` });
      await control!.flushall();
      say(`redis flushed (${queued!.n} events were queued)`);
    }),
    oneOff(0.45, async () => {
      const fault: Fault = { kind: 'postgres connections terminated', at: Date.now(), detail: '' };
      faults.push(fault);
      const [r] = await admin<{ n: number }[]>`
        select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
         where datname = ${database} and pid <> pg_backend_pid() and application_name <> ${OBSERVER}`;
      fault.detail = `${r!.n} connections`;
      say(`postgres: terminated ${fault.detail} of the hub`);
    }),
    oneOff(0.55, async () => {
      const fault: Fault = { kind: 'redis restarted', at: Date.now(), detail: '' };
      faults.push(fault);
      await killRedis();
      await sleep(2000);
      await startRedis();
      fault.detail = `SIGKILL, down ${((Date.now() - fault.at) / 1000).toFixed(1)} s, back empty`;
      say(`redis restarted: ${fault.detail}`);
    }),
    // A random worker killed every 10–20 s and started again.
    async () => {
      for (;;) {
        await waitUntil(Date.now() + 10_000 + random() * 10_000);
        if (stopFaults.stopped || Date.now() > trafficEndsAt - 5000) return;
        const worker = workerRoles[Math.floor(random() * workerRoles.length)]!;
        faults.push({ kind: 'worker killed', at: Date.now(), detail: worker.name });
        await kill(worker);
        launch(worker);
        say(`worker killed: ${worker.name} (SIGKILL), started again`);
      }
    },
  ];
  const faultRuns = Promise.all(scheduled.map((f) => f().catch((err: unknown) => say(`fault step failed: ${(err as Error).message}`))));

  // Progress every 30 s (every 10 s in short runs).
  const progressEvery = opts.duration >= 300 ? 30_000 : 10_000;
  const progress = setInterval(() => {
    const done = [...ordersById.values()].filter((o) => o.finished).length;
    void observer!<{ n: number }[]>`select count(*)::int as n from inbound_events where state = 'queued'`
      .then(([q]) =>
        say(
          `orders started ${ordersById.size}, finished ${done}, waiting for PMP ${waitingForAssignment}; events accepted ${counters.accepted}, queued ${q!.n}; 503s ${counters.refused503}, connection errors ${counters.connectionErrors}`,
        ),
      )
      .catch(() => {});
  }, progressEvery);

  await waitUntil(trafficEndsAt);
  say('no new orders from now on; the orders in flight finish their lives');
  deadlineAt = Date.now() + opts.quiet * 1000;
  stopFaults.stopped = true;
  await faultRuns;
  for (const sim of [sims.slick, sims.pmp]) sim.resetFailureMode();
  await lives;
  clearInterval(progress);
  assignments.stop();

  // ── quiet ──
  const quietFrom = Date.now();
  const quiet = await waitFor('quiet', Math.max(10_000, deadlineAt - Date.now()), async () => {
    const [r] = await observer!<{ queued: number; owed: number; unpublished: number }[]>`
      select (select count(*)::int from inbound_events where state = 'queued') as queued,
             (select count(*)::int from order_calls where state = 'pending') as owed,
             (select count(*)::int from outbox where published_at is null) as unpublished`;
    return r!.queued === 0 && r!.owed === 0 && r!.unpublished === 0;
  }).then(
    () => true,
    () => false,
  );
  say(quiet ? `quiet after ${((Date.now() - quietFrom) / 1000).toFixed(1)} s` : 'not quiet by the deadline; counting anyway');

  return report(quiet);
}

// ───────────────────────────── the account ─────────────────────────────

const EXPECTED_BY_LAST: Record<string, number> = {
  picking: 3500,
  picked: 3600,
  packing: 3600,
  packed: 3700,
  shipped: 7000,
  SHIPPED: 7100,
  IN_TRANSIT: 7200,
  OUT_FOR_DELIVERY: 7300,
  delivered: 7500,
  cod: 7500,
};
// Every event type of the life is named above.
void SHIP_EVENT_TYPES;
void COURIER_STATUSES;

async function report(quiet: boolean): Promise<number> {
  const sql = observer!;
  const ids = [...counters.acceptedIds];
  // What became of every accepted event.
  const rows = await sql<{ event_id: string; state: string }[]>`
    select event_id, state from inbound_events where event_id = any(${ids})`;
  const stateOf = new Map(rows.map((r) => [r.event_id, r.state]));
  const outcomes = new Map<string, number>();
  for (const id of ids) {
    const s = stateOf.get(id) ?? 'not stored';
    outcomes.set(s, (outcomes.get(s) ?? 0) + 1);
  }
  const applied = outcomes.get('applied') ?? 0;
  // Still queued is lost only once the hub is quiet; before, it may yet be applied (and is counted apart).
  const lostIds = ids.filter((id) => ['failed', 'not stored', ...(quiet ? ['queued'] : [])].includes(stateOf.get(id) ?? 'not stored'));
  const stillQueued = quiet ? 0 : ids.filter((id) => stateOf.get(id) === 'queued').length;
  const notAppliedOtherwise = ids.filter((id) => ['ignored', 'rejected'].includes(stateOf.get(id) ?? ''));

  // A transition written twice: the same order reaching the same status (and sub-step) twice. On this
  // traffic (no failed delivery, so no re-attempt) the machine allows no repeat; overrides excepted.
  const dupTransitions = await sql<{ order_id: string; to_status: number; sub_step: string | null; n: number }[]>`
    select order_id, to_status, sub_step, count(*)::int as n from status_history
     where override = false group by order_id, to_status, sub_step having count(*) > 1`;
  const dupTiers = await sql<{ order_id: string; tier: string; n: number }[]>`
    select order_id, payload->>'tier' as tier, count(*)::int as n from outbox
     where type = 'tier.updated' and payload->>'state' = 'done'
     group by order_id, payload->>'tier' having count(*) > 1`;
  const duplicated = dupTransitions.reduce((a, r) => a + r.n - 1, 0) + dupTiers.reduce((a, r) => a + r.n - 1, 0);

  // Every order against what its accepted events imply.
  const orderRows = await sql<{ order_id: string; status: number; tiers: Record<string, string> | null }[]>`
    select o.order_id, o.status,
           (select jsonb_object_agg(t.tier::text, t.state) from order_tiers t where t.order_id = o.order_id) as tiers
      from orders o`;
  const statusOf = new Map(orderRows.map((r) => [r.order_id, r]));
  const cases = await sql<{ order_id: string; cause: string; state: string }[]>`select order_id, cause, state from interventions`;
  const casesByOrder = new Map<string, string[]>();
  for (const c of cases) casesByOrder.set(c.order_id, [...(casesByOrder.get(c.order_id) ?? []), c.cause]);
  const unexpected: string[] = [];
  const explained: string[] = [];
  let finished = 0;
  let unfinished = 0;
  for (const [orderId, o] of ordersById) {
    if (o.finished) finished++;
    else unfinished++;
    if (!o.registered) continue;
    const row = statusOf.get(orderId);
    const expected = o.last === undefined ? 3000 : EXPECTED_BY_LAST[o.last]!;
    const problems: string[] = [];
    if (!row) problems.push('not stored');
    else {
      if (row.status !== expected) problems.push(`status ${row.status}, expected ${expected}`);
      if (o.finished) {
        const t = row.tiers ?? {};
        const want = { '1': 'done', '2': 'done', '3': isCod(o.n) ? 'done' : 'not_applicable' };
        for (const [tier, state] of Object.entries(want)) if (t[tier] !== state) problems.push(`tier ${tier} ${t[tier] ?? 'missing'}, expected ${state}`);
      }
    }
    if (problems.length === 0) continue;
    const line = `${orderId} (last accepted: ${o.last ?? 'registration'}${o.failure ? `; partner stopped: ${o.failure}` : ''}): ${problems.join(', ')}`;
    if (casesByOrder.has(orderId)) explained.push(`${line} — case ${casesByOrder.get(orderId)!.join(', ')}`);
    else unexpected.push(line);
  }

  // Partner calls: the same call (one Idempotency-Key) answered 2xx more than once, and retries.
  const callRows: string[] = [];
  let repeatedTotal = 0;
  for (const sim of [sims!.slick, sims!.pmp, sims!.mao, sims!.notify, sims!.incident]) {
    const byKey = new Map<string, RecordedRequest[]>();
    for (const r of sim.requests) {
      const key = r.headers['idempotency-key'];
      if (!key) continue;
      byKey.set(key, [...(byKey.get(key) ?? []), r]);
    }
    let attempts = 0;
    let repeatedKeys = 0;
    let repeatedCalls = 0;
    let retried = 0;
    for (const list of byKey.values()) {
      attempts += list.length;
      const ok = list.filter((r) => r.status !== null && r.status < 300).length;
      if (ok > 1) {
        repeatedKeys++;
        repeatedCalls += ok - 1;
      }
      if (list.length > 1) retried++;
    }
    repeatedTotal += repeatedCalls;
    callRows.push(`| ${sim.name} | ${byKey.size} | ${attempts} | ${retried} | ${repeatedKeys} (${repeatedCalls} extra) |`);
  }

  // Recovery: for process and store faults, from the fault until an event was applied again and until
  // every event accepted before it was applied; for partner faults, from the partner's recovery until
  // every call that failed or hung during the fault had succeeded.
  const recoveryRows: string[] = [];
  const longest = new Map<FaultKind, { firstMs: number; drainMs: number; count: number }>();
  let previousStoreFaultAt = 0;
  for (const f of [...faults].sort((a, b) => a.at - b.at)) {
    let firstMs: number;
    let drainMs: number;
    if (f.endAt !== undefined) {
      const sim = f.kind.startsWith('slick') ? sims!.slick : sims!.pmp;
      const failedKeys = new Set<string>();
      for (const r of sim.requests) {
        const key = r.headers['idempotency-key'];
        if (key && r.at >= f.at && r.at <= f.endAt && (r.status === null || r.status >= 500)) failedKeys.add(key);
      }
      const firstOk = sim.requests.find((r) => r.at >= f.endAt! && r.status !== null && r.status < 300);
      firstMs = firstOk ? firstOk.at - f.endAt : Number.NaN;
      drainMs = 0;
      for (const key of failedKeys) {
        const ok = sim.requests.find((r) => r.headers['idempotency-key'] === key && r.at >= f.endAt! && r.status !== null && r.status < 300);
        drainMs = Math.max(drainMs, ok ? ok.at - f.endAt : Number.POSITIVE_INFINITY);
      }
      f.detail += `, ${failedKeys.size} calls failed or hung`;
    } else {
      const T = new Date(f.at);
      // In flight at the fault: accepted in the 10 s before it, and after the fault before it (whose
      // own stranded events are its account, not this one's).
      const since = new Date(Math.max(previousStoreFaultAt, f.at - 10_000));
      previousStoreFaultAt = f.at;
      const [r] = await sql<{ first: Date | null; drained: Date | null; open: number }[]>`
        select (select min(processed_at) from inbound_events where state = 'applied' and processed_at > ${T}) as first,
               (select max(processed_at) from inbound_events where received_at > ${since} and received_at <= ${T} and processed_at > ${T}) as drained,
               (select count(*)::int from inbound_events where received_at > ${since} and received_at <= ${T} and processed_at is null) as open`;
      firstMs = r!.first ? r!.first.getTime() - f.at : Number.NaN;
      drainMs = r!.open > 0 ? Number.POSITIVE_INFINITY : r!.drained ? Math.max(0, r!.drained.getTime() - f.at) : 0;
    }
    const l = longest.get(f.kind) ?? { firstMs: 0, drainMs: 0, count: 0 };
    longest.set(f.kind, { firstMs: Math.max(l.firstMs, firstMs), drainMs: Math.max(l.drainMs, drainMs), count: l.count + 1 });
    recoveryRows.push(`| ${elapsed(f.at).trim()} | ${f.kind} | ${f.detail} | ${ms(firstMs)} | ${ms(drainMs)} |`);
  }

  const interventionCauses = new Map<string, number>();
  for (const c of cases) interventionCauses.set(c.cause, (interventionCauses.get(c.cause) ?? 0) + 1);
  const lost = lostIds.length;
  const unexpectedCount = unexpected.length;
  const fmtMap = (m: Map<string | number, number>) => ([...m].length ? [...m].map(([k, v]) => `${k} × ${v}`).join(', ') : 'none');

  console.log(`
Faults (times from the start of the run):

| at | fault | detail | events applied again after | events in flight at it all applied after |
|---|---|---|---:|---:|
${recoveryRows.join('\n')}

Longest recovery per fault. Store and process faults: from the fault until an event was applied again, and until every event accepted before it (since the previous such fault, at most 10 s before) was applied. Partner faults: from the partner's recovery to its first success, and to the success of every call it failed or hung:

| fault | times | first applied / first success | all applied / all calls succeeded |
|---|---:|---:|---:|
${[...longest].map(([k, v]) => `| ${k} | ${v.count} | ${ms(v.firstMs)} | ${ms(v.drainMs)} |`).join('\n')}

Partner calls (simulators' records, calls with an Idempotency-Key):

| partner | calls | attempts | calls retried | calls answered 2xx more than once |
|---|---:|---:|---:|---:|
${callRows.join('\n')}

| counter | value |
|---|---:|
| orders started / lives finished / not finished | ${ordersById.size} / ${finished} / ${unfinished} |
| events accepted (2xx) | ${counters.accepted} |
| applied | ${applied} |
| lost (accepted, never applied) | ${lost} |${
    quiet
      ? ''
      : `
| still queued when the run stopped waiting (not quiet) | ${stillQueued} |`
  }
| accepted but ignored or rejected | ${notAppliedOtherwise.length} |
| duplicated (transitions ${dupTransitions.length} groups, tiers ${dupTiers.length}) | ${duplicated} |
| unexpected (status or tiers not what the events imply, no case) | ${unexpectedCount} |
| explained by a manual-intervention case | ${explained.length} |
| partner calls repeated (2xx more than once) | ${repeatedTotal} |
| interventions opened | ${cases.length}${cases.length ? ` (${fmtMap(interventionCauses)})` : ''} |
| partner answers: 503 (retried) / connection errors (retried) / other 5xx / 4xx | ${counters.refused503} / ${counters.connectionErrors} / ${fmtMap(counters.hub5xx)} / ${fmtMap(counters.refused4xx)} |
| hub processes that exited by themselves (restarted) | ${unplannedExits.length}${unplannedExits.length ? ` (${unplannedExits.map((e) => `${e.name} code ${e.code}`).join(', ')})` : ''} |
| quiet at the end | ${quiet ? 'yes' : 'no'} |
`);
  const show = (title: string, lines: string[]) => {
    if (lines.length === 0) return;
    console.log(`${title} (${lines.length}${lines.length > 20 ? ', first 20' : ''}):`);
    for (const l of lines.slice(0, 20)) console.log(`  ${l}`);
  };
  show(
    'lost events',
    lostIds.map((id) => `${id}: ${stateOf.get(id) ?? 'not stored'}`),
  );
  show(
    'accepted but not applied',
    notAppliedOtherwise.map((id) => `${id}: ${stateOf.get(id)}`),
  );
  show(
    'duplicated transitions',
    dupTransitions.map((r) => `${r.order_id} → ${r.to_status}${r.sub_step ? ` (${r.sub_step})` : ''} × ${r.n}`),
  );
  show(
    'tiers settled twice',
    dupTiers.map((r) => `${r.order_id} tier ${r.tier} × ${r.n}`),
  );
  show('unexpected orders', unexpected);
  show('explained by a case', explained);
  show('5xx answers other than 503', counters.hub5xxSamples);
  show(
    'unplanned exits',
    unplannedExits.map((e) => `${e.name} at ${elapsed(e.at).trim()} code ${e.code} signal ${e.signal}: ${e.log.replace(/\n/g, ' | ').slice(0, 400)}`),
  );

  console.log(
    `counters: accepted=${counters.accepted} applied=${applied} lost=${lost} duplicated=${duplicated} unexpected=${unexpectedCount} ` +
      `partner-calls-repeated=${repeatedTotal} interventions=${cases.length} faults=${faults.length} crashes=${unplannedExits.length} quiet=${quiet ? 'yes' : 'no'}`,
  );
  // Not quiet by the deadline: what is lost cannot be told yet, and that is a failure too.
  return lost === 0 && duplicated === 0 && unexpectedCount === 0 && quiet ? 0 : 1;
}

function ms(v: number): string {
  if (Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return 'never';
  return v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(1)} s`;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(err);
  code = 1;
}
await cleanup();
process.exit(code);
