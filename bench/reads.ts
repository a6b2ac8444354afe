/**
 * `npm run bench:reads`: the reads benchmark of issue 11, over a database of --orders orders.
 *
 * It creates its own database (bench_reads_<ts>, migrated and seeded by the real `release`), fills it
 * set-based in SQL (INSERT … SELECT generate_series) with orders across the seeded locations and about
 * five status_history rows each, then starts the real `web`, `worker` and `scheduler` against it (as
 * bench/run.ts does: partner base URLs empty, so no partner calls) and measures:
 *
 *   A0 GET /api/orders/{id} and /history at the rates of A with no ingestion, then the same load through
 *      a naive reference (bench/naive-reads-server.ts: bare node:http, one SELECT) in the same run, then
 *      the hub's reads once more (so the reference sits between two passes of the hub)
 *   A  GET /api/orders/{id} (random existing ids) at --read-rate/s for --duration s while signed ship
 *      events are ingested at --event-rate/s on other orders; /history, /events, /tiers at --side-rate/s each
 *   B  search pages GET /api/orders?locationId=…&limit=50 (and with status=), following nextCursor
 *   C  one full CSV export GET /api/orders/export?format=csv: rows/s and the web process's peak RSS growth
 *      (VmRSS from /proc/<pid>/status every 100 ms)
 *   D  --sse-clients open GET /api/stream clients while status changes are produced at
 *      --change-rate/s (one ship event per change): ship event answered (2xx) → client received that order's change, p50/p99, and the
 *      web process's RSS at the start and the end. Every client reads every change; --sse-measured of them
 *      (spread over the connection order) parse and time them, the rest only count their frames' bytes,
 *      so that the load generator, on the same cores, is not what the latency measures
 *
 * Flags: --orders=1000000 --duration=15 --warmup=2 --read-rate=500 --event-rate=500 --side-rate=50
 *        --search-walks=40 --pages=5 --sse-clients=500 --sse-measured=50 --change-rate=500 --connections=128 --no-write
 *        --phases=A0,A,B,C,D (the phases to run; all by default)
 *        --reads-web=both|shared|own (A and D read from the web that ingests, from a web of their own, or
 *        each way once; see readsWeb below)
 * Env:   DATABASE_URL (its server is used; the database name is ignored), REDIS_URL, BENCH_NODE_ARGS (node flags for the hub processes, e.g. --cpu-prof).
 * The database and the run's Redis keys are dropped at the end, and on Ctrl-C.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { Pool, request } from 'undici';
import { signatureHeader } from '../src/api/signature.js';
import { DEVELOPMENT_CLIENTS } from '../src/config.js';
import { STORE_LOCATIONS } from '../src/db/store-locations.js';
import {
  assertAlive,
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
} from './bench-processes.js';
import { machineTicks } from './cpu.js';

// ───────────────────────────── configuration ─────────────────────────────

const FLAGS = [
  'orders',
  'duration',
  'warmup',
  'read-rate',
  'event-rate',
  'side-rate',
  'search-walks',
  'pages',
  'sse-clients',
  'sse-measured',
  'change-rate',
  'connections',
  'no-write',
  'phases',
  'reads-web',
];
for (const a of process.argv.slice(2)) {
  if (!FLAGS.some((f) => a === `--${f}` || a.startsWith(`--${f}=`))) {
    console.error(`unknown argument ${a}\nflags: ${FLAGS.map((f) => `--${f}`).join(' ')}`);
    process.exit(2);
  }
}
const opts = {
  orders: Math.round(numberFlag('orders', 1_000_000, 1000)),
  duration: numberFlag('duration', 15, 1),
  warmup: numberFlag('warmup', 2, 0),
  readRate: numberFlag('read-rate', 500, 1),
  eventRate: numberFlag('event-rate', 500, 1),
  sideRate: numberFlag('side-rate', 50, 0),
  searchWalks: numberFlag('search-walks', 40, 1),
  pages: numberFlag('pages', 5, 1),
  sseClients: numberFlag('sse-clients', 500, 1),
  sseMeasured: numberFlag('sse-measured', 50, 1),
  changeRate: numberFlag('change-rate', 500, 1),
  connections: numberFlag('connections', 128, 1),
  write: flag('no-write', 'false') !== 'true',
};
const PHASES = ['A0', 'A', 'B', 'C', 'D'];
/** --phases=A0,A runs only those phases (all by default), to look at one of them without the rest. */
const phases = new Set(flag('phases', PHASES.join(',')).split(','));
/**
 * Where phases A and D send their reads and streams: `shared` — to the web that partners send the ship
 * events to (it stores and applies them too); `own` — to a second web process of the same code and
 * configuration that partners do not reach (a deployment routing operators' traffic to web processes
 * of its own); `both` (the default) runs each of A and D once each way.
 */
const readsWeb = flag('reads-web', 'both');
if (!['shared', 'own', 'both'].includes(readsWeb)) {
  console.error(`--reads-web: shared, own or both (not ${readsWeb})`);
  process.exit(2);
}
type ReadsSide = 'shared' | 'own';
const readsSides: ReadsSide[] = readsWeb === 'both' ? ['shared', 'own'] : [readsWeb as ReadsSide];
for (const p of phases) {
  if (!PHASES.includes(p)) {
    console.error(`--phases: unknown phase ${p} (phases: ${PHASES.join(',')})`);
    process.exit(2);
  }
}

const runId = Date.now();
const database = `bench_reads_${runId}`;
const redisPrefix = `bench-reads-${runId}`;
const logDir = path.join(os.tmpdir(), `bench-reads-${runId}`);
mkdirSync(logDir, { recursive: true });

const slick = DEVELOPMENT_CLIENTS.find((c) => c.id === 'slick')!;
const viewer = DEVELOPMENT_CLIENTS.find((c) => c.id === 'viewer')!;
const SHIP_PATH = '/api/fulfillment/ship-events';
const EVENT_TYPES = ['picking', 'picked', 'packing', 'packed'] as const;
/**
 * The change each ship event makes, as `from>to`: packing is a sub-step of 3600, a change of its own
 * (3600>3600) on the topic, which must not be taken for picked's (3500>3600), 250 ms earlier.
 */
