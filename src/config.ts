import { z } from 'zod';

/**
 * The only reader of process.env. Parsed and validated once at start-up into a frozen, typed Config;
 * a bad value stops start-up with a message naming the variable.
 */

export const ROLES = ['partner:slick', 'partner:grab', 'partner:pmp', 'partner:mao', 'viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const apiClientSchema = z
  .object({
    id: z.string().min(1),
    role: z.enum(ROLES),
    key: z.string().min(16).optional(),
    keySha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/i, 'keySha256 must be 64 hex characters')
      .optional(),
    secret: z.string().min(16).optional(),
  })
  .refine((c) => c.key !== undefined || c.keySha256 !== undefined, 'each client needs key or keySha256')
  .refine((c) => !c.role.startsWith('partner:') || c.secret !== undefined, 'partner clients need a secret');
export type ApiClientConfig = z.infer<typeof apiClientSchema>;

/**
 * Development clients, used only when API_CLIENTS is unset outside production (a warning is logged).
 * Documented in the README so the simulators, the demo and the benchmark can sign their calls.
 */
export const DEVELOPMENT_CLIENTS: ApiClientConfig[] = [
  { id: 'slick', role: 'partner:slick', key: 'dev-slick-key-0000000000', secret: 'dev-slick-secret-000000000' },
  { id: 'grab', role: 'partner:grab', key: 'dev-grab-key-00000000000', secret: 'dev-grab-secret-0000000000' },
  { id: 'pmp', role: 'partner:pmp', key: 'dev-pmp-key-000000000000', secret: 'dev-pmp-secret-00000000000' },
  { id: 'mao', role: 'partner:mao', key: 'dev-mao-key-000000000000', secret: 'dev-mao-secret-00000000000' },
  { id: 'viewer', role: 'viewer', key: 'dev-viewer-key-000000000' },
  { id: 'operator', role: 'operator', key: 'dev-operator-key-0000000' },
  { id: 'admin', role: 'admin', key: 'dev-admin-key-0000000000' },
];

export const INTEGRATIONS = ['slick', 'pmp', 'mao', 'grab', 'notify', 'incident'] as const;
export type IntegrationName = (typeof INTEGRATIONS)[number];

export interface IntegrationConfig {
  name: IntegrationName;
  /** Base URL of the partner; undefined means the integration is switched off. */
  baseUrl: string | undefined;
  token: string | undefined;
  timeoutMs: number;
  /** Delay before each retry; its length is the number of retries. */
  retryDelaysMs: number[];
}

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const optionalUrl = z.url({ protocol: /^https?$/ }).optional();
const delayList = z
  .string()
  .regex(/^\s*\d+(\s*,\s*\d+)*\s*$/, 'a comma-separated list of milliseconds, e.g. 1000,2000,4000')
  .transform((s) => s.split(',').map((d) => Number(d.trim())));

/** `points/seconds`: at most `points` requests in `seconds`. */
const rateSchema = z
  .string()
  .regex(/^\s*\d+\s*\/\s*\d+\s*$/, 'points/seconds, e.g. 100/1')
  .transform((s) => {
    const [points, seconds] = s.split('/').map((n) => Number(n.trim()));
    return { points: points!, durationSeconds: seconds! };
  })
  .refine((r) => r.points >= 1 && r.durationSeconds >= 1, 'points and seconds must both be at least 1');
export type RateLimit = z.output<typeof rateSchema>;

/**
 * Requests per client, by role (SPEC §3's 429), shared by every web process through Redis. Partners'
 * defaults sit above what the benchmark sends (2,500 events/s from one client); people's clients
 * above what the reads benchmark and the console send.
 */
