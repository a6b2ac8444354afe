import type { Redis } from 'ioredis';
import type { IntegrationName } from '../config.js';
import type { Clock } from '../deps.js';

/**
 * A circuit breaker per integration whose state lives in Redis, so every worker process shares it:
 * "5 consecutive failures" means five, however many workers run.
 *
 *  closed     calls pass. At most `threshold - failures` calls are in flight at once, so calls
 *             already on the wire can never add up to more failures than it takes to open.
 *  open       no calls until `openUntil`; callers are told when to come back.
 *  half_open  exactly one caller (the probe) is let through; its outcome closes or re-opens.
 *
 * Each decision is one Lua script, so concurrent workers see one consistent state. In-flight calls
 * hold leases that expire, so a worker that dies mid-call does not block the breaker forever.
 */

export type BreakerState = 'closed' | 'open' | 'half_open';

export type Admission = { allowed: true; probe: boolean; lease: string } | { allowed: false; state: BreakerState; retryAt: number };

export interface BreakerChange {
  from: BreakerState;
  to: BreakerState;
  failures: number;
}

export interface BreakerSnapshot {
  integration: IntegrationName;
  state: BreakerState;
  failures: number;
  openUntil: number | null;
  inFlight: number;
}

// KEYS[1] state hash, KEYS[2] in-flight zset. ARGV: now, threshold, openMs, leaseMs, member, busyRetryMs
const ACQUIRE = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local openUntil = tonumber(redis.call('HGET', KEYS[1], 'openUntil') or '0')
local lease = now + tonumber(ARGV[4])
if state == 'open' then
  if now < openUntil then return {0, openUntil, state} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probeUntil', lease)
  redis.call('ZADD', KEYS[2], lease, ARGV[5])
  return {1, 1, 'open'}
end
if state == 'half_open' then
  local probeUntil = tonumber(redis.call('HGET', KEYS[1], 'probeUntil') or '0')
  if now < probeUntil then return {0, math.min(probeUntil, now + tonumber(ARGV[6])), state} end
  redis.call('HSET', KEYS[1], 'probeUntil', lease)
  redis.call('ZADD', KEYS[2], lease, ARGV[5])
  return {1, 1, state}
end
local limit = math.max(1, tonumber(ARGV[2]) - failures)
if redis.call('ZCARD', KEYS[2]) >= limit then return {0, now + tonumber(ARGV[6]), state} end
redis.call('ZADD', KEYS[2], lease, ARGV[5])
return {1, 0, state}
`;

// KEYS[3] (optional) a list the call's outcome is also pushed to. ARGV: now, threshold, openMs, member,
// outcome ('success' | 'failure'), then with KEYS[3]: the entry and how many entries the list keeps
const RECORD = `
local now = tonumber(ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[4])
if KEYS[3] then
  redis.call('LPUSH', KEYS[3], ARGV[6])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
end
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
if ARGV[5] == 'success' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'openUntil', 0, 'probeUntil', 0)
  return {state, 'closed', 0}
end
if state == 'open' then return {state, state, failures} end
failures = failures + 1
if state == 'half_open' or failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'failures', failures, 'openUntil', now + tonumber(ARGV[3]), 'probeUntil', 0)
  return {state, 'open', failures}