const EVENT_CHANGE: Record<(typeof EVENT_TYPES)[number], string> = { picking: '3000>3500', picked: '3500>3600', packing: '3600>3600', packed: '3600>3700' };
const ORDER_EVENT_SPACING_S = 0.25;
const LOCATION_IDS = STORE_LOCATIONS.map((l) => l.locationId);
const STORE_IDS = LOCATION_IDS.filter((l) => l.startsWith('STORE-'));

const admin = postgres(dbUrl('postgres'), { max: 1, onnotice: () => {} });
const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
let sql: postgres.Sql | undefined;

// ───────────────────────────── cleanup ─────────────────────────────

let dbCreated = false;
const cleanup = cleanupOnce(
  () => [
    ['stop processes', () => stopProcesses([...running])],
    ['close the bench connection', async () => sql?.end({ timeout: 5 })],
    ['drop the database', async () => dbCreated && admin.unsafe(`drop database if exists "${database}" with (force)`)],
    ['delete Redis keys', () => deleteRedisKeys(redis, `${redisPrefix}*`)],
    [
      'close connections',
      async () => {
        await admin.end({ timeout: 5 });
        redis.disconnect();
      },
    ],
  ],
  (signal) => `\n${signal}: stopping processes, dropping ${database}, deleting ${redisPrefix}* keys…`,
);
const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const startProcess = (name: string, file: string, env: Record<string, string>) => startLoggedProcess(logDir, name, file, env, nodeArgs);

// ───────────────────────────── helpers ─────────────────────────────

interface Stats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}
function stats(values: number[]): Stats {
  const s = Float64Array.from(values).sort();
  const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]! : NaN);
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s.length ? s[s.length - 1]! : NaN };
}
const fmt = (n: number | null | undefined, digits = 1) => (n === null || n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits));
const mb = (kb: number) => kb / 1024;
function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
/** Samples a process's VmRSS every 100 ms until stopped; returns the first, peak and last sample (kB). */
function sampleRss(pid: number): { stop(): { start: number; peak: number; end: number } } {
  const start = rssKb(pid);
  let peak = start;
  let last = start;
  const timer = setInterval(() => {
    last = rssKb(pid);
    peak = Math.max(peak, last);
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      last = rssKb(pid);
      peak = Math.max(peak, last);
      return { start, peak, end: last };
    },
  };
}
const randomInt = (n: number) => Math.floor(Math.random() * n);
const readId = (n: number) => `R${String(n).padStart(8, '0')}`;
const moverId = (n: number) => `M${String(n).padStart(7, '0')}`;

/** Open-loop timer: calls fire(i) at t0 + i/rate for i < total; resolves when the last one was fired. */
async function openLoop(rate: number, total: number, fire: (i: number, intended: number) => void): Promise<void> {
  const interval = 1000 / rate;
  const t0 = performance.now() + 20;
  let i = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1);
    for (; i < due; i++) fire(i, t0 + i * interval);
    if (i < total) await sleep(Math.max(0, t0 + i * interval - performance.now()));
  }
}

// ───────────────────────────── the fill ─────────────────────────────

/**
 * Orders R00000001… with status paths by n % 20: 60 % delivered, 10 % shipped (7000), 10 % packed,
 * 5 % picking, 10 % cancelled, 5 % returned; five history rows each (null → first … → current), with
 * tracking ids once shipped, 30 % COD, customers with name, phone and email, created over 90 days.
 * Movers M0000001… are at 3000 with their registration row only: the ship events of phases A and D move them.
 */
const PATHS_SQL = `(values
  (0,array[1000,3000,3700,7000,7500]),(1,array[1000,3000,3700,7000,7500]),(2,array[1000,3000,3700,7000,7500]),(3,array[1000,3000,3700,7000,7500]),
  (4,array[1000,3000,3700,7000,7500]),(5,array[1000,3000,3700,7000,7500]),(6,array[1000,3000,3700,7000,7500]),(7,array[1000,3000,3700,7000,7500]),
  (8,array[1000,3000,3700,7000,7500]),(9,array[1000,3000,3700,7000,7500]),(10,array[1000,3000,3700,7000,7500]),(11,array[1000,3000,3700,7000,7500]),
  (12,array[1000,2000,3000,3700,7000]),(13,array[1000,2000,3000,3700,7000]),
  (14,array[1000,2000,3000,3600,3700]),(15,array[1000,2000,3000,3600,3700]),
  (16,array[1000,1500,2000,3000,3500]),
  (17,array[1000,1500,2000,3000,9000]),(18,array[1000,1500,2000,3000,9000]),
  (19,array[1000,3000,7000,7400,8500])) as p(k, path)`;
const CREATED_SQL = `(timestamptz '2026-09-01 00:00:00+00' + ((n::bigint * 7919) % 7776000) * interval '1 second')`;

async function fill(db: postgres.Sql, orders: number, movers: number): Promise<void> {
  const locs = `array[${LOCATION_IDS.map((l) => `'${l}'`).join(',')}]`;
  const chunk = 100_000;
  for (let from = 1; from <= orders; from += chunk) {
    const to = Math.min(orders, from + chunk - 1);
    await db.unsafe(`
      insert into orders (order_id, ship_from_location_id, customer, payment_method, cod_amount, status, version, history_seq,
                          tracking_id, carrier_code, partner_id, partner_name, registration_hash, created_at, updated_at, status_changed_at)
      select 'R' || lpad(n::text, 8, '0'), (${locs})[1 + n % ${LOCATION_IDS.length}],
             jsonb_build_object('id', 'c-' || n, 'name', 'Customer ' || n, 'phone', '+66' || lpad(((n::bigint * 48271) % 1000000000)::text, 9, '0'),
                                'email', 'customer' || n || '@example.com'),
             case when n % 10 < 3 then 'COD' else 'PREPAID' end, case when n % 10 < 3 then (99 + n % 4900)::numeric(12, 2) end,
             p.path[5], 5, 5,
             case when p.path[5] in (7000, 7500, 8500) then 'TRK' || lpad(n::text, 10, '0') end,
             case when p.path[5] in (7000, 7500, 8500) then (array['KERRY','FLASH','JT'])[1 + n % 3] end,
             case when p.path[5] in (7000, 7500, 8500) then 'partner-' || (n % 7) end,
             case when p.path[5] in (7000, 7500, 8500) then 'Partner ' || (n % 7) end,
             md5(n::text), ${CREATED_SQL}, ${CREATED_SQL} + interval '12 hours', ${CREATED_SQL} + interval '12 hours'
        from generate_series(${from}, ${to}) n join ${PATHS_SQL} on p.k = n % 20`);
    await db.unsafe(`
      insert into status_history (order_id, seq, from_status, to_status, occurred_at, recorded_at, actor, source)
      select 'R' || lpad(n::text, 8, '0'), s, case when s > 1 then p.path[s - 1] end, p.path[s],
             ${CREATED_SQL} + (s - 1) * interval '3 hours', ${CREATED_SQL} + (s - 1) * interval '3 hours',
             case when s = 1 then 'mao' else 'slick' end, case when s = 1 then 'mao' else 'slick' end
        from generate_series(${from}, ${to}) n join ${PATHS_SQL} on p.k = n % 20 cross join generate_series(1, 5) s`);
    process.stdout.write(`${to} `);
  }
  await db.unsafe(`
    insert into orders (order_id, ship_from_location_id, customer, payment_method, status, version, history_seq, registration_hash, created_at, updated_at, status_changed_at)
    select 'M' || lpad(n::text, 7, '0'), (${`array[${STORE_IDS.map((l) => `'${l}'`).join(',')}]`})[1 + n % ${STORE_IDS.length}],
           jsonb_build_object('id', 'm-' || n), 'PREPAID', 3000, 1, 1, md5('m' || n), now(), now(), now()
      from generate_series(1, ${movers}) n`);
  await db.unsafe(`
    insert into status_history (order_id, seq, from_status, to_status, occurred_at, recorded_at, actor, source)
    select 'M' || lpad(n::text, 7, '0'), 1, null, 3000, now(), now(), 'mao', 'mao' from generate_series(1, ${movers}) n`);
}
const moverLocation = (n: number) => STORE_IDS[n % STORE_IDS.length]!;