export const DEFAULT_RATE_LIMITS: Record<Role, RateLimit> = {
  'partner:slick': { points: 5000, durationSeconds: 1 },
  'partner:grab': { points: 5000, durationSeconds: 1 },
  'partner:pmp': { points: 5000, durationSeconds: 1 },
  'partner:mao': { points: 5000, durationSeconds: 1 },
  viewer: { points: 1000, durationSeconds: 1 },
  operator: { points: 1000, durationSeconds: 1 },
  admin: { points: 1000, durationSeconds: 1 },
};
const rateLimitList = z.string().transform((s, ctx) => {
  const limits: Partial<Record<Role, RateLimit>> = {};
  for (const part of s
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    const role = part.slice(0, eq).trim();
    const rate = rateSchema.safeParse(part.slice(eq + 1));
    if (eq < 0 || !(ROLES as readonly string[]).includes(role) || !rate.success) {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not role=points/seconds with a role of ${ROLES.join(', ')}` });
      return z.NEVER;
    }
    limits[role as Role] = rate.data;
  }
  return limits;
});

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  PORT: int(0, 65535).default(3000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'a postgres:// URL')
    .default('postgres://postgres@127.0.0.1:5432/fulfillment_hub'),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'a redis:// URL')
    .default('redis://127.0.0.1:6379'),
  /** Prefix of every Redis key the hub owns (queues, breakers); the topic stream is named separately. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]+$/)
    .default('hub'),
  TOPIC_STREAM: z.string().min(1).default('order.fulfillment.v1'),
  API_CLIENTS: z.string().optional(),

  SLICK_BASE_URL: optionalUrl,
  SLICK_API_TOKEN: z.string().optional(),
  SLICK_TIMEOUT_MS: int(1).default(30_000),
  SLICK_RETRY_DELAYS_MS: delayList.default([1000, 2000, 4000]),
  PMP_BASE_URL: optionalUrl,
  PMP_API_TOKEN: z.string().optional(),
  PMP_TIMEOUT_MS: int(1).default(10_000),
  PMP_RETRY_DELAYS_MS: delayList.default([1000, 2000, 4000]),
  MAO_BASE_URL: optionalUrl,
  MAO_API_TOKEN: z.string().optional(),
  MAO_TIMEOUT_MS: int(1).default(10_000),
  MAO_RETRY_DELAYS_MS: delayList.default([1000, 2000, 4000]),
  GRAB_BASE_URL: optionalUrl,
  GRAB_API_TOKEN: z.string().optional(),
  GRAB_TIMEOUT_MS: int(1).default(5_000),
  GRAB_RETRY_DELAYS_MS: delayList.default([1000, 2000, 4000]),
  NOTIFY_WEBHOOK_URL: optionalUrl,
  NOTIFY_TIMEOUT_MS: int(1).default(5_000),
  NOTIFY_RETRY_DELAYS_MS: delayList.default([1000, 2000, 4000]),
  INCIDENT_WEBHOOK_URL: optionalUrl,
  INCIDENT_TIMEOUT_MS: int(1).default(5_000),
  INCIDENT_RETRY_DELAYS_MS: delayList.default([1000, 2000, 4000, 8000]),

  CIRCUIT_FAILURE_THRESHOLD: int(1).default(5),
  CIRCUIT_OPEN_MS: int(1).default(30_000),
  RECONCILE_AFTER_MS: int(1).default(15 * 60_000),
  TIER_SLA_MS: int(1).default(24 * 3600_000),
  DLQ_ALERT_THRESHOLD: int(1).default(10),
  /** An accepted event still `queued` after this long is considered waiting past its SLA. */
  EVENT_SLA_MS: int(1).default(60_000),
  WORKER_CONCURRENCY: int(1, 1000).default(16),
  /**
   * Partner-call jobs (Slick, PMP, MAO, notifications) one worker process runs at once: their own
   * budget, so calls to partners never take the event loop from inbound events.
   */
  PARTNER_CALL_CONCURRENCY: int(1, 1000).default(16),
  /**
   * Inbound events waiting in the queue beyond which intake refuses new events with 503 and
   * Retry-After, so a partner that outruns the workers is slowed before latency grows without limit.
   */
  INTAKE_MAX_BACKLOG: int(1).default(2_000),
  /** How long a new event may wait at the door for room in a full backlog before it is refused with 503. */
  INTAKE_ADMISSION_WAIT_MS: int(0, 10_000).default(1_000),
  /**
   * Who applies the events a web stores: `web` (the web itself, at once, by group commit as a worker
   * does; the queue only takes what it has no room for, and the sweeper whatever a crash left) or
   * `queue` (every event goes to the workers through the inbound queue).
   */
  INTAKE_APPLY: z.enum(['web', 'queue']).default('web'),
  /**
   * With INTAKE_APPLY=web, the events one web applies at once (in a transaction or waiting for one): a
   * new event waits at the door for room (INTAKE_ADMISSION_WAIT_MS at most, then goes to the queue), so
   * the events it has accepted keep their latency while a partner outruns it.
   */
  INTAKE_APPLY_MAX_IN_HAND: int(1, 10_000).default(16),
  /**
   * With INTAKE_APPLY=web, how long a store-and-apply transaction waits for a row lock (an order whose
   * partner answer is being committed, the same event being inserted by another web) before it gives
   * up: its events are then tried one by one, and one whose order is still held is stored alone and
   * applied on its own (INTAKE_LOCK_TIMEOUT_MS). Short, so that one order held for long (an operator's
   * bulk move) holds up the events of other orders sent with it this long at most.
   */
  INTAKE_BATCH_LOCK_WAIT_MS: int(1, 60_000).default(100),
  /**
   * With INTAKE_APPLY=web, how long the transaction of an event whose order was held waits for it
   * before the event goes to the queue.
   */
  INTAKE_LOCK_TIMEOUT_MS: int(10, 60_000).default(2_000),
  /** How long intake waits for Postgres to store an event before it answers 503 with Retry-After. */
  INTAKE_STORE_DEADLINE_MS: int(100, 60_000).default(5_000),
  /**
   * How long a worker's claim on a job lasts without renewal. A crashed worker's jobs are re-run
   * after about this long, so it bounds the delay a crash adds; too short and a slow job is run twice
   * (harmless: jobs are idempotent, but wasteful).
   */
  JOB_LOCK_MS: int(1000).default(30_000),
  /**
   * Where a worker and the scheduler serve their own /metrics for Prometheus (web serves it on PORT);
   * 0 = any free port, logged at start-up. Default 9101 / 9102 (a second process on one host, finding the
   * default taken, takes any free port and logs it), or 0 with NODE_ENV=test, where many run at once.
   */
  WORKER_METRICS_PORT: int(0, 65535).optional(),
  SCHEDULER_METRICS_PORT: int(0, 65535).optional(),
  /** How stale the scheduler's whole-table gauges (orders per status, deliveries, tiers, COD) may be: each is a count over a table. */
  METRICS_BUSINESS_REFRESH_MS: int(0).default(30_000),
  /** A stored event still queued this long after receipt gets its job re-created by the sweeper. */
  SWEEP_AFTER_MS: int(100).default(10_000),
  SWEEP_INTERVAL_MS: int(50).default(5_000),
  /** The relay is woken by Postgres NOTIFY on every commit that writes the outbox; this poll only catches what a lost connection missed. */
  OUTBOX_POLL_MS: int(5).default(2_000),
  HEALTH_PROBE_INTERVAL_MS: int(100).default(15_000),
  /** Per-role overrides of DEFAULT_RATE_LIMITS, e.g. `viewer=50/1,partner:grab=200/1`. */
  RATE_LIMITS: rateLimitList.default({}),
  /** Failed authentications (401s) one address may have before it is refused (429) for as long again. */
  FAILED_AUTH_LIMIT: rateSchema.default({ points: 30, durationSeconds: 60 }),
});

export interface Config {
  nodeEnv: 'development' | 'test' | 'production';
  port: number;
  logLevel: string;
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  topicStream: string;
  apiClients: ApiClientConfig[];
  usingDevelopmentClients: boolean;
  integrations: Record<IntegrationName, IntegrationConfig>;
  circuitFailureThreshold: number;
  circuitOpenMs: number;
  reconcileAfterMs: number;
  tierSlaMs: number;
  dlqAlertThreshold: number;
  eventSlaMs: number;
  workerConcurrency: number;
  partnerCallConcurrency: number;
  intakeMaxBacklog: number;
  intakeAdmissionWaitMs: number;
  intakeApply: 'web' | 'queue';
  intakeApplyMaxInHand: number;
  intakeBatchLockWaitMs: number;
  intakeLockTimeoutMs: number;
  intakeStoreDeadlineMs: number;
  /** Port of a worker's /metrics (0: any free one), and whether it was set or is the default. */
  workerMetricsPort: { port: number; explicit: boolean };
  /** Port of the scheduler's /metrics, likewise. */
  schedulerMetricsPort: { port: number; explicit: boolean };
  metricsBusinessRefreshMs: number;
  jobLockMs: number;
  sweepAfterMs: number;
  sweepIntervalMs: number;
  outboxPollMs: number;
  healthProbeIntervalMs: number;
  rateLimits: Record<Role, RateLimit>;
  failedAuthLimit: RateLimit;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function describe(issues: z.core.$ZodIssue[]): string {
  return issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

function parseApiClients(raw: string): ApiClientConfig[] {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new ConfigError('API_CLIENTS: not valid JSON (expected an array of {id, role, key|keySha256, secret})');
  }
  const parsed = z.array(apiClientSchema).min(1).safeParse(json);
  if (!parsed.success) throw new ConfigError(`API_CLIENTS: ${describe(parsed.error.issues)}`);
  const ids = new Set<string>();
  for (const c of parsed.data) {
    if (ids.has(c.id)) throw new ConfigError(`API_CLIENTS: duplicate client id ${c.id}`);
    ids.add(c.id);
  }
  return parsed.data;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  // Empty strings mean "unset", as in most process managers' env files.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(`invalid configuration: ${describe(parsed.error.issues)}`);
  }
  const e = parsed.data;
  if (e.NODE_ENV === 'production') {
    // The development defaults (local Postgres and Redis, the documented clients) must never be
    // what a production process silently runs against.
    const missing = (['DATABASE_URL', 'REDIS_URL', 'API_CLIENTS'] as const).filter((name) => cleaned[name] === undefined);
    if (missing.length > 0) throw new ConfigError(missing.map((name) => `${name}: required when NODE_ENV=production`).join('; '));
  }
  // An event may wait for a held order twice (in its batch, then alone) before it is stored alone:
  // within the store deadline, so that the partner is not answered 503 while it is being stored.
  if (2 * e.INTAKE_BATCH_LOCK_WAIT_MS >= e.INTAKE_STORE_DEADLINE_MS) {
    throw new ConfigError(
      `INTAKE_BATCH_LOCK_WAIT_MS: ${e.INTAKE_BATCH_LOCK_WAIT_MS} ms waited twice reaches INTAKE_STORE_DEADLINE_MS (${e.INTAKE_STORE_DEADLINE_MS} ms); keep it under half of it`,
    );
  }
  const apiClients = e.API_CLIENTS !== undefined ? parseApiClients(e.API_CLIENTS) : DEVELOPMENT_CLIENTS;

  const integrations: Record<IntegrationName, IntegrationConfig> = {
    slick: { name: 'slick', baseUrl: e.SLICK_BASE_URL, token: e.SLICK_API_TOKEN, timeoutMs: e.SLICK_TIMEOUT_MS, retryDelaysMs: e.SLICK_RETRY_DELAYS_MS },
    pmp: { name: 'pmp', baseUrl: e.PMP_BASE_URL, token: e.PMP_API_TOKEN, timeoutMs: e.PMP_TIMEOUT_MS, retryDelaysMs: e.PMP_RETRY_DELAYS_MS },
    mao: { name: 'mao', baseUrl: e.MAO_BASE_URL, token: e.MAO_API_TOKEN, timeoutMs: e.MAO_TIMEOUT_MS, retryDelaysMs: e.MAO_RETRY_DELAYS_MS },
    grab: { name: 'grab', baseUrl: e.GRAB_BASE_URL, token: e.GRAB_API_TOKEN, timeoutMs: e.GRAB_TIMEOUT_MS, retryDelaysMs: e.GRAB_RETRY_DELAYS_MS },
    notify: { name: 'notify', baseUrl: e.NOTIFY_WEBHOOK_URL, token: undefined, timeoutMs: e.NOTIFY_TIMEOUT_MS, retryDelaysMs: e.NOTIFY_RETRY_DELAYS_MS },
    incident: {
      name: 'incident',
      baseUrl: e.INCIDENT_WEBHOOK_URL,
      token: undefined,
      timeoutMs: e.INCIDENT_TIMEOUT_MS,
      retryDelaysMs: e.INCIDENT_RETRY_DELAYS_MS,
    },
  };

  return Object.freeze({
    nodeEnv: e.NODE_ENV,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    topicStream: e.TOPIC_STREAM,
    apiClients,
    usingDevelopmentClients: e.API_CLIENTS === undefined,
    integrations,
    circuitFailureThreshold: e.CIRCUIT_FAILURE_THRESHOLD,
    circuitOpenMs: e.CIRCUIT_OPEN_MS,
    reconcileAfterMs: e.RECONCILE_AFTER_MS,
    tierSlaMs: e.TIER_SLA_MS,
    dlqAlertThreshold: e.DLQ_ALERT_THRESHOLD,
    eventSlaMs: e.EVENT_SLA_MS,
    workerConcurrency: e.WORKER_CONCURRENCY,
    partnerCallConcurrency: e.PARTNER_CALL_CONCURRENCY,
    intakeMaxBacklog: e.INTAKE_MAX_BACKLOG,
    intakeAdmissionWaitMs: e.INTAKE_ADMISSION_WAIT_MS,
    intakeApply: e.INTAKE_APPLY,
    intakeApplyMaxInHand: e.INTAKE_APPLY_MAX_IN_HAND,
    intakeBatchLockWaitMs: e.INTAKE_BATCH_LOCK_WAIT_MS,
    intakeLockTimeoutMs: e.INTAKE_LOCK_TIMEOUT_MS,
    intakeStoreDeadlineMs: e.INTAKE_STORE_DEADLINE_MS,
    workerMetricsPort: { port: e.WORKER_METRICS_PORT ?? (e.NODE_ENV === 'test' ? 0 : 9101), explicit: e.WORKER_METRICS_PORT !== undefined },
    schedulerMetricsPort: { port: e.SCHEDULER_METRICS_PORT ?? (e.NODE_ENV === 'test' ? 0 : 9102), explicit: e.SCHEDULER_METRICS_PORT !== undefined },
    metricsBusinessRefreshMs: e.METRICS_BUSINESS_REFRESH_MS,
    jobLockMs: e.JOB_LOCK_MS,
    sweepAfterMs: e.SWEEP_AFTER_MS,
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    outboxPollMs: e.OUTBOX_POLL_MS,
    healthProbeIntervalMs: e.HEALTH_PROBE_INTERVAL_MS,
    rateLimits: { ...DEFAULT_RATE_LIMITS, ...e.RATE_LIMITS },
    failedAuthLimit: e.FAILED_AUTH_LIMIT,
  });
}

/** For process entry points: a bad configuration ends the process with one clear line, not a stack trace. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${JSON.stringify({ level: 60, msg: 'cannot start: bad configuration', error: err.message })}\n`);
    process.exit(1);
  }
}