end
redis.call('HSET', KEYS[1], 'failures', failures)
return {state, state, failures}
`;

/**
 * The two decisions as ioredis commands of their own: ioredis sends each script's text once per
 * connection and its SHA (EVALSHA) after, re-sending the text only if Redis forgot it (NOSCRIPT), where
 * `eval` would send the whole script with every call.
 */
interface BreakerCommands {
  hubBreakerAcquire(...args: Array<string | number>): Promise<unknown>;
  hubBreakerRecord(...args: Array<string | number>): Promise<unknown>;
}
function breakerCommands(redis: Redis): BreakerCommands {
  const r = redis as Redis & Partial<BreakerCommands>;
  if (!r.hubBreakerAcquire) r.defineCommand('hubBreakerAcquire', { numberOfKeys: 2, lua: ACQUIRE });
  // The number of keys comes first in each call's arguments: 2, or 3 with a list entry.
  if (!r.hubBreakerRecord) r.defineCommand('hubBreakerRecord', { lua: RECORD });
  return r as Redis & BreakerCommands;
}

/** An entry for a list that keeps only its `kept` newest entries. */
export interface CappedListEntry {
  key: string;
  entry: string;
  kept: number;
}

export interface BreakerSettings {
  threshold: number;
  openMs: number;
  /** How long an admitted call may hold its slot: the call's timeout plus a margin. */
  leaseMs: number;
}

export class CircuitBreaker {
  /** How soon a caller turned away by a busy (not open) breaker tries again. */
  static readonly BUSY_RETRY_MS = 200;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly integration: IntegrationName,
    private readonly settings: BreakerSettings,
    private readonly clock: Clock,
  ) {}

  private keys(): [string, string] {
    const base = `${this.prefix}:breaker:${this.integration}`;
    return [base, `${base}:in-flight`];
  }

  async acquire(caller: string): Promise<Admission> {
    const [stateKey, inflightKey] = this.keys();
    const lease = `${caller}:${this.clock.now()}:${Math.random().toString(36).slice(2, 8)}`;
    const [allowed, extra, state] = (await breakerCommands(this.redis).hubBreakerAcquire(
      stateKey,
      inflightKey,
      this.clock.now(),
      this.settings.threshold,
      this.settings.openMs,
      this.settings.leaseMs,
      lease,
      CircuitBreaker.BUSY_RETRY_MS,
    )) as [number, number, BreakerState];
    if (allowed === 1) return { allowed: true, probe: extra === 1, lease };
    return { allowed: false, state, retryAt: extra };
  }

  /**
   * Records a call's outcome. A partner that answered (even 4xx) is up: only retriable failures count.
   * `alsoPush` is an entry about the same call for a capped list (its health sample), pushed by the
   * same script: the call's outcome costs one round trip, not two.
   */
  async record(lease: string, outcome: 'success' | 'failure', alsoPush?: CappedListEntry): Promise<BreakerChange | undefined> {
    const [stateKey, inflightKey] = this.keys();
    const now = this.clock.now();
    const { threshold, openMs } = this.settings;
    const args = alsoPush
      ? [3, stateKey, inflightKey, alsoPush.key, now, threshold, openMs, lease, outcome, alsoPush.entry, alsoPush.kept]
      : [2, stateKey, inflightKey, now, threshold, openMs, lease, outcome];
    const [from, to, failures] = (await breakerCommands(this.redis).hubBreakerRecord(...args)) as [BreakerState, BreakerState, number];
    return from !== to ? { from, to, failures: Number(failures) } : undefined;
  }

  async snapshot(): Promise<BreakerSnapshot> {
    const [stateKey, inflightKey] = this.keys();
    const [fields, inFlight] = await Promise.all([this.redis.hgetall(stateKey), this.redis.zcount(inflightKey, this.clock.now(), '+inf')]);
    const stored = (fields.state as BreakerState | undefined) ?? 'closed';
    const openUntil = Number(fields.openUntil ?? 0);
    // An open period that has run out is half-open: the next call is the probe.
    const state: BreakerState = stored === 'open' && this.clock.now() >= openUntil ? 'half_open' : stored;
    return {
      integration: this.integration,
      state,
      failures: Number(fields.failures ?? 0),
      openUntil: state === 'closed' || !openUntil ? null : openUntil,
      inFlight,
    };
  }
}

/** One breaker per integration, from configuration; a slot's lease outlives the call's timeout. */
export function createCircuitBreakers(
  redis: Redis,
  config: { redisPrefix: string; circuitFailureThreshold: number; circuitOpenMs: number; integrations: Record<IntegrationName, { timeoutMs: number }> },
  clock: Clock,
): Record<IntegrationName, CircuitBreaker> {
  const make = (name: IntegrationName) =>
    new CircuitBreaker(
      redis,
      config.redisPrefix,
      name,
      {
        threshold: config.circuitFailureThreshold,
        openMs: config.circuitOpenMs,
        leaseMs: config.integrations[name].timeoutMs + 5_000,
      },
      clock,
    );
  return { slick: make('slick'), pmp: make('pmp'), mao: make('mao'), grab: make('grab'), notify: make('notify'), incident: make('incident') };
}