// ───────────────────────────── ship events ─────────────────────────────

interface ShipLoad {
  done: Promise<void>;
  http: number[];
  non2xx: number;
  errors: number;
}
/**
 * Signed ship events (picking, picked, packing, packed) on movers [firstMover, …) at `rate`/s for
 * `seconds`, in waves as bench/run.ts does. onAnswer(orderId, type, at) for every 2xx answer.
 */
function shipLoad(
  pool: Pool,
  rate: number,
  seconds: number,
  firstMover: number,
  tag: string,
  onAnswer?: (orderId: string, type: string, at: number) => void,
): ShipLoad & { orders: number } {
  const total = Math.round(rate * seconds);
  const block = Math.max(1, Math.round(rate * ORDER_EVENT_SPACING_S));
  const orderCount = Math.ceil(total / EVENT_TYPES.length);
  const plan: Array<{ n: number; type: (typeof EVENT_TYPES)[number] }> = [];
  for (let b = 0; b * block < orderCount && plan.length < total; b++) {
    const size = Math.min(block, orderCount - b * block);
    for (const type of EVENT_TYPES) for (let k = 0; k < size; k++) plan.push({ n: firstMover + b * block + k, type });
  }
  plan.length = total;
  const out: ShipLoad & { orders: number } = { done: Promise.resolve(), http: [], non2xx: 0, errors: 0, orders: orderCount };
  const inflight = new Set<Promise<void>>();
  out.done = openLoop(rate, total, (i, intended) => {
    const { n, type } = plan[i]!;
    const orderId = moverId(n);
    const body = JSON.stringify({
      eventId: `${tag}-${i}`,
      orderId,
      shipFromLocationId: moverLocation(n),
      eventType: type,
      occurredAt: new Date().toISOString(),
    });
    const p = pool
      .request({
        path: SHIP_PATH,
        method: 'POST',
        headers: { authorization: `Bearer ${slick.key}`, 'content-type': 'application/json', 'x-signature': signatureHeader(slick.secret!, body) },
        body,
      })
      .then(
        async (res) => {
          await res.body.dump();
          const at = performance.now();
          out.http.push(at - intended);
          if (res.statusCode >= 200 && res.statusCode < 300) onAnswer?.(orderId, type, at);
          else out.non2xx++;
        },
        () => {
          out.errors++;
        },
      )
      .finally(() => inflight.delete(p));
    inflight.add(p);
  }).then(async () => {
    await Promise.all([...inflight]);
  });
  return out;
}

// ───────────────────────────── reads ─────────────────────────────

interface ReadResult extends Stats {
  non2xx: number;
  errors: number;
}
/** Open-loop GETs at `rate`/s for warmup + duration seconds; latencies of the measured part, from the scheduled send. */
async function readLoad(pool: Pool, rate: number, pathOf: () => string): Promise<ReadResult> {
  const warmN = Math.round(rate * opts.warmup);
  const total = warmN + Math.round(rate * opts.duration);
  const lat: number[] = [];
  let non2xx = 0;
  let errors = 0;
  const inflight = new Set<Promise<void>>();
  await openLoop(rate, total, (i, intended) => {
    const p = pool
      .request({ path: pathOf(), method: 'GET', headers: { authorization: `Bearer ${viewer.key}` } })
      .then(
        async (res) => {
          await res.body.dump();
          if (i < warmN) return;
          lat.push(performance.now() - intended);
          if (res.statusCode !== 200) non2xx++;
        },
        () => {
          if (i >= warmN) errors++;
        },
      )
      .finally(() => inflight.delete(p));
    inflight.add(p);
  });
  await Promise.all([...inflight]);
  return { ...stats(lat), non2xx, errors };
}

async function getJson(baseUrl: string, p: string): Promise<{ ms: number; status: number; body: any }> {
  const t = performance.now();
  const res = await request(`${baseUrl}${p}`, { headers: { authorization: `Bearer ${viewer.key}` } });
  const text = await res.body.text();
  const ms = performance.now() - t;
  return { ms, status: res.statusCode, body: res.statusCode === 200 ? JSON.parse(text) : text };
}

// ───────────────────────────── SSE clients ─────────────────────────────

interface SseClient {
  req: http.ClientRequest;
  connected: Promise<void>;
  ended: boolean;
  received: number;
}
/**
 * One GET /api/stream as the viewer: the client, connected once the stream's first comment arrives
 * (`consume` calls `connected()`), ended when the server ends it; `consume` reads the answer.
 */
function openStream(baseUrl: string, consume: (res: http.IncomingMessage, client: SseClient, connected: () => void) => void): SseClient {
  let resolveConnected!: () => void;
  let rejectConnected!: (err: Error) => void;
  const client: SseClient = {
    req: undefined as unknown as http.ClientRequest,
    connected: new Promise<void>((res, rej) => {
      resolveConnected = res;
      rejectConnected = rej;
    }),
    ended: false,
    received: 0,
  };
  client.req = http.get(`${baseUrl}/api/stream`, { headers: { authorization: `Bearer ${viewer.key}`, accept: 'text/event-stream' }, agent: false }, (res) => {
    if (res.statusCode !== 200) {
      rejectConnected(new Error(`GET /api/stream answered ${res.statusCode}`));
      res.resume();
      return;
    }
    res.on('end', () => {
      client.ended = true;
    });
    res.on('error', () => {
      client.ended = true;
    });
    consume(res, client, resolveConnected);
  });
  client.req.on('error', (err) => {
    client.ended = true;
    rejectConnected(err);
  });
  return client;
}

/** The bytes that begin every change frame after the first message (`: connected`): a newline, then its `id:` line. */
const FRAME_START = Buffer.from('\nid: ');

/**
 * A stream that reads everything and only counts its change frames (searching the bytes for
 * FRAME_START, never decoding them): the server's work for it is the same as for a measured client,
 * while this process spends next to nothing on it, so its own event loop stays free to timestamp what
 * the measured clients receive.
 */
function openCountingSse(baseUrl: string): SseClient {
  return openStream(baseUrl, (res, client, connected) => {
    // The tail of the last chunk, so a frame start split across two chunks is still counted once.
    let carry = Buffer.alloc(0);
    let isConnected = false;
    res.on('data', (chunk: Buffer) => {
      if (!isConnected && chunk.includes(': connected')) {
        isConnected = true;
        connected();
      }
      const bytes = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      for (let i = bytes.indexOf(FRAME_START); i >= 0; i = bytes.indexOf(FRAME_START, i + FRAME_START.length)) client.received++;
      carry = Buffer.from(bytes.subarray(Math.max(0, bytes.length - (FRAME_START.length - 1))));
    });
  });
}

/**
 * A stream whose every `event: status` is matched to the ship event that caused it (order id and
 * change from → to → the moment its 2xx came back); onChange gets the receive time and the entry id's ms.
 */
function openSse(baseUrl: string, onChange: (orderId: string, change: string, entryMs: number, at: number, wallAt: number) => void): SseClient {
  return openStream(baseUrl, (res, client, connected) => {
    res.setEncoding('utf8');
    let buf = '';
    res.on('data', (chunk: string) => {
      const at = performance.now();
      // The wall clock too, read now: the entry id's ms is Redis's wall clock, and this machine's wall
      // clock can be stepped during a run, so an offset taken once between the two clocks would not hold.
      const wallAt = Date.now();
      buf += chunk;
      for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
        const msg = buf.slice(0, end);
        buf = buf.slice(end + 2);
        if (msg.startsWith(': connected')) connected();
        if (!msg.startsWith('id: ')) continue;
        const nl = msg.indexOf('\n');
        const id = msg.slice(4, nl);
        const data = msg.slice(msg.indexOf('data: ') + 6);
        const o = /"orderId":"([^"]+)"/.exec(data);
        const f = /"from":(\d+|null)/.exec(data);
        const t = /"to":(\d+)/.exec(data);
        client.received++;
        if (o && f && t) onChange(o[1]!, `${f[1]}>${t[1]}`, Number(id.slice(0, id.indexOf('-'))), at, wallAt);
      }
    });
  });
}

// ───────────────────────────── main ─────────────────────────────

interface Row {
  phase: string;
  what: string;
  result: string;
  target: string;
  met: string;
}
const rows: Row[] = [];
const notes: string[] = [];
const verdict = (ok: boolean) => (ok ? 'yes' : '**no**');

let exitCode = 0;
const started = new Date();
try {
  const [{ version: pgVersion }] = (await admin`select version()`) as unknown as [{ version: string }];
  const cpuModel = os.cpus()[0]?.model ?? '?';
  console.log(`bench:reads ${runId}: ${opts.orders} orders; ${os.cpus().length} × ${cpuModel}; node ${process.version}; logs in ${logDir}`);

  await admin.unsafe(`create database "${database}"`);
  dbCreated = true;
  await releaseDatabase(logDir, database);

  // Movers: enough fresh orders at 3000 for the ship events of phases A and D.
  const eventsA = Math.round(opts.eventRate * (opts.warmup + opts.duration));
  // Each of the four ship events is one change on the topic (packing's a sub-step change, 3600 > 3600).
  const eventRateD = opts.changeRate;
  const eventsD = Math.round(eventRateD * (opts.warmup + opts.duration));
  // Orders moved by ship events: a fresh range for each pass of A and of D.
  const moversA = Math.ceil(eventsA / 4) + 10;
  const moversD = Math.ceil(eventsD / 4) + 10;
  const movers = readsSides.length * (moversA + moversD) + 1000;

  sql = postgres(dbUrl(database), { max: 4, onnotice: () => {} });
  process.stdout.write(`fill: ${opts.orders} orders, ${opts.orders * 5} history rows, ${movers} movers… `);
  const fillStart = performance.now();
  await fill(sql, opts.orders, movers);
  const fillInsertMs = performance.now() - fillStart;
  await sql`vacuum analyze`;
  // The fill leaves gigabytes of dirty pages behind: write them now, or the checkpoint that spreads
  // them over the next minutes runs under whichever phase comes first (and not under the ones after).
  await sql`checkpoint`.catch((err: Error) => notes.push(`- no CHECKPOINT after the fill (${err.message}): the first phase may run under its writes`));
  const fillMs = performance.now() - fillStart;
  const [size] = await sql<{ orders: string; history: string; db: string }[]>`
    select pg_size_pretty(pg_total_relation_size('orders')) as orders, pg_size_pretty(pg_total_relation_size('status_history')) as history,
           pg_size_pretty(pg_database_size(current_database())) as db`;
  console.log(
    `\nfill took ${(fillInsertMs / 1000).toFixed(1)} s (+ vacuum analyze and checkpoint: ${(fillMs / 1000).toFixed(1)} s in all); orders ${size!.orders}, history ${size!.history}, database ${size!.db}`,
  );
  rows.push({
    phase: 'fill',
    what: `${opts.orders.toLocaleString('en')} orders + ${(opts.orders * 5).toLocaleString('en')} history rows (set-based INSERT … SELECT, indexes in place)`,
    result: `${(fillInsertMs / 1000).toFixed(1)} s (+ ${((fillMs - fillInsertMs) / 1000).toFixed(1)} s vacuum analyze and checkpoint); database ${size!.db}`,
    target: '–',
    met: '–',
  });

  // The real processes, configured as bench/run.ts configures its hub scenario.
  const port = await freePort();
  const env: Record<string, string> = {
    NODE_ENV: 'development',
    API_CLIENTS: '',
    DATABASE_URL: dbUrl(database),
    REDIS_URL: redisUrl,
    REDIS_PREFIX: redisPrefix,
    TOPIC_STREAM: `${redisPrefix}:order.fulfillment.v1`,
    PORT: String(port),
    LOG_LEVEL: 'warn',
    SLICK_BASE_URL: '',
    PMP_BASE_URL: '',
    MAO_BASE_URL: '',
    GRAB_BASE_URL: '',
    NOTIFY_WEBHOOK_URL: '',
    INCIDENT_WEBHOOK_URL: '',
    WORKER_METRICS_PORT: '',
  };
  const web = startProcess('web', 'src/api/main.ts', env);
  const procs = [web, startProcess('worker', 'src/workers/main.ts', env), startProcess('scheduler', 'src/workers/scheduler.main.ts', env)];
  const baseUrl = `http://127.0.0.1:${port}`;
  /** Whether `url` answers 200 now. */
  const answers = (url: string) => async () => {
    const res = await request(url);
    await res.body.dump();
    return res.statusCode === 200;
  };
  await waitFor(`web to answer on ${baseUrl}/api/health/ready`, 60_000, answers(`${baseUrl}/api/health/ready`), procs);
  // The reads web: the same code and configuration on a port of its own, which no ship event reaches.
  const readsWebs: Partial<Record<ReadsSide, { url: string; pid: number; pool: Pool }>> = {};
  if (readsSides.includes('own') && (phases.has('A') || phases.has('D'))) {
    const readsPort = await freePort();
    const readsProc = startProcess('web-reads', 'src/api/main.ts', { ...env, PORT: String(readsPort) });
    procs.push(readsProc);
    const url = `http://127.0.0.1:${readsPort}`;
    await waitFor(`the reads web to answer on ${url}/api/health/ready`, 60_000, answers(`${url}/api/health/ready`), procs);
    readsWebs.own = { url, pid: readsProc.child.pid!, pool: new Pool(url, { connections: opts.connections, keepAliveTimeout: 60_000 }) };
  }
  // The naive reference of phase A0 (bench/naive-reads-server.ts), started with the hub so that the
  // machine has settled from both before A0, and idle until then. Not started when A0 does not run.
  let referencePool: Pool | undefined;
  if (phases.has('A0')) {
    const referencePort = await freePort();
    procs.push(
      startProcess('naive-reads', 'bench/naive-reads-server.ts', { DATABASE_URL: dbUrl(database), PORT: String(referencePort), READS_KEY: viewer.key! }),
    );
    const referenceUrl = `http://127.0.0.1:${referencePort}`;
    await waitFor(`the naive reads reference to answer on ${referenceUrl}/ready`, 60_000, answers(`${referenceUrl}/ready`), procs);
    referencePool = new Pool(referenceUrl, { connections: opts.connections, keepAliveTimeout: 60_000 });
  }
  const webPid = web.child.pid!;
  const pool = new Pool(baseUrl, { connections: opts.connections, keepAliveTimeout: 60_000 });
  const shipPool = new Pool(baseUrl, { connections: opts.connections, keepAliveTimeout: 60_000 });
  readsWebs.shared = { url: baseUrl, pid: webPid, pool };
  const sideLabel = (phase: string, side: ReadsSide) => (side === 'shared' ? phase : `${phase} own web`);
  // A probe event through the whole pipeline, and one read of each kind, before measuring.
  {
    let probed = false;
    const probe = shipLoad(shipPool, 4, 1, movers - 1, `${redisPrefix}-probe`, () => (probed = true));
    await probe.done;
    if (!probed) throw new Error('the probe ship event was not accepted');
    await waitFor(
      'the probe events to be applied',
      60_000,
      async () => {
        const [r] = await sql!<{ n: number }[]>`select count(*)::int as n from inbound_events where state = 'queued'`;
        return r!.n === 0;
      },
      procs,
    );
    for (const p of ['', '/history', '/events', '/tiers']) {
      const r = await getJson(baseUrl, `/api/orders/${readId(1)}${p}`);
      if (r.status !== 200) throw new Error(`GET /api/orders/${readId(1)}${p} answered ${r.status}: ${JSON.stringify(r.body)}`);
    }
  }

  /** Waits for the pipeline to be idle (no queued inbound event, no unpublished outbox row), so phases do not overlap. */
  const drain = async (after: string) => {
    const t = performance.now();
    await waitFor(
      `the backlog after ${after} to be worked off`,
      600_000,
      async () => {
        const [r] = await sql!<{ q: number; o: number }[]>`
        select (select count(*)::int from inbound_events where state = 'queued') as q, (select count(*)::int from outbox where published_at is null) as o`;
        return r!.q === 0 && r!.o === 0;
      },
      procs,
    );
    const s = (performance.now() - t) / 1000;
    console.log(`  backlog after ${after} worked off in ${s.toFixed(1)} s`);
    if (s > 1) notes.push(`- after ${after} the worker and relay needed ${s.toFixed(1)} s more to work off the backlog; the next phase started after it`);
  };
  const randomOrder = () => readId(1 + randomInt(opts.orders));
  /** A row of reads; a reference's row has no target of its own. */
  const readRow = (phase: string, what: string, r: ReadResult | undefined, rate: number, reference = false) => {
    if (!r) return;
    console.log(`  ${what}: p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms, max ${fmt(r.max)} ms (${r.n} requests, ${r.non2xx + r.errors} failed)`);
    rows.push({
      phase,
      what: `${what} at ${rate}/s (${r.n} measured${r.non2xx + r.errors ? `, ${r.non2xx + r.errors} not 200` : ''})`,
      result: `p50 ${fmt(r.p50)} / p99 ${fmt(r.p99)} / max ${fmt(r.max)} ms`,
      target: reference ? '–' : 'p99 < 10 ms',
      met: reference ? '–' : verdict(r.p99 < 10 && r.non2xx + r.errors === 0),
    });
  };

  // Like bench/run.ts's --settle: wait up to 90 s for the machine to be quiet (our idle processes included).
  let idleBusy = NaN;
  for (const deadline = Date.now() + 90_000; ; ) {
    const m0 = machineTicks();
    await sleep(1000);
    const m1 = machineTicks();
    idleBusy = ((m1.busy - m0.busy) / (m1.total - m0.total)) * os.cpus().length;
    if (idleBusy < 0.5 || Date.now() > deadline) break;
  }
  console.log(`machine CPU busy before the load (our idle processes included): ${fmt(idleBusy, 2)} cores`);
  notes.push(`- machine CPU busy in the second before phase A0 (our idle processes included): ${fmt(idleBusy, 2)} of ${os.cpus().length} cores`);

  if (phases.has('A0')) {
    // ── phase A0: the same reads with no ingestion, to tell the reads' own cost from CPU contention ──
    console.log(`A0: GET /api/orders/{id} at ${opts.readRate}/s and /history at ${opts.sideRate}/s, no ship events, ${opts.warmup} s + ${opts.duration} s…`);
    /** A0's load on one server: reads by id and /history at once. */
    const idsAndHistories = (server: Pool) =>
      Promise.all([
        readLoad(server, opts.readRate, () => `/api/orders/${randomOrder()}`),
        opts.sideRate > 0 ? readLoad(server, opts.sideRate, () => `/api/orders/${randomOrder()}/history`) : undefined,
      ]);
    const [byId0, hist0] = await idsAndHistories(pool);
    readRow('A0', 'GET /api/orders/{id}, no ingestion', byId0, opts.readRate);
    readRow('A0', 'GET /api/orders/{id}/history, no ingestion', hist0, opts.sideRate);

    // The same load, right after, through the naive reference: what the machine gives a read by id
    // with nothing around it (no Express, roles, rate limit, metrics or view), in this run.
    console.log(`A0 naive: the same reads through the naive reference (bench/naive-reads-server.ts)…`);
    const [refById, refHist] = await idsAndHistories(referencePool!);
    readRow('A0 naive', 'naive reference: GET /api/orders/{id} (one SELECT, bare node:http)', refById, opts.readRate, true);
    readRow('A0 naive', 'naive reference: GET /api/orders/{id}/history', refHist, opts.sideRate, true);

    // The hub once more, after the reference: whichever goes first after the fill and the start-up
    // meets the machine's first minutes, so the reference sits between two passes of the hub.
    console.log(`A0 again: the hub's reads once more, after the naive reference…`);
    const [byId1, hist1] = await idsAndHistories(pool);
    readRow('A0 again', 'GET /api/orders/{id}, no ingestion, after the reference', byId1, opts.readRate);
    readRow('A0 again', 'GET /api/orders/{id}/history, no ingestion, after the reference', hist1, opts.sideRate);
    for (const [when, hub] of [
      ['first', byId0],
      ['after the reference', byId1],
    ] as const) {
      if (hub && refById)
        notes.push(
          `- A0 (${when}): the hub's p99 by id is ${fmt(hub.p99 / refById.p99, 2)}× the naive reference's (${fmt(hub.p99)} vs ${fmt(refById.p99)} ms), p50 ${fmt(hub.p50 / refById.p50, 2)}× (${fmt(hub.p50)} vs ${fmt(refById.p50)} ms), in this run`,
        );
    }
  }

  for (const [pass, side] of (phases.has('A') ? readsSides : []).entries()) {
    // ── phase A: reads by id while ship events are ingested ──
    const phaseA = sideLabel('A', side);
    const readPool = readsWebs[side]!.pool;
    const firstA = 1 + pass * moversA; // movers are numbered from 1
    console.log(
      `${phaseA}: reads on ${side === 'shared' ? 'the web that ingests the ship events' : 'a web of their own'}; GET /api/orders/{id} at ${opts.readRate}/s, /history, /events, /tiers at ${opts.sideRate}/s each, ship events at ${opts.eventRate}/s, ${opts.warmup} s + ${opts.duration} s…`,
    );
    const mA0 = machineTicks();
    const loadA = shipLoad(shipPool, opts.eventRate, opts.warmup + opts.duration, firstA, `${redisPrefix}-a${pass}`);
    const [byId, hist, evs, tiers] = await Promise.all([
      readLoad(readPool, opts.readRate, () => `/api/orders/${randomOrder()}`),
      opts.sideRate > 0 ? readLoad(readPool, opts.sideRate, () => `/api/orders/${randomOrder()}/history`) : undefined,
      opts.sideRate > 0 ? readLoad(readPool, opts.sideRate, () => `/api/orders/${moverId(firstA + randomInt(loadA.orders))}/events`) : undefined,
      opts.sideRate > 0 ? readLoad(readPool, opts.sideRate, () => `/api/orders/${randomOrder()}/tiers`) : undefined,
    ]);
    await loadA.done;
    const mA1 = machineTicks();
    const busyA = ((mA1.busy - mA0.busy) / (mA1.total - mA0.total)) * os.cpus().length;
    const shipA = stats(loadA.http);
    assertAlive(procs);
    readRow(phaseA, 'GET /api/orders/{id}', byId, opts.readRate);
    readRow(phaseA, 'GET /api/orders/{id}/history', hist, opts.sideRate);
    readRow(phaseA, 'GET /api/orders/{id}/events (orders being moved)', evs, opts.sideRate);
    readRow(phaseA, 'GET /api/orders/{id}/tiers', tiers, opts.sideRate);
    console.log(`  ship events meanwhile: ${shipA.n} answered, HTTP p99 ${fmt(shipA.p99)} ms, ${loadA.non2xx + loadA.errors} failed`);
    rows.push({
      phase: phaseA,
      what: `ship events ingested meanwhile at ${opts.eventRate}/s (${shipA.n} answered${loadA.non2xx + loadA.errors ? `, ${loadA.non2xx + loadA.errors} failed` : ''})`,
      result: `HTTP p50 ${fmt(shipA.p50)} / p99 ${fmt(shipA.p99)} ms; machine CPU busy ${fmt(busyA, 2)} of ${os.cpus().length} cores during ${phaseA}`,
      target: '–',
      met: '–',
    });

    await drain(`phase ${phaseA}`);
  }

  if (phases.has('B')) {
    // ── phase B: search pages ──
    console.log(`B: ${opts.searchWalks} walks of ${opts.pages} pages (limit 50) by location, and as many by location and status…`);
    const statuses = [7500, 7000, 3700, 9000];
    for (const withStatus of [false, true]) {
      const first: number[] = [];
      const later: number[] = [];
      let failed = 0;
      let rowsSeen = 0;
      for (let w = 0; w < opts.searchWalks; w++) {
        const loc = LOCATION_IDS[randomInt(LOCATION_IDS.length)]!;
        let q = `/api/orders?locationId=${loc}&limit=50${withStatus ? `&status=${statuses[w % statuses.length]}` : ''}`;
        for (let page = 0; page < opts.pages; page++) {
          const r = await getJson(baseUrl, q);
          if (r.status !== 200) {
            failed++;
            break;
          }
          (page === 0 ? first : later).push(r.ms);
          rowsSeen += r.body.orders.length;
          if (!r.body.nextCursor) break;
          q = `/api/orders?locationId=${loc}&limit=50${withStatus ? `&status=${statuses[w % statuses.length]}` : ''}&cursor=${encodeURIComponent(r.body.nextCursor)}`;
        }
      }
      const all = stats([...first, ...later]);
      const f = stats(first);
      const l = stats(later);
      const what = withStatus ? 'GET /api/orders?locationId=…&status=…&limit=50' : 'GET /api/orders?locationId=…&limit=50';
      console.log(
        `  ${what}: ${all.n} pages (${rowsSeen} rows), p50 ${fmt(all.p50)} ms, p99 ${fmt(all.p99)} ms, max ${fmt(all.max)} ms; first pages p99 ${fmt(f.p99)}, cursor pages p99 ${fmt(l.p99)}; ${failed} failed`,
      );
      rows.push({
        phase: 'B',
        what: `${what}, ${opts.searchWalks} walks × up to ${opts.pages} pages by nextCursor (${all.n} pages${failed ? `, ${failed} failed` : ''}; one at a time)`,
        result: `p50 ${fmt(all.p50)} / p99 ${fmt(all.p99)} / max ${fmt(all.max)} ms (first page p99 ${fmt(f.p99)}, cursor pages p99 ${fmt(l.p99)})`,
        target: 'p99 ≤ 50 ms',
        met: verdict(all.p99 <= 50 && failed === 0),
      });
    }
  }

  if (phases.has('C')) {
    // ── phase C: one full CSV export ──
    console.log('C: one full CSV export…');
    await sleep(1000);
    const rssC = sampleRss(webPid);
    const tC = performance.now();
    const exp = await request(`${baseUrl}/api/orders/export?format=csv`, {
      headers: { authorization: `Bearer ${viewer.key}` },
      bodyTimeout: 0,
      headersTimeout: 0,
    });
    let lines = 0;
    let bytes = 0;
    for await (const chunk of exp.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++;
    }
    const exportMs = performance.now() - tC;
    const rC = rssC.stop();
    const exportRows = Math.max(0, lines - 1);
    const growthMb = mb(rC.peak - rC.start);
    const expectedRows = opts.orders + movers;
    console.log(
      `  ${exp.statusCode}: ${exportRows} rows (expected ${expectedRows}), ${(bytes / 2 ** 20).toFixed(0)} MiB in ${(exportMs / 1000).toFixed(1)} s = ${fmt(exportRows / (exportMs / 1000), 0)} rows/s; web RSS ${fmt(mb(rC.start), 0)} → peak ${fmt(mb(rC.peak), 0)} MB (+${fmt(growthMb)} MB)`,
    );
    rows.push({
      phase: 'C',
      what: `GET /api/orders/export?format=csv, all orders (${exportRows.toLocaleString('en')} rows of ${expectedRows.toLocaleString('en')}, ${(bytes / 2 ** 20).toFixed(0)} MiB${exp.statusCode !== 200 ? `, status ${exp.statusCode}` : ''})`,
      result: `${(exportMs / 1000).toFixed(1)} s, ${fmt(exportRows / (exportMs / 1000), 0)} rows/s`,
      target: '–',
      met: '–',
    });
    rows.push({
      phase: 'C',
      what: 'web peak RSS growth during the export (VmRSS every 100 ms)',
      result: `${fmt(mb(rC.start), 0)} → ${fmt(mb(rC.peak), 0)} MB: +${fmt(growthMb)} MB`,
      target: '≤ 50 MB',
      met: verdict(growthMb <= 50 && exportRows === expectedRows),
    });

    await drain('phase C');
  }

  for (const [pass, side] of (phases.has('D') ? readsSides : []).entries()) {
    // ── phase D: SSE clients while status changes are produced ──
    const phaseD = sideLabel('D', side);
    const streams = readsWebs[side]!;
    console.log(
      `${phaseD}: streams on ${side === 'shared' ? 'the web that ingests the ship events' : 'a web of their own'}; ${opts.sseClients} SSE clients, ship events at ${eventRateD}/s (as many status changes on the topic), ${opts.warmup} s + ${opts.duration} s…`,
    );
    const acked = new Map<string, number>(); // `${orderId}:${from}>${to}` → when the ship event's 2xx came back
    const fromAck: number[] = [];
    const fromEntry: number[] = [];
    let unmatched = 0;
    let measuring = false;
    const clients: SseClient[] = [];
    // Every client reads every change; one in `every` (spread over the connection order) also parses
    // and timestamps them, so that this process, on the same cores, does not become what is measured.
    const every = Math.max(1, Math.floor(opts.sseClients / Math.min(opts.sseMeasured, opts.sseClients)));
    let measuredClients = 0;
    for (let i = 0; i < opts.sseClients; i++) {
      if (i % every !== 0) {
        clients.push(openCountingSse(streams.url));
        if (i % 50 === 49) await sleep(50);
        continue;
      }
      measuredClients++;
      clients.push(
        openSse(streams.url, (orderId, change, entryMs, at, wallAt) => {
          if (!measuring) return;
          fromEntry.push(wallAt - entryMs);
          const a = acked.get(`${orderId}:${change}`);
          if (a === undefined) unmatched++;
          else fromAck.push(at - a);
        }),
      );
      if (i % 50 === 49) await sleep(50);
    }
    await Promise.all(clients.map((c) => c.connected));
    await sleep(2000);
    const rssD = sampleRss(streams.pid);
    const firstD = readsSides.length * moversA + pass * moversD;
    const warmEndsAt = performance.now() + opts.warmup * 1000;
    const loadD = shipLoad(shipPool, eventRateD, opts.warmup + opts.duration, firstD, `${redisPrefix}-d${pass}`, (orderId, type, at) => {
      acked.set(`${orderId}:${EVENT_CHANGE[type as keyof typeof EVENT_CHANGE]}`, at);
    });
    await sleep(Math.max(0, warmEndsAt - performance.now()));
    const receivedBefore = clients.reduce((s, c) => s + c.received, 0);
    // Flat is judged from here: the heap's growth to its working size in the first seconds of load is
    // not growth over time (the RSS with the clients connected and idle is reported beside it).
    const rssWarm = rssKb(streams.pid);
    measuring = true;
    const tD = performance.now();
    await loadD.done;
    const loadMsD = performance.now() - tD;
    await sleep(3000); // let the last changes reach the clients
    measuring = false;
    const windowS = (performance.now() - tD) / 1000;
    const rD = rssD.stop();
    const dropped = clients.filter((c) => c.ended).length;
    const receivedTotal = clients.reduce((s, c) => s + c.received, 0) - receivedBefore;
    for (const c of clients) c.req.destroy();
    const [changes] = await sql<{ n: number }[]>`
    select count(*)::int as n from status_history where order_id >= ${moverId(firstD)} and order_id < ${moverId(firstD + moversD)} and order_id like 'M%' and seq > 1`;
    const ack = stats(fromAck);
    const ent = stats(fromEntry);
    const perClientPerS = receivedTotal / opts.sseClients / windowS;
    const changesPerS = changes!.n / (loadMsD / 1000 + opts.warmup);
    console.log(
      `  ${changes!.n} status changes written (${fmt(changesPerS, 0)}/s over the ${fmt(loadMsD / 1000 + opts.warmup)} s the load took); received over ${fmt(windowS)} s: clients received ${receivedTotal} messages (${fmt(perClientPerS, 0)}/s per client); ${dropped} clients dropped; ` +
        `ship 2xx → client p50 ${fmt(ack.p50)} / p99 ${fmt(ack.p99)} / max ${fmt(ack.max)} ms (${ack.n} matched on ${measuredClients} timing clients, ${unmatched} unmatched); topic entry id → client p50 ${fmt(ent.p50)} / p99 ${fmt(ent.p99)} ms; web RSS ${fmt(mb(rD.start), 0)} → ${fmt(mb(rD.end), 0)} MB (peak ${fmt(mb(rD.peak), 0)})`,
    );
    const shipD = stats(loadD.http);
    rows.push({
      phase: phaseD,
      what: `${opts.sseClients} GET /api/stream clients; ship events at ${eventRateD}/s → ${fmt(changesPerS, 0)} status changes/s written (load took ${fmt(loadMsD / 1000 + opts.warmup)} s); ${dropped} clients dropped; ship HTTP p99 ${fmt(shipD.p99)} ms`,
      result: `${receivedTotal.toLocaleString('en')} messages received (${fmt(perClientPerS, 0)}/s per client)`,
      target: '–',
      met: '–',
    });
    rows.push({
      phase: phaseD,
      what: `change → client: ship event's 2xx answer → client received that order's change (${ack.n.toLocaleString('en')} deliveries to the ${measuredClients} clients of ${opts.sseClients} that time them; ${unmatched} not matched)`,
      result: `p50 ${fmt(ack.p50)} / p99 ${fmt(ack.p99)} / max ${fmt(ack.max)} ms`,
      target: 'p99 ≤ 100 ms',
      met: verdict(ack.p99 <= 100 && dropped === 0),
    });
    rows.push({
      phase: phaseD,
      what: 'change → client: topic entry id timestamp (XADD time) → client received',
      result: `p50 ${fmt(ent.p50)} / p99 ${fmt(ent.p99)} / max ${fmt(ent.max)} ms`,
      target: '–',
      met: '–',
    });
    const rssGrowth = mb(rD.end - rssWarm);
    rows.push({
      phase: phaseD,
      what: `web RSS: clients connected and idle → end of the ${opts.warmup} s warm-up → end of load + 3 s (flat: within 20 MB over the measured ${fmt(windowS)} s)`,
      result: `${fmt(mb(rD.start), 0)} → ${fmt(mb(rssWarm), 0)} → ${fmt(mb(rD.end), 0)} MB (peak ${fmt(mb(rD.peak), 0)} MB)`,
      target: 'flat',
      met: verdict(Math.abs(rssGrowth) <= 20),
    });
    if (unmatched)
      notes.push(
        `- phase ${phaseD}: ${unmatched} deliveries did not match an answered ship event (order id + from → to), e.g. a change whose 2xx had not come back yet; they are left out of the ship→client figure`,
      );
    await drain(`phase ${phaseD}`);
  }

  await pool.close();
  await readsWebs.own?.pool.close();
  await shipPool.close();
  await referencePool?.close();
  assertAlive(procs);
  await stopProcesses(procs);

  const head = '| phase | what | result | target | met |\n|---|---|---|---|:---:|';
  const tbl = [head, ...rows.map((r) => `| ${r.phase} | ${r.what} | ${r.result} | ${r.target} | ${r.met} |`)].join('\n');
  console.log(`\n${tbl}\n${notes.length ? `\n${notes.join('\n')}\n` : ''}`);
  if (opts.write) {
    const md = `# Reads benchmark results

- date: ${started.toISOString()}
- machine: ${os.cpus().length} × ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}; load average at the end ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}
- node ${process.version}; ${pgVersion.split(' on ')[0]}
- command: \`npm run bench:reads -- ${process.argv.slice(2).join(' ')}\`
- one \`web\` (and, for the passes marked "own web", a second one that no ship event reaches), one \`worker\`, one \`scheduler\` (partner base URLs empty: no partner calls); the HTTP and SSE clients run in the bench process on the same machine
- reads in A are open loop (latency from the scheduled send time), ${opts.warmup} s warm-up then ${opts.duration} s measured; B is one request at a time; D counts from the end of a ${opts.warmup} s warm-up to 3 s after the last ship event was answered; phases B and D start once the pipeline is idle

${tbl}
${notes.length ? `\n${notes.join('\n')}\n` : ''}`;
    writeFileSync(path.join(ROOT, 'bench', 'reads-results.md'), md);
    console.log('written to bench/reads-results.md');
  }
} catch (err) {
  exitCode = 1;
  console.error(`bench:reads failed: ${(err as Error).stack ?? err}`);
} finally {
  await cleanup();
}
process.exit(exitCode);
